"""Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami 2016)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import Classifier
from ..core.io import config_hash
from ..core.validation import check_positive
from ..data import Data
from ..classifier_training import TrainConfig, train_model
from .base import DEFENSES, Defense, FitContext, MakeModel, Prerequisite


@DEFENSES.register("distillation")
class DefensiveDistillation(Defense):
    """Teacher trained with softmax at temperature ``T``; a student of the same architecture trained on the
    teacher's soft labels at the same ``T``; the student is deployed at ``T = 1``.

    ``temperature = 100`` is the paper's headline setting. Its logits are then about ``T`` times larger, the softmax
    saturates and cross-entropy gradients vanish: it resists CE-loss attacks by gradient masking, which a
    logit-margin attack (Carlini & Wagner 2016, "Defensive distillation is not robust") or transfer sees through.
    """

    def __init__(self, *, name: str | None = None, temperature: float = 100.0) -> None:
        super().__init__(name=name)
        check_positive("temperature", temperature)
        self.temperature = float(temperature)

    def prerequisites(self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int,
                      context: FitContext) -> list[Prerequisite]:
        """The teacher: trained once (and cached next to the student) before the student that learns from it."""
        key = "teacher-" + config_hash({"student": context.recipe, "T": self.temperature}) if context.recipe else ""
        return [Teacher(key, self, make_model, data, train, seed)]

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        context = context or FitContext()
        T = self.temperature
        need, = self.prerequisites(make_model, data, train=train, seed=seed, context=context)
        teacher = context.obtain(need, device=device, progress=progress).to(device).eval()
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


class Teacher(Prerequisite):
    """The distillation teacher: ``make_model`` trained with softmax at temperature ``T`` (a :class:`Classifier`)."""

    label = "distillation teacher"

    def __init__(self, key: str, defense: DefensiveDistillation, make_model: MakeModel, data: Data,
                 train: TrainConfig, seed: int) -> None:
        self.key, self.defense, self.make_model, self.data, self.train, self.seed = key, defense, make_model, data, \
            train, seed

    def _skeleton(self) -> Classifier:
        return self.defense.classifier(self.make_model, self.data, seed=self.seed)

    def build(self, *, device: str, progress: bool) -> Classifier:
        T = self.defense.temperature
        teacher = self._skeleton().to(device)

        def teacher_loss(model: nn.Module, x: Tensor, y: Tensor, epoch: int) -> Tensor:
            return F.cross_entropy(model(x) / T, y)

        train_model(teacher, self.data.x_train, self.data.y_train, config=self.train, seed=self.seed,
                    loss_fn=teacher_loss, desc=f"train {self.defense.name} teacher (T={T:g})", progress=progress)
        return teacher.eval()

    def load(self, context: FitContext) -> Classifier | None:
        teacher = self._skeleton()
        return teacher.eval() if context.weights.load(self.key, teacher) else None

    def save(self, context: FitContext, artefact: Classifier) -> None:
        context.weights.save(self.key, artefact, {"teacher_of": context.recipe, "T": self.defense.temperature})
