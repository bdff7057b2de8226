"""Mode collapse on the published benchmarks, and its remedies: packing (PacGAN, Lin et al. 2018) and unrolling
(Metz et al. 2017), on PacGAN's ring of 8 and grid of 25 (and VEEGAN's variants) and on Stacked MNIST.

Prints mean ± standard deviation over the seeds next to the published numbers (PacGAN's Tables 1 and 2 give
mean ± standard *error* over 10 trials; VEEGAN's Table 1 gives means), with each row's budget and wall time.

Usage (from the repository root, in the project's environment):
  python benchmarks/gan_collapse.py toys [--seeds 0 1 2 3 4] [--steps 2000] [--workers 2] [--veegan]
  python benchmarks/gan_collapse.py stacked [--mnist ../shared/data/mnist-t10k] [--seeds 0 1 2 3 4]
  python benchmarks/gan_collapse.py toys --published    # PacGAN's own budget: 400 epochs, lr 1e-4, beta1 0.8

The CPU budget (the default) trains PacGAN's networks (4 x 400 batch-norm generator, 3 x 200 maxout
discriminator, batch 100 packs) for ``--steps`` generator steps with Adam at lr 1e-3 decaying linearly to 0;
PacGAN trains 400 epochs of its 100,000 points (400,000 steps) at lr 1e-4, beta1 0.8, which is hours per run
on a CPU. Without ``--mnist`` Stacked MNIST is built from scikit-learn's digits upsampled to 28x28.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

PACGAN_TABLE1 = {  # (modes, high-quality %, reverse KL), each (mean, standard error over 10 trials)
    ("ring-8", "GAN"): ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)),
    ("ring-8", "PacGAN2"): ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03)),
    ("ring-8", "PacGAN3"): ((7.8, 0.1), (97.7, 0.3), (0.10, 0.02)),
    ("ring-8", "PacGAN4"): ((7.8, 0.1), (95.9, 1.4), (0.07, 0.02)),
    ("grid-25", "GAN"): ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07)),
    ("grid-25", "PacGAN2"): ((23.8, 0.7), (91.3, 0.8), (0.13, 0.04)),
    ("grid-25", "PacGAN3"): ((24.6, 0.4), (94.2, 0.4), (0.06, 0.02)),
    ("grid-25", "PacGAN4"): ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01)),
}
VEEGAN_TABLE1 = {  # (modes, high-quality %): VEEGAN (Srivastava et al. 2017), Table 1, their ring and grid
    ("ring-8-veegan", "GAN"): (1.0, 99.3), ("ring-8-veegan", "Unrolled5"): (7.6, 35.6),
    ("ring-8-veegan", "VEEGAN"): (8.0, 52.9),
    ("grid-25-veegan", "GAN"): (3.3, 0.5), ("grid-25-veegan", "Unrolled5"): (23.6, 16.0),
    ("grid-25-veegan", "VEEGAN"): (24.6, 40.0),
}
PACGAN_TABLE3 = {  # Stacked MNIST with a weakened D (modes, KL) at D = 1/4 and 1/2 of G's size: PacGAN Table 3
    "DCGAN": ((78.5, 5.21), (487.7, 2.24)), "PacDCGAN2": ((484.5, 2.61), (840.7, 1.00)),
    "PacDCGAN3": ((601.3, 2.00), (866.6, 0.90)), "PacDCGAN4": ((667.4, 1.81), (820.2, 1.15)),
    "Unrolled GAN": ((236.4, 4.67), (732.0, 1.66)),  # 5 unrolled steps
}
PACGAN_TABLE2 = {  # Stacked MNIST (modes, KL): PacGAN Table 2 (VEEGAN's DCGAN row; PacGAN's own DCGAN row)
    "DCGAN (VEEGAN's)": (99.0, 3.40), "DCGAN (PacGAN's)": (78.9, 4.50), "Unrolled GAN": (48.7, 4.32),
    "PacDCGAN2": (1000.0, 0.06), "PacDCGAN3": (1000.0, 0.06), "PacDCGAN4": (1000.0, 0.07),
}
TOY_VARIANTS = {"GAN": (1, 0), "PacGAN2": (2, 0), "PacGAN3": (3, 0), "PacGAN4": (4, 0), "Unrolled5": (1, 5),
                "PacGAN4+Unrolled5": (4, 5)}


def _one_thread() -> None:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)


def toy_run(benchmark: str, variant: str, seed: int, budget: dict[str, Any]) -> dict[str, Any]:
    """Train one toy GAN and score 2,500 samples; returns the metrics and the wall time."""
    from robustbench_gan.gan.toy import BENCHMARKS, sample_toy, toy_metrics, train_toy_gan

    b = BENCHMARKS[benchmark]
    pack, unroll = TOY_VARIANTS[variant]
    data = b.data(seed=0)
    start = time.perf_counter()
    g, _ = train_toy_gan(data, pack=pack, unroll=unroll, seed=seed, progress=False, **budget)
    wall = time.perf_counter() - start
    m = toy_metrics(sample_toy(g, b.samples, seed=seed), b.centers, b.std)
    return {"benchmark": benchmark, "variant": variant, "seed": seed, "wall_s": wall, **m}


def stacked_run(pack: int, unroll: int, seed: int, mnist: str | None, budget: dict[str, Any]) -> dict[str, Any]:
    """Train one unconditional DCGAN on Stacked MNIST and count the modes of 26,000 samples."""
    from robustbench_gan.gan.stacked_mnist import PACGAN_EVAL_SAMPLES
    from robustbench_gan.gan.training import GanConfig, sample_unconditional, train_unconditional_gan

    data, counter = _stacked(mnist, budget["n_train"])
    config = GanConfig(epochs=budget["epochs"], batch_size=64, lr=2e-4, beta1=0.5, z_dim=100, width=budget["width"],
                       d_width=budget["d_width"], pack=pack, unroll=unroll)
    start = time.perf_counter()
    g, _ = train_unconditional_gan(data.x_train, data.spec, config=config, seed=seed, progress=False)
    wall = time.perf_counter() - start
    stats = counter.count(sample_unconditional(g, PACGAN_EVAL_SAMPLES, seed=seed))
    return {"pack": pack, "unroll": unroll, "seed": seed, "wall_s": wall, "modes_captured": stats["modes_captured"],
            "kl_to_uniform": stats["kl_to_uniform"], "counter_accuracy": counter.accuracy}


_STACKED: dict[Any, Any] = {}


def _stacked(mnist: str | None, n_train: int) -> Any:
    """The stacked data and a trained mode counter, once per worker process (seeded: identical in each)."""
    from robustbench_gan.gan.stacked_mnist import ModeCounter, digit_source, stacked_data

    key = (mnist, n_train)
    if key not in _STACKED:
        digits = digit_source(mnist, size=28, seed=0)
        counter = ModeCounter.train(digits, seed=0, epochs=5)
        _STACKED[key] = (stacked_data(digits, n_train, 1000, seed=0), counter)
    return _STACKED[key]


def _pm(values: list[float], fmt: str) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def toys(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.published:
        budget = {"steps": 400_000, "batch_size": 100, "lr": 1e-4, "beta1": 0.8, "lr_decay": False, "arch": "pacgan"}
    else:
        budget = {"steps": args.steps, "batch_size": 100, "lr": 1e-3, "beta1": 0.5, "lr_decay": True,
                  "arch": args.arch}
    names = args.benchmarks + [f"{b}-veegan" for b in args.benchmarks if args.veegan]
    jobs = [(b, v, s) for b in names for v in args.variants for s in args.seeds]
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_one_thread) as pool:
        runs = list(pool.map(toy_run, *zip(*jobs), [budget] * len(jobs)))
    print(f"\nToys: {budget}, {len(args.seeds)} seeds, {args.workers} single-threaded workers\n")
    print("| benchmark | variant | modes | high-quality % | reverse KL | wall s/run | published (PacGAN T1 / VEEGAN T1) |")
    print("|---|---|---|---|---|---|---|")
    for b in names:
        for v in args.variants:
            rs = [r for r in runs if r["benchmark"] == b and r["variant"] == v]
            pub = PACGAN_TABLE1.get((b, v))
            if pub:
                ref = f"{pub[0][0]} ± {pub[0][1]} / {pub[1][0]} ± {pub[1][1]}% / {pub[2][0]} ± {pub[2][1]}"
            elif (b, v) in VEEGAN_TABLE1:
                ref = "{} / {}%".format(*VEEGAN_TABLE1[(b, v)])
            else:
                ref = ""
            kls = [r["reverse_kl"] for r in rs]
            kl = _pm(kls, ".2f") if all(k != float("inf") for k in kls) else "inf (no high-quality sample)"
            print(f"| {b} | {v} | {_pm([r['modes_captured'] for r in rs], '.1f')} | "
                  f"{_pm([100 * r['high_quality_fraction'] for r in rs], '.1f')} | {kl} | "
                  f"{statistics.fmean(r['wall_s'] for r in rs):.0f} | {ref} |", flush=True)
    return runs


def stacked(args: argparse.Namespace) -> list[dict[str, Any]]:
    budget = {"n_train": args.n_train, "epochs": args.epochs, "width": args.width, "d_width": args.d_width}
    variants = [(p, 0) for p in args.packs] + [(1, k) for k in args.unrolls]
    jobs = [(p, k, s) for p, k in variants for s in args.seeds]
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_one_thread) as pool:
        runs = list(pool.map(stacked_run, *zip(*jobs), [args.mnist] * len(jobs), [budget] * len(jobs)))
    source = args.mnist or "scikit-learn digits upsampled to 28x28 (stand-in)"
    print(f"\nStacked MNIST from {source}: {budget} (batch 64, Adam 2e-4/0.5, z 100), 26,000 samples counted, "
          f"mode counter's held-out digit accuracy {runs[0]['counter_accuracy']:.4f}\n")
    print("| generator | modes (of 1000) | KL to uniform | wall s/run | published (PacGAN T2) |")
    print("|---|---|---|---|---|")
    for p, k in variants:
        rs = [r for r in runs if r["pack"] == p and r["unroll"] == k]
        name = ("DCGAN" if p == 1 else f"PacDCGAN{p}") + (f" unrolled {k}" if k else "")
        pub = PACGAN_TABLE2.get("Unrolled GAN" if (p, k > 0) == (1, True) else name) or ("DCGAN 99.0 / 3.40 (VEEGAN's), 78.9 / 4.50 (PacGAN's)" if name == "DCGAN"
                                          else "")
        if isinstance(pub, tuple):
            pub = f"{pub[0]} / {pub[1]}"
        key = "Unrolled GAN" if (p, k > 0) == (1, True) else name
        if args.d_width and key in PACGAN_TABLE3:  # D weakened: Table 3's rows (D at 1/4 and 1/2 of G)
            quarter, half = PACGAN_TABLE3[key]
            pub = f"T3, D 1/4: {quarter[0]} / {quarter[1]}; D 1/2: {half[0]} / {half[1]}"
        print(f"| {name} | {_pm([r['modes_captured'] for r in rs], '.1f')} | "
              f"{_pm([r['kl_to_uniform'] for r in rs], '.2f')} | {statistics.fmean(r['wall_s'] for r in rs):.0f} | "
              f"{pub} |", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["toys", "stacked", "all"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000, help="toy generator steps (CPU budget)")
    parser.add_argument("--arch", choices=["pacgan", "mlp"], default="pacgan")
    parser.add_argument("--variants", nargs="+", default=list(TOY_VARIANTS), choices=list(TOY_VARIANTS))
    parser.add_argument("--benchmarks", nargs="+", default=["ring-8", "grid-25"], choices=["ring-8", "grid-25"])
    parser.add_argument("--veegan", action="store_true", help="also VEEGAN's ring and grid (std 0.02)")
    parser.add_argument("--published", action="store_true", help="PacGAN's own toy budget (hours per run on a CPU)")
    parser.add_argument("--mnist", default=None, help="a folder with MNIST IDX files (e.g. ../shared/data/mnist-t10k)")
    parser.add_argument("--n-train", type=int, default=25_600, help="stacked training images (PacGAN: 128,000)")
    parser.add_argument("--epochs", type=int, default=2, help="DCGAN epochs over them (PacGAN: 50)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--d-width", type=int, default=None,
                        help="the discriminator's width (PacGAN Table 3: D at 1/4 or 1/2 of G's size); default --width")
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--unrolls", type=int, nargs="*", default=[])
    parser.add_argument("--out", default=None, help="write every run's numbers to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs: dict[str, Any] = {}
    if args.what in ("toys", "all"):
        runs["toys"] = toys(args)
    if args.what in ("stacked", "all"):
        runs["stacked"] = stacked(args)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
