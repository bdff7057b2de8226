"""MagNet (Meng & Chen 2017) under naive and adaptive white-box PGD, on the MNIST test split or on digits.

MNIST: the 10,000 official test images split with a seed into 8,000 for training (the autoencoder trains on 70% of
them, the detector's threshold keeps fpr 1% on the other 30%; the inner CNN, 8 epochs, on all 8,000) and 2,000 for
evaluation, of which ``--n`` are attacked. For each model (MagNet with reformer and detector, the reformer alone,
the detector alone) and each adaptive mode it offers (``none``: naive PGD through the differentiable
autoencoder; ``bpda``; ``detector-aware``: the detector as a loss term, success only under the threshold), one
JSON line per eps with clean accuracy, the rejected fractions of clean and adversarial inputs, robust accuracy,
the attack's success rate (not rejected and misclassified, of the correctly classified samples) and wall time.

Measured (seed 0, one thread of a busy 2-core machine; robust accuracy / attack success rate / adversarial inputs
rejected), MNIST, 500 images, PGD-40 at eps 0.3, threshold rejecting 0.6% of the 2,000 clean test images:
  magnet    naive 98.2% / 0% / 100%, bpda 98.2% / 0% / 100%, detector-aware 54.6% / 44.4% / 27.8%
            (random_start=false: 51.6% / 47.5%; and --steps 100: 52.0% / 47.1%; --steps 100 alone: 55.4% / 43.6%)
            --set loss='"margin"': detector-aware 13.0% / 86.8% / 6.6% (with --steps 100 and no random start:
            17.2% / 82.5% / 8.6%)
  reformer  naive 0.0% / 100%, bpda 0.0% / 100%
  detector  naive 98.2% / 0% / 100%, bpda the same, detector-aware 11.4% / 88.4% / 5.8% (margin: 0.0% / 100% / 0%)
  fit 554 s (autoencoder + CNN) then 290 s per further CNN; attacks 14-39 s (naive, bpda), 74-88 s (detector-aware)
Digits (449 images, PGD-40): see the README's MagNet table.

Usage (from the repository root):
  python benchmarks/magnet_mnist.py --root ../shared/data/mnist-t10k --threads 1
  python benchmarks/magnet_mnist.py --data digits --eps 0.2 0.3 --n 449 --threads 1
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    import torch

    from robustbench_gan.attacks import make_attack
from robustbench_gan.evaluation import evaluate_attack
    from robustbench_gan.data import load_dataset
    from robustbench_gan.defenses import FitContext, make_defense
    from robustbench_gan.zoo import build_model
    from robustbench_gan.purified import detections
    from robustbench_gan.classifier_training import TrainConfig
    from robustbench_gan.core.weight_cache import WeightCache

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("mnist", "digits"), default="mnist")
    ap.add_argument("--root", default="../shared/data/mnist-t10k", help="folder with the MNIST IDX files")
    ap.add_argument("--eps", type=float, nargs="+", default=[0.3])
    ap.add_argument("--n", type=int, default=500, help="evaluated test images")
    ap.add_argument("--steps", type=int, default=40, help="PGD steps (step size 2.5 eps / steps)")
    ap.add_argument("--epochs", type=int, default=None, help="classifier epochs (default: 8 MNIST, 10 digits)")
    ap.add_argument("--models", nargs="+", default=["magnet", "reformer", "detector"])
    ap.add_argument("--adaptive", nargs="+", default=None, help="modes to run (default: all the model offers)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a PGD parameter (JSON value), e.g. random_start=false or loss=\"margin\"")
    ap.add_argument("--cache", default=None, help="folder for the trained autoencoder and classifiers")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.data == "mnist":
        data = load_dataset("mnist", root=args.root, train_size=8000, test_size=2000, seed=args.seed)
    else:
        data = load_dataset("digits", seed=args.seed)
    epochs = args.epochs or (8 if args.data == "mnist" else 10)
    variants = {"magnet": {}, "reformer": {"detector": False}, "detector": {"reformer": False}}
    cache = WeightCache(args.cache)
    context = FitContext(weights=cache)  # one autoencoder for the three variants (and across runs with --cache)
    pgd = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    x, y = data.x_test[: args.n], data.y_test[: args.n]
    for name in args.models:
        defense = make_defense("magnet", name=name, **variants[name])
        make = lambda: build_model("cnn", data.spec)  # noqa: E731
        key = f"magnet-bench-{name}-{data.fingerprint()}-{epochs}-{args.seed}"
        t0 = time.perf_counter()
        clf = defense.classifier(make, data, seed=args.seed)
        if not cache.load(key, clf):
            clf = defense.fit(make, data, train=TrainConfig(epochs=epochs), seed=args.seed, device="cpu",
                              progress=False, context=context)
            cache.save(key, clf, {"benchmark": "magnet_mnist"})
        clf.eval()
        defense.threshold = float(clf.purifier.threshold) if defense.detector else None
        fit_seconds = time.perf_counter() - t0
        rejected = detections(clf, data.x_test)
        if rejected is not None:  # the false-positive rate on every held-out test image, not only the attacked
            print(json.dumps({"data": args.data, "model": name, "test_images": len(rejected),
                              "detected_clean_all": round(float(rejected.float().mean()), 4),
                              "target_fpr": defense.fpr, "threshold": defense.threshold}), flush=True)
        for adaptive in args.adaptive or ("none", "bpda", *clf.purifier.views):
            if adaptive not in ("none", "bpda", *clf.purifier.views):
                continue
            attack = make_attack("pgd", **{"steps": args.steps, **pgd, "adaptive": adaptive})
            t0 = time.perf_counter()
            outcomes = evaluate_attack(clf, x, y, attack, args.eps, seed=args.seed, progress=False)
            seconds = time.perf_counter() - t0
            for o in outcomes:
                m = o.metrics
                print(json.dumps({
                    "data": args.data, "model": name, "adaptive": adaptive, "eps": o.eps, "n": m["n"],
                    "steps": attack.steps, "pgd": pgd, "clean_accuracy": round(m["clean_accuracy"], 4),
                    "detected_clean": round(m.get("detected_clean", float("nan")), 4),
                    "detected": round(m.get("detected", float("nan")), 4),
                    "robust_accuracy": round(m["robust_accuracy"], 4),
                    "attack_success_rate": round(m["attack_success_rate"], 4),
                    "threshold": defense.threshold, "fit_seconds": round(fit_seconds, 1),
                    "attack_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
                }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
