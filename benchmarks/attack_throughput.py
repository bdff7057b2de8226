"""Attack throughput: ours vs the bare forward+backward loop vs ART (and torchattacks when installed).

Usage: python benchmarks/attack_throughput.py [--device cpu|cuda|auto] [--batch 256] [--steps 10] [--repeats 3]
(the same as `robustbench-gan bench`).
"""
import sys

from robustbench_gan.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
