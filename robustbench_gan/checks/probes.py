"""Sanity checks that probe a trained classifier: logits vs probabilities, determinism, zero gradients, a forward
pass that optimises or changes the model (a dynamic defense), accuracy at an eps as large as the pixel range."""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from ..attacks.apgd import dlr_loss
from ..attacks.base import Goal, input_gradient
from ..attacks.engine.descent import gradient
from ..attacks.pgd import PGD
from ..classifier import Classifier, eval_mode, frozen
from ..purified import GenerativePurifier, PurifiedClassifier
from .explanations import Flag, make_flag


PASSES = 5
"""Eval-mode passes the randomness probe compares (AutoAttack's ``check_randomized``: 5)."""
LOGIT_TOLERANCE = 1e-4
"""Largest L2 distance between two passes' unit-normalised logits of one input still taken as the same output:
nondeterministic GPU kernels move float32 logits by ~1e-7 relative, a random defense by far more."""


def output_spread(clf: Classifier, x: Tensor, y: Tensor | None = None, *, passes: int = PASSES) -> tuple[
        Tensor, float, list[int]]:
    """The first pass's logits, the largest L2 distance between any two of ``passes`` eval-mode passes' logits
    normalised to unit L2 norm per input, and each pass's count of correct predictions (empty without ``y``)."""
    outs = [clf.predict(x) for _ in range(passes)]
    correct = [int((o.argmax(1) == y).sum()) for o in outs] if y is not None else []
    unit = [o.float() / (o.float().norm(dim=1, keepdim=True) + 1e-10) for o in outs]
    spread = max((float((a - b).norm(dim=1).max()) for i, a in enumerate(unit) for b in unit[i + 1:] if len(a)),
                 default=0.0)
    return outs[0], spread, correct


def randomness_problem(spread: float, correct: list[int], *, tolerance: float = LOGIT_TOLERANCE,
                       passes: int = PASSES, inputs: int = 0) -> str | None:
    """A one-line message when the passes disagree beyond ``tolerance`` or in their count of correct
    predictions, else None."""
    moved = len(set(correct)) > 1
    if spread <= tolerance and not moved:
        return None
    counts = f"; correct predictions {min(correct)} to {max(correct)} of {inputs}" if moved else ""
    return (f"{passes} eval-mode passes on {inputs} inputs differ: unit-normalised logits up to {spread:.2g} apart "
            f"(L2; tolerance {tolerance:g}){counts}")


def output_problems(clf: Classifier, x: Tensor, y: Tensor | None = None, *,
                    spread: tuple[Tensor, float, list[int]] | None = None) -> dict[str, str]:
    """Problems with the raw outputs, check name -> one-line message: probabilities instead of logits;
    nondeterminism in eval mode (see :func:`output_spread`, whose result ``spread`` may already hold, and
    :func:`randomness_problem`)."""
    problems = {}
    a, spread_, correct = spread if spread is not None else output_spread(clf, x, y)
    if bool(((a >= 0) & (a <= 1)).all()) and torch.allclose(a.sum(1), torch.ones(len(a), device=a.device), atol=1e-3):
        problems["outputs-are-probabilities"] = "outputs are in [0, 1] and sum to 1 per row"
    random = randomness_problem(spread_, correct, inputs=len(x))
    if random:
        problems["nondeterministic-outputs"] = random
    return problems


def check_outputs(clf: Classifier, x: Tensor, y: Tensor | None = None) -> list[str]:
    """The names of :func:`output_problems`."""
    return list(output_problems(clf, x, y))


class ZeroGradients(NamedTuple):
    """Among the ``n`` inputs the classifier labels correctly (those an attack must move): how many have an
    all-zero or non-finite input gradient of the cross-entropy (``ce``) and of the DLR loss (``dlr``; None with
    fewer than 3 classes, where the DLR loss is undefined)."""

    n: int
    ce: int
    dlr: int | None


def zero_gradients(clf: Classifier, x: Tensor, y: Tensor, *, logits: Tensor | None = None) -> ZeroGradients:
    """Count zero gradients (see :class:`ZeroGradients`) at the clean inputs. AutoAttack checks the DLR-loss
    gradient at APGD's random start, x plus uniform noise in the eps ball; the probe knows no eps, and the clean
    input is the centre of that start, where FGSM and PGD without random start take their first gradient: a
    gradient cut by a ``no_grad`` region, a quantisation or a detached purification vanishes there as well.
    ``logits``: the clean logits of ``x`` where they are at hand (else one more pass)."""
    with torch.no_grad():
        ok = (clf.predict(x) if logits is None else logits).argmax(1) == y
    x, y = x[ok], y[ok]
    if len(x) == 0:
        return ZeroGradients(0, 0, None if clf.num_classes < 3 else 0)

    def bad(grad: Tensor) -> int:
        flat = grad.flatten(1)
        return int(((flat == 0).all(1) | ~torch.isfinite(flat).all(1)).sum())

    with frozen(clf):
        ce = bad(input_gradient(clf, x, Goal(y))[0])
        dlr = bad(gradient(clf, x, lambda z: dlr_loss(z, y))[0]) if clf.num_classes >= 3 else None
    return ZeroGradients(len(x), ce, dlr)


