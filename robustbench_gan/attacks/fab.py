"""FAB, the Fast Adaptive Boundary attack (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast
adaptive boundary attack", ICML), untargeted and FAB-T (the targeted version AutoAttack runs), Linf and L2.

FAB looks for the *smallest* perturbation. Each step linearises the decision boundary at the current iterate
(the logit difference ``z_l - z_y`` to the class ``l`` whose linearised boundary is nearest in the norm; FAB-T: to one
target class), projects both the iterate and the original input onto that hyperplane within the pixel box, and
moves to a convex combination of the two projections, weighted toward the original input by at most
``alpha_max`` and overshooting by ``eta``. Whenever an iterate is adversarial it is recorded (the smallest one per
sample is kept) and pulled back toward the input by ``beta``.

Here, as in AutoAttack, FAB runs at an eps budget: a sample counts as fooled once FAB found an adversarial point
of norm at most eps, and further restarts and target classes run only on the samples still standing. A sample
stops as soon as it has such a point (minimising further would not change its result at that eps), which makes
the attack much cheaper than running every step on every sample. ``eps = inf`` sets no budget: every step runs
and each sample gets its minimum-norm point (of the first run that fools it).
"""
from __future__ import annotations

import math
from typing import ClassVar, Sequence

import torch
from torch import Tensor

from ..classifier import Classifier, frozen
from ..errors import ConfigError
from ..purified import split_rejection
from .engine.draws import SampleDraws, chain
from .base import ATTACKS, Attack, AttackResult, Goal, RunContext, check_positive, check_seed, is_success, parse_norm
from .engine.descent import clip, confirmed, fp32_logits, goal_reached, gradient_of
from .engine.norms import flat_norm, project


def project_onto_hyperplane(t: Tensor, w: Tensor, b: Tensor, bounds: tuple[float, float], norm: str) -> Tensor:
    """The smallest step ``d`` (Linf or L2) with ``w . (t + d) = b`` and ``t + d`` within ``bounds``, per row.

    ``t`` and ``w`` are ``[n, D]``, ``b`` is ``[n]``. Every coordinate moves in the direction that brings ``w . z``
    toward ``b`` by ``min(lam * rate_i, cap_i)``: ``rate_i`` is 1 (Linf) or ``|w_i|`` (L2, the KKT solution), and
    ``cap_i`` is the room left to the box in that direction. The reached change is piecewise linear and increasing
    in ``lam``; its breakpoints (where a coordinate hits the box) are sorted, the segment holding the hyperplane
    found, and ``lam`` solved on it. Where no point of the box reaches the hyperplane, every coordinate moves to the
    box (the closest the box gets to it).
    """
    lo, hi = bounds
    c = (w * t).sum(1) - b  # which side of the hyperplane t lies on, and how far in w . z
    ws = w * torch.where(c >= 0, 1.0, -1.0)[:, None]  # flipped so that ws . z must drop by |c|
    need = c.abs()[:, None]
    down = ws > 0
    cap = torch.where(down, t - lo, hi - t).clamp_min_(0)
    aw = ws.abs()
    live = aw > 0  # coordinates with w_i = 0 neither move nor count, wherever their breakpoint sorts
    if norm == "inf":  # rate 1: the breakpoints are the caps, and a coordinate's slope is |w_i|
        breaks, order = cap.sort(1)
        aw_s, cap_s = aw.gather(1, order), cap.gather(1, order)
        slope = aw_s
    else:
        rate = aw
        breaks, order = (cap / torch.where(live, rate, 1.0)).sort(1)
        aw_s, cap_s = aw.gather(1, order), cap.gather(1, order)
        slope = aw_s * aw_s  # aw_s * rate_s
    gain = aw_s * cap_s  # drop in ws . z from a coordinate moved all the way to the box
    saturated = gain.cumsum(1).sub_(gain)  # the coordinates before the breakpoint are at the box
    moving = slope.flip(1).cumsum(1).flip(1)  # the breakpoint's coordinate and those after still move
    k = ((saturated + breaks * moving) < need).sum(1, keepdim=True)  # breakpoints passed before the hyperplane
    feasible = k < t.shape[1]
    k = k.clamp_(max=t.shape[1] - 1)
    rest, den = need - saturated.gather(1, k), moving.gather(1, k)
    positive = den > 0
    lam = torch.where(feasible & positive, rest / torch.where(positive, den, 1.0), math.inf).clamp_min_(0)
    size = torch.where(live, torch.minimum(lam if norm == "inf" else lam * rate, cap), 0.0)
    return torch.where(down, -size, size)


