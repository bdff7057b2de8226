"""How a cell runs its classifiers on the device: the batch size (on CUDA the largest that fits, found once per
architecture and input shape) and, when asked, a ``torch.compile``'d copy of each classifier."""
from __future__ import annotations

import copy
import logging
import os
import weakref
from typing import Any, Hashable

import torch
from torch import Tensor, nn

from ..attacks.base import Goal
from ..attacks.engine.descent import gradient
from ..attacks.pgd import PGD
from ..attacks.engine.precision import attack_precision, supported
from ..classifier import Classifier, frozen
from ..core.device import largest_batch

log = logging.getLogger(__name__)

CPU_BATCH = 256
"""The batch size when none is set and the device is not CUDA (what every earlier release used), unless a batch
that large would take more than :data:`CPU_MEMORY_SHARE` of the machine's memory."""
CPU_MEMORY_SHARE = 0.25
"""The share of the machine's physical memory one CPU batch's forward and backward pass may take."""
BACKWARD_FACTOR = 2
"""Memory of a forward+backward pass and the attack's tensors per byte of one sample's forward activations.
Measured on this 2-core machine (PGD-2 at batch 32, 3x32x32, peak RSS growth per sample over the estimate): 0.87
for ResNet-18, 1.23 for WRN-28-10; 2 leaves room for APGD's copies of the examples and the allocator."""
MAX_BATCH = 8192
COMPILE_BACKEND = "inductor"  # torch.compile's default; tests swap in "eager" to check the wiring quickly

_batch_sizes: dict[Hashable, int] = {}
_compiled: "weakref.WeakKeyDictionary[Classifier, Classifier]" = weakref.WeakKeyDictionary()