def zero_gradient_problem(counts: ZeroGradients, *, ce_share: float = 0.05) -> str | None:
    """A one-line message when any input has a zero DLR-loss gradient (the CE-loss one with fewer than 3
    classes), as AutoAttack warns, or more than ``ce_share`` of them a zero CE-loss gradient though the DLR one
    is not zero (a saturated softmax: the CE-loss attacks stall where the DLR and margin losses would not); else
    None."""
    n, ce, dlr = counts
    if dlr is None and ce:
        return (f"the CE-loss gradient (the DLR loss needs 3 classes) is all-zero or non-finite at {ce} of {n} "
                "correctly classified inputs")
    if dlr:
        return (f"the DLR-loss gradient is all-zero or non-finite at {dlr} of {n} correctly classified inputs "
                f"(the CE-loss gradient at {ce}): gradient attacks cannot move them whatever their loss")
    if n and ce > ce_share * n:
        return (f"the CE-loss gradient is all-zero or non-finite at {ce} of {n} correctly classified inputs "
                f"({ce / n:.0%}), the DLR-loss gradient at none: a saturated softmax; use the margin or DLR loss")
    return None


_AUTOGRAD_CALLS = (torch.autograd.grad, torch.autograd.backward, Tensor.backward)


class _AutogradTrace(TorchFunctionMode):
    """Counts, during a forward pass run under ``no_grad``, the calls to autograd's ``grad``/``backward`` and the
    operations that recorded an autograd graph node (possible only where the forward turned gradients back on)."""

    def __init__(self) -> None:
        super().__init__()
        self.grad_calls = 0
        self.graph_ops = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if any(func is f for f in _AUTOGRAD_CALLS):
            self.grad_calls += 1
        out = func(*args, **(kwargs or {}))
        if any(isinstance(t, Tensor) and t.grad_fn is not None for t in tree_leaves(out)):
            self.graph_ops += 1
        return out


def _state(module: nn.Module) -> dict[str, Tensor]:
    return {**{f"parameter {k}": v.detach().clone() for k, v in module.named_parameters()},
            **{f"buffer {k}": v.detach().clone() for k, v in module.named_buffers()}}


def _same(a: Tensor | None, b: Tensor | None) -> bool:
    if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
        return a is b
    return torch.equal(a, b) or (a.is_floating_point() and bool(torch.isclose(a, b, 0, 0, equal_nan=True).all()))


class DynamicForward(NamedTuple):
    """What one eval-mode forward pass under ``no_grad`` did besides computing logits (see
    :func:`dynamic_forward`)."""

    inputs: int
    grad_calls: int
    graph_ops: int
    changed: list[str]

    @property
    def dynamic(self) -> bool:
        return bool(self.grad_calls or self.graph_ops or self.changed)


def dynamic_forward(clf: Classifier, x: Tensor) -> DynamicForward:
    """One eval-mode forward pass on ``x`` under ``no_grad``, traced: calls to ``torch.autograd.grad``/``backward``
    and operations recorded in an autograd graph (an inner optimisation, as AutoAttack's ``check_dynamic`` looks
    for), and the parameters and buffers it changed (a model that adapts at test time; batch norm does not update
    in eval mode). A :class:`~torch.overrides.TorchFunctionMode` sees every torch call of the pass, so no
    ``sys.settrace``. Classifiers that declare ``autograd_in_forward`` (purifiers) are traced like any other: only
    what the pass does counts."""
    before = _state(clf)
    trace = _AutogradTrace()
    with torch.no_grad(), eval_mode(clf), trace:
        clf(x)
    after = _state(clf)
    changed = [k for k in {**before, **after} if not _same(before.get(k), after.get(k))]
    return DynamicForward(len(x), trace.grad_calls, trace.graph_ops, changed)


def dynamic_problem(clf: Classifier, found: DynamicForward) -> str | None:
    """A one-line message naming what the forward pass did and the evaluation such a defense needs, else None."""
    if not found.dynamic:
        return None
    did = []
    if found.grad_calls:
        did.append(f"calls autograd's grad/backward {found.grad_calls} times")
    if found.graph_ops:
        did.append(f"records {found.graph_ops} operations in an autograd graph")
    if found.changed:
        more = f" and {len(found.changed) - 3} more" if len(found.changed) > 3 else ""
        did.append(f"changes its {', '.join(found.changed[:3])}{more}")
    if isinstance(clf, PurifiedClassifier):
        views = ", ".join(f'"{v}"' for v in ("bpda", *clf.purifier.views))
        latent = " or the latent attack" if isinstance(clf.purifier, GenerativePurifier) else ""
        need = (f"its purifier ({type(clf.purifier).__name__}) optimises at test time: evaluate it with adaptive "
                f"attacks, adaptive = {views} on PGD/APGD{latent}")
    else:
        need = ("evaluate it with attacks adapted to that test-time optimisation or state (BPDA through it, or "
                "attacking it end to end), not only the standard ones")
    return f"one eval-mode forward pass on {found.inputs} inputs under no_grad {' and '.join(did)}; {need}"


