"""The seeded training loop of classifiers, with a progress bar (the weights it makes are cached by
:class:`~robustbench_gan.core.weight_cache.WeightCache`)."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .core.progress import progress_bar
from .errors import ConfigError

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Tensor, Tensor, int], Tensor]
"""``loss_fn(model, x, y, epoch) -> scalar``: the training loss of one batch (defenses plug in here)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of classifier training (Adam at lr 1e-3 by default)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cross_entropy_loss(model: nn.Module, x: Tensor, y: Tensor, epoch: int) -> Tensor:
    return F.cross_entropy(model(x), y)


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (model initialisation, dropout)."""
    torch.manual_seed(seed)


def train_model(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    config: TrainConfig,
    seed: int,
    loss_fn: LossFn = cross_entropy_loss,
    desc: str = "train",
    progress: bool = True,
) -> nn.Module:
    """Train ``model`` in place on ``(x, y)`` (on the model's device); shuffling is seeded by ``seed``."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    n = len(x)
    steps = (n + config.batch_size - 1) // config.batch_size
    bar = progress_bar(total=config.epochs * steps, desc=desc, enabled=progress, leave=False)
    for epoch in range(config.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, config.batch_size):
            idx = perm[i : i + config.batch_size]
            xb, yb = x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
            loss = loss_fn(model, xb, yb, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{total / n:.4f}")
        log.debug("%s epoch %d loss %.4f", desc, epoch + 1, total / n)
    bar.close()
    model.eval()
    return model
