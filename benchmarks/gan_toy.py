"""The 2-D mode-collapse benchmarks of VEEGAN (Srivastava et al. 2017, Table 1): ring of 8 and grid of 25
Gaussians (std 0.02), modes captured and % high-quality samples (within 3 std of a mode) of our toy GAN.

Usage: python benchmarks/gan_toy.py [--seeds 0 1 2]
VEEGAN's Table 1 for reference: GAN 1.0/8 modes (ring), 3.3/25 (grid); VEEGAN 8.0/8, 24.6/25.
"""
import argparse
import logging

from robustbench_gan.gan.toy import (GRID_STD, RING_STD, grid_centers, ring_centers, sample_mixture, sample_toy,
                                     toy_metrics, train_toy_gan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| benchmark | seed | modes captured | high-quality fraction |")
    print("|---|---|---|---|")
    for name, centers, std in (("ring-8", ring_centers(), RING_STD), ("grid-25", grid_centers(), GRID_STD)):
        data = sample_mixture(centers, 10_000, std, seed=0)
        for seed in args.seeds:
            g, _ = train_toy_gan(data, seed=seed, progress=False)
            m = toy_metrics(sample_toy(g, 2500, seed=seed), centers, std)
            print(f"| {name} | {seed} | {m['modes_captured']}/{len(centers)} | {m['high_quality_fraction']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
