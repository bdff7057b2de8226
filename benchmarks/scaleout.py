"""Scale-out: wall time of a suite of independent cells, local (1 process) vs Ray (workers of 1 CPU each).

1. Independent cells: 4 digits classifiers (two CNNs, an MLP, logistic regression) x PGD-300 x 3 eps = 12 cells,
   no transfer. The classifiers are trained first for each thread count (the weights depend on it, so each has its
   own cache entry); before each timed run the cell cache is emptied, so every run computes all 12 cells and only
   the executor differs.
2. The default suite from scratch (``--no-cache``: training, GAN, cells, report), local vs Ray, where Ray also
   trains the classifiers in parallel tasks (the GAN once, the fits using it after it).

``--workload small`` swaps the 12 cells for 4 small models (logistic regression, three MLPs) x PGD-2000 x 3 small
eps, where a second torch thread buys nothing. Ray's cluster start is timed apart.

``--workload shards`` (issue 24): ONE AutoAttack cell (APGD-CE then APGD-T, ``--steps`` each) of a CIFAR-shaped
ResNet-18 (random weights; the images are labelled as it classifies them, so every sample is attacked) on ``--n``
images cut into shards of ``--shard`` samples: the local executor with 1 thread vs Ray with ``--workers`` workers
of 1 CPU each (equal threads; the cluster is started before the clock), which must give the same rows; and the
local run with 2 threads per forward+backward pass against the bare loop of forward+backward passes on the same
model at the batch the shards ran at (``throughput.bare_pgd_loop``, over all the images). Prints one JSON line of figures at the end.
Usage: python benchmarks/scaleout.py [--workers 2] [--no-default] [--workload mixed|small|shards]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
name = "scaleout"
seed = 0
device = "cpu"

[data]
dataset = "digits"

[transfer]
sources = "none"

[[models]]
name = "cnn"
arch = "cnn"
epochs = 10

[[models]]
name = "mlp"
arch = "mlp"
epochs = 20

[[models]]
name = "logistic"
arch = "logistic"
epochs = 20

[[models]]
name = "cnn-b"
arch = "cnn"
epochs = 12

[[attacks]]
name = "pgd300"
kind = "pgd"
steps = 300
eps = [0.05, 0.1, 0.2]
"""


SMALL_SUITE = """
name = "scaleout-small"
seed = 0
device = "cpu"

[data]
dataset = "digits"

[transfer]
sources = "none"

[[models]]
name = "logistic"
arch = "logistic"
epochs = 20

[[models]]
name = "mlp-32"
arch = "mlp"
epochs = 20
params = {hidden = [32]}

[[models]]
name = "mlp-64"
arch = "mlp"
epochs = 20
params = {hidden = [64]}

[[models]]
name = "mlp-32x32"
arch = "mlp"
epochs = 20
params = {hidden = [32, 32]}

[[attacks]]
name = "pgd2000"
kind = "pgd"
steps = 2000
eps = [0.01, 0.02, 0.03]
"""
# Small models (logistic regression and MLPs): each op is too small for a second torch thread to help, as in many
# suites of small cells; small eps, so most samples stand and every cell runs all its steps.


