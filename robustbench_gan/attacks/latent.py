"""The latent-space attack on generative purifiers (Athalye, Carlini & Wagner 2018, "Obfuscated Gradients Give a
False Sense of Security", sec. 5.3.1, their attack on Defense-GAN): instead of differentiating the projection,
search the generator's latent space directly for an image ``G(z)`` near ``x`` that the classifier gets wrong. An
image in the generator's range is (ideally) its own projection, so the defended classifier sees ``G(z)`` itself.
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier, eval_mode, frozen
from ..purified import GenerativePurifier, PurifiedClassifier, gradient_view
from .base import (
    ATTACKS, Attack, AttackResult, Goal, RunContext, attack_loss, check_loss, check_positive, check_seed,
    check_target, clip, flat_norm,
    is_success, parse_norm, project,
)
from .pgd import PGD

log = logging.getLogger(__name__)


@ATTACKS.register("latent")
class LatentAttack(Attack):
    """Optimise ``z`` (Adam, ``steps`` steps of learning rate ``lr``, from the defense's own projection ``z*`` of
    ``x``) to ascend the attack ``loss`` of the *inner* classifier on ``G(z)`` while a penalty
    ``penalty * excess`` keeps ``G(z)`` in the eps-ball, ``excess`` being how far ``G(z) - x`` reaches beyond it
    (Linf: the summed per-pixel excess over eps; L2: the norm beyond eps). This is Athalye et al.'s
    reparametrisation ``x' = G(z)`` with their penalty formulation (they minimise
    ``||G(z) - x||^2 + c * loss(f(G(z)))``) turned into a fixed-eps attack. Defaults measured on Defense-GAN on
    digits (100 test images, Linf eps 0.2): penalty 1 leaves 28% accuracy, 0.3: 25%, 3: 36%, 10: 70% (the ball
    constraint then wins over the loss); the margin loss beats cross-entropy (76% at penalty 10).

    The returned example is ``G(z)`` projected onto the eps-ball around ``x`` and clipped to the bounds, so it is a
    valid perturbation whatever the penalty did: each sample keeps the iterate that fools the inner classifier most
    confidently (highest loss) from inside the ball, otherwise the last one; all ``steps`` run (a barely fooled
    ``G(z)`` is often re-projected to the right class; no early stop). Whether it fools the *defended* classifier (which
    re-projects it) is decided by the evaluation, as for every attack.

    Against a classifier without a generative purifier there is no latent space to search: the attack falls back to
    PGD with the same norm, steps, loss, goal and seed (``adaptive = "bpda"`` when the classifier purifies its input
    with a non-generative purifier, so the fallback is adaptive too). Its rows then equal that PGD's; the fallback is
    logged.
    """

    role = "iterative"

    def __init__(
        self,
        *,
        norm: str = "inf",
        steps: int = 100,
        lr: float = 0.05,
        penalty: float = 1.0,
        loss: str = "margin",
        targeted: bool = False,
        target_mode: str = "random",
        target: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_positive("steps", steps, integer=True)
        check_positive("lr", lr)
        check_positive("penalty", penalty)
        check_loss(loss)
        check_target(targeted, target_mode, target)
        check_seed(seed)
        self.norm = parse_norm(norm)
        self.steps, self.lr, self.penalty, self.loss = int(steps), float(lr), float(penalty), loss
        self.targeted = targeted
        self.target_mode = target_mode if targeted else ""
        self.target = target
        self.seed = seed

    def fallback(self, clf: Classifier) -> PGD:
        """The PGD this attack runs on a classifier without a generator."""
        adaptive = "bpda" if isinstance(clf, PurifiedClassifier) else "none"
        return PGD(norm=self.norm, steps=self.steps, loss=self.loss, targeted=self.targeted,
                   target_mode=self.target_mode or "random", target=self.target, seed=self.seed, adaptive=adaptive)

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """One projection ``z*`` of ``x`` (the defense's own) starts the search at every eps."""
        purifier = getattr(clf, "purifier", None)
        if not isinstance(clf, PurifiedClassifier) or not isinstance(purifier, GenerativePurifier):
            log.info("latent attack: %s has no generative purifier; running PGD instead", type(clf).__name__)
            pgd = self.fallback(clf)
            return pgd.run(gradient_view(clf, pgd.adaptive), x, goal, eps_list)
        z0 = purifier.encode(x.detach()) if any(e != 0 for e in eps_list) else None
        out, queries = [], []
        for e in eps_list:
            before = clf.queries
            out.append(x.clone() if e == 0 or z0 is None else self._latent(clf, purifier, x, z0, goal, float(e)))
            queries.append(clf.queries - before)
        return AttackResult(out, queries=queries)

    def _excess(self, delta: Tensor, eps: float) -> Tensor:
        if self.norm == "inf":
            return F.relu(delta.abs() - eps).flatten(1).sum(1)
        return F.relu(flat_norm(delta, "2") - eps)

    def _latent(self, clf: PurifiedClassifier, purifier: GenerativePurifier, x: Tensor, z0: Tensor, goal: Goal,
                eps: float) -> Tensor:
        x = x.detach()
        with frozen(clf), eval_mode(purifier.generator):
            z = z0.clone().requires_grad_(True)
            generator, inner = purifier.generator, clf.inner
            optimizer = torch.optim.Adam([z], lr=self.lr)
            best = torch.empty_like(x)
            best_loss = torch.full((len(x),), float("-inf"), device=x.device)
            found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
            for _ in range(self.steps):
                with torch.enable_grad():
                    image = generator(z)
                    logits = inner(image)
                    excess = self._excess(image - x, eps)
                    loss = attack_loss(logits, goal, self.loss)
                    objective = (self.penalty * excess - loss).sum()
                    optimizer.zero_grad(set_to_none=True)
                    objective.backward()
                clf.queries += len(x)
                with torch.no_grad():  # the most confident success inside the ball so far
                    new = is_success(logits, goal) & (excess <= 0) & (loss > best_loss)
                    best[new], best_loss[new] = image[new].detach(), loss[new].detach()
                    found |= new
                    optimizer.step()
            with torch.no_grad():
                best[~found] = generator(z)[~found].detach()
        return clip(x + project(best - x, eps, self.norm), clf).detach()
