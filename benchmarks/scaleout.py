"""Scale-out: wall time of a suite of independent cells, local (1 process) vs Ray (workers of 1 CPU each).

1. Independent cells: 4 digits classifiers (two CNNs, an MLP, logistic regression) x PGD-300 x 3 eps = 12 cells,
   no transfer. The classifiers are trained first for each thread count (the weights depend on it, so each has its
   own cache entry); before each timed run the cell cache is emptied, so every run computes all 12 cells and only
   the executor differs.
2. The default suite from scratch (``--no-cache``: training, GAN, cells, report), local vs Ray, where Ray also
   trains the classifiers in parallel tasks (the GAN once, the fits using it after it).

``--workload small`` swaps the 12 cells for 4 small models (logistic regression, three MLPs) x PGD-2000 x 3 small
eps, where a second torch thread buys nothing. Ray's cluster start is timed apart.
Usage: python benchmarks/scaleout.py [--workers 2] [--no-default] [--workload mixed|small]
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="Ray workers (tasks of 1 CPU each)")
    p.add_argument("--no-default", action="store_true", help="skip the default-suite line")
    p.add_argument("--workload", choices=["mixed", "small"], default="mixed",
                   help="mixed: 2 CNNs, an MLP, logistic regression, PGD-300 (default); small: 4 small models, PGD-2000")
    args = p.parse_args()
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
