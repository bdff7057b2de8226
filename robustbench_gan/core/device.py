"""Device resolution."""
from __future__ import annotations

from ..errors import ConfigError


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; a CUDA request without CUDA is a ConfigError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    return device
