"""An on-disk cache of trained weights: one file per config hash, written atomically with a checksum, read with
``weights_only=True`` (never pickled code)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .io import atomic_save

log = logging.getLogger(__name__)


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
