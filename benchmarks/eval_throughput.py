"""Robust-accuracy evaluation throughput: our PGD-k and APGD-k vs torchattacks' PGD and APGD, vs the bare loop and
vs the active-set limit, on one trained model in one process.

- bare: k x (forward, input-gradient backward, signed step, projection) on every image, nothing else (no random
  start, no success bookkeeping): what any PGD-k must at least pay when no sample falls;
- active-set limit: the bare cost of only the passes each sample needed before it fell, counted in our own PGD
  run (rows through the model, measured with a forward hook), i.e. bare x rows / (k x n);
- ours: ``make_attack("pgd", steps=k)`` (uniform random start, step 2.5 eps / k, Madry et al. 2017) and
  ``make_attack("apgd", steps=k)``, called as the suite's cells call them (batches of ``--batch``);
- torchattacks: ``PGD(eps, alpha=2.5 eps / k, steps=k, random_start=True)`` and ``APGD(eps, steps=k)``, same
  batches.

The model (``--model cnn``) is a CNN trained for ``--epochs`` on 8,000 images of the MNIST test split (the other
2,000 are held out; ``--n`` of them are evaluated). ``--model resnet18`` trains a ResNet-18 (CIFAR stem) on
synthetic 3x32x32 images (a template per class plus noise: no download), for GPU throughput at CIFAR scale.
Prints, per eps, each method's median time over ``--repeats`` runs, images/s and robust accuracy, and the ratios
the fast-evaluation issue asks about. torchattacks is skipped when it is not installed.

Usage: python benchmarks/eval_throughput.py --data-root ../shared/data/mnist-t10k [--n 1000] [--threads 2]
       [--eps 0.05 0.1 0.2 0.3] [--steps 10] [--batch 256|auto] [--repeats 3] [--device cpu] [--compile]
       python benchmarks/eval_throughput.py --model resnet18 --device cuda --batch 512 --n 4096 --eps 0.031373
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch

from robustbench_gan.attacks import make_attack
from robustbench_gan.attacks.base import Goal
from robustbench_gan.classifier import Classifier
from robustbench_gan.core.device import tune_for_device
from robustbench_gan.data import Data, DataSpec, load_dataset
from robustbench_gan.zoo import build_model
from robustbench_gan.run.tuning import batch_size_for, compiled
from robustbench_gan.throughput import bare_pgd_loop
from robustbench_gan.classifier_training import TrainConfig, seed_everything, train_model


def synthetic32(n_train: int, n_test: int, *, seed: int = 0) -> Data:
    """CIFAR-shaped images: one random 3x32x32 template per class, 0.6 template + 0.4 uniform noise."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(10, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    x = (0.6 * templates[y] + 0.4 * torch.rand(len(y), 3, 32, 32, generator=g)).clamp(0, 1)
    spec = DataSpec("synthetic32", (3, 32, 32), 10)
    return Data(x[:n_train], y[:n_train], x[n_train:], y[n_train:], spec)


def batched(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            batch: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)])