def run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "robustbench_gan.cli", "-q", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def shards(workers: int, n: int, shard: int, steps: int) -> dict:
    """The ``shards`` workload; returns its figures."""
    import json
    import logging

    import ray
    import torch

    from robustbench_gan import benchmark
    from robustbench_gan.attacks import AutoAttack
    from robustbench_gan.classifier import Classifier
    from robustbench_gan.data import DataSpec
    from robustbench_gan.run.executors import make_executor
    from robustbench_gan.run.tuning import batch_size_for
    from robustbench_gan.throughput import bare_pgd_loop
    from robustbench_gan.zoo import build_model

    torch.manual_seed(0)
    model = build_model("resnet18", DataSpec("cifar-shaped", (3, 32, 32), 10)).eval()
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    eps = 8 / 255

    def timed(threads: int, executor=None):
        torch.set_num_threads(threads)
        aa = AutoAttack(version="custom", attacks=["apgd-ce", "apgd-t"], steps=steps, targets=2)
        t0 = time.perf_counter()
        res = benchmark(model, (x, y), attacks=[aa], eps=[eps], shard_size=shard, executor=executor, progress=False,
                        checks=False)
        return time.perf_counter() - t0, res

    local1, res1 = timed(1)
    print(f"{n} images, shards of {shard}, local 1 thread:            {local1:7.1f} s", flush=True)
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
    try:
        ray_t, res_ray = timed(1, make_executor("ray", num_cpus=1, progress=False))
    finally:
        ray.shutdown()
    print(f"{n} images, shards of {shard}, ray {workers} workers x 1 CPU:    {ray_t:7.1f} s "
          f"({local1 / ray_t:.2f}x)", flush=True)
    cols = [c for c in res1.table.columns if c != "seconds"]
    same = bool(res1.table[cols].equals(res_ray.table[cols]) and res1.samples.equals(res_ray.samples))
    local2, res2 = timed(2)
    row = res2.table[res2.table["attack"] == res2.table["attack"].iloc[0]].iloc[0]  # the cascade's row
    ours = float(row["seconds"]) / int(row["backward_passes"])
    clf = Classifier(model, num_classes=10).eval()
    batch = min(batch_size_for(clf, x, None), shard or n, n)  # the batch each shard's passes ran at
    for p in clf.parameters():
        p.requires_grad_(False)
    bare_pgd_loop(clf, x[:batch], y[:batch], eps=eps, steps=1)  # warm-up
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        bare_pgd_loop(clf, x[i:i + batch], y[i:i + batch], eps=eps, steps=steps)
    bare = (time.perf_counter() - t0) / (n * steps)
    figures = {"images": n, "shard_size": shard, "steps": steps, "local_1_thread_s": round(local1, 1),
               f"ray_{workers}x1_s": round(ray_t, 1), "speedup": round(local1 / ray_t, 2), "identical_rows": same,
               "local_2_threads_s": round(local2, 1), "images_per_s_2_threads": round(n / local2, 2),
               "robust_accuracy": float(row["robust_accuracy"]), "batch": batch,
               "ours_ms_per_image_pass": round(1e3 * ours, 3), "bare_ms_per_image_pass": round(1e3 * bare, 3),
               "ours_over_bare": round(ours / bare, 2)}
    print(f"local 2 threads: {local2:.1f} s ({n / local2:.2f} images/s); per forward+backward image-pass "
          f"{1e3 * ours:.2f} ms vs the bare loop's {1e3 * bare:.2f} ms at batch {batch} ({ours / bare:.2f}x)")
    print(json.dumps(figures))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="Ray workers (tasks of 1 CPU each)")
    p.add_argument("--no-default", action="store_true", help="skip the default-suite line")
    p.add_argument("--workload", choices=["mixed", "small", "shards"], default="mixed",
                   help="mixed: 2 CNNs, an MLP, logistic regression, PGD-300 (default); small: 4 small models, "
                        "PGD-2000; shards: one sharded AutoAttack cell of a CIFAR-shaped ResNet-18")
    p.add_argument("--n", type=int, default=200, help="shards: images")
    p.add_argument("--shard", type=int, default=25, help="shards: samples per shard")
    p.add_argument("--steps", type=int, default=10, help="shards: APGD steps")
    args = p.parse_args()
    if args.workload == "shards":
        shards(args.workers, args.n, args.shard, args.steps)
        return
    work = Path(tempfile.mkdtemp(prefix="scaleout-"))
    suite = work / "suite.toml"
    suite.write_text(SUITE if args.workload == "mixed" else SMALL_SUITE)
    cache = work / "cache"
    base = ["run", str(suite), "--cache-dir", str(cache)]
    print("training the classifiers once per thread count (cached) ...", flush=True)
    for threads in ("1", "2"):
        run([*base, "--out", str(work / f"warm{threads}"), "--threads", threads])
    ray_label = f"ray, {args.workers} workers x 1 CPU"
    timings = {}
    for label, extra in (("local, 1 process, 2 threads", ["--threads", "2"]),
                         ("local, 1 process, 1 thread", ["--threads", "1"]),
                         (ray_label, ["--executor", "ray", "--num-cpus", "1"])):
        shutil.rmtree(cache / "cells", ignore_errors=True)
        timings[label] = run([*base, "--out", str(work / label.split(",")[0]), *extra])
        print(f"12 independent cells, {label:30s} {timings[label]:7.1f} s", flush=True)
    local2, local1, ray_t = (timings[k] for k in ("local, 1 process, 2 threads", "local, 1 process, 1 thread",
                                                   ray_label))
    print(f"speed-up of ray over local (2 threads): {local2 / ray_t:.2f}x; over local (1 thread): "
          f"{local1 / ray_t:.2f}x", flush=True)
    if not args.no_default:
        default = {}
        for label, extra in (("local, 2 threads", ["--threads", "2"]),
                             (ray_label, ["--executor", "ray", "--num-cpus", "1"])):
            default[label] = run(["run", "default", "--no-cache", "--out", str(work / f"default-{label[:5]}"), *extra])
            print(f"default suite from scratch, {label:30s} {default[label]:7.1f} s", flush=True)
        print(f"default suite speed-up of ray over local (2 threads): "
              f"{default['local, 2 threads'] / default[ray_label]:.2f}x", flush=True)
    import ray  # the cluster's own start-up, for the record

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False)
    ray.shutdown()
    print(f"Ray cluster start + shutdown alone: {time.perf_counter() - t0:.1f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
