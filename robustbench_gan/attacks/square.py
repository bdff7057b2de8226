"""Square Attack (Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV): score-based random search with square-shaped updates, Linf and L2."""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier, eval_mode
from ..errors import ConfigError
from .engine import precision
from .engine.draws import SampleDraws
from .base import ATTACKS, Attack, Goal, check_bool, check_positive, check_seed, check_target, flat_norm, parse_norm
from .engine.descent import clip


def p_schedule(p_init: float, i: int, queries: int, rescale: bool = True) -> float:
    """The fraction of pixels changed at iteration ``i`` (their ``p_selection``): ``p_init`` halved at iterations 10,
    50, 200, 500, 1000, 2000, 4000, 6000 and 8000. With ``rescale`` these are iterations of a 10,000-query budget,
    rescaled to ``queries`` (``resc_schedule=True``, their default); without it, of the raw count (AutoAttack's
    ``resc_schedule=False``)."""
    it = int(i / queries * 10000) if rescale else i
    for bound, div in ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32), (500, 16), (200, 8), (50, 4),
                       (10, 2)):
        if it > bound:
            return p_init / div
    return p_init


@functools.lru_cache(maxsize=64)
def bump(a: int, b: int) -> Tensor:
    """Their ``pseudo_gaussian_pert_rectangles``: an ``a x b`` bump, unit L2 norm (float64, CPU). A pixel at
    Chebyshev distance ``d`` from the centre ``(a // 2, b // 2)`` gets ``sum_{k >= d} 1 / (k + 1)^2``: the sum of
    concentric rectangles of weights ``1 / (k + 1)^2``."""
    d = torch.maximum((torch.arange(a) - a // 2).abs()[:, None], (torch.arange(b) - b // 2).abs()[None, :])
    rings = 1.0 / torch.arange(1, max(a, b) // 2 + 2, dtype=torch.float64) ** 2
    out = rings.flip(0).cumsum(0).flip(0)[d]  # tail sums: sum_{k >= d} rings[k]
    return out / out.norm().clamp_min(1e-300)


@functools.lru_cache(maxsize=64)
def meta_bump(s: int) -> Tensor:
    """Their ``meta_pseudo_gaussian_pert`` before its random transpose: an ``s x s`` square, a positive bump on the
    top ``s // 2`` rows and a negative one below, unit L2 norm (float64, CPU)."""
    out = torch.cat([bump(s // 2, s), -bump(s - s // 2, s)])
    return out / out.norm()


def _pixels(top: Tensor, left: Tensor, s: int, w: int) -> Tensor:
    """Flat pixel indices ``[k, s * s]`` (row-major within an ``h x w`` image) of the ``s x s`` squares at
    ``(top, left)``."""
    span = torch.arange(s, device=top.device)
    return (top * w + left)[:, None] + (span[:, None] * w + span).flatten()


def _channels(pixels: Tensor, c: int, hw: int) -> Tensor:
    """``pixels`` ``[k, m]`` repeated over ``c`` channels of ``hw`` pixels each: flat indices ``[k, c * m]`` into a
    ``[k, c * hw]`` view."""
    return (pixels[:, None, :] + torch.arange(0, c * hw, hw, device=pixels.device)[:, None]).flatten(1)


def _mask(pixels: Tensor, hw: int, base: Tensor | None = None) -> Tensor:
    """Boolean ``[k, hw]``: ``base`` (default all False) with ``pixels`` ``[k, m]`` set."""
    out = pixels.new_zeros(len(pixels), hw, dtype=torch.bool) if base is None else base.clone()
    return out.scatter_(1, pixels, True)


def _sq_norm(t: Tensor) -> Tensor:
    """Per sample and channel L2 norm over the two pixel axes, ``[k, c, 1, 1]``."""
    return t.square().sum((-2, -1), keepdim=True).sqrt()


@ATTACKS.register("square")
class Square(Attack):
    """Square Attack (Andriushchenko, Croce, Flammarion & Hein 2020, ECCV), Linf or L2 (``norm``).

    Only the model's scores are used (``threat = black-box``; every scored input is counted). Random search
    (Algorithm 1 of the paper): a step is kept when the loss drops (or the sample is fooled), and a sample stops
    querying once it is fooled. The size of the changed squares follows their schedule (:func:`p_schedule`): a
    fraction ``p`` of the pixels, ``p_init`` halved at iterations 10, 50, 200, ..., 8000. With ``rescale`` (default)
    these are iterations of a 10,000-query budget, rescaled to ``queries``: the default of the authors' code
    (``resc_schedule=True``), so that a smaller budget still passes through the whole schedule, from large windows
    to small. ``rescale=False`` counts the raw iterations, as AutoAttack runs Square (``resc_schedule=False``; at
    5,000 queries its windows shrink half as fast as with ``rescale``).

    - Linf (sec. 3.1): start at vertical stripes of ``+-eps``; per sample, a random square window of side
      ``sqrt(p * pixels)`` is set to ``+-eps`` around the input per channel.
    - L2 (sec. 3.2, Algorithm 3): start at a grid of blocks (side ``min(h, w) // 5``) of their "meta pseudo-
      Gaussian" pattern (a bump and its negative, randomly transposed) with random signs per channel, scaled to
      norm eps. Each step takes two random windows (odd side ``>= 3``): the perturbation mass of both, plus what is
      left of the eps budget, goes to the first as a new meta pseudo-Gaussian pattern (random sign per channel)
      added to its old direction; the second is zeroed. The whole perturbation is rescaled to norm eps and
      clipped to the bounds (their code).

    Defaults: ``queries`` 5,000 and ``p_init`` 0.8, the settings AutoAttack runs Square with, for Linf and L2 alike
    (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
    attacks", ICML); margin loss (the paper's; ``loss = "ce"`` is the alternative); ``rescale=True``: the Square
    paper's code always rescales the schedule to the budget, so a standalone run of any budget goes from large
    windows to small (AutoAttack runs it with ``rescale=False``). The authors tune ``p_init`` per model (their
    README's Linf runs: 0.05 on ImageNet models, 0.8 on Madry's robust MNIST model). Windows are drawn per image
    (their code draws one per batch) and may sit anywhere in the image; a Linf window that already has the drawn
    signs gets the opposite ones (theirs then scores an unchanged point). Both are kept because they are not weaker
    than their code on the same schedule and budget (tests/test_square.py).

    ``eot_samples`` > 1 (for randomized models) averages the margin and the loss of every scored point over that
    many passes, Expectation over Transformation (Athalye, Carlini & Wagner 2018), so one lucky draw does not stop
    a sample; every pass is a query, so a sample makes up to ``eot_samples * queries`` of them. Under a low attack
    :mod:`~robustbench_gan.attacks.engine.precision` a sample stops only once an fp32 pass confirms its success; an
    unconfirmed candidate is kept or dropped on its loss alone, like any other.
    """

    threat = "black-box"
    role = "black-box"

    def __init__(self, *, norm: str = "inf", queries: int = 5000, p_init: float = 0.8, rescale: bool = True,
                 loss: str = "margin", eot_samples: int = 1, targeted: bool = False, target_mode: str = "random",
                 target: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.norm = parse_norm(norm)
        check_positive("queries", queries, integer=True)
        check_positive("eot_samples", eot_samples, integer=True)
        check_bool("rescale", rescale)
        if not isinstance(p_init, (int, float)) or isinstance(p_init, bool) or not 0 < p_init <= 1:
            raise ConfigError(f"p_init must be in (0, 1], got {p_init!r}")
        if loss not in ("margin", "ce"):
            raise ConfigError(f"loss must be 'margin' or 'ce', got {loss!r}")
        check_target(targeted, target_mode, target)
        check_seed(seed)
        self.queries, self.p_init, self.loss, self.seed = int(queries), float(p_init), loss, seed
        self.rescale, self.eot_samples = rescale, int(eot_samples)
        self.targeted, self.target_mode, self.target = targeted, target_mode if targeted else "", target

    def margin_and_loss(self, clf: Classifier, x: Tensor, goal: Goal) -> tuple[Tensor, Tensor]:
        """Margin (<= 0: the goal is reached) and the loss the search minimises, per sample, each averaged over
        ``eot_samples`` passes."""
        if self.eot_samples == 1:
            return self._margin_and_loss(clf, x, goal)
        margins, losses = zip(*(self._margin_and_loss(clf, x, goal) for _ in range(self.eot_samples)))
        return torch.stack(margins).mean(0), torch.stack(losses).mean(0)

    def _margin_and_loss(self, clf: Classifier, x: Tensor, goal: Goal) -> tuple[Tensor, Tensor]:
        """:meth:`margin_and_loss` of one pass (low-precision logits in fp32 for the arithmetic)."""
        with torch.no_grad():
            logits = clf(x)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        z_goal = logits.gather(1, goal.labels[:, None]).squeeze(1)
        other = logits.scatter(1, goal.labels[:, None], float("-inf")).amax(1)
        margin = other - z_goal if goal.targeted else z_goal - other
        if self.loss == "margin":
            return margin, margin
        ce = F.cross_entropy(logits, goal.labels, reduction="none")
        return margin, ce if goal.targeted else -ce

    def reached(self, clf: Classifier, x: Tensor, margin: Tensor, goal: Goal) -> Tensor:
        """Which samples of ``x`` reached the goal (``margin <= 0``). A margin of a low-precision pass counts only
        once an fp32 pass agrees, as in the gradient attacks' loop (:func:`.engine.descent.descend_to_goal`)."""
        fooled = margin <= 0
        if precision.current() != "fp32" and fooled.any():
            with precision.full_precision(x.device):
                confirmed, _ = self.margin_and_loss(clf, x[fooled], goal.subset(fooled))
            fooled[fooled.clone()] = confirmed <= 0
        return fooled

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        if eps == 0:
            return x.clone()
        with eval_mode(clf):
            return self._search(clf, x, goal, eps) if self.norm == "inf" else self._search_l2(clf, x, goal, eps)

    def _search(self, clf: Classifier, x: Tensor, goal: Goal, eps: float) -> Tensor:
        draws = goal.draws(self.seed, len(x))  # each sample's own: its windows never depend on the batch
        n, c, h, w = x.shape
        at_x = {"device": x.device}
        stripes = draws.randint(0, 2, (c, 1, w), **at_x).to(x.dtype) * 2 - 1
        best = clip(x + eps * stripes, clf)
        low, high = clip(x - eps, clf), clip(x + eps, clf)  # the eps ball within the bounds, per pixel
        margin, loss = self.margin_and_loss(clf, best, goal)
        searching = ~self.reached(clf, best, margin, goal)
        side_max = min(h, w)
        # a step moves the window by +-2 eps (sign per channel), then clamps it to the ball: only the window changes,
        # since every other pixel is already in the ball. Drawn bits 0 / 1 pick the step -2 eps / +2 eps.
        moves = (2 * eps) * (torch.tensor([0, 1], device=x.device) * 2 - 1).to(x.dtype)
        windows: dict[int, Tensor] = {}  # side -> flat offsets [c, s * s] of the square at the corner, per channel
        # the samples still searching, compacted and flattened: positions, current point, ball, labels, loss
        idx = searching.nonzero().squeeze(1)
        current, lo, hi = (t[idx].flatten(1) for t in (best, low, high))
        labels, loss = goal.labels[idx], loss[idx]
        with torch.no_grad():
            for i in range(self.queries - 1):  # the start was the first query
                k = len(idx)
                if k == 0:
                    break
                p = p_schedule(self.p_init, i, self.queries, self.rescale)
                s = min(max(int(round(math.sqrt(p * h * w))), 1), side_max)
                if s not in windows:
                    span = torch.arange(s, device=x.device)
                    windows[s] = ((torch.arange(c, device=x.device) * (h * w))[:, None]
                                  + (span[:, None] * w + span).flatten())
                mine = draws.rows(idx)
                top, left = mine.randint(0, h - s + 1, **at_x), mine.randint(0, w - s + 1, **at_x)
                move = moves[mine.randint(0, 2, (c, 1), **at_x)]  # [k, c, 1]
                at = ((top * w + left)[:, None, None] + windows[s]).view(k, -1)  # the window's pixels, flat
                old, lo_w, hi_w = current.gather(1, at), lo.gather(1, at), hi.gather(1, at)
                old = old.view(k, c, -1)
                up = torch.clamp(old + move, lo_w.view_as(old), hi_w.view_as(old))
                down = torch.clamp(old - move, lo_w.view_as(old), hi_w.view_as(old))
                # the window already has these signs: flip them (the reference resamples; a flip is the one draw
                # that changes it on one channel)
                same = (up == old).view(k, -1).all(1)
                candidate = current.scatter(1, at, torch.where(same.view(-1, 1, 1), down, up).view(k, -1))
                current, loss, fooled = self._accept(clf, candidate, current, loss, Goal(labels, goal.targeted),
                                                     (k, c, h, w))
                if fooled.any():
                    idx, current, lo, hi, labels, loss = _leave(best, fooled, idx, current, lo, hi, labels, loss)
        best[idx] = current.view(-1, c, h, w)
        return best

    def _accept(self, clf: Classifier, candidate: Tensor, current: Tensor, loss: Tensor, goal: Goal,
                shape: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
        """Score ``candidate`` (viewed as images of ``shape``): each sample keeps it where the loss fell or the
        model is fooled (:meth:`reached`). Returns the new current points and losses, and which samples are fooled."""
        images = candidate.view(*shape)
        m_new, l_new = self.margin_and_loss(clf, images, goal)
        fooled = self.reached(clf, images, m_new, goal)
        keep = (l_new < loss) | fooled
        current = torch.where(keep.view(-1, *([1] * (current.ndim - 1))), candidate, current)
        return current, torch.where(keep, l_new, loss), fooled

    def _search_l2(self, clf: Classifier, x: Tensor, goal: Goal, eps: float) -> Tensor:
        draws = goal.draws(self.seed, len(x))  # each sample's own: its windows never depend on the batch
        n, c, h, w = x.shape
        at_x = {"device": x.device}
        best = clip(x + eps * l2_start(x, draws), clf)
        margin, loss = self.margin_and_loss(clf, best, goal)
        searching = ~self.reached(clf, best, margin, goal)
        tiny = torch.finfo(x.dtype).tiny
        unit = torch.tensor([-1, 1], device=x.device).to(x.dtype)  # drawn bits 0 / 1 pick the sign -1 / +1
        bases: dict[int, tuple[Tensor, Tensor]] = {}  # side -> the meta pseudo-Gaussian square and its transpose
        # the samples still searching, compacted: positions, input, current point, labels, loss
        idx = searching.nonzero().squeeze(1)
        xa, current, labels, loss = x[idx], best[idx], goal.labels[idx], loss[idx]
        with torch.no_grad():
            for i in range(self.queries - 1):  # the start was the first query
                k = len(idx)
                if k == 0:
                    break
                p = p_schedule(self.p_init, i, self.queries, self.rescale)
                s = max(int(round(math.sqrt(p * h * w))), 3)
                s = min(s + 1 - s % 2, h, w)  # odd and at least 3 (theirs), but within the image
                mine = draws.rows(idx)
                top, left, top2, left2 = (mine.randint(0, m - s + 1, **at_x) for m in (h, w, h, w))
                if s not in bases:
                    base = meta_bump(s).to(x.dtype)
                    bases[s] = base.T.to(x.device), base.to(x.device)
                flip = mine.randint(0, 2, (1, 1, 1), **at_x).bool()  # transposed with prob. 1/2
                pattern = torch.where(flip, *bases[s])  # [k, 1, s, s], as patterns()
                signs = unit[mine.randint(0, 2, (c, 1, 1), **at_x)]
                delta = l2_window_update(current - xa, eps, (top, left), (top2, left2), pattern * signs)
                scale = eps / flat_norm(delta, "2").clamp_min(tiny)
                candidate = clip(xa + delta * scale.view(-1, 1, 1, 1), clf)  # norm eps, then the bounds (theirs)
                current, loss, fooled = self._accept(clf, candidate, current, loss, Goal(labels, goal.targeted),
                                                     candidate.shape)
                if fooled.any():
                    idx, current, xa, labels, loss = _leave(best, fooled, idx, current, xa, labels, loss)
        best[idx] = current
        return best


def _leave(best: Tensor, fooled: Tensor, idx: Tensor, current: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
    """Fooled samples stop querying: their current points are written back to ``best`` (at ``idx``) and they leave
    the compacted batch; returns ``idx``, ``current`` and ``rest`` for the samples that stay."""
    best[idx[fooled]] = current[fooled].view(-1, *best.shape[1:])
    stay = ~fooled
    return tuple(v[stay] for v in (idx, current, *rest))


def patterns(s: int, draws: SampleDraws, like: Tensor, shape: tuple[int, ...] = ()) -> Tensor:
    """Per sample of ``draws``, meta pseudo-Gaussian ``s x s`` squares, ``[k, 1, *shape, s, s]``, each transposed
    with probability 1/2, in ``like``'s dtype and device."""
    base = meta_bump(s).to(like.dtype).to(like.device)
    flip = draws.randint(0, 2, (1, *shape, 1, 1), device=like.device).bool()
    return torch.where(flip, base.T, base)


def l2_start(x: Tensor, draws: SampleDraws) -> Tensor:
    """Their L2 start, unit norm per sample: a centred grid of ``s x s`` blocks, ``s = min(h, w) // 5`` (at least 1,
    so that images under 5 pixels get one block per pixel), each a meta pseudo-Gaussian square with a random sign
    per channel."""
    n, c, h, w = x.shape
    s = max(min(h, w) // 5, 1)
    nh, nw = h // s, w // s
    top, left = (h - nh * s) // 2, (w - nw * s) // 2
    blocks = patterns(s, draws, x, (nh, nw))  # [n, 1, nh, nw, s, s]
    signs = (draws.randint(0, 2, (c, nh, nw, 1, 1), device=x.device) * 2 - 1).to(x.dtype)
    tiles = (blocks * signs).permute(0, 1, 2, 4, 3, 5).reshape(n, c, nh * s, nw * s)
    delta = torch.zeros_like(x)
    delta[:, :, top:top + nh * s, left:left + nw * s] = tiles
    return delta / flat_norm(delta, "2").view(-1, 1, 1, 1)


def l2_window_update(delta: Tensor, eps: float, first: tuple[Tensor, Tensor], second: tuple[Tensor, Tensor],
                     step: Tensor) -> Tensor:
    """Their L2 update of the perturbations ``delta`` ``[k, c, h, w]`` (norms at most eps), with two ``s x s``
    windows per sample, corners ``first = (top, left)`` and ``second``, and ``step`` ``[k, c, s, s]`` (a meta
    pseudo-Gaussian square with a random sign per channel).

    Per channel, the first window becomes the direction of ``step`` plus its old direction, with all the mass of
    the two windows plus an equal share of the unused budget ``eps^2 - ||delta||^2``; the rest of the second
    window is zeroed and everything else is kept. The result has norm eps (and ``max(||delta||, eps)`` always)."""
    k, c, h, w = delta.shape
    s = step.shape[-1]
    tiny = torch.finfo(delta.dtype).tiny  # guards 0 / 0 (a window without perturbation) at any scale
    first_px, second_px = _pixels(*first, s, w), _pixels(*second, s, w)
    in_second = _mask(second_px, h * w)
    in_either = _mask(first_px, h * w, in_second).view(k, 1, h, w)
    square = _channels(first_px, c, h * w)  # the first window's pixels in every channel, [k, c * s * s]
    old = delta.reshape(k, -1).gather(1, square).view(k, c, s, s)
    budget = (eps ** 2 - flat_norm(delta, "2").square()).clamp_min(0).view(-1, 1, 1, 1) / c
    mass = (budget + _sq_norm(delta * in_either).square()).sqrt()  # per channel, [k, c, 1, 1]
    new = step + old / _sq_norm(old).clamp_min(tiny)
    out = delta.masked_fill(in_second.view(k, 1, h, w), 0)
    new = new / _sq_norm(new).clamp_min(tiny) * mass
    return out.view(k, -1).scatter_(1, square, new.reshape(k, -1)).view_as(out)
