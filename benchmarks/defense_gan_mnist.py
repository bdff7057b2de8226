"""Defense-GAN on the MNIST test split under naive PGD, BPDA PGD, PGD through the unrolled projection and the
latent attack (Linf eps 0.3), with wall times: the comparison with Athalye, Carlini & Wagner 2018, sec. 5.3.

Split: the zoo CNN and an unconditional DCGAN (Radford et al. 2015 settings) train on 8,000 of the 10,000 test
images (seeded split); ``--n`` of the other 2,000 are attacked. Accuracy is always decided by Defense-GAN with
``--steps``/``--restarts`` (paper's MNIST values L = 200, R = 10 by default). The attacks' own forward passes (each
PGD step, and the success checks inside the attack) use a cheaper projection, ``--attack-steps`` /
``--attack-restarts`` (default L = 100, R = 1; L = 30, R = 1 kept only 41% clean accuracy), sharing the same
classifier and generator: a full projection per attack step would take hours on 2 CPU cores. The latent attack needs no projection but its start ``z*``.

Prints one JSON line per attack: clean and robust accuracy (under the deciding projection), wall seconds, and the
settings. PGD attacks return their last iterate (no early stop; ``--early-stop`` keeps each sample's first
success as suites do): a success under the attack's cheaper projection need not survive the deciding one.

Measured (2026-11-26, shared 2-core CPU with ~8 busy processes, OMP_NUM_THREADS=1), from the repository root:
  python benchmarks/defense_gan_mnist.py --root ../shared/data/mnist-t10k --n 100 --gan-epochs 6 --steps 100 \
      --restarts 5 --attack-steps 100 --attack-restarts 1 --pgd-steps 10 --latent-steps 100 --epochs 5
GAN: DCGAN z_dim 64, width 64, 6 epochs (750 steps, ~7 min here); CNN 5 epochs (40-80 s). Deciding projection
L = 100, R = 5 (half the paper's L and R: ~50 s per pass over 100 images); attack passes L = 100, R = 1.
  clean: 97% behind Defense-GAN (undefended CNN 99%; 82% under the attack-pass projection)    45-55 s
  PGD-10, naive:                      94%   57 s  (zero gradients: only the random start moves)
  PGD-10, adaptive = "bpda":          58%  110 s  (78% in 29 s with --early-stop)
  PGD-10, adaptive = "unroll" (10):   58%   75 s  (78% in 36 s with --early-stop)
  latent, 100 steps, penalty 1:       67%   19 s  (mean squared distortion 0.0095 per pixel)
  latent, 300 steps, penalty 0.3:     52%   99 s  (--latent-steps 300 --latent-penalty 0.3; distortion 0.016)
Athalye et al. 2018 (sec. 5.3.1) bring Defense-GAN to 55% accuracy at a mean L2 distortion of 0.005 with their
latent-space attack (a partial break: the projection does not always return G(z) for an image G(z)) and argue
0% is reachable in principle. Ours are 27-42 point drops from the naive 94%, near their partial break, with a
6-epoch GAN and 10-step attacks sized to this CPU; more PGD steps, the deciding L/R inside the attack (hours here)
and a better GAN should lower it further.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

log = logging.getLogger("defense_gan_mnist")


def main(argv: list[str] | None = None) -> int:
    from robustbench_gan.attacks import make_attack
    from robustbench_gan.data import load_dataset
    from robustbench_gan.defenses import DefenseGanProjection, FitContext, make_defense
    from robustbench_gan.zoo import build_model
    from robustbench_gan.purified import PurifiedClassifier, gradient_view
    from robustbench_gan.classifier_training import TrainConfig
    from robustbench_gan.core.weight_cache import WeightCache

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/mnist-t10k", help="folder with the MNIST IDX files")
    ap.add_argument("--n", type=int, default=100, help="test images attacked")
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=200, help="projection steps L deciding accuracy (paper: 200)")
    ap.add_argument("--restarts", type=int, default=10, help="projection restarts R deciding accuracy (paper: 10)")
    ap.add_argument("--attack-steps", type=int, default=100, help="projection steps inside the attacks")
    ap.add_argument("--attack-restarts", type=int, default=1, help="projection restarts inside the attacks")
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--latent-steps", type=int, default=100)
    ap.add_argument("--latent-penalty", type=float, default=1.0)
    ap.add_argument("--gan-epochs", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=5, help="classifier epochs")
    ap.add_argument("--early-stop", action="store_true", help="PGD keeps each sample's first success (as in suites)")
    ap.add_argument("--attacks", nargs="+", default=["pgd", "pgd-bpda", "pgd-unroll", "latent"])
    ap.add_argument("--cache", default="/tmp/defense_gan_mnist_cache", help="weight cache (GAN and classifier)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    data = load_dataset("idx", images=str(Path(args.root) / "t10k-images-idx3-ubyte.gz"),
                        labels=str(Path(args.root) / "t10k-labels-idx1-ubyte.gz"), train_size=8000,
                        test_size=2000, seed=args.seed)
    x, y = data.x_test[: args.n], data.y_test[: args.n]
    defense = make_defense("defense-gan", steps=args.steps, restarts=args.restarts, gan_epochs=args.gan_epochs)
    context = FitContext(WeightCache(args.cache))
    t0 = time.perf_counter()
    clf = defense.fit(lambda: build_model("cnn", data.spec), data, train=TrainConfig(epochs=args.epochs),
                      seed=args.seed, device="cpu", progress=False, context=context)
    log.info("fit (GAN %s, classifier): %.1f s", "cached" if not context.built else "trained",
             time.perf_counter() - t0)
    assert isinstance(clf, PurifiedClassifier) and isinstance(clf.purifier, DefenseGanProjection)
    p = clf.purifier
    cheap = PurifiedClassifier(clf.inner, DefenseGanProjection(
        p.generator, steps=args.attack_steps, restarts=args.attack_restarts, lr=p.lr, unroll_steps=p.unroll_steps,
        seed=p.seed)).eval()

    t0 = time.perf_counter()
    with torch.no_grad():
        clean_pred = clf(x).argmax(1)
        undefended = float((clf.inner(x).argmax(1) == y).float().mean())
    clean_seconds = time.perf_counter() - t0
    clean = float((clean_pred == y).float().mean())
    with torch.no_grad():
        cheap_clean = float((cheap(x).argmax(1) == y).float().mean())
    common = {"n": args.n, "eps": args.eps, "L": args.steps, "R": args.restarts, "attack_L": args.attack_steps,
              "attack_R": args.attack_restarts, "clean_accuracy": clean,
              "clean_accuracy_attack_projection": cheap_clean, "undefended_clean_accuracy": undefended}
    print(json.dumps({"attack": "clean", **common, "seconds": round(clean_seconds, 1)}), flush=True)
    attacks = {
        "pgd": make_attack("pgd", steps=args.pgd_steps),
        "pgd-bpda": make_attack("pgd", steps=args.pgd_steps, adaptive="bpda"),
        "pgd-unroll": make_attack("pgd", steps=args.pgd_steps, adaptive="unroll"),
        "latent": make_attack("latent", steps=args.latent_steps, penalty=args.latent_penalty),
    }
    for name in args.attacks:
        attack = attacks[name]
        goal = attack.make_goal(clf, x, y)
        t0 = time.perf_counter()
        view = gradient_view(cheap, attack.adaptive)
        # PGD's last iterate, without stopping a sample at its first success: a success under the attack's cheaper
        # projection need not survive the deciding one (with early stopping, BPDA PGD left 78% here, not 58%)
        many = attack.perturb_many if name == "latent" or args.early_stop else attack.transfer_many
        (xa,) = many(view, x, goal, [args.eps])
        attack_seconds = time.perf_counter() - t0
        with torch.no_grad():
            pred = clf(xa).argmax(1)
        robust = float(((pred == y) & (clean_pred == y)).float().mean())
        linf = float((xa - x).flatten(1).abs().amax(1).max())
        l2_per_pixel = float(((xa - x) ** 2).flatten(1).mean(1).mean())
        print(json.dumps({"attack": name, **common, "robust_accuracy": robust,
                          "attack_seconds": round(attack_seconds, 1), "max_linf": round(linf, 4), "mean_squared_distortion": round(l2_per_pixel, 5)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
