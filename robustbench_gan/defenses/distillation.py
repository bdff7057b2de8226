"""Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami 2016)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import Classifier
from ..core.validation import check_positive
from ..data import Data
from ..training import TrainConfig, train_model
from .base import DEFENSES, Defense, FitContext, MakeModel


@DEFENSES.register("distillation")
class DefensiveDistillation(Defense):
    """Teacher trained with softmax at temperature ``T``; a student of the same architecture trained on the
    teacher's soft labels at the same ``T``; the student is deployed at ``T = 1``.

    ``temperature = 100`` is the paper's headline setting. Its logits are then about ``T`` times larger, the softmax
    saturates and cross-entropy gradients vanish: it resists CE-loss attacks by gradient masking, which a
    logit-margin attack (Carlini & Wagner 2016, "Defensive distillation is not robust") or transfer sees through.
    """

    kind = "distillation"

    def __init__(self, *, name: str | None = None, temperature: float = 100.0) -> None:
        super().__init__(name=name)
        check_positive("temperature", temperature)
        self.temperature = float(temperature)

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        T = self.temperature
        teacher = self.classifier(make_model, data, seed=seed).to(device)

        def teacher_loss(model: nn.Module, x: Tensor, y: Tensor, epoch: int) -> Tensor:
            return F.cross_entropy(model(x) / T, y)

        train_model(teacher, data.x_train, data.y_train, config=train, seed=seed, loss_fn=teacher_loss,
                    desc=f"train {self.name} teacher (T={T:g})", progress=progress)
        soft = F.softmax(teacher.predict(data.x_train.to(device)) / T, 1)

        student = self.classifier(make_model, data, seed=seed + 1).to(device)

        def student_loss(model: nn.Module, x: Tensor, idx: Tensor, epoch: int) -> Tensor:
            return -(soft[idx] * F.log_softmax(model(x) / T, 1)).sum(1).mean()

        index = torch.arange(len(data.x_train))  # the loop hands out indices; the loss looks up soft labels
        train_model(student, data.x_train, index, config=train, seed=seed, loss_fn=student_loss,
                    desc=f"train {self.name} student (T={T:g})", progress=progress)
        return student

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
