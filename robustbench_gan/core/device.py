"""Device resolution."""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

if TYPE_CHECKING:
    from torch import nn

ModuleT = TypeVar("ModuleT", bound="nn.Module")

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


def _cpu_identity() -> str:
    """The processor as the kernels see it: vendor, family, model and model name (float kernels, MKL's and oneDNN's
    among them, pick code paths by these)."""
    import platform

    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor describes them all
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    parts = [fields.get(k, "") for k in ("vendor_id", "cpu family", "model", "model name")]
    return "/".join(parts) if any(parts) else (platform.processor() or platform.machine() or "unknown")


def numerics_fingerprint(device: str) -> dict[str, str]:
    """Everything that decides the last bits of a run's numbers besides its inputs and seed: the device (on the CPU
    the processor, the kernels' instruction set and the thread count), and the torch build. Two runs agree bit for
    bit only where these agree; elsewhere they agree within sampling error (float kernels differ between
    processors and instruction sets, and with the number of threads a reduction is split across)."""
    import torch

    out = {"torch": torch.__version__, "device": device}
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        out["gpu"] = torch.cuda.get_device_name(index)
        out["cuda"] = str(torch.version.cuda)
        out["cudnn"] = str(torch.backends.cudnn.version())
    else:
        out["processor"] = _cpu_identity()
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        out["threads"] = str(torch.get_num_threads())
    return out


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


def oom_errors() -> tuple[type[BaseException], ...]:
    """The exception types torch raises when a device runs out of memory."""
    import torch

    found = {getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)}
    return tuple(t for t in found if isinstance(t, type))


def largest_batch(fits: Callable[[int], None], *, start: int, limit: int) -> int:
    """The largest batch size ``b <= limit`` on the doubling ladder from ``start`` for which ``fits(b)`` does not run
    out of memory (halving below ``start`` when ``start`` itself does not fit; at least 1)."""
    if start < 1 or limit < 1:
        raise ValueError("start and limit must be positive")
    b = min(start, limit)
    errors = oom_errors()
    while True:  # down until one fits
        try:
            fits(b)
            break
        except errors:
            if b == 1:
                raise
            b = max(1, b // 2)
    while b < limit:  # up while the doubled size fits
        nxt = min(2 * b, limit)
        try:
            fits(nxt)
        except errors:
            break
        b = nxt
    return b


def uses_convolutions(module: "nn.Module") -> bool:
    import torch.nn as nn

    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())


def tune_for_device(module: "ModuleT", device: str) -> "ModuleT":
    """``module`` on ``device``; convolutional models on CUDA in channels_last memory format (NHWC, what cuDNN's
    fastest convolution kernels and tensor cores read)."""
    import torch

    module = module.to(device)
    if str(device).startswith("cuda") and uses_convolutions(module):
        module = module.to(memory_format=torch.channels_last)
    return module


@contextmanager
def cudnn_autotune(device: str, enabled: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` for the block on CUDA when ``enabled`` (restored afterwards). It picks the
    fastest convolution algorithm per input shape by timing them, so results may differ in the last bits between
    runs: off by default (same seed, same device, same results)."""
    import torch

    if not (enabled and str(device).startswith("cuda")):
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
