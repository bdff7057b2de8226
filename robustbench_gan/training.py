"""Seeded training loop with a progress bar, and an on-disk cache of trained weights keyed by a config hash."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .core.progress import progress_bar
from .core.io import atomic_save, config_hash  # noqa: F401  (config_hash re-exported: cache keys)
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


class WeightCache:
    """Trained state_dicts on disk, one file per config hash, written atomically, read with weights_only=True."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def path(self, key: str) -> Path | None:
        return self.root / "models" / f"{key}.pt" if self.root is not None else None

    def load(self, key: str, model: nn.Module) -> bool:
        """Load cached weights into ``model``; False when missing or unreadable (then it is retrained)."""
        path = self.path(key)
        if path is None or not path.is_file():
            return False
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("sha256") != _state_digest(blob["state_dict"]):
                raise ValueError("checksum mismatch")
            model.load_state_dict(blob["state_dict"])
        except Exception as exc:  # a corrupt cache entry is never trusted: retrain
            log.warning("ignoring unreadable cache entry %s (%s); retraining", path, exc)
            return False
        log.info("loaded cached weights %s", path.name)
        return True

    def save(self, key: str, model: nn.Module, meta: dict[str, Any]) -> None:
        path = self.path(key)
        if path is None:
            return
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        blob = {"state_dict": state, "sha256": _state_digest(state), "meta": json.dumps(meta, default=str)}
        atomic_save(path, lambda buf: torch.save(blob, buf))


def _state_digest(state: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].contiguous().cpu().numpy().tobytes())
    return h.hexdigest()
