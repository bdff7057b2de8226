"""Gaussian noise augmentation, the base classifier of randomized smoothing (Cohen, Rosenfeld & Kolter 2019, sec. 4:
they train each base classifier with Gaussian data augmentation at the noise level it is certified at)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import Classifier
from ..core.validation import check_positive
from ..data import Data
from ..classifier_training import TrainConfig, train_model
from .base import DEFENSES, Defense, FitContext, MakeModel


@DEFENSES.register("noise-training")
class NoiseTraining(Defense):
    """Train on ``x + N(0, sigma^2 I)``, fresh noise for every batch, not clipped (as Cohen et al.'s training and
    certification). ``sigma`` is a standard deviation in the data's pixel units (on [0, 1] data a fraction of the
    pixel range; Cohen et al. use 0.12, 0.25, 0.5 and 1.0 on CIFAR-10): certify with the same sigma
    (:mod:`robustbench_gan.certification`). The noise comes from a CPU generator seeded from the training seed."""

    def __init__(self, *, name: str | None = None, sigma: float = 0.25) -> None:
        super().__init__(name=name)
        check_positive("sigma", sigma)
        self.sigma = float(sigma)

    def fit(
        self, make_model: MakeModel, data: Data, *, train: TrainConfig, seed: int, device: str, progress: bool = True,
        context: FitContext | None = None,
    ) -> Classifier:
        clf = self.classifier(make_model, data, seed=seed).to(device)
        gen = torch.Generator().manual_seed(seed + 1)

        def noisy_loss(model: nn.Module, x: Tensor, y: Tensor, epoch: int) -> Tensor:
            noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            return F.cross_entropy(model(x + self.sigma * noise), y)

        train_model(clf, data.x_train, data.y_train, config=train, seed=seed, loss_fn=noisy_loss,
                    desc=f"train {self.name} (sigma={self.sigma:g})", progress=progress)
        return clf

    def params(self) -> dict[str, Any]:
        return {"sigma": self.sigma}
