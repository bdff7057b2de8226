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


def numerics(device: str) -> str:
    """What, besides the inputs, decides the exact numbers a run computes: the device, and on the CPU the number
    of torch threads (reductions split across threads sum in another order). Part of every cache key, so a run
    never mixes results computed under other numerics."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return f"cuda/{torch.cuda.get_device_name(index)}"
    return f"cpu/threads={torch.get_num_threads()}"
