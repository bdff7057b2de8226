"""Device resolution."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

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


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` for the block and restored afterwards (``None``: left as they are)."""
    if threads is None:
        yield
        return
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer (CPU threads of torch), got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