def linearized_boundary(clf: Classifier, x: Tensor, goal: Goal, target: Tensor | None,
                        norm: str) -> tuple[Tensor, Tensor]:
    """Per sample, the logit difference ``f`` at ``x`` whose zero set is the decision boundary FAB steps to, and
    its input gradient ``g``.

    Untargeted (``target`` None): ``f = z_l - z_y`` for the class ``l != y`` whose linearised boundary is nearest,
    ``|f_l| / ||grad f_l||_dual`` (dual norm: L1 for Linf, L2 for L2); one backward pass per other class. Toward
    ``target`` (FAB-T): ``f = z_t - z_y``, one backward pass. A targeted goal: ``f = z_t - z_c``, ``c`` the most
    likely class other than the goal's target, one backward pass.
    """
    rows = torch.arange(len(x), device=x.device)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        z = split_rejection(clf, clf(x))[0]  # a detector-aware view's rejection column is no class
        if goal.targeted or target is not None:
            if goal.targeted:
                to = goal.labels
                source = z.detach().index_put((rows, to), torch.tensor(-math.inf, dtype=z.dtype, device=z.device))
                source = source.argmax(1)
            else:
                to, source = target, goal.labels
            f = z[rows, to] - z[rows, source]
            return f.detach(), gradient_of(f.sum(), x)
        k = z.shape[1]
        classes = torch.arange(k, device=x.device).expand(len(x), k)
        others = classes[classes != goal.labels[:, None]].view(len(x), k - 1)
        diffs = z.gather(1, others) - z[rows, goal.labels][:, None]
        grads = [gradient_of(diffs[:, j].sum(), x, retain_graph=j < k - 2) for j in range(k - 1)]
    g_all = torch.stack(grads, 1)  # [n, k - 1, *x.shape[1:]]
    flat = g_all.flatten(2)
    dual = flat.abs().sum(-1) if norm == "inf" else flat.norm(dim=-1)
    nearest = (diffs.detach().abs() / (dual + 1e-12)).argmin(1)
    return diffs.detach()[rows, nearest], g_all[rows, nearest]


