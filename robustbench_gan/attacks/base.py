"""Attack protocol, goals, the attack registry and shared tensor helpers.

An attack holds hyperparameters only; the classifier comes per call. All attacks take and return pixel-space
tensors on the input's device and dtype.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier
from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class Goal:
    """What counts as success: ``labels`` are true labels (untargeted) or target labels (targeted)."""

    labels: Tensor
    targeted: bool = False


NORMS = ("inf", "2")


def parse_norm(norm: Any) -> str:
    """Normalise a norm spelling (``inf``, ``linf``, ``np.inf``, ``2``, ``l2``) to ``"inf"`` or ``"2"``."""
    text = str(norm).lower().lstrip("l")
    if text in ("inf", "infinity"):
        return "inf"
    if text in ("2", "2.0"):
        return "2"
    raise ConfigError(f"norm must be 'inf' or '2', got {norm!r}")


class Attack:
    """Base class of perturbation attacks.

    Subclasses implement :meth:`perturb` (one eps) and may override :meth:`perturb_many` to share work across
    a list of eps (FGSM computes its gradient once). ``threat`` is ``"white-box"`` unless the attack only
    queries labels or scores (``"black-box"``); ``queries`` is the number of model queries of the last call.
    """

    name: ClassVar[str] = "attack"
    threat: ClassVar[str] = "white-box"
    targeted: bool = False
    target_mode: str = ""
    norm: str = "inf"

    def __init__(self) -> None:
        self.queries = 0

    starts_from_input: ClassVar[bool] = True  # False for probes that start from noise (see noise.py)

    def make_goal(self, clf: Classifier, x: Tensor, y: Tensor, *, seed: int = 0) -> Goal:
        """The goal for true labels ``y``: untargeted, or targets chosen by ``target_mode``."""
        if not self.targeted:
            return Goal(y)
        return Goal(choose_targets(clf, x, y, self.target_mode, target=getattr(self, "target", 0), seed=seed), True)

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        raise NotImplementedError

    def perturb_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        """Adversarial examples for each eps in ``eps_list``."""
        return [self.perturb(clf, x, goal, eps=float(e)) for e in eps_list]

    def transfer_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        """Examples meant for *other* models (transfer). Attacks that stop at the first success override this
        to return full-strength examples, since barely-adversarial ones rarely transfer."""
        return self.perturb_many(clf, x, goal, eps_list)

    def __call__(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        return self.perturb(clf, x, goal, eps=eps)

    def params(self) -> dict[str, Any]:
        """Hyperparameters as given (for records, caching and the report)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


ATTACKS: Registry[Callable[..., Attack]] = Registry("attack")


def make_attack(kind: str, **params: Any) -> Attack:
    """Instantiate attack ``kind`` (a registry name or ``art:ClassName``) with keyword hyperparameters."""
    if kind.startswith("art:"):
        from .art import ArtAttack

        return ArtAttack(kind[4:], **params)
    cls = ATTACKS.get(kind)
    accepted = [p for p in inspect.signature(cls).parameters]
    unknown = [k for k in params if k not in accepted]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"attack kind {kind!r} has no parameter {unknown[0]!r}; {hint}it accepts: {', '.join(accepted)}"
        )
    return cls(**params)


def check_positive(name: str, value: Any, *, allow_zero: bool = False, integer: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a (non-negative when allow_zero) finite number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0) and (not integer or int(value) == value)
    if not ok:
        kind = "integer" if integer else "number"
        raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} {kind}, got {value!r}")


def check_seed(value: Any, name: str = "seed") -> None:
    """Raise ConfigError unless ``value`` is an integer seed torch accepts (0 .. 2**63 - 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ConfigError(f"{name} must be an integer in [0, 2**63), got {value!r}")


def check_bool(name: str, value: Any) -> None:
    """Raise ConfigError unless ``value`` is true or false (a string such as "no" would silently count as true)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


LOSSES = ("ce", "margin")


def check_loss(loss: Any) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"loss must be 'ce' or 'margin', got {loss!r}")


TARGET_MODES = ("fixed", "random", "least-likely")


def choose_targets(clf: Classifier, x: Tensor, y: Tensor, mode: str, *, target: int = 0, seed: int = 0) -> Tensor:
    """Target labels for a targeted attack.

    ``fixed``: class ``target`` (samples of that class get ``(target + 1) % K`` so that no target is the true label);
    ``random``: a uniformly random class other than the true one (seeded);
    ``least-likely``: the class with the lowest clean logit (Kurakin et al. 2016, "iterative least-likely class").
    """
    k = clf.num_classes
    if mode == "fixed":
        t = torch.full_like(y, int(target))
        return torch.where(y == t, (t + 1) % k, t)
    if mode == "random":
        g = torch.Generator().manual_seed(seed)
        offset = torch.randint(1, k, (len(y),), generator=g).to(y.device)
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


# ---------------------------------------------------------------- tensor helpers


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


def input_gradient(clf: Classifier, x: Tensor, goal: Goal, loss: str = "ce") -> tuple[Tensor, Tensor]:
    """Gradient of the summed attack loss w.r.t. ``x`` and the logits at ``x`` (one forward + backward)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = clf(x)
        (grad,) = torch.autograd.grad(attack_loss(logits, goal, loss).sum(), x)
    return grad, logits.detach()


def flat_norm(t: Tensor, norm: str) -> Tensor:
    """Per-sample norm of ``t`` flattened (``"inf"`` or ``"2"``)."""
    flat = t.flatten(1)
    return flat.abs().amax(1) if norm == "inf" else flat.norm(p=2, dim=1)


def l2_normalize(g: Tensor) -> Tensor:
    """Per-sample unit-L2 direction (zero stays zero)."""
    n = g.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    return g / n.view(-1, *([1] * (g.ndim - 1)))


def project(delta: Tensor, eps: float, norm: str) -> Tensor:
    """Project ``delta`` onto the eps-ball of the norm."""
    if norm == "inf":
        return delta.clamp(-eps, eps)
    n = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    factor = (eps / n).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.ndim - 1)))


def clip(x: Tensor, clf: Classifier) -> Tensor:
    lo, hi = clf.bounds
    return x.clamp(lo, hi)


def is_success(logits: Tensor, goal: Goal) -> Tensor:
    """Boolean per sample: prediction equals the target (targeted) or differs from the label (untargeted)."""
    pred = logits.argmax(1)
    return pred == goal.labels if goal.targeted else pred != goal.labels
