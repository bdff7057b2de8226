"""Square Attack (Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV): score-based random search with square-shaped updates."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..classifier import Classifier, eval_mode
from ..errors import ConfigError
from .base import ATTACKS, Attack, Goal, check_positive, check_seed, check_target
from .loop import clip


def p_schedule(p_init: float, i: int, queries: int) -> float:
    """The fraction of pixels changed at iteration ``i``: ``p_init`` halved at iterations 10, 50, 200, 500, 1000,
    2000, 4000, 6000 and 8000 of a 10,000-query budget, rescaled to ``queries`` (their schedule)."""
    it = int(i / queries * 10000)
    for bound, div in ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32), (500, 16), (200, 8), (50, 4),
                       (10, 2)):
        if it > bound:
            return p_init / div
    return p_init


@ATTACKS.register("square")
class Square(Attack):
    """Square Attack, Linf (Andriushchenko et al. 2020, Algorithm 1 with the Linf sampling of sec. 3.1).

    Only the model's scores are used (``threat = black-box``; every scored input is counted). Start: vertical
    stripes of ``+-eps``; then, per sample, a random square window of side ``sqrt(p * pixels)`` is set to ``+-2 eps``
    per channel and the step is kept when the loss drops (or the sample is fooled). Defaults as in the paper:
    ``queries`` 5,000, ``p_init`` 0.8, margin loss; ``loss = "ce"`` is the alternative. A sample stops querying once
    it is fooled.
    """

    name = "square"
    threat = "black-box"
    role = "black-box"

    def __init__(self, *, queries: int = 5000, p_init: float = 0.8, loss: str = "margin",
                 targeted: bool = False, target_mode: str = "random", target: int = 0, seed: int = 0) -> None:
        super().__init__()
        check_positive("queries", queries, integer=True)
        if not isinstance(p_init, (int, float)) or isinstance(p_init, bool) or not 0 < p_init <= 1:
            raise ConfigError(f"p_init must be in (0, 1], got {p_init!r}")
        if loss not in ("margin", "ce"):
            raise ConfigError(f"loss must be 'margin' or 'ce', got {loss!r}")
        check_target(targeted, target_mode, target)
        check_seed(seed)
        self.norm = "inf"  # the L2 version (sec. 3.2 of the paper) is not here yet: art:SquareAttack with norm = 2
        self.queries, self.p_init, self.loss, self.seed = int(queries), float(p_init), loss, seed
        self.targeted, self.target_mode, self.target = targeted, target_mode if targeted else "", target

    def margin_and_loss(self, clf: Classifier, x: Tensor, goal: Goal) -> tuple[Tensor, Tensor]:
        """Margin (<= 0: the goal is reached) and the loss the search minimises, per sample."""
        with torch.no_grad():
            logits = clf(x)
        z_goal = logits.gather(1, goal.labels[:, None]).squeeze(1)
        other = logits.masked_fill(F.one_hot(goal.labels, logits.shape[1]).bool(), float("-inf")).amax(1)
        margin = other - z_goal if goal.targeted else z_goal - other
        if self.loss == "margin":
            return margin, margin
        ce = F.cross_entropy(logits, goal.labels, reduction="none")
        return margin, ce if goal.targeted else -ce

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        if eps == 0:
            return x.clone()
        with eval_mode(clf):
            return self._search(clf, x, goal, eps)

    def _search(self, clf: Classifier, x: Tensor, goal: Goal, eps: float) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        n, c, h, w = x.shape
        stripes = torch.randint(0, 2, (n, c, 1, w), generator=gen).to(x.device, x.dtype) * 2 - 1
        best = clip(x + eps * stripes, clf)
        margin, loss = self.margin_and_loss(clf, best, goal)
        side_max = min(h, w)
        for i in range(self.queries - 1):  # the start was the first query
            active = (margin > 0).nonzero().squeeze(1)
            if len(active) == 0:
                break
            p = p_schedule(self.p_init, i, self.queries)
            s = min(max(int(round(math.sqrt(p * h * w))), 1), side_max)
            k = len(active)
            top = torch.randint(0, h - s + 1, (k,), generator=gen).to(x.device)
            left = torch.randint(0, w - s + 1, (k,), generator=gen).to(x.device)
            rows = torch.arange(h, device=x.device)
            cols = torch.arange(w, device=x.device)
            in_rows = (rows >= top[:, None]) & (rows < top[:, None] + s)
            in_cols = (cols >= left[:, None]) & (cols < left[:, None] + s)
            window = (in_rows[:, None, :, None] & in_cols[:, None, None, :]).to(x.dtype)
            signs = (torch.randint(0, 2, (k, c, 1, 1), generator=gen) * 2 - 1).to(x.device, x.dtype)
            xa, current = x[active], best[active]

            def propose(signs: Tensor) -> Tensor:
                step = current + window * (2 * eps) * signs
                return clip(torch.min(torch.max(step, xa - eps), xa + eps), clf)

            candidate = propose(signs)
            same = (candidate == current).flatten(1).all(1)  # the window already has these signs: flip them
            if same.any():  # (the reference resamples; a flip is the one draw that changes it on one channel)
                signs = torch.where(same.view(-1, 1, 1, 1), -signs, signs)
                candidate = propose(signs)
            ga = Goal(goal.labels[active], goal.targeted)
            m_new, l_new = self.margin_and_loss(clf, candidate, ga)
            keep = (l_new < loss[active]) | (m_new <= 0)
            idx = active[keep]
            best[idx], margin[idx], loss[idx] = candidate[keep], m_new[keep], l_new[keep]
        return best
