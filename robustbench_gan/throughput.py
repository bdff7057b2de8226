"""Attack throughput: our PGD (through ``benchmark()`` and bare ``PGD``) vs the bare loop of k forward+backward
passes vs ART's ProjectedGradientDescent (and torchattacks' PGD when installed), same model, batch and process.

The model is a CNN trained briefly on synthetic MNIST-shaped data. Our PGD stops early only once every sample of
the batch is fooled; eps (0.01) is small enough that some samples never are, so every method runs all k steps
(the "fooled" column says how many were).
"""
from __future__ import annotations

import logging
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .classifier import Classifier
from .data import DataSpec
from .zoo import build_model
from .core.device import resolve_device
from .classifier_training import TrainConfig, seed_everything, train_model

log = logging.getLogger(__name__)


def synthetic_task(n: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """MNIST-shaped images: one random template per class plus noise, clipped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(10, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (0.7 * templates[y] + 0.3 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)
    return x, y


def bare_pgd_loop(clf: Classifier, x: Tensor, y: Tensor, *, eps: float, steps: int) -> Tensor:
    """The reference: k x (forward, input-gradient backward, signed step, projection), nothing else."""
    step = 2.5 * eps / steps
    xk = x.clone()
    for _ in range(steps):
        xk.requires_grad_(True)
        loss = F.cross_entropy(clf(xk), y)
        (grad,) = torch.autograd.grad(loss, xk)
        xk = torch.min(torch.max(xk.detach() + step * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return xk


def _time(fn: Callable[[], Any], *, repeats: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(*, device: str = "auto", batch: int = 256, steps: int = 10, repeats: int = 3, eps: float = 0.01) -> list[dict[str, Any]]:
    """Median seconds per method on one batch; ``ratio`` is relative to the bare loop."""
    from .api import benchmark
    from .attacks.base import Goal
    from .attacks.pgd import PGD

    dev = resolve_device(device)
    seed_everything(0)
    spec = DataSpec("synthetic", (1, 28, 28), 10)
    clf = Classifier(build_model("cnn", spec), num_classes=10).to(dev)
    xt, yt = synthetic_task(2048, seed=1)
    train_model(clf, xt.to(dev), yt.to(dev), config=TrainConfig(epochs=1, batch_size=128), seed=0, progress=False)
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    x, y = synthetic_task(batch, seed=2)
    x, y = x.to(dev), y.to(dev)
    pgd = PGD(steps=steps, random_start=False)
    rows: list[dict[str, Any]] = []

    def add(name: str, fn: Callable[[], Any]) -> None:
        rows.append({"method": name, "seconds": _time(fn, repeats=repeats, device=dev)})

    add(f"bare loop ({steps} fwd+bwd)", lambda: bare_pgd_loop(clf, x, y, eps=eps, steps=steps))
    add(f"PGD-{steps} (attack only)", lambda: pgd.perturb(clf, x, Goal(y), eps=eps))
    add(f"benchmark() PGD-{steps}", lambda: benchmark(clf, (x, y), attacks=[pgd], eps=[eps], device=dev, checks=False,
                                                     progress=False))
    try:
        import numpy as np
        from art.attacks.evasion import ProjectedGradientDescent

        from .attacks.art import art_estimator

        est = art_estimator(clf, x.shape[1:])
        art_pgd = ProjectedGradientDescent(est, norm=np.inf, eps=eps, eps_step=2.5 * eps / steps, max_iter=steps,
                                           num_random_init=0, batch_size=batch, verbose=False)
        x_np = x.cpu().numpy()
        y_np = np.eye(10, dtype=np.float32)[y.cpu().numpy()]
        add(f"ART ProjectedGradientDescent-{steps}", lambda: art_pgd.generate(x=x_np, y=y_np))
    except ImportError:  # pragma: no cover
        log.warning("ART is not installed; skipping its row")
    try:
        import torchattacks  # type: ignore[import-not-found]

        ta = torchattacks.PGD(clf, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=False)
        add(f"torchattacks PGD-{steps}", lambda: ta(x, y))
    except ImportError:
        log.info("torchattacks not installed; skipping its row")
    with torch.no_grad():
        fooled = float((clf(pgd.perturb(clf, x, Goal(y), eps=eps)).argmax(1) != y).float().mean())
    base = rows[0]["seconds"]
    for r in rows:
        r["ratio"] = r["seconds"] / base
        r.update(device=dev, batch=batch, steps=steps, eps=eps, fooled=fooled, threads=torch.get_num_threads())
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no rows"
    r0 = rows[0]
    head = (f"device={r0['device']} batch={r0['batch']} steps={r0['steps']} eps={r0['eps']} "
            f"threads={r0['threads']} fooled by PGD={r0['fooled']:.1%}")
    lines = [head, f"{'method':<40}{'seconds':>10}{'x bare':>9}"]
    lines += [f"{r['method']:<40}{r['seconds']:>10.4f}{r['ratio']:>9.2f}" for r in rows]
    return "\n".join(lines)