def accuracy_at_huge_eps(clf: Classifier, x: Tensor, y: Tensor, *, steps: int = 20) -> float:
    """Accuracy under CE-loss PGD without random start and eps = the whole pixel range."""
    lo, hi = clf.bounds
    adv = PGD(steps=steps, random_start=False, step_size=(hi - lo) / 10).perturb(clf, x, Goal(y), eps=hi - lo)
    with torch.no_grad():
        return float((clf.predict(adv).argmax(1) == y).float().mean())


def _accuracy(clf: Classifier, x: Tensor, y: Tensor) -> float:
    return float((clf.predict(x).argmax(1) == y).float().mean())


def input_scale_problem(clf: Classifier, x: Tensor, y: Tensor, *, gain: float = 0.15) -> str | None:
    """Try the inputs mapped to another pixel range ([0, 1] for data in 0..255, 0..255 for data in [0, 1]) and
    without the declared normalization: a message saying what fixes it when one of them labels at least ``gain``
    more of the samples correctly and halves the errors (far beyond sampling noise at 100 samples), else None."""
    if len(x) == 0 or type(clf) is not Classifier:  # defended wrappers judge their own inputs
        return None
    acc = _accuracy(clf, x, y)
    lo, hi = clf.bounds
    given = clf.input_bounds or clf.bounds
    tries: list[tuple[str, dict]] = []
    if given[1] - given[0] > 2:  # 0..255-like: the model may want [0, 1]
        tries.append((f"mapped to [0, 1]: the model takes inputs in [0, 1]; pass the images as x / {hi - lo:g} with "
                      "bounds=(0, 1) (a suite: drop bounds/input_bounds)", {"input_bounds": (0.0, 1.0)}))
    else:
        tries.append(("mapped to 0..255: the model was trained on 0..255 pixel values; keep the images in [0, 1] "
                      "and declare input_bounds = [0, 255] for the model in the suite (benchmark(): pass x * 255 "
                      "with bounds=(0, 255) and eps in 0..255 units)", {"input_bounds": (0.0, 255.0)}))
    if clf.normalized:
        tries.append(("without the mean/std normalization: the model normalizes its inputs itself; drop mean and "
                      "std", {"normalized": False}))
    best: tuple[float, str] | None = None
    for advice, change in tries:
        before = {k: getattr(clf, k) for k in change}
        try:
            for k, v in change.items():
                setattr(clf, k, v)
            alt = _accuracy(clf, x, y)
        finally:
            for k, v in before.items():
                setattr(clf, k, v)
        if alt >= acc + gain and 1 - alt <= (1 - acc) / 2 and (best is None or alt > best[0]):
            best = (alt, advice)
    if best is None:
        return None
    given_range = f"[{given[0]:g}, {given[1]:g}]"
    return (f"clean accuracy {acc:.0%} on inputs in {given_range}{' after normalization' if clf.normalized else ''}"
            f", but {best[0]:.0%} with the images {best[1]}")


def classifier_flags(
    clf: Classifier, x: Tensor, y: Tensor, *, model: str, defense: str, samples: int = 100,
    huge_eps_accuracy: float = 0.1, dynamic_inputs: int = 4,
) -> list[Flag]:
    """Probe a classifier on up to ``samples`` evaluation inputs (the dynamic-forward probe on the first
    ``dynamic_inputs``)."""
    x, y = x[:samples], y[:samples]
    scale = input_scale_problem(clf, x, y)
    flags = [make_flag("input-scale", model, defense, "", scale)] if scale else []
    spread = output_spread(clf, x, y)
    flags += [make_flag(check, model, defense, "", message)
              for check, message in output_problems(clf, x, y, spread=spread).items()]
    dynamic = dynamic_problem(clf, dynamic_forward(clf, x[:dynamic_inputs]))
    if dynamic:
        flags.append(make_flag("dynamic-forward", model, defense, "", dynamic))
    zero = zero_gradient_problem(zero_gradients(clf, x, y, logits=spread[0]))
    if zero:
        flags.append(make_flag("zero-gradients", model, defense, "", zero))
    acc = accuracy_at_huge_eps(clf, x, y)
    if acc > huge_eps_accuracy:
        flags.append(make_flag("robust-at-huge-eps", model, defense, "pgd (ce, eps = pixel range)",
                               f"{acc:.0%} accuracy under CE-loss PGD with eps = the whole pixel range"))
    return flags
