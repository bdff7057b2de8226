"""Attack protocol, goals, roles, the attack registry and the losses attacks ascend.

An attack holds hyperparameters only; the classifier comes per call. All attacks take and return pixel-space
tensors on the input's device and dtype.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier
from ..core.validation import check_bool, check_positive, check_seed  # noqa: F401  (re-exported for attacks)
from ..errors import ConfigError
from ..registry import Registry
from .engine.descent import clip, gradient
from .engine.draws import SampleDraws
from .engine.norms import flat_norm, l2_normalize, parse_norm, project  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from ..data import Data
    from ..prerequisites import Prerequisite


@dataclass(frozen=True)
class Goal:
    """What counts as success: ``labels`` are true labels (untargeted) or target labels (targeted)."""

    labels: Tensor
    targeted: bool = False
    ids: Tensor | None = None
    """Each sample's id (its position in the evaluated set): the key of every random draw an attack makes for it
    (:class:`~robustbench_gan.attacks.engine.draws.SampleDraws`). None: the positions in the batch."""
    stream: int = 0
    """The run's seed, mixed into every draw's key with the attack's own seed."""

    def subset(self, index: Tensor) -> Goal:
        """The goal of the samples ``index``."""
        ids = self.ids if self.ids is not None else torch.arange(len(self.labels), device=self.labels.device)
        return Goal(self.labels[index], self.targeted, ids[index.to(ids.device)], self.stream)

    def draws(self, seed: int, n: int | None = None) -> SampleDraws:
        """The attack's draws for these samples, keyed by their ids, the run's stream and the attack's ``seed``."""
        ids = self.ids if self.ids is not None else torch.arange(len(self.labels) if n is None else n)
        return SampleDraws(seed, ids, stream=self.stream)


@dataclass(frozen=True)
class RunContext:
    """What the evaluation tells an attack about the batch it is given (all optional: called directly, an attack
    knows none of it)."""

    clean_pred: Tensor | None = None
    """The batch's clean labels from the row's own clean pass (fp32, one draw per run), for attacks that leave
    misclassified samples alone (AutoAttack)."""
    batch_size: int | None = None
    """How many samples the attack's own passes may take at once, for an attack given more than that (AutoAttack
    gets every sample and re-batches the ones still standing)."""
    desc: str | None = None
    """A label for the attack's own progress bar; None: no bar."""


@dataclass
class AttackResult:
    """What one call of :meth:`Attack.run` returns: a value, nothing is left on the attack."""

    examples: list[Tensor]
    """Per eps, in order: one example per input (the input itself where the attack found none it returns)."""
    queries: list[int] | None = None
    """Per eps: the inputs the attack had scored (None: the evaluation splits the classifier's passes evenly)."""
    decided: list[Tensor] | None = None
    """Per eps: the label the attack itself decided each sample has, in fp32 (a self-deciding attack: AutoAttack's
    cascade, where one draw of a randomized classifier decides a sample); the row reports these instead of
    classifying the examples again. None: the evaluation classifies them."""
    clean: Tensor | None = None
    """A classifier that is not the one called (the smoothed classifier of randomized smoothing): its own clean label
    per sample (``-1``: it abstains), which the rows then use as the clean prediction. None: the row's clean pass."""
    found: Tensor | None = None
    """A minimum-norm attack: the smallest adversarial example it found per sample, whatever the eps."""
    log: Any = None
    """An attack's own per-batch record, read by its evaluator (AutoAttack: which component fooled each sample)."""


ROLES = ("single-step", "iterative", "minimum-norm", "black-box", "ensemble", "baseline", "probe", "corruption",
         "certified", "smoothed")
