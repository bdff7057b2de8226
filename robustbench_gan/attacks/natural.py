"""Natural adversarial examples (Zhao, Dua & Singh 2018, "Generating Natural Adversarial Examples", ICLR): search the
latent space of a generator ``G`` near ``z' = I(x)`` (``I``: an inverter, see :mod:`robustbench_gan.gan.inverter`)
for the closest ``z~`` whose image ``G(z~)`` the classifier gets wrong. Such inputs stay on the data manifold the
generator learned: they are corner cases of the data, not perturbations of the pixels.

Iterative stochastic search (their Algorithm 1): in shells ``[r, r + dr)`` of growing radius around ``z'`` (``r = 0,
dr, 2 dr, ...``), draw ``N`` perturbations (a direction uniform on the sphere, a length uniform in the shell), and stop
at the first shell where some ``G(z~)`` is misclassified, keeping the closest such ``z~``. The authors' defaults are
``N = 5000`` and ``dr = 0.01`` with no radius limit (``iterative_search`` in their code); on a CPU we use ``N = 500``
and ``dr = 0.05``, and the search stops at the largest eps: here eps is the budget in latent distance
``||z~ - z'||_2`` (not pixels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import Tensor

from ..classifier import Classifier
from ..errors import ConfigError
from .base import ATTACKS, Attack, AttackResult, Goal, RunContext, check_positive, check_seed, even_split

if TYPE_CHECKING:
    from ..data import Data
    from ..gan.inverter import InvertedGenerator
    from ..prerequisites import Prerequisite


@dataclass
class LatentSearch:
    """What :func:`latent_search` found per sample: ``z = I(x)``, the reconstruction ``x_rec = G(z)``, the closest
    misclassified ``z_adv`` (``z`` where none), its distance ``||z_adv - z||_2`` (inf where none), ``x_adv = G(z_adv)``
    (``G(z)`` where none) and its prediction. ``queries``: images the classifier labelled."""

    z: Tensor
    x_rec: Tensor
    z_adv: Tensor
    distance: Tensor
    x_adv: Tensor
    pred: Tensor
    queries: int

    @property
    def found(self) -> Tensor:
        return torch.isfinite(self.distance)


@torch.no_grad()
def latent_search(
    models: "InvertedGenerator", clf: Classifier, x: Tensor, goal: Goal, *, radius: float, step: float = 0.05,
    samples: int = 500, seed: int = 0, chunk: int = 8192,
) -> LatentSearch:
    """Zhao et al. 2018's iterative stochastic search (Algorithm 1) for every sample of ``x`` at once, up to latent
    distance ``radius``: shells ``[k dr, (k + 1) dr)`` (the last one cut at ``radius``), ``samples`` draws per
    shell and sample; a sample leaves the search at its first shell with a success (``goal``: another label than
    ``goal.labels``, or the target when targeted). ``chunk`` bounds the images generated per forward pass.
    Each sample's draws are its own (keyed by ``seed`` and its id, :meth:`Goal.draws`): same seed, same result."""
    dev = next(models.parameters()).device

    def generate(z: Tensor) -> Tensor:
        return models.generate(z).to(x.device, x.dtype).clamp(*clf.bounds)

    z0 = models.invert(x.to(dev, torch.float32))
    n = len(x)
    distance = torch.full((n,), float("inf"))
    z_adv = z0.clone()
    x_rec = generate(z0)
    x_adv = x_rec.clone()
    pred = clf.predict(x_rec).argmax(1).cpu()
    queries = n
    labels = goal.labels.cpu()
    active = torch.arange(n)
    draws = goal.draws(seed, n)  # each sample's own (keyed by its id): the same whatever the batch
    shells = math.ceil(radius / step - 1e-9) if radius > 0 else 0
    for k in range(shells):
        if len(active) == 0:
            break
        inner, outer = k * step, min((k + 1) * step, radius)
        mine = draws.rows(active)
        u = mine.randn((samples, models.z_dim))
        u = u / u.norm(dim=2, keepdim=True).clamp_min(1e-12)
        d = inner + (outer - inner) * mine.rand((samples,))
        zt = (z0[active].cpu()[:, None] + d[..., None] * u).reshape(-1, models.z_dim)
        preds = torch.cat([clf.predict(generate(zt[i : i + chunk].to(dev))).argmax(1).cpu()
                           for i in range(0, len(zt), chunk)]).view(len(active), samples)
        queries += len(zt)
        hit = preds == labels[active, None] if goal.targeted else preds != labels[active, None]
        done = hit.any(1)
        if done.any():
            best = torch.where(hit, d, torch.tensor(float("inf"))).argmin(1)
            rows, cols = done.nonzero().squeeze(1), best[done]
            ids = active[rows]
            distance[ids] = d[rows, cols]
            chosen = zt.view(len(active), samples, -1)[rows, cols].to(dev)
            z_adv[ids.to(dev)] = chosen
            x_adv[ids.to(x.device)] = generate(chosen)
            pred[ids] = preds[rows, cols]
        active = active[~done]
    return LatentSearch(z0, x_rec, z_adv, distance, x_adv, pred, queries)