def fab_run(
    clf: Classifier, x: Tensor, goal: Goal, *, start: Tensor, norm: str, steps: int, alpha_max: float, eta: float,
    beta: float, target: Tensor | None = None, stop_at: float | None = None, group: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One FAB run from ``start`` (Croce & Hein 2020, Algorithm 1); per row, the smallest adversarial point found
    and its distance to ``x`` in the norm (``x`` and inf where none was found).

    A row leaves the run once it has an adversarial point within ``stop_at`` (FAB at an eps budget), and with it
    every row of its ``group`` (copies of one sample run toward different targets side by side); without
    ``stop_at`` every row runs every step and the result is FAB's minimum-norm point.
    """
    n, shape = len(x), x.shape[1:]
    best = x.flatten(1).clone()
    dist = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    idx = torch.arange(n, device=x.device)  # the rows still running
    group = idx if group is None else group
    group_done = torch.zeros(int(group.max()) + 1 if n else 0, dtype=torch.bool, device=x.device)
    x0, xk = x.flatten(1), clip(start, clf).flatten(1).detach()
    labels, tgt = goal.labels, target
    for _ in range(steps):
        if len(idx) == 0:
            break
        g_run = Goal(labels, goal.targeted)
        f, g = linearized_boundary(clf, xk.view(-1, *shape), g_run, tgt, norm)
        w = g.flatten(1)
        b = (w * xk).sum(1) - f  # the hyperplane f + w . (z - xk) = 0
        d = project_onto_hyperplane(torch.cat((xk, x0)), torch.cat((w, w)), torch.cat((b, b)), clf.bounds, norm)
        size = flat_norm(d, norm).clamp_min(1e-8)
        (d1, d2), (s1, s2) = d.chunk(2), size.chunk(2)
        alpha = (s1 / (s1 + s2)).clamp(0.0, alpha_max)[:, None]
        xk = clip((1 - alpha) * (xk + eta * d1) + alpha * (x0 + eta * d2), clf)
        with torch.no_grad():
            fooled = goal_reached(clf, clf(xk.view(-1, *shape)), lambda z: is_success(z, g_run))
        fooled = confirmed(clf, xk.view(-1, *shape), fooled,
                           lambda rows, g=g_run: (lambda z, gs=g.subset(rows): is_success(z, gs)))
        r = flat_norm(xk - x0, norm)
        better = fooled & (r < dist[idx])
        best[idx[better]], dist[idx[better]] = xk[better], r[better]
        xk = torch.where(fooled[:, None], x0 + beta * (xk - x0), xk)
        if stop_at is None:
            continue
        group_done[group[idx[fooled & (r <= stop_at)]]] = True
        keep = ~group_done[group[idx]]
        if not bool(keep.all()):
            idx, xk, x0, labels = idx[keep], xk[keep], x0[keep], labels[keep]
            tgt = None if tgt is None else tgt[keep]
    return best.view_as(x), dist


def _random_start(x: Tensor, eps: float, norm: str, draws: SampleDraws, bounds: tuple[float, float]) -> Tensor:
    """AutoAttack's FAB restart: ``x`` plus a random direction scaled to half the eps sphere of the norm (half the
    box's diameter when eps is larger, as without a budget). ``x`` holds ``k`` copies of the samples of ``draws``
    (target-major); each copy gets its own direction from its sample's draws."""
    k = len(x) // len(draws.ids)
    shape, opts = (k, *x.shape[1:]), {"device": x.device, "dtype": x.dtype}
    t = 2 * draws.rand(shape, **opts) - 1 if norm == "inf" else draws.randn(shape, **opts)
    t = t.transpose(0, 1).reshape(x.shape)  # [m, k, ...] -> target-major [k * m, ...], as the rows
    t = t / flat_norm(t, norm).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
    diameter = (bounds[1] - bounds[0]) * (1.0 if norm == "inf" else math.sqrt(x[0].numel()))
    return x + 0.5 * min(eps, diameter) * t.to(x.device)


@ATTACKS.register("fab")
class FAB(Attack):
    """FAB (Croce & Hein 2020) at an eps budget: ``norm`` ``"inf"`` or ``"2"``; ``steps`` 100, ``alpha_max`` 0.1,
    ``eta`` 1.05 and ``beta`` 0.9 as in the paper and AutoAttack; ``restarts`` runs, the first from the input and
    the others from a random point at half eps (as AutoAttack), each on the samples still standing.

    Untargeted (the nearest linearised boundary among all classes: one backward pass per class and step, meant
    for tens of classes; use ``fab-t`` beyond) or, with a targeted goal, toward the goal's target. A sample stops
    at its first adversarial point within eps: later ones could only be smaller, which would not change whether
    it is fooled at that eps. A sample FAB fooled only beyond eps gets its smallest such point projected into the
    ball (it counts if still adversarial, and is a valid point of the ball either way); a sample FAB never fooled
    is returned unchanged.
    """

    role = "iterative"  # run at a fixed eps budget, as AutoAttack runs it; not thresholded across eps
    transfers_by_default: ClassVar[bool] = False  # boundary points: barely adversarial, rarely transfer

    def __init__(self, *, norm: str = "inf", steps: int = 100, restarts: int = 1, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, seed: int = 0) -> None:
        super().__init__()
        for key, value in (("steps", steps), ("restarts", restarts)):
            check_positive(key, value, integer=True)
        check_positive("eta", eta)
        for key, value in (("alpha_max", alpha_max), ("beta", beta)):
            check_positive(key, value, allow_zero=True)
            if value > 1:
                raise ConfigError(f"{key} must be in [0, 1], got {value!r}")
        check_seed(seed)
        self.norm, self.steps, self.restarts = parse_norm(norm), int(steps), int(restarts)
        self.alpha_max, self.eta, self.beta, self.seed = float(alpha_max), float(eta), float(beta), seed

    def waves(self, logits: Tensor, goal: Goal) -> list[Tensor | None]:
        """Given the clean logits, the target classes of each stage, ``[n, k]`` (k targets side by side), or
        None: untargeted."""
        return [None]

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        """Every stage and restart on the samples not yet fooled within eps (see the class docstring)."""
        if eps == 0:
            return x.clone()
        out = x.clone()
        with frozen(clf), torch.no_grad():
            logits = fp32_logits(clf, x)  # which samples are fooled already, the target ranking: fp32
            done = goal_reached(clf, logits, lambda z: is_success(z, goal))  # fooled at the input: nothing to do
            for wave, targets in enumerate(self.waves(split_rejection(clf, logits)[0], goal)):
                for restart in range(self.restarts):
                    active = (~done).nonzero().squeeze(1)
                    if len(active) == 0:
                        return out
                    adv, dist = self._run(clf, x[active], goal.subset(active),
                                          None if targets is None else targets[active], eps, (wave, restart))
                    self._judge(clf, x, goal, active, adv, dist, eps, out, done)
        return out

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """Every eps from one run: a FAB trajectory does not depend on eps (only where it stops, and the random
        starts of later restarts), so one run that stops a sample once it is fooled within the smallest eps, with
        each stage's result judged at every eps (within it, or its point projected into the ball), fools the very
        samples that one run per eps fools, for the passes of about one run. With ``restarts`` > 1 (their starts
        scale with eps) each eps gets its own run."""
        positive = sorted({float(e) for e in eps_list if e > 0})
        if self.restarts > 1 or len(positive) < 2:
            return self.run_per_eps(clf, x, goal, eps_list)
        outs = {e: x.clone() for e in positive}
        with frozen(clf), torch.no_grad():
            logits = fp32_logits(clf, x)  # which samples are fooled already, the target ranking: fp32
            at_input = goal_reached(clf, logits, lambda z: is_success(z, goal))
            done = {e: at_input.clone() for e in positive}
            for wave, targets in enumerate(self.waves(split_rejection(clf, logits)[0], goal)):
                active = (~done[positive[0]]).nonzero().squeeze(1)  # not yet fooled within the smallest eps
                if len(active) == 0:
                    break
                adv, dist = self._run(clf, x[active], goal.subset(active),
                                      None if targets is None else targets[active], positive[0], (wave, 0))
                for e in positive:
                    pending = ~done[e][active]
                    self._judge(clf, x, goal, active[pending], adv[pending], dist[pending], e, outs[e], done[e])
        # shared work: no per-eps queries (the evaluation splits the passes evenly across eps)
        return AttackResult([outs[float(e)] if e > 0 else x.clone() for e in eps_list])

    def _judge(self, clf: Classifier, x: Tensor, goal: Goal, rows: Tensor, adv: Tensor, dist: Tensor, eps: float,
               out: Tensor, done: Tensor) -> None:
        """At ``eps``: a point within it fools its sample; one beyond it is projected into the ball and fools it if
        still adversarial (a valid point of the ball either way); ``out`` and ``done`` are updated in place."""
        within = dist <= eps
        beyond = torch.isfinite(dist) & ~within
        if beyond.any():
            xb = x[rows[beyond]]
            adv[beyond] = clip(xb + project(adv[beyond] - xb, eps, self.norm), clf)
            g_beyond = goal.subset(rows[beyond])
            within[beyond] = goal_reached(clf, fp32_logits(clf, adv[beyond]), lambda z: is_success(z, g_beyond))
        out[rows[within | beyond]] = adv[within | beyond]
        done[rows[within]] = True

    def _run(self, clf: Classifier, x: Tensor, goal: Goal, targets: Tensor | None, eps: float,
             stage: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """One restart (``stage``: wave and restart) toward ``targets`` (``[m, k]``: k copies of each sample side by
        side, target-major); per sample, the smallest adversarial point over its copies and its distance. A random
        start comes from each sample's own draws for that stage."""
        m, k = len(x), 1 if targets is None else targets.shape[1]
        rows = x.repeat(k, *([1] * (x.ndim - 1)))
        restart = stage[1]
        start = rows if restart == 0 else \
            _random_start(rows, eps, self.norm, goal.draws(chain(self.seed, *stage), m), clf.bounds)
        adv, dist = fab_run(clf, rows, Goal(goal.labels.repeat(k), goal.targeted), start=start, norm=self.norm,
                            steps=self.steps, alpha_max=self.alpha_max, eta=self.eta, beta=self.beta,
                            target=None if targets is None else targets.T.reshape(-1),
                            stop_at=eps if math.isfinite(eps) else None,
                            group=torch.arange(m, device=x.device).repeat(k))
        dist, which = dist.view(k, m).min(0)
        return adv.view(k, m, *x.shape[1:])[which, torch.arange(m, device=x.device)], dist


@ATTACKS.register("fab-t")
class FABT(FAB):
    """FAB-T (Croce & Hein 2020), AutoAttack's FAB: FAB toward each of the ``targets`` most likely other classes
    (by the clean logits; 9 as in AutoAttack, all classes but the true one on 10-class data), on the samples no
    earlier target fooled within eps. One backward pass per step instead of FAB's full Jacobian. Success is
    misclassification, as for every untargeted attack (a targeted goal is attacked as by ``fab``).

    AutoAttack runs the targets one after another. Here the most likely one runs first, alone (it fools most of
    the samples that fall), then the others side by side, ``batch_targets`` at a time (None: all at once), each
    copy of a sample stopping when any of them fools it within eps: the same trajectories, so at least as strong,
    in far fewer sequential steps (on a GPU the steps of a small batch cost the same as those of a large one).
    The forward pass then holds up to ``batch_targets`` times the samples; lower it for large models.
    """

    def __init__(self, *, norm: str = "inf", steps: int = 100, targets: int = 9, restarts: int = 1,
                 alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9, batch_targets: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(norm=norm, steps=steps, restarts=restarts, alpha_max=alpha_max, eta=eta, beta=beta,
                         seed=seed)
        check_positive("targets", targets, integer=True)
        if batch_targets is not None:
            check_positive("batch_targets", batch_targets, integer=True)
        self.targets = int(targets)
        self.batch_targets = None if batch_targets is None else int(batch_targets)

    def waves(self, logits: Tensor, goal: Goal) -> list[Tensor | None]:
        """The most likely class other than the true one (by the clean logits), then ranks 2..targets,
        ``batch_targets`` at a time."""
        if goal.targeted:
            return [None]
        order = logits.argsort(dim=1, descending=True)
        others = order[order != goal.labels[:, None]].view(len(logits), -1)
        count = min(self.targets, logits.shape[1] - 1)
        width = self.batch_targets or count
        return [others[:, :1]] + [others[:, r : min(r + width, count)] for r in range(1, count, width)]