"""What an attack is, for the sanity checks and the leaderboard:

- ``single-step``: one gradient step (FGSM); compared with ``iterative`` attacks by the checks.
- ``iterative``: many gradient steps within the budget (PGD, BIM).
- ``minimum-norm``: finds the smallest perturbation, thresholded at each eps (DeepFool, Carlini-Wagner).
- ``black-box``: queries labels or scores only (the substitute attack, HopSkipJump, Square).
- ``ensemble``: several attacks, the per-sample worst case (AutoAttack's cascade); its components have their own
  roles and rows, so the checks compare those, not the ensemble.
- ``baseline``: uses no model information (uniform noise): any real attack must beat it.
- ``probe``: measures something other than robust accuracy (fooling images from noise): its rows leave
  ``robust_accuracy`` empty and it never enters the worst case.
- ``corruption``: a common corruption at a severity (the row's eps), no adversary: its rows say how often a sample
  stays correct, and it never enters the worst case.
- ``certified``: randomized smoothing's certificate at an L2 radius (the row's eps): a lower bound, not an attack;
  never in the worst case.
- ``smoothed``: an attack on the smoothed classifier of randomized smoothing, scored by that classifier's
  decisions: the empirical curve beside the certified one; never in the worst case of the base classifier.
"""


class Attack:
    """Base class of perturbation attacks.

    Subclasses implement :meth:`perturb` (one eps) and may override :meth:`perturb_many` to share work across
    a list of eps (FGSM computes its gradient once); :meth:`run` returns the examples at every eps as an
    :class:`AttackResult` with what the call counted, and an attack with more to say than its examples (the
    queries it made, the minimum-norm examples it found, a record for its evaluator) overrides :meth:`run` and
    builds its result there: nothing of a call is kept on the attack. Scoring the examples is the evaluation's
    (:mod:`robustbench_gan.evaluation`), never the attack's. ``threat`` is ``"white-box"`` unless the attack only
    queries labels or scores (``"black-box"``); ``role`` is one of :data:`ROLES`.
    """

    kind: ClassVar[str] = "attack"  # the registry key (set by ATTACKS.register); a suite's ``name`` is its label
    threat: ClassVar[str] = "white-box"
    role: ClassVar[str] = "iterative"
    starts_from_input: ClassVar[bool] = True  # False for probes that start from noise (see noise.py)
    eps_kind: ClassVar[str] = "budget"  # "severity": eps are a corruption's integer severities, no ball (corruption.py)
    transfers_by_default: ClassVar[bool] = True  # False: transferred only when a suite says ``transfer = true``
    targeted: bool = False
    target_mode: str = ""
    norm: str = "inf"
    precision: str = "fp32"  # of the attack's own passes (see attacks.precision); the suite's [evaluation] sets it
    adaptive: str = "none"  # what a gradient attack differentiates of a purifying defense (see purified.py)
    needs_generator: ClassVar[bool] = False  # evaluate needs provide([InvertedGenerator]) first (see natural.py)

    def make_goal(self, clf: Classifier, x: Tensor, y: Tensor, *, seed: int = 0, ids: Tensor | None = None) -> Goal:
        """The goal for true labels ``y``: untargeted, or targets chosen by ``target_mode``. ``ids`` (default: the
        positions ``0..n-1``) and the run's ``seed`` key every random draw made for a sample, its random target
        included, so a sample's draws never depend on the batch it is in."""
        ids = torch.arange(len(y), device=y.device) if ids is None else ids.to(y.device)
        if not self.targeted:
            return Goal(y, False, ids, seed)
        labels = choose_targets(clf, x, y, self.target_mode, target=getattr(self, "target", 0), seed=seed, ids=ids)
        return Goal(labels, True, ids, seed)

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        """Adversarial examples at one eps. An attack implements this, or :meth:`perturb_many`, or :meth:`run`
        (then this is its run at that eps)."""
        if type(self).run is Attack.run and type(self).perturb_many is Attack.perturb_many:
            raise NotImplementedError(f"{type(self).__name__} implements none of perturb, perturb_many and run")
        return self.perturb_many(clf, x, goal, [eps])[0]

    def label(self) -> str:
        """The name ``benchmark()`` gives this attack's rows (a suite names them itself): its registry key."""
        return self.kind

    def check_eps(self, eps: Sequence[float]) -> None:
        """Raise :class:`~robustbench_gan.errors.ConfigError` for budgets this attack cannot take (a corruption's
        severities are 1 to 5). Default: any."""

    def class_count_problem(self, num_classes: int) -> str | None:
        """Why this attack cannot run on ``num_classes`` classes, and what to use instead (None: it can). Suites
        and ``benchmark()`` ask before anything trains."""
        return None

    def prerequisites(self, data: "Data", *, seed: int, numerics: str = "") -> list["Prerequisite"]:
        """What this attack needs besides the classifier, built once per run from the run's training ``data`` (the
        natural adversarial search's generator and inverter). The run obtains each one (memo, weight cache, or
        built) and hands them to :meth:`provide` before the attack runs. Default: nothing."""
        return []

    def provide(self, artefacts: Sequence[Any]) -> None:
        """Receive the artefacts of :meth:`prerequisites`, in order (the run calls this in every cell)."""
        if artefacts:
            raise TypeError(f"{type(self).__name__} declares no prerequisites but was given {len(artefacts)}")

    def perturb_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        """Adversarial examples for each eps in ``eps_list``, in order (an attack that overrides :meth:`run`: the
        examples of its result)."""
        if type(self).run is not Attack.run:
            return self.run(clf, x, goal, eps_list).examples
        return [self.perturb(clf, x, goal, eps=float(e)) for e in eps_list]

    def transfer_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        """Examples meant for *other* models (transfer). Attacks that stop at the first success override this
        to return full-strength examples, since barely-adversarial ones rarely transfer."""
        return self.perturb_many(clf, x, goal, eps_list)

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """The attack on one batch at every eps, as the evaluation calls it. An attack that shares its work across
        eps (overrides :meth:`perturb_many`) reports no per-eps queries (the evaluation splits the passes evenly);
        otherwise each eps's queries are the inputs the classifier scored during its :meth:`perturb`."""
        if type(self).perturb_many is not Attack.perturb_many:
            before = clf.queries
            examples = self.perturb_many(clf, x, goal, eps_list)
            return AttackResult(examples, queries=None if self.threat == "white-box" else
                                even_split(clf.queries - before, len(eps_list)))
        return self.run_per_eps(clf, x, goal, eps_list)

    def run_per_eps(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> AttackResult:
        """One :meth:`perturb` per eps, each with the inputs the classifier scored during it."""
        examples, queries = [], []
        for e in eps_list:
            before = clf.queries
            examples.append(self.perturb(clf, x, goal, eps=float(e)))
            queries.append(clf.queries - before)
        return AttackResult(examples, queries=queries)

    def __call__(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        return self.perturb(clf, x, goal, eps=eps)

    def params(self) -> dict[str, Any]:
        """Hyperparameters as given (for records, caching and the report)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


ATTACKS: Registry[Callable[..., Attack]] = Registry("attack", base=Attack, key_attr="kind")
"""Attack classes by kind (what a suite's ``kind`` names); registering one sets its ``kind`` to that key."""


def make_attack(kind: str, **params: Any) -> Attack:
    """Instantiate attack ``kind`` (a registry name or ``art:ClassName``) with keyword hyperparameters."""
    return ATTACKS.build(kind, **params)


LOSSES = ("ce", "margin")


def check_loss(loss: Any) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"loss must be 'ce' or 'margin', got {loss!r}")


TARGET_MODES = ("fixed", "random", "least-likely")
TARGET_STREAM = 0x7A26E7
"""The key of random targets' draws (apart from every attack's own, which are keyed by the attack's seed)."""


def choose_targets(clf: Classifier, x: Tensor, y: Tensor, mode: str, *, target: int = 0, seed: int = 0,
                   ids: Tensor | None = None) -> Tensor:
    """Target labels for a targeted attack.

    ``fixed``: class ``target`` (samples of that class get ``(target + 1) % K`` so that no target is the true label);
    ``random``: a uniformly random class other than the true one (drawn per sample id, default the positions,
    from ``seed``);
    ``least-likely``: the class with the lowest clean logit (Kurakin et al. 2016, "iterative least-likely class").
    """
    k = clf.num_classes
    if mode == "fixed":
        t = torch.full_like(y, int(target))
        return torch.where(y == t, (t + 1) % k, t)
    if mode == "random":
        ids = torch.arange(len(y)) if ids is None else ids
        offset = SampleDraws(TARGET_STREAM, ids, stream=seed).randint(1, k, device=y.device)
        return (y + offset) % k
    if mode == "least-likely":
        return clf.predict(x).argmin(1)
    raise ConfigError(f"target_mode must be one of {', '.join(TARGET_MODES)}, got {mode!r}")


def check_target(targeted: bool, target_mode: str, target: int) -> None:
    """Validate targeting hyperparameters at construction time."""
    if not isinstance(targeted, bool):
        raise ConfigError(f"targeted must be true or false, got {targeted!r}")
    if targeted and target_mode not in TARGET_MODES:
        raise ConfigError(f"target_mode must be one of {', '.join(TARGET_MODES)}, got {target_mode!r}")
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise ConfigError(f"target must be a class index >= 0, got {target!r}")


def attack_loss(logits: Tensor, goal: Goal, loss: str = "ce") -> Tensor:
    """Per-sample loss the attacker *ascends*.

    ``ce``: cross-entropy on logits (negated when targeted). ``margin``: the Carlini-Wagner logit margin
    ``max_{j != y} z_j - z_y`` (untargeted) or ``z_t - max_{j != t} z_j`` (targeted), which does not vanish
    when the softmax saturates (Carlini & Wagner 2017).
    """
    if loss == "ce":
        ce = F.cross_entropy(logits, goal.labels, reduction="none")
        return -ce if goal.targeted else ce
    if loss == "margin":
        z_y = logits.gather(1, goal.labels[:, None]).squeeze(1)
        other = logits.masked_fill(F.one_hot(goal.labels, logits.shape[1]).bool(), float("-inf")).amax(1)
        return z_y - other if goal.targeted else other - z_y
    raise ConfigError(f"loss must be 'ce' or 'margin', got {loss!r}")


def goal_loss(goal: Goal, loss: str = "ce") -> Callable[[Tensor], Tensor]:
    """``attack_loss`` bound to a goal: the per-sample loss function the attack loop ascends."""
    return lambda logits: attack_loss(logits, goal, loss)


def input_gradient(clf: Classifier, x: Tensor, goal: Goal, loss: str = "ce") -> tuple[Tensor, Tensor]:
    """Gradient of the summed attack loss w.r.t. ``x`` and the logits at ``x`` (one forward + backward)."""
    return gradient(clf, x, goal_loss(goal, loss))


def even_split(total: int, parts: int) -> list[int]:
    """``total`` queries of work shared by ``parts`` eps, as the per-eps counts (the quotient each)."""
    return [int(total) // max(1, parts)] * parts


def is_success(logits: Tensor, goal: Goal) -> Tensor:
    """Boolean per sample: prediction equals the target (targeted) or differs from the label (untargeted)."""
    pred = logits.argmax(1)
    return pred == goal.labels if goal.targeted else pred != goal.labels


__all__ = [
    "ATTACKS", "Attack", "AttackResult", "Goal", "ROLES", "RunContext", "attack_loss", "check_bool", "check_loss", "check_positive", "check_seed",
    "check_target", "choose_targets", "clip", "even_split", "flat_norm", "goal_loss", "input_gradient", "is_success",
    "l2_normalize", "make_attack", "parse_norm", "project",
]
