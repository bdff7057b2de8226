"""Evaluation at CIFAR scale on one GPU, in one call (issue 24, point 6): a CIFAR-shaped ResNet-18 and
WideResNet-28-10 (random weights: throughput; the images are labelled as each model classifies them, so every
sample is attacked), PGD-20 and standard AutoAttack at 8/255 on 1,000 images:

- ours in fp32 and with bf16 passes (``precision``; every decision stays fp32), through ``benchmark()``;
- the bare loop of PGD-20 forward+backward passes on the same model and batch (``throughput.bare_pgd_loop``);
- torchattacks' PGD (eps, alpha = 2.5 eps / 20, steps 20, random start), when it is installed;
- the AutoAttack cell cut into 4 shards: the local executor vs Ray with 4 workers sharing the GPU
  (``num_gpus`` 0.25 each), when Ray is installed.

Writes one JSON of figures (``--out``, default ``gpu_scale.json``) and prints it. Meant to finish within 8 minutes
on one H100/H200. ``--quick`` runs the same steps on the CPU at toy sizes (one narrow WideResNet, 8 images, 2
steps, AutoAttack's APGD-CE and APGD-T with 2 steps): what the tests run.

On the lent GPU machine (no network, no Ray; its python3 has torch and the project's other dependencies), carry
torchattacks' wheel as ``benchmarks/gpu_check.sh`` says; the Ray line then reads "ray not installed".

Usage: python benchmarks/gpu_scale.py [--quick] [--device cuda] [--n 1000] [--out gpu_scale.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch

from robustbench_gan import benchmark
from robustbench_gan.attacks import PGD, AutoAttack
from robustbench_gan.classifier import Classifier
from robustbench_gan.core.device import resolve_device
from robustbench_gan.data import DataSpec
from robustbench_gan.run.tuning import batch_size_for
from robustbench_gan.throughput import bare_pgd_loop
from robustbench_gan.zoo import build_model

EPS = 8 / 255
CIFAR = DataSpec("cifar-shaped", (3, 32, 32), 10)


def models(quick: bool) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    if quick:  # one narrow WideResNet stands in for both
        return {"wide-resnet-10-1": build_model("wide-resnet", CIFAR, depth=10, width=1)}
    return {"resnet18": build_model("resnet18", CIFAR), "wrn-28-10": build_model("wrn-28-10", CIFAR)}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Any, device: str) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def row_of(results: Any) -> dict[str, Any]:
    r = results.table.iloc[0]
    return {"robust_accuracy": float(r["robust_accuracy"]), "clean_accuracy": float(r["clean_accuracy"]),
            "attack_seconds": round(float(r["seconds"]), 3), "backward_passes": int(r["backward_passes"])}


def measure(name: str, model: torch.nn.Module, *, n: int, steps: int, quick: bool, device: str) -> dict[str, Any]:
    model = model.to(device).eval()
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        y = model(x).argmax(1)
    clf = Classifier(model, num_classes=10).eval()
    batch = min(batch_size_for(clf, x, None), n)
    out: dict[str, Any] = {"n": n, "batch": batch, "steps": steps}
    common = {"eps": [EPS], "progress": False, "checks": False, "device": device}

    def pgd() -> PGD:
        return PGD(steps=steps)

    for precision in ("fp32", "bf16") if device.startswith("cuda") else ("fp32",):
        wall, res = timed(lambda: benchmark(model, (x, y), attacks=[pgd()], precision=precision, **common), device)
        out[f"ours_pgd_{precision}"] = {"wall_s": round(wall, 2), **row_of(res)}
    for p in clf.parameters():
        p.requires_grad_(False)
    bare_pgd_loop(clf, x[:batch], y[:batch], eps=EPS, steps=1)  # warm-up
    wall, _ = timed(lambda: [bare_pgd_loop(clf, x[i:i + batch], y[i:i + batch], eps=EPS, steps=steps)
                             for i in range(0, n, batch)], device)
    out["bare_pgd_fp32"] = {"wall_s": round(wall, 2), "image_passes": n * steps}
    ours = out["ours_pgd_fp32"]
    out["ours_over_bare_per_pass"] = round(ours["attack_seconds"] / max(ours["backward_passes"], 1)
                                           / (wall / (n * steps)), 2)
    if importlib.util.find_spec("torchattacks") is not None:
        import torchattacks

        ta = torchattacks.PGD(model, eps=EPS, alpha=2.5 * EPS / steps, steps=steps, random_start=True)
        wall, adv = timed(lambda: torch.cat([ta(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]),
                          device)
        with torch.no_grad():
            acc = float((model(adv).argmax(1) == y).float().mean())
        out["torchattacks_pgd_fp32"] = {"wall_s": round(wall, 2), "robust_accuracy": acc}
    else:
        out["torchattacks_pgd_fp32"] = "torchattacks not installed"

    def autoattack() -> AutoAttack:
        if quick:
            return AutoAttack(version="custom", attacks=["apgd-ce", "apgd-t"], steps=steps, targets=2)
        return AutoAttack()  # standard: APGD-CE, APGD-T, FAB-T, Square (Croce & Hein 2020)

    wall, res = timed(lambda: benchmark(model, (x, y), attacks=[autoattack()], shard_size=-(-n // 4), **common),
                      device)
    out["autoattack_local_4_shards"] = {"wall_s": round(wall, 2), **row_of(res)}
    if importlib.util.find_spec("ray") is not None:
        import ray

        from robustbench_gan.run.executors import make_executor

        gpus = 0.25 if device.startswith("cuda") else None
        ray.init(num_cpus=4 if not quick else 2, include_dashboard=False, logging_level=logging.WARNING)
        try:
            executor = make_executor("ray", num_cpus=1, num_gpus=gpus, progress=False)
            wall, res_ray = timed(lambda: benchmark(model, (x, y), attacks=[autoattack()], shard_size=-(-n // 4),
                                                    executor=executor, **common), device)
        finally:
            ray.shutdown()
        out["autoattack_ray_4_workers"] = {"wall_s": round(wall, 2), "gpus_per_task": gpus, **row_of(res_ray)}
    else:
        out["autoattack_ray_4_workers"] = "ray not installed"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="toy sizes on the CPU (the tests run this)")
    p.add_argument("--device", default=None, help="default: cuda when available (cpu with --quick)")
    p.add_argument("--n", type=int, default=None, help="images (default 1000; 8 with --quick)")
    p.add_argument("--out", default="gpu_scale.json")
    args = p.parse_args()
    device = resolve_device(args.device or ("cpu" if args.quick else "auto"))
    n, steps = (args.n or 8, 2) if args.quick else (args.n or 1000, 20)
    figures: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__, "quick": args.quick, "eps": EPS, "models": {}}
    start = time.perf_counter()
    for name, model in models(args.quick).items():
        figures["models"][name] = measure(name, model, n=n, steps=steps, quick=args.quick, device=device)
        print(name, json.dumps(figures["models"][name]), flush=True)
    figures["total_s"] = round(time.perf_counter() - start, 1)
    Path(args.out).write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
