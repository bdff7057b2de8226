"""AutoAttack (standard, Linf): ours vs torchattacks' on the same model and data, in one process.

The model is issue 13's yardstick: a 64-96-64-10 MLP trained on scikit-learn's digits (8x8), 300 test images.
Prints, per eps, robust accuracy and wall time of both, and where our time goes per component (the robust
accuracy after each component, its queries and seconds).

Usage: python benchmarks/autoattack_speed.py [--eps 0.05 0.1] [--n 300] [--threads 2] [--steps 100]
       [--no-torchattacks]

torchattacks' AutoAttack runs its APGD, APGD-T and FAB with their default 10 steps (the paper's budget is 100);
``--steps 10`` runs ours at that budget too (Square keeps 5,000 queries in both).
"""
from __future__ import annotations

import argparse
import time

import torch

from robustbench_gan.attacks import AutoAttack
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.classifier import Classifier
from robustbench_gan.data import load_dataset
from robustbench_gan.zoo import build_model
from robustbench_gan.classifier_training import TrainConfig, seed_everything, train_model


def timed_components(attack) -> dict[str, float]:
    """Wrap each component of torchattacks' MultiAttack so its seconds are summed per class name."""
    seconds: dict[str, float] = {}
    for atk in attack._autoattack.attacks:
        def forward(*args, _atk=atk, _orig=atk.forward):
            t0 = time.perf_counter()
            try:
                return _orig(*args)
            finally:
                key = type(_atk).__name__
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0
        atk.forward = forward
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1])
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=100, help="APGD, APGD-T and FAB-T steps of ours (paper: 100)")
    p.add_argument("--no-torchattacks", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("digits", seed=0)
    seed_everything(0)
    clf = Classifier(build_model("mlp", data.spec, hidden=(96, 64)), num_classes=10)
    train_model(clf, data.x_train, data.y_train, config=TrainConfig(epochs=30), seed=0, progress=False)
    clf.eval()
    x, y = data.x_test[: args.n], data.y_test[: args.n]
    clean = float((clf.predict(x).argmax(1) == y).float().mean())
    print(f"MLP 64-96-64-10 on digits, {len(x)} test images, clean accuracy {clean:.1%}, {args.threads} thread(s)")
    rows = []
    for eps in args.eps:
        ours = AutoAttack(version="standard", steps=args.steps)
        t0 = time.perf_counter()
        (outcome,) = evaluate_attack(clf, x, y, ours, [eps], progress=False)
        t_ours = time.perf_counter() - t0
        acc_ours = outcome.metrics["robust_accuracy"]
        print(f"\neps {eps:g}: ours ({args.steps} steps) {acc_ours:.1%} in {t_ours:.1f} s")
        for label, o in [(c.label, c.outcome) for c in outcome.components]:
            m = o.metrics
            print(f"  {label:8s} robust after: {m['robust_accuracy']:.1%}  queries {m['queries']:>9,}  "
                  f"{m['seconds']:7.1f} s")
        row = {"eps": eps, "ours_acc": acc_ours, "ours_s": t_ours}
        if not args.no_torchattacks:
            import torchattacks

            theirs = torchattacks.AutoAttack(clf, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
            per = timed_components(theirs)
            t0 = time.perf_counter()
            adv = theirs(x, y)
            t_theirs = time.perf_counter() - t0
            acc_theirs = float((clf.predict(adv).argmax(1) == y).float().mean())
            print(f"eps {eps:g}: torchattacks (10 steps) {acc_theirs:.1%} in {t_theirs:.1f} s ("
                  + ", ".join(f"{k} {v:.1f} s" for k, v in per.items()) + ")")
            row.update(theirs_acc=acc_theirs, theirs_s=t_theirs, speedup=t_theirs / t_ours)
        rows.append(row)
    print("\n  eps   ours acc   ours s   torchattacks acc   torchattacks s   speed-up")
    for r in rows:
        tail = (f"   {r['theirs_acc']:>16.1%}   {r['theirs_s']:>14.1f}   {r['speedup']:>7.1f}x"
                if "theirs_s" in r else "")
        print(f"  {r['eps']:<5g} {r['ours_acc']:>8.1%}   {r['ours_s']:>6.1f}{tail}")


if __name__ == "__main__":
    main()