def timed(fn: Callable[[], torch.Tensor], repeats: int, device: str) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", help="folder with t10k-images-idx3-ubyte(.gz) and labels (--model cnn)")
    p.add_argument("--model", choices=["cnn", "resnet18"], default="cnn")
    p.add_argument("--train-n", type=int, default=10_000, help="synthetic training images (--model resnet18)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", default="256", help="a batch size, or 'auto' (the toolkit's: largest that fits on CUDA)")
    p.add_argument("--compile", action="store_true", help="also time our PGD on a torch.compile'd twin")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-torchattacks", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev, k = args.device, args.steps
    if args.model == "cnn":
        if not args.data_root:
            p.error("--model cnn needs --data-root (the MNIST test split)")
        data = load_dataset("mnist", root=args.data_root, train_size=8000, test_size=2000, seed=0)
        what = f"MNIST CNN ({args.epochs} epochs on 8,000 images)"
    else:
        data = synthetic32(args.train_n, max(args.n, 1000))
        what = f"ResNet-18 on synthetic 3x32x32 ({args.epochs} epochs on {args.train_n:,} images)"
    seed_everything(0)
    clf = Classifier(build_model(args.model, data.spec), num_classes=10).to(dev)
    t0 = time.perf_counter()
    train_model(clf, data.x_train, data.y_train, config=TrainConfig(epochs=args.epochs), seed=0, progress=False)
    print(f"trained in {time.perf_counter() - t0:.1f} s", flush=True)
    clf = tune_for_device(clf, dev).eval()  # as suites run it: channels_last for conv nets on CUDA
    for param in clf.parameters():
        param.requires_grad_(False)
    x, y = data.x_test[:args.n].to(dev), data.y_test[:args.n].to(dev)
    args.batch = batch_size_for(clf, x, None if args.batch == "auto" else int(args.batch))
    with torch.inference_mode():
        clean = float((clf(x).argmax(1) == y).float().mean())
    print(f"{what}, {len(x)} held-out images, clean accuracy {clean:.1%}; "
          f"{args.threads} thread(s), device {dev}, PGD/APGD with {k} steps, batch {args.batch}")
    ta = None
    if not args.no_torchattacks:
        try:
            import torchattacks as ta
        except ImportError:
            print("torchattacks is not installed: its rows are skipped")
    rows: list[dict[str, Any]] = []
    for eps in args.eps:
        methods: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
            "bare": lambda a, b: bare_pgd_loop(clf, a, b, eps=eps, steps=k),
            "ours PGD": lambda a, b: make_attack("pgd", steps=k)(clf, a, Goal(b), eps=eps),
            "ours APGD": lambda a, b: make_attack("apgd", steps=k)(clf, a, Goal(b), eps=eps),
        }
        if ta is not None:
            methods["torchattacks PGD"] = lambda a, b: ta.PGD(clf, eps=eps, alpha=2.5 * eps / k, steps=k,
                                                              random_start=True)(a, b)
            methods["torchattacks APGD"] = lambda a, b: ta.APGD(clf, eps=eps, steps=k, seed=0)(a, b)
        if args.compile:
            twin = compiled(clf)
            methods["ours PGD compiled"] = lambda a, b: make_attack("pgd", steps=k)(twin, a, Goal(b), eps=eps)
        rows_seen: list[int] = []
        hook = clf.model.register_forward_hook(lambda m, inp, out: rows_seen.append(len(inp[0])))
        try:  # our PGD once with the hook: the rows its passes carried (fooled samples leave the batch)
            batched(methods["ours PGD"], x, y, args.batch)
        finally:
            hook.remove()
        result: dict[str, tuple[float, float]] = {}
        for name in methods:  # interleaved repeats would mix caches; each method runs its repeats back to back
            seconds, adv = timed(lambda: batched(methods[name], x, y, args.batch), args.repeats, dev)
            with torch.inference_mode():
                robust = float((clf(adv).argmax(1) == y).float().mean())
            result[name] = (seconds, robust)
        limit = result["bare"][0] * sum(rows_seen) / (k * len(x))
        for name, (seconds, robust) in result.items():
            rows.append({"eps": eps, "method": name, "seconds": seconds, "images_per_s": len(x) / seconds,
                         "robust": robust})
        rows.append({"eps": eps, "method": "active-set limit", "seconds": limit, "images_per_s": len(x) / limit,
                     "robust": float("nan")})
        ours = result["ours PGD"]
        line = (f"eps {eps:g}: ours PGD-{k} {ours[0]:.2f} s ({ours[1]:.1%}) = {ours[0] / result['bare'][0]:.2f}x bare, "
                f"{ours[0] / limit:.2f}x the active-set limit ({sum(rows_seen) / (k * len(x)):.0%} of the bare rows)")
        if ta is not None:
            theirs = result["torchattacks PGD"]
            apgd, their_apgd = result["ours APGD"], result["torchattacks APGD"]
            line += (f"; torchattacks PGD-{k} {theirs[0]:.2f} s ({theirs[1]:.1%}): theirs / ours = "
                     f"{theirs[0] / ours[0]:.2f}x in time; APGD ours {apgd[0]:.2f} s ({apgd[1]:.1%}) vs theirs "
                     f"{their_apgd[0]:.2f} s ({their_apgd[1]:.1%})")
        print(line, flush=True)
    print()
    print(f"{'eps':>5} {'method':18} {'seconds':>8} {'images/s':>9} {'robust':>7}")
    for r in rows:
        robust = "" if r["robust"] != r["robust"] else f"{r['robust']:.1%}"
        print(f"{r['eps']:5g} {r['method']:18} {r['seconds']:8.2f} {r['images_per_s']:9.0f} {robust:>7}")


if __name__ == "__main__":
    main()