@ATTACKS.register("natural")
class NaturalAdversary(Attack):
    """The natural adversarial search of Zhao, Dua & Singh 2018 (see the module docstring) against a generator and
    inverter trained once per run on the run's training data
    (:class:`~robustbench_gan.gan.inverter.InvertedGeneratorNeed`).

    ``samples`` (N) and ``step`` (dr) shape the search; eps is the budget in latent L2 distance (shells up to the
    largest eps, so ``ceil(max eps / step)`` shells at most). ``z_dim``, ``width`` and ``gan_epochs`` configure the
    unconditional GAN, ``inverter_epochs`` and ``lam`` (lambda, Zhao et al.: 0.1) its inverter.

    A probe: it searches from the ``searched`` inputs the classifier gets right as given and as reconstructed
    (``G(I(x))``); its rows give the fraction of those with a misclassified ``G(z~)`` within eps
    (``attack_success_rate``), ``mean_latent_distance`` (mean ``||z~ - I(x)||`` of those),
    ``reconstruction_accuracy`` (accuracy on ``G(I(x))``: low values mean the generator cannot represent the
    inputs, so distances say little), ``queries`` (images classified) and pixel distances ``x -> G(z~)``;
    ``robust_accuracy`` is empty (NaN) and it never enters the worst case. The gallery shows original,
    reconstruction ``G(I(x))`` and natural adversarial example. ``perturb`` returns ``G(z~)`` where one was found
    within eps and the input unchanged elsewhere.
    """

    role = "probe"
    norm = "latent"
    transfers_by_default = False
    needs_generator = True

    def __init__(
        self, *, samples: int = 500, step: float = 0.05, seed: int = 0, z_dim: int = 16, width: int = 64,
        gan_epochs: int = 30, inverter_epochs: int = 30, lam: float = 0.1,
    ) -> None:
        super().__init__()
        check_positive("samples", samples, integer=True)
        check_positive("step", step)
        check_seed(seed)
        for name, value in (("z_dim", z_dim), ("width", width), ("gan_epochs", gan_epochs),
                            ("inverter_epochs", inverter_epochs)):
            check_positive(name, value, integer=True)
        check_positive("lam", lam, allow_zero=True)
        self.samples, self.step, self.seed = int(samples), float(step), seed
        self.z_dim, self.width, self.gan_epochs = int(z_dim), int(width), int(gan_epochs)
        self.inverter_epochs, self.lam = int(inverter_epochs), float(lam)
        self.models: InvertedGenerator | None = None

    def prerequisites(self, data: "Data", *, seed: int, numerics: str = "") -> list["Prerequisite"]:
        """The generator and its inverter, trained on ``data``'s training split (shared by every cell of the run
        that asks for the same settings)."""
        from ..gan.inverter import InvertedGeneratorNeed

        return [InvertedGeneratorNeed(data, seed=seed, numerics=numerics, z_dim=self.z_dim, width=self.width,
                                      gan_epochs=self.gan_epochs, inverter_epochs=self.inverter_epochs, lam=self.lam)]

    def provide(self, artefacts: Sequence[Any]) -> None:
        """``[InvertedGenerator]``: the generator and inverter to search with."""
        from ..gan.inverter import InvertedGenerator

        if len(artefacts) != 1 or not isinstance(artefacts[0], InvertedGenerator):
            raise TypeError("the natural attack takes one InvertedGenerator (a generator and its inverter)")
        self.models = artefacts[0].eval()

    def search(self, clf: Classifier, x: Tensor, goal: Goal, radius: float) -> LatentSearch:
        if self.models is None:
            raise ConfigError("the natural attack needs a generator and its inverter: run it in a suite or through "
                              "benchmark() (the run trains them on its training data), or call provide() first")
        return latent_search(self.models, clf, x, goal, radius=radius, step=self.step, samples=self.samples,
                             seed=self.seed)

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """One search up to the largest eps; at each eps, ``G(z~)`` where its latent distance is within eps. The
        result's ``log`` is the :class:`LatentSearch` (latent distances, queries)."""
        found = self.search(clf, x, goal, max((float(e) for e in eps_list), default=0.0))
        keep = [(found.distance <= float(e)).to(x.device).view(-1, *([1] * (x.ndim - 1))) for e in eps_list]
        return AttackResult([torch.where(k, found.x_adv, x).detach() for k in keep],
                            queries=even_split(found.queries, len(eps_list)), log=found)
