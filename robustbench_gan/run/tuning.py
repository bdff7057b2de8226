"""How a cell runs its classifiers on the device: the batch size (on CUDA the largest that fits, found once per
architecture and input shape) and, when asked, a ``torch.compile``'d copy of each classifier."""
from __future__ import annotations

import copy
import logging
import weakref
from typing import Hashable

import torch
from torch import Tensor

from ..attacks.base import Goal
from ..attacks.engine.descent import gradient
from ..attacks.pgd import PGD
from ..attacks.engine.precision import attack_precision, supported
from ..classifier import Classifier, frozen
from ..core.device import largest_batch

log = logging.getLogger(__name__)

CPU_BATCH = 256
"""The batch size when none is set and the device is not CUDA (what every earlier release used)."""
MAX_BATCH = 8192
COMPILE_BACKEND = "inductor"  # torch.compile's default; tests swap in "eager" to check the wiring quickly

_batch_sizes: dict[Hashable, int] = {}
_compiled: "weakref.WeakKeyDictionary[Classifier, Classifier]" = weakref.WeakKeyDictionary()


def _signature(clf: Classifier, x: Tensor) -> Hashable:
    shapes = tuple(tuple(p.shape) for p in clf.parameters())
    return (type(clf).__qualname__, type(getattr(clf, "model", clf)).__qualname__, shapes, tuple(x.shape[1:]),
            str(x.device), str(x.dtype))


def batch_size_for(clf: Classifier, x: Tensor, requested: int | None, *, probe: bool | None = None) -> int:
    """``requested`` when set; otherwise 256, or on CUDA (``probe``) the largest batch whose forward+backward pass
    fits in memory, halved for the attack's own tensors (APGD keeps several copies of each example) and capped at
    the evaluated set. Found once per architecture, input shape and device, then remembered."""
    if requested is not None:
        return int(requested)
    if not (x.is_cuda if probe is None else probe):
        return CPU_BATCH
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
