"""Scale-out: wall time of a suite of independent cells, local (1 process) vs Ray (workers of 1 CPU each).

The suite: 4 digits classifiers (two CNNs, an MLP, logistic regression) x PGD-300 x 3 eps = 12 cells, no
transfer. The classifiers are trained once first (cached); before each timed run the cell cache is emptied, so
both runs compute every cell and only the executor differs. Ray's cluster start is timed apart.

Usage: python benchmarks/scaleout.py [--workers 2]
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


def run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "robustbench_gan.cli", "-q", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="Ray workers (tasks of 1 CPU each)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scaleout-"))
    suite = work / "suite.toml"
    suite.write_text(SUITE)
    cache = work / "cache"
    base = ["run", str(suite), "--cache-dir", str(cache)]
    print("training the classifiers once (cached) ...", flush=True)
    run([*base, "--out", str(work / "warm"), "--threads", "1"])
    timings = {}
    for label, extra in (("local, 1 process, 2 threads", ["--threads", "2"]),
                         ("local, 1 process, 1 thread", ["--threads", "1"]),
                         (f"ray, {args.workers} workers x 1 CPU", ["--executor", "ray", "--num-cpus", "1"])):
        shutil.rmtree(cache / "cells", ignore_errors=True)
        timings[label] = run([*base, "--out", str(work / label.split(",")[0]), *extra])
        print(f"{label:32s} {timings[label]:7.1f} s", flush=True)
    import ray  # the cluster's own start-up, for the record

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False)
    ray.shutdown()
    start = time.perf_counter() - t0
    local2 = timings["local, 1 process, 2 threads"]
    ray_t = timings[f"ray, {args.workers} workers x 1 CPU"]
    print(f"Ray cluster start + shutdown alone: {start:.1f} s")
    print(f"speed-up of ray over local (2 threads): {local2 / ray_t:.2f}x; "
          f"over local (1 thread): {timings['local, 1 process, 1 thread'] / ray_t:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
