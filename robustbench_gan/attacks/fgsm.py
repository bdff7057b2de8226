"""Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy 2014), untargeted and targeted."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor

from ..classifier import Classifier, frozen
from .base import (
    ATTACKS, Attack, Goal, check_loss, check_positive, check_target, clip, goal_loss, l2_normalize, parse_norm,
)
from .engine.descent import gradient


@ATTACKS.register("fgsm")
class FGSM(Attack):
    """One step of size ``eps`` along the sign of the loss gradient: ``x' = clip(x + eps * sign(grad))``.

    Targeted (Kurakin et al. 2016): step *down* the cross-entropy of the target class, chosen by ``target_mode``
    (``fixed`` class ``target``, ``random`` other class, or ``least-likely`` class). With ``norm="2"`` the step is
    the L2-normalised gradient (the "fast gradient method"). For a list of eps the gradient is computed once.
    ``eot_samples`` averages it over that many passes, for randomized models (EOT, Athalye et al. 2018).
    """

    role = "single-step"

    def __init__(
        self, *, norm: str = "inf", targeted: bool = False, target_mode: str = "random", target: int = 0,
        loss: str = "ce", eot_samples: int = 1,
    ) -> None:
        super().__init__()
        check_positive("eot_samples", eot_samples, integer=True)
        self.eot_samples = int(eot_samples)
        check_target(targeted, target_mode, target)
        check_loss(loss)
        self.norm = parse_norm(norm)
        self.targeted = targeted
        self.target_mode = target_mode if targeted else ""
        self.target = target
        self.loss = loss

    def direction(self, clf: Classifier, x: Tensor, goal: Goal) -> Tensor:
        with frozen(clf):
            grad, _ = gradient(clf, x, goal_loss(goal, self.loss), self.eot_samples)
        return grad.sign() if self.norm == "inf" else l2_normalize(grad)

    def perturb_many(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float]) -> list[Tensor]:
        d = self.direction(clf, x, goal)
        return [x.clone() if e == 0 else clip(x + float(e) * d, clf).detach() for e in eps_list]
