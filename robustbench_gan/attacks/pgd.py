"""Projected gradient descent (Madry et al. 2017) and the Basic Iterative Method (Kurakin et al. 2016)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ..classifier import Classifier
from ..purified import check_adaptive
from .base import (
    ATTACKS, Attack, Goal, check_bool, check_loss, check_positive, check_seed, check_target, goal_loss, is_success,
    parse_norm,
)
from .engine.descent import descend, descend_to_goal
from .engine.norms import random_delta


@ATTACKS.register("pgd")
class PGD(Attack):
    """PGD in the Linf or L2 ball with random start and restarts, untargeted or targeted.

    Defaults follow Madry et al. 2017: uniform random start in the eps-ball, ``steps`` signed-gradient steps
    projected back onto the ball; ``step_size`` defaults to ``2.5 * eps / steps`` (their rule of thumb, so the
    iterate can reach the boundary from anywhere in the ball). ``loss="margin"`` uses the Carlini-Wagner logit
    margin, robust to saturated softmax (gradient masking by distillation). Each sample keeps the first iterate
    that succeeds, across steps and restarts, so a later step cannot undo a success. ``eot_samples`` averages
    each step's gradient over that many passes, for randomized models (EOT, Athalye et al. 2018). ``adaptive``
    chooses what is differentiated of a purifying defense (``bpda``, or a view the purifier offers; see
    :mod:`robustbench_gan.purified`).
    """

    role = "iterative"
    active_set = True  # a fooled sample leaves the batch (the examples are the same without; tests compare)

    def __init__(
        self,
        *,
        norm: str = "inf",
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        loss: str = "ce",
        targeted: bool = False,
        target_mode: str = "random",
        target: int = 0,
        seed: int = 0,
        eot_samples: int = 1,
        adaptive: str = "none",
    ) -> None:
        super().__init__()
        self.adaptive = check_adaptive(adaptive)
        check_positive("steps", steps, integer=True)
        check_positive("eot_samples", eot_samples, integer=True)
        check_positive("restarts", restarts, integer=True)
        if step_size is not None:
            check_positive("step_size", step_size)
        check_target(targeted, target_mode, target)
        check_loss(loss)
        check_bool("random_start", random_start)
        check_seed(seed)
        self.norm = parse_norm(norm)
        self.steps = int(steps)
        self.step_size = step_size
        self.random_start = bool(random_start)
        self.restarts = int(restarts)
        self.loss = loss
        self.targeted = targeted
        self.target_mode = target_mode if targeted else ""
        self.target = target
        self.seed = seed
        self.eot_samples = int(eot_samples)

    def schedule(self, clf: Classifier, eps: float) -> tuple[int, float]:
        """Number of steps and step size for this eps."""
        return self.steps, float(self.step_size) if self.step_size is not None else 2.5 * eps / self.steps

    def perturb(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        if eps == 0:
            return x.clone()
        gen = goal.draws(self.seed, len(x))
        steps, step = self.schedule(clf, eps)
        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        every = torch.arange(len(x), device=x.device)
        for restart in range(self.restarts):
            if bool(done.all()):
                break
            # the samples still standing run again; without the active set every sample does (keeping its first
            # success). Random starts are drawn for the whole batch, so a sample's start does not depend on which
            # others are still running: the examples are the same either way. A sample's draws are its own
            # (keyed by its id, Goal.draws), whatever batch or shard it is in.
            active = (~done).nonzero().squeeze(1) if self.active_set else every
            xa = x[active]
            ga = Goal(goal.labels[active], goal.targeted)
            random = self.random_start or restart > 0
            start = xa + random_delta(x, eps, self.norm, gen)[active] if random else xa
            fresh = ~done[active]
            xk, found = descend_to_goal(
                clf, xa, eps=eps, norm=self.norm, steps=steps, step_size=step, start=start,
                loss=lambda i, g=ga: goal_loss(g.subset(i), self.loss),
                success=lambda i, g=ga: (lambda z, gi=g.subset(i): is_success(z, gi)),
                eot_samples=self.eot_samples, active_set=self.active_set)
            # a sample keeps its first success; one never fooled keeps the last iterate of the last restart
            keep = fresh & (found | (restart == self.restarts - 1))
            done[active[fresh & found]] = True
            best[active[keep]] = xk[keep]
        return best.detach()

    def transfer_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        return [x.clone() if e == 0 else self.final_iterate(clf, x, goal, eps=float(e)) for e in eps_list]

    def final_iterate(self, clf: Classifier, x: Tensor, goal: Goal, *, eps: float) -> Tensor:
        """The last iterate of one run of all steps, without early stopping (what adversarial training uses)."""
        steps, step = self.schedule(clf, eps)
        gen = goal.draws(self.seed, len(x))
        start = x + random_delta(x, eps, self.norm, gen) if self.random_start else x
        return descend(clf, x, eps=eps, norm=self.norm, steps=steps, step_size=step,
                       loss=goal_loss(goal, self.loss), start=start, eot_samples=self.eot_samples)


@ATTACKS.register("bim")
class BIM(PGD):
    """Basic Iterative Method (Kurakin, Goodfellow & Bengio 2016): PGD without random start.

    Their defaults: step ``alpha = 1/255`` of the pixel range and ``min(255 * eps + 4, 1.25 * 255 * eps)`` steps;
    here ``steps``/``step_size`` default to that rule when not given.
    """

    role = "iterative"

    def __init__(
        self,
        *,
        norm: str = "inf",
        steps: int | None = None,
        step_size: float | None = None,
        loss: str = "ce",
        targeted: bool = False,
        target_mode: str = "least-likely",
        target: int = 0,
        eot_samples: int = 1,
        adaptive: str = "none",
    ) -> None:
        if steps is not None:
            check_positive("steps", steps, integer=True)
        super().__init__(
            norm=norm, steps=steps or 10, step_size=step_size, random_start=False, loss=loss,
            targeted=targeted, target_mode=target_mode, target=target, eot_samples=eot_samples, adaptive=adaptive,
        )
        self.steps = None if steps is None else int(steps)  # type: ignore[assignment]  # None: Kurakin's rule per eps

    def schedule(self, clf: Classifier, eps: float) -> tuple[int, float]:
        scale = clf.bounds[1] - clf.bounds[0]
        e = eps / scale * 255
        steps = self.steps if self.steps is not None else max(1, math.ceil(min(e + 4, 1.25 * e)))
        return int(steps), float(self.step_size) if self.step_size is not None else scale / 255