def _signature(clf: Classifier, x: Tensor) -> Hashable:
    shapes = tuple(tuple(p.shape) for p in clf.parameters())
    return (type(clf).__qualname__, type(getattr(clf, "model", clf)).__qualname__, shapes, tuple(x.shape[1:]),
            str(x.device), str(x.dtype))


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (None where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def activation_bytes(clf: Classifier, x: Tensor) -> int:
    """Bytes of the outputs of every leaf module in one sample's forward pass (0 if that pass fails)."""
    sizes: list[int] = []

    def record(_module: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, Tensor):
            sizes.append(output.numel() * output.element_size())

    hooks = [m.register_forward_hook(record) for m in clf.modules() if not any(True for _ in m.children())]
    try:  # the global generators are left as they were: a model that draws (noise, restarts) draws the same later
        with torch.random.fork_rng(devices=[]), frozen(clf):
            clf(x[:1].detach())
    except Exception as exc:  # a model that cannot run one sample alone fails later with its own error
        log.debug("activation estimate skipped for %s: %s", type(clf.model).__name__, exc)
        return 0
    finally:
        for hook in hooks:
            hook.remove()
    return sum(sizes)


def cpu_batch_size(clf: Classifier, x: Tensor) -> int:
    """:data:`CPU_BATCH`, or fewer where a batch that large would take more than :data:`CPU_MEMORY_SHARE` of the
    machine's memory (:data:`BACKWARD_FACTOR` times one sample's activations per sample). Found once per
    architecture and input shape; the same on every machine with as much memory."""
    key = ("cpu", _signature(clf, x))
    if key not in _batch_sizes:
        per_sample = BACKWARD_FACTOR * activation_bytes(clf, x)
        memory = physical_memory()
        size = CPU_BATCH
        if per_sample and memory:
            size = max(1, min(CPU_BATCH, int(CPU_MEMORY_SHARE * memory // per_sample)))
        if size < CPU_BATCH:
            log.info("batch size %d for %s on the CPU: %.0f MiB per sample, %.0f GiB of memory", size,
                     type(clf.model).__name__, per_sample / 2**20, (memory or 0) / 2**30)
        _batch_sizes[key] = size
    return _batch_sizes[key]


def batch_size_for(clf: Classifier, x: Tensor, requested: int | None, *, probe: bool | None = None) -> int:
    """``requested`` when set; otherwise on the CPU :func:`cpu_batch_size` (256 unless memory is short), on CUDA
    (``probe``) the largest batch whose forward+backward pass fits in memory, halved for the attack's own tensors
    (APGD keeps several copies of each example) and capped at the evaluated set. Found once per architecture,
    input shape and device, then remembered."""
    if requested is not None:
        return int(requested)
    if not (x.is_cuda if probe is None else probe):
        return cpu_batch_size(clf, x)
    limit = min(MAX_BATCH, 2 * len(x))
    key = (_signature(clf, x), limit)
    if key not in _batch_sizes:
        sample = x[:1].detach()

        def fits(b: int) -> None:
            xb = sample.expand(b, *sample.shape[1:]).clone()
            with frozen(clf):
                gradient(clf, xb, lambda logits: logits.float().logsumexp(1))
            if xb.is_cuda:
                torch.cuda.synchronize()

        try:
            most = largest_batch(fits, start=min(CPU_BATCH, limit), limit=limit)
        finally:
            if x.is_cuda:
                torch.cuda.empty_cache()
        _batch_sizes[key] = max(1, min(len(x), most // 2))
        log.info("batch size %d for %s on %s (largest forward+backward that fits: %d)",
                 _batch_sizes[key], type(clf.model).__name__, x.device, most)
    return _batch_sizes[key]


class MicroBatched(nn.Module):
    """``model`` run on chunks of exactly ``size`` samples, the last one padded with copies of its first sample
    (their outputs are dropped). A sample's arithmetic then never depends on how many samples share its call:
    measured on this 2-core AMD EPYC machine, ResNet-18's logits and input gradients differ (by up to 9e-7 and 7e-5)
    between batches of 1, 7 and 64 samples, and are bitwise equal in fixed chunks. The cost: up to ``size - 1``
    padded rows per call (the active set of an attack shrinks its calls)."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model = model
        self.size = int(size)

    def forward(self, x: Tensor) -> Tensor:
        outputs = []
        for start in range(0, len(x), self.size):
            chunk = x[start:start + self.size]
            n = len(chunk)
            if n < self.size:
                chunk = torch.cat([chunk, chunk[:1].expand(self.size - n, *chunk.shape[1:])])
            outputs.append(self.model(chunk)[:n])
        return torch.cat(outputs) if outputs else self.model(x)


_micro_batched: "weakref.WeakKeyDictionary[Classifier, dict[int, Classifier]]" = weakref.WeakKeyDictionary()


def micro_batched(clf: Classifier, size: int) -> Classifier:
    """A copy of ``clf`` whose model runs on chunks of exactly ``size`` samples (:class:`MicroBatched`), made once
    per classifier and size. Classifiers of other types (a purifying defense, an ensemble) are returned as they
    are, and say so."""
    if type(clf) is not Classifier:
        log.info("micro_batch: %s runs on whole batches (only plain classifiers are chunked)", type(clf).__name__)
        return clf
    made = _micro_batched.setdefault(clf, {})
    if size not in made:
        twin = copy.copy(clf)
        twin._modules = dict(clf._modules)  # the copy shares parameters and buffers but not the module table
        twin._modules["model"] = MicroBatched(clf.model, size)
        made[size] = twin
    return made[size]


def compiled(clf: Classifier) -> Classifier:
    """A copy of ``clf`` whose model is ``torch.compile``'d (dynamic shapes: the active set shrinks batches), made
    once per classifier. Classifiers of other types (a purifying defense, an ensemble) are returned as they are."""
    if type(clf) is not Classifier:
        log.info("compile: %s is attacked uncompiled (only plain classifiers are compiled)", type(clf).__name__)
        return clf
    if clf not in _compiled:
        twin = copy.copy(clf)
        twin._modules = dict(clf._modules)  # the copy shares parameters and buffers but not the module table
        twin._modules["model"] = torch.compile(clf.model, dynamic=True, backend=COMPILE_BACKEND)
        _compiled[clf] = twin
    return _compiled[clf]


CALIBRATION_N = 256
CALIBRATION_EPS = 8 / 255
"""Calibration of ``precision = "auto"`` on CUDA: PGD-10 at eps 8/255 of the pixel range (the CIFAR-10 Linf budget
of RobustBench) on the first 256 evaluated samples."""
_precisions: "weakref.WeakKeyDictionary[Classifier, str]" = weakref.WeakKeyDictionary()


def precision_for(clf: Classifier, x: Tensor, y: Tensor, requested: str, *, probe: bool | None = None) -> str:
    """``requested`` unless it is ``auto``. ``auto``: fp32 on the CPU; on CUDA (``probe``) bf16 when autocast works
    and PGD-10 in bf16 leaves the same robust accuracy as in fp32 on a calibration subset (within one sample or
    0.5 points; decisions in fp32 both times), else fp32. Decided once per classifier, then remembered."""
    if requested != "auto":
        return requested
    if not (x.is_cuda if probe is None else probe):
        return "fp32"
    if clf not in _precisions:
        choice = "fp32"
        if supported(str(x.device), "bf16"):
            xs, ys = x[:CALIBRATION_N], y[:CALIBRATION_N]
            eps = CALIBRATION_EPS * (clf.bounds[1] - clf.bounds[0])
            robust = {}
            for precision in ("fp32", "bf16"):
                with frozen(clf), attack_precision(xs.device, precision):
                    adv = PGD(steps=10)(clf, xs, Goal(ys), eps=eps)
                robust[precision] = float((clf.predict(adv).argmax(1) == ys).float().mean())
            if abs(robust["bf16"] - robust["fp32"]) <= max(0.005, 1 / len(xs)):
                choice = "bf16"
            log.info("precision auto for %s: %s (robust accuracy on %d calibration samples: fp32 %.3f, bf16 %.3f)",
                     type(clf.model).__name__, choice, len(xs), robust["fp32"], robust["bf16"])
        _precisions[clf] = choice
    return _precisions[clf]
