"""Adversarial training: FGSM (Goodfellow et al. 2014), PGD (Madry et al. 2017), fast FGSM from a random start
(Wong, Rice & Kolter 2020) and TRADES (Zhang et al. 2019).

Examples are crafted with the model in eval mode and parameters frozen, then the model is trained on them in
train mode. Random starts draw from a generator seeded per batch from the training seed.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks.base import Goal, goal_loss
from ..attacks.fgsm import FGSM
from ..attacks.engine.descent import descend
from ..attacks.engine.norms import parse_norm, random_delta
from ..attacks.pgd import PGD
from ..classifier import Classifier, frozen
from ..core.validation import check_positive
from ..data import Data
from ..errors import ConfigError
from ..classifier_training import TrainConfig, train_model
from .base import DEFENSES, Defense, FitContext, MakeModel

METHODS = ("fgsm", "pgd", "fast", "trades")


@DEFENSES.register("adversarial-training")
class AdversarialTraining(Defense):
    """Train on adversarial examples crafted on the fly.

    - ``method="fgsm"``: loss ``alpha * CE(x) + (1 - alpha) * CE(x_fgsm)``, ``alpha = 0.5`` (Goodfellow et al. 2014).
    - ``method="pgd"``: CE on PGD examples with random start (Madry et al. 2017); ``steps`` PGD steps of
      ``step_size`` (default ``2.5 * eps / steps``).
    - ``method="fast"``: one FGSM step of ``1.25 * eps`` from a uniform random start, projected (Wong et al. 2020).
    - ``method="trades"``: ``CE(x) + beta * KL(p(x) || p(x_adv))`` with ``beta = 6`` (Zhang et al. 2019).

    ``ramp_epochs``: eps grows linearly from ``eps / ramp_epochs`` to ``eps`` over the first epochs. It defaults to
    40% of the epochs for ``pgd`` and ``trades`` (PGD training at MNIST eps 0.3 from scratch can collapse to
    chance without a warm-up) and to 0 (off) for the single-step methods.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        method: str = "pgd",
        eps: float = 0.3,
        norm: str = "inf",
        alpha: float = 0.5,
        steps: int = 10,
        step_size: float | None = None,
        ramp_epochs: int | None = None,
        beta: float = 6.0,
    ) -> None:
        super().__init__(name=name)
        if method not in METHODS:
            raise ConfigError(f"adversarial-training method must be one of {', '.join(METHODS)}, got {method!r}")
        check_positive("eps", eps)
        check_positive("steps", steps, integer=True)
        check_positive("beta", beta)
        if step_size is not None:
            check_positive("step_size", step_size)
        if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise ConfigError(f"alpha must be in [0, 1], got {alpha!r}")
        if ramp_epochs is not None:
            check_positive("ramp_epochs", ramp_epochs, allow_zero=True, integer=True)
        self.method = method
        self.eps = float(eps)
        self.norm = parse_norm(norm)
        self.alpha = float(alpha)
        self.steps = int(steps)
        self.step_size = step_size
        self.ramp_epochs = ramp_epochs
        self.beta = float(beta)

    def ramp(self, epochs: int) -> int:
        if self.ramp_epochs is not None:
            return int(self.ramp_epochs)
        return max(1, round(0.4 * epochs)) if self.method in ("pgd", "trades") else 0

    def eps_at(self, epoch: int, epochs: int) -> float:
        r = self.ramp(epochs)
        return self.eps if r == 0 else self.eps * min(1.0, (epoch + 1) / r)

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        clf = self.classifier(make_model, data, seed=seed).to(device)
        gen = torch.Generator().manual_seed(seed + 1)

        def loss_fn(model: nn.Module, x: Tensor, y: Tensor, epoch: int) -> Tensor:
            eps = self.eps_at(epoch, train.epochs)
            batch_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
            x_adv = self.craft(clf, x, y, eps, batch_seed)
            if self.method == "fgsm":
                return self.alpha * F.cross_entropy(model(x), y) + (1 - self.alpha) * F.cross_entropy(model(x_adv), y)
            if self.method == "trades":
                logits = model(x)
                kl = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(logits, 1), reduction="batchmean")
                return F.cross_entropy(logits, y) + self.beta * kl
            return F.cross_entropy(model(x_adv), y)

        train_model(clf, data.x_train, data.y_train, config=train, seed=seed, loss_fn=loss_fn,
                    desc=f"train {self.name} ({self.method})", progress=progress)
        return clf

    def craft(self, clf: Classifier, x: Tensor, y: Tensor, eps: float, seed: int) -> Tensor:
        """Training examples of this method at ``eps`` (model in eval mode, parameters frozen), all through the
        attacks' one loop: FGSM's single step, PGD's final iterate, one random-start step (fast) or PGD on the
        TRADES KL term."""
        goal = Goal(y)
        if self.method == "fgsm":
            return FGSM(norm=self.norm).perturb(clf, x, goal, eps=eps)
        if self.method == "pgd":
            pgd = PGD(norm=self.norm, steps=self.steps, step_size=self._step(eps), seed=seed)
            return pgd.final_iterate(clf, x, goal, eps=eps)
        g = torch.Generator().manual_seed(seed)
        if self.method == "fast":  # Wong et al. 2020: uniform start, one step of 1.25 eps, projected
            start = x + random_delta(x, eps, self.norm, g)
            return descend(clf, x, eps=eps, norm=self.norm, steps=1, step_size=1.25 * eps, loss=goal_loss(goal),
                           start=start)
        # TRADES inner maximisation: PGD on KL(p(x) || p(x')) from x + 0.001 * N(0, 1) (Zhang et al. 2019)
        with frozen(clf), torch.no_grad():
            p_clean = F.softmax(clf(x), 1)
        start = x + 0.001 * torch.randn(x.shape, generator=g).to(x.device, x.dtype)

        def kl(logits: Tensor) -> Tensor:
            return F.kl_div(F.log_softmax(logits, 1), p_clean, reduction="none").flatten(1).sum(1)

        return descend(clf, x, eps=eps, norm=self.norm, steps=self.steps, step_size=self._step(eps), loss=kl,
                       start=start)

    def _step(self, eps: float) -> float:
        return float(self.step_size) if self.step_size is not None else 2.5 * eps / self.steps

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "eps": self.eps, "norm": self.norm, "alpha": self.alpha, "steps": self.steps,
                "step_size": self.step_size, "ramp_epochs": self.ramp_epochs, "beta": self.beta}
