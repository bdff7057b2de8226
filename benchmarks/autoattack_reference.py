"""AutoAttack (standard, Linf): ours vs the reference implementation (fra31/auto-attack) on the same models and
data, in one process, fp32 on the CPU.

The reference is not on PyPI and not a dependency of this project; install it into the same environment with
``pip install git+https://github.com/fra31/auto-attack`` (or ``pip install .`` in a clone checked out at commit
a392200, the version this script was written against). Without it the script says so and exits with code 2.

Models and data (trained here, seed 0, as the tests and the CPU suites train them):

- digits (scikit-learn's 8x8 digits, ``load_dataset("digits")``): the zoo's ``cnn`` trained 10 epochs, and the same
  CNN adversarially trained with PGD (eps 0.2, 5 steps, 8 epochs; tests/conftest.py's ``pgd_trained``); eps 0.1
  and 0.2;
- mnist (the t10k IDX files in ``--mnist DIR``, split 8,000 train / 2,000 test with seed 0, as
  benchmarks/eval_throughput.py loads them): the ``cnn`` trained 8 epochs, and PGD-trained (eps 0.3, 10 steps,
  8 epochs: benchmarks/mnist-defenses-cpu.toml's ``pgd-at``); eps 0.2 and 0.3.

Each cell evaluates ``x_test[:n]``. Ours: ``robustbench_gan.attacks.AutoAttack(version="standard", seed=S)``
through ``evaluate_attack`` (batches of ``--batch``); its outcome's ``components`` give the robust accuracy, forward
rows and seconds after each component. The reference: ``AutoAttack(model, norm="Linf", eps=eps,
version="standard", seed=S, device="cpu")`` and one ``run_standard_evaluation(x, y, bs=--batch)``, unchanged.
Both get the same :class:`~robustbench_gan.classifier.Classifier` (logits in pixel space) in eval mode with its
parameters frozen (ours freezes them itself; the reference's FAB calls ``backward()``, which would otherwise also
compute weight gradients).

How the reference's per-stage numbers are taken. ``run_standard_evaluation`` keeps the per-sample robust flags in
an ``EvaluationState`` and calls ``state.add_run_attack(name)`` right after each attack has run on every batch of
the samples still robust (the flags already updated). The script swaps ``autoattack.autoattack.EvaluationState``
for a subclass whose ``add_run_attack`` records a copy of the flags, the time and the pass counters, then calls the
base method: the evaluation itself runs unchanged, once, with all four attacks, and the numbers are per sample,
not rounded percentages. A stage's seconds run from the first ``perturb`` call of its attack object (``apgd``,
``apgd_targeted``, ``fab``, ``square``, wrapped to note the time) to its ``add_run_attack``: the attack on every
batch plus the reference's confirming forward pass. Its verbose log ("robust accuracy after APGD-CE: ...") is
captured too and checked against the recorded flags; with a reference that has no ``EvaluationState`` the
per-stage accuracy comes from that log alone. (Running ``attacks_to_run`` with growing prefixes would repeat every
earlier stage; re-implementing the loop would no longer measure the reference.) When the reference stops early
(nothing left robust) the later stages are not run: they show the last accuracy and 0 s.

Counts: a forward hook on the bare model counts the rows of every forward pass, and a hook on the logits of each
pass that builds a graph counts the rows of every backward pass through them (both sides, the reference's checks
and clean pass included). "limit" is the time the bare model would take for those passes alone: the seconds per
row of a forward (inference mode) and of a forward plus input-gradient backward, measured on one batch of the
evaluated images (median of 5, after a warm-up), times the counted rows. Before the first cell both
implementations run once untimed on 4 images with a tiny budget, so that first-call costs (imports, kernel
selection) fall outside the timed runs. Rows in the small batches late in a
cascade cost more than rows of a full batch, so the limit is a floor, not a target.

Output: per (data, model, eps) a markdown table (robust accuracy after each stage for both, ours minus the
reference in samples, seconds and forward rows per stage, totals, the limit), then a summary table; ``--json PATH``
writes every number (and the reference's log).

Usage: python benchmarks/autoattack_reference.py [--data digits|mnist|both] [--n 1000] [--threads 2] [--seed 0]
       [--batch 250] [--mnist ../shared/data/mnist-t10k] [--json out.json] [--quick]
``--quick`` is a smoke test: 10 steps for APGD, APGD-T and FAB-T, 500 Square queries (both sides), n 20.
Other budgets: ``--steps`` and ``--queries`` (the paper's 100 and 5,000 are the defaults; only they are
"AutoAttack").
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import statistics
import sys
import time
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robustbench_gan.attacks import AutoAttack
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.classifier import Classifier, frozen
from robustbench_gan.data import Data, load_dataset
from robustbench_gan.zoo import build_model
from robustbench_gan.classifier_training import TrainConfig, seed_everything, train_model

STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")
INSTALL = ("the reference AutoAttack is not installed: pip install git+https://github.com/fra31/auto-attack "
           "(or pip install . in a clone of it at commit a392200)")
DEFAULT_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-t10k"

# data set -> (eps evaluated, natural epochs, PGD-AT eps, PGD-AT steps, PGD-AT epochs)
RECIPES: dict[str, tuple[tuple[float, ...], int, float, int, int]] = {
    "digits": ((0.1, 0.2), 10, 0.2, 5, 8),
    "mnist": ((0.2, 0.3), 8, 0.3, 10, 8),
}


def require_reference() -> Any:
    try:
        import autoattack
    except ImportError:
        print(INSTALL, file=sys.stderr)
        raise SystemExit(2)
    return autoattack


# ---------------------------------------------------------------- models and data


def load(name: str, mnist_dir: Path) -> Data:
    if name == "digits":
        return load_dataset("digits", seed=0)
    return load_dataset("mnist", root=str(mnist_dir), train_size=8000, test_size=2000, seed=0)


def train_models(name: str, data: Data) -> dict[str, Classifier]:
    from robustbench_gan.defenses import make_defense

    _, epochs, at_eps, at_steps, at_epochs = RECIPES[name]
    t0 = time.perf_counter()
    seed_everything(0)
    natural = Classifier(build_model("cnn", data.spec), num_classes=data.spec.num_classes)
    train_model(natural, data.x_train, data.y_train, config=TrainConfig(epochs=epochs), seed=0, progress=False)
    t1 = time.perf_counter()
    defense = make_defense("adversarial-training", method="pgd", eps=at_eps, steps=at_steps)
    robust = defense.fit(lambda: build_model("cnn", data.spec), data, train=TrainConfig(epochs=at_epochs), seed=0,
                         device="cpu", progress=False)
    print(f"{name}: trained the CNN ({epochs} epochs, {t1 - t0:.0f} s) and the PGD-trained CNN (eps {at_eps:g}, "
          f"{at_steps} steps, {at_epochs} epochs, {time.perf_counter() - t1:.0f} s)", file=sys.stderr, flush=True)
    return {"natural CNN": natural.eval(), "PGD-trained CNN": robust.eval()}


# ---------------------------------------------------------------- pass counting and the limit


class PassCounter:
    """Rows of every forward pass of ``model`` and of every backward pass through its outputs."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.forward_rows = 0
        self.backward_rows = 0
        self._handle = model.register_forward_hook(self._forward)

    def _forward(self, module: torch.nn.Module, inputs: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            rows = int(out.shape[0]) if out.ndim else 1
            self.forward_rows += rows
            if out.requires_grad:
                out.register_hook(lambda grad, rows=rows: self._backward(rows))

    def _backward(self, rows: int) -> None:
        self.backward_rows += rows

    def snapshot(self) -> tuple[int, int]:
        return self.forward_rows, self.backward_rows

    def close(self) -> None:
        self._handle.remove()


def seconds_per_row(clf: Classifier, x: torch.Tensor, repeats: int = 5) -> tuple[float, float]:
    """The bare model's seconds per row for a forward pass (inference mode) and for a forward plus an input-gradient
    backward, on the batch ``x``: median of ``repeats`` after a warm-up."""
    model = clf.model

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def forward_backward() -> None:
        xg = x.detach().clone().requires_grad_(True)
        torch.autograd.grad(model(xg).sum(), xg)

    out = []
    with frozen(clf):
        for fn in (forward, forward_backward):
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out.append(statistics.median(times) / len(x))
    return out[0], out[1]


def limit_seconds(forward_rows: int, backward_rows: int, per_row: tuple[float, float]) -> float:
    backward_rows = min(backward_rows, forward_rows)
    return (forward_rows - backward_rows) * per_row[0] + backward_rows * per_row[1]


# ---------------------------------------------------------------- the two runs


@dataclass
class Run:
    """One implementation on one cell: robust count after each stage, per-stage seconds and forward rows, totals."""

    robust_after: list[int]
    stage_seconds: list[float]
    stage_forward_rows: list[int]
    seconds: float
    forward_rows: int
    backward_rows: int
    standing: torch.Tensor | None  # per sample, robust at the end (None: not known)
    clean_correct: int
    extra: dict[str, Any] = field(default_factory=dict)


def run_ours(clf: Classifier, x: torch.Tensor, y: torch.Tensor, eps: float, *, seed: int, batch: int, steps: int,
             queries: int) -> Run:
    attack = AutoAttack(version="standard", steps=steps, queries=queries, seed=seed)
    counter = PassCounter(clf.model)
    try:
        t0 = time.perf_counter()
        (outcome,) = evaluate_attack(clf, x, y, attack, [eps], batch_size=batch, seed=seed, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        counter.close()
    n = len(x)
    stages = [(c.label, c.outcome.metrics) for c in outcome.components]
    assert [label for label, _ in stages] == list(STAGES), stages
    clean = outcome.clean_pred == y.cpu()
    standing = clean & (outcome.adv_pred == y.cpu())
    return Run(robust_after=[round(m["robust_accuracy"] * n) for _, m in stages],
               stage_seconds=[float(m["seconds"]) for _, m in stages],
               stage_forward_rows=[int(m["queries"]) for _, m in stages],
               seconds=seconds, forward_rows=counter.forward_rows, backward_rows=counter.backward_rows,
               standing=standing, clean_correct=int(clean.sum()))


LOG_STAGE = re.compile(r"robust accuracy after ([A-Z-]+): ([0-9.]+)% \(total time ([0-9.]+) s\)")


def run_reference(autoattack: Any, clf: Classifier, x: torch.Tensor, y: torch.Tensor, eps: float, *, seed: int,
                  batch: int, steps: int, queries: int) -> Run:
    import autoattack.autoattack as aa_module

    n = len(x)
    records: list[dict[str, Any]] = []  # one per add_run_attack
    states: list[Any] = []
    started: dict[str, float | int] = {}
    counter = PassCounter(clf.model)
    base = getattr(aa_module, "EvaluationState", None)

    def mark_start() -> None:
        if not started:
            started.update(t=time.perf_counter(), fwd=clf.queries)

    recording = None
    if base is not None:
        class Recording(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                states.append(self)

            def add_run_attack(self, attack: str) -> None:
                records.append({"attack": attack, "flags": self.robust_flags.detach().clone().cpu(),
                                "t": time.perf_counter(), "t0": started.get("t", time.perf_counter()),
                                "fwd": clf.queries - int(started.get("fwd", clf.queries))})
                started.clear()
                super().add_run_attack(attack)

        recording = Recording
    log = io.StringIO()
    with frozen(clf), contextlib.redirect_stdout(log):
        adversary = autoattack.AutoAttack(clf, norm="Linf", eps=eps, version="standard", seed=seed, device="cpu")
        set_reference_budget(adversary, steps, queries)
        for obj in (adversary.apgd, adversary.apgd_targeted, adversary.fab, adversary.square):
            original = obj.perturb

            def perturb(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                mark_start()
                return _original(*args, **kwargs)

            obj.perturb = perturb
        if recording is not None:
            aa_module.EvaluationState = recording
        try:
            t0 = time.perf_counter()
            adversary.run_standard_evaluation(x, y, bs=batch)
            seconds = time.perf_counter() - t0
        finally:
            if recording is not None:
                aa_module.EvaluationState = base
            counter.close()
    text = log.getvalue()
    for line in text.splitlines():
        if line.startswith("Warning"):
            print(f"reference: {line}", file=sys.stderr)
    logged = {m.group(1).lower(): float(m.group(2)) for m in LOG_STAGE.finditer(text)}
    with torch.inference_mode():
        clean = (clf.predict(x).argmax(1) == y).cpu()
    robust_after, stage_seconds, stage_rows = [], [], []
    if records:
        by_name = {r["attack"]: r for r in records}
        last = int(clean.sum())
        for stage in STAGES:
            r = by_name.get(stage)
            if r is not None:
                last = int(r["flags"].sum())
                if stage in logged and abs(logged[stage] - 100 * last / n) > 0.006:
                    raise RuntimeError(f"reference log says {logged[stage]}% after {stage}, flags {last}/{n}")
            robust_after.append(last)
            stage_seconds.append(r["t"] - r["t0"] if r else 0.0)
            stage_rows.append(r["fwd"] if r else 0)
        standing = (states[-1].robust_flags if states else records[-1]["flags"]).detach().cpu().clone()
    else:  # a reference without EvaluationState: per-stage accuracy from its log (2 decimals of a percent)
        last = int(clean.sum())
        for stage in STAGES:
            if stage in logged:
                last = round(logged[stage] * n / 100)
            robust_after.append(last)
        stage_seconds = [math.nan] * len(STAGES)
        stage_rows = [0] * len(STAGES)
        standing = None
    return Run(robust_after=robust_after, stage_seconds=stage_seconds, stage_forward_rows=stage_rows,
               seconds=seconds, forward_rows=counter.forward_rows, backward_rows=counter.backward_rows,
               standing=None if standing is None else standing.bool(), clean_correct=int(clean.sum()),
               extra={"log": text})


def set_reference_budget(adversary: Any, steps: int, queries: int) -> None:
    """The reference's budget set after its constructor (which builds every attack with 100 iterations and
    ``set_version`` with 5,000 Square queries): APGD's checkpoint schedule is derived in its constructor, so it is
    derived again here with the reference's own formulas."""
    if steps != 100:
        for apgd in (adversary.apgd, adversary.apgd_targeted):
            apgd.n_iter = apgd.n_iter_orig = steps
            apgd.n_iter_2 = max(int(0.22 * steps), 1)
            apgd.n_iter_min = max(int(0.06 * steps), 1)
            apgd.size_decr = max(int(0.03 * steps), 1)
        adversary.fab.n_iter = steps
    adversary.square.n_queries = queries


# ---------------------------------------------------------------- tables


def pct(count: int, n: int) -> str:
    return f"{100 * count / n:.1f}%"


def cell_table(cell: dict[str, Any], ours: Run, ref: Run) -> str:
    n = cell["n"]
    title = f"{cell['data']} · {cell['model']} · eps {cell['eps']:g}"
    lines = [f"### {title} (n = {n}, clean {pct(ours.clean_correct, n)})",
             "",
             "| stage | ours robust | reference robust | ours − ref (samples) | ours s | reference s | ours fwd rows "
             "| reference fwd rows |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| clean | {pct(ours.clean_correct, n)} | {pct(ref.clean_correct, n)} | "
             f"{ours.clean_correct - ref.clean_correct:+d} | | | | |"]
    for k, stage in enumerate(STAGES):
        a, b = ours.robust_after[k], ref.robust_after[k]
        lines.append(f"| {stage} | {pct(a, n)} | {pct(b, n)} | {a - b:+d} | {ours.stage_seconds[k]:.2f} | "
                     f"{ref.stage_seconds[k]:.2f} | {ours.stage_forward_rows[k]:,} | {ref.stage_forward_rows[k]:,} |")
    a, b = ours.robust_after[-1], ref.robust_after[-1]
    lines.append(f"| **total** | **{pct(a, n)}** | **{pct(b, n)}** | **{a - b:+d}** | **{ours.seconds:.2f}** | "
                 f"**{ref.seconds:.2f}** | {ours.forward_rows:,} fwd, {ours.backward_rows:,} bwd | "
                 f"{ref.forward_rows:,} fwd, {ref.backward_rows:,} bwd |")
    lines.append(f"| limit (bare model, those passes) | | | | {cell['ours_limit_s']:.2f} | "
                 f"{cell['reference_limit_s']:.2f} | | |")
    only_ours, only_ref = discordant(ours, ref)
    if only_ours is not None:
        lines.append("")
        lines.append(f"Per sample: {only_ours} stood only against ours, {only_ref} only against the reference.")
    return "\n".join(lines)


def discordant(ours: Run, ref: Run) -> tuple[int | None, int | None]:
    """Samples still standing only against ours, and only against the reference (None where a mask is unknown)."""
    if ours.standing is None or ref.standing is None:
        return None, None
    return int((ours.standing & ~ref.standing).sum()), int((~ours.standing & ref.standing).sum())


def summary_table(cells: list[dict[str, Any]]) -> str:
    lines = ["| data | model | eps | n | ours robust | reference robust | ours − ref | ours s | reference s "
             "| ref / ours | ours limit s | ours / limit |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cells:
        n = c["n"]
        o, r = c["ours"], c["reference"]
        a, b = o["robust_after"][STAGES[-1]], r["robust_after"][STAGES[-1]]
        lines.append(f"| {c['data']} | {c['model']} | {c['eps']:g} | {n} | {pct(a, n)} | {pct(b, n)} | {a - b:+d} | "
                     f"{o['seconds']:.2f} | {r['seconds']:.2f} | {r['seconds'] / o['seconds']:.2f}x | "
                     f"{c['ours_limit_s']:.2f} | {o['seconds'] / max(c['ours_limit_s'], 1e-9):.1f}x |")
    return "\n".join(lines)


def as_json(run: Run) -> dict[str, Any]:
    return {"robust_after": dict(zip(STAGES, run.robust_after)), "stage_seconds": dict(zip(STAGES, run.stage_seconds)),
            "stage_forward_rows": dict(zip(STAGES, run.stage_forward_rows)), "seconds": run.seconds,
            "forward_rows": run.forward_rows, "backward_rows": run.backward_rows, "clean_correct": run.clean_correct,
            **run.extra}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["digits", "mnist", "both"], default="both")
    p.add_argument("--n", type=int, default=None, help="evaluated samples, x_test[:n] (default 1000; --quick: 20)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0, help="the seed of both AutoAttacks")
    p.add_argument("--batch", type=int, default=250, help="batch size of both (the reference's bs)")
    p.add_argument("--steps", type=int, default=None, help="APGD, APGD-T and FAB-T iterations (100; --quick: 10)")
    p.add_argument("--queries", type=int, default=None, help="Square queries (5000; --quick: 500)")
    p.add_argument("--mnist", type=Path, default=DEFAULT_MNIST,
                   help="folder with t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)")
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    p.add_argument("--quick", action="store_true", help="smoke test: 10 steps, 500 Square queries, n 20")
    args = p.parse_args(argv)
    autoattack = require_reference()
    n = args.n if args.n is not None else (20 if args.quick else 1000)
    steps = args.steps if args.steps is not None else (10 if args.quick else 100)
    queries = args.queries if args.queries is not None else (500 if args.quick else 5000)
    names = ["digits", "mnist"] if args.data == "both" else [args.data]
    if "mnist" in names and not args.mnist.is_dir():
        p.error(f"--mnist {args.mnist}: no such folder (it holds the MNIST t10k IDX files)")
    torch.set_num_threads(args.threads)
    print(f"AutoAttack standard, Linf, fp32 on the CPU, {args.threads} thread(s), seed {args.seed}, "
          f"batch {args.batch}, {steps} steps, {queries} Square queries; torch {torch.__version__}; reference from "
          f"{Path(autoattack.__file__).parent}\n", flush=True)
    cells: list[dict[str, Any]] = []
    warm = False
    for name in names:
        data = load(name, args.mnist)
        models = train_models(name, data)
        x, y = data.x_test[:n], data.y_test[:n]
        for model_name, clf in models.items():
            if not warm:  # first calls (imports, kernel selection) outside the timed runs and the limit's
                for run in (run_ours, partial(run_reference, autoattack)):  # measurement: both, tiny budget
                    run(clf, x[:4], y[:4], RECIPES[name][0][0], seed=args.seed, batch=args.batch, steps=2, queries=20)
                warm = True
            per_row = seconds_per_row(clf, x[:args.batch])
            for eps in RECIPES[name][0]:
                ours = run_ours(clf, x, y, eps, seed=args.seed, batch=args.batch, steps=steps, queries=queries)
                ref = run_reference(autoattack, clf, x, y, eps, seed=args.seed, batch=args.batch, steps=steps,
                                    queries=queries)
                cell = {"data": name, "model": model_name, "eps": eps, "n": len(x),
                        "seconds_per_row": {"forward": per_row[0], "forward_backward": per_row[1]},
                        "ours_limit_s": limit_seconds(ours.forward_rows, ours.backward_rows, per_row),
                        "reference_limit_s": limit_seconds(ref.forward_rows, ref.backward_rows, per_row)}
                print(cell_table(cell, ours, ref) + "\n", flush=True)
                only_ours, only_ref = discordant(ours, ref)
                cell.update(ours=as_json(ours), reference=as_json(ref), only_ours_standing=only_ours,
                            only_reference_standing=only_ref)
                cells.append(cell)
    print("### Summary\n")
    print(summary_table(cells))
    if args.json:
        settings = {"threads": args.threads, "seed": args.seed, "batch": args.batch, "steps": steps,
                    "queries": queries, "n": n, "torch": torch.__version__,
                    "standard_budget": (steps, queries) == (100, 5000)}
        args.json.write_text(json.dumps({"settings": settings, "cells": cells}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
