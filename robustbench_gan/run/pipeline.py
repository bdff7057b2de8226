"""One run, suites and ``benchmark()`` alike: plan -> classifiers -> cells (cached, through an executor) ->
records -> Results."""
from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from ..checks import warn_flags
from ..classifier import Classifier
from ..core.progress import interactive
from ..core.device import cudnn_autotune, numerics, numerics_fingerprint, resolve_device, torch_threads
from ..errors import ConfigError
from ..data import DATASETS, Data, load_dataset, subset_index
from ..defenses import DEFENSES
from ..results import Results, new_manifest
from ..suite import SuiteConfig, load_suite, validate_suite
from .cache import CellCache, cell_key
from .cells import EvalData
from .classifier_store import REFERENCE, ClassifierStore, classifier_key
from .executors import LocalExecutor, make_executor
from .cells import cell_shards
from .jobs import AttackNeeds, CellJob, MergeJob, OfCell, ShardJob
from .plan import (NO_DEFENSE, Cell, ClassifierId, Executor, JobGraph, Pair, classifier_pairs, plan_cells,
                   shard_bounds, source_name)
from .records import CellOutput, aggregate

log = logging.getLogger(__name__)


def load_suite_data(suite: SuiteConfig) -> Data:
    """Load the suite's data set; its split seed defaults to the suite seed. ``mean``/``std`` in ``[data]`` set
    the normalization every classifier of the suite applies (unless the loader takes them itself)."""
    loader = DATASETS.get(suite.data["dataset"])
    accepted = inspect.signature(loader).parameters
    opts = {k: v for k, v in suite.data.items() if k != "dataset" and (k in accepted or k not in ("mean", "std"))}
    if "seed" in accepted:
        opts.setdefault("seed", suite.seed)
    data = load_dataset(suite.data["dataset"], **opts)
    if "mean" in suite.data and "mean" not in accepted:
        data.spec = replace(data.spec, mean=tuple(suite.data["mean"]), std=tuple(suite.data["std"]))
        data._fingerprint = None
    return data


def _plan_order(suite: SuiteConfig, cells: list[Cell]) -> Any:
    """Sort key of records and sample blocks: white-box rows in cell order, then transfer rows by source, target
    classifier and attack (the order of the suite file)."""
    targets = {(m.name, d.name): i for i, (m, d) in enumerate(classifier_pairs(suite))}
    attacks = {a.name: i for i, a in enumerate(suite.attacks)}
    sources: dict[str, int] = {}
    for c in cells:
        if c.source is not None:
            sources.setdefault(source_name(c.source), len(sources))

    def key(row: dict[str, Any]) -> tuple[int, ...]:
        if not row.get("source"):
            return (0,)
        return (1, sources.get(row["source"], 0), targets.get((row["model"], row["defense"]), 0),
                attacks.get(row["attack"], 0))

    return key


def check_class_counts(suite: SuiteConfig, class_counts: set[int]) -> None:
    """Every attack can run on the classifiers' number of classes: said before anything trains."""
    for cfg in suite.attacks:
        for k in sorted(class_counts):
            problem = cfg.build().class_count_problem(k)
            if problem:
                raise ConfigError(f"attack {cfg.name!r} ({cfg.kind}): {problem}")


class CellMeter:
    """One log line per finished cell, with the samples it attacked per second and the run's ETA: shown where no
    progress bar is (output redirected to a file), so a long run is never silent; on a terminal the bar says it."""

    def __init__(self, todo: int, n_eval: int) -> None:
        self.todo, self.n_eval, self.done = todo, n_eval, 0
        self.start = time.perf_counter()
        self.level = logging.DEBUG if interactive() else logging.INFO

    def finished(self, cell: Cell, out: CellOutput) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        seconds = sum(float(r.get("seconds") or 0.0) for r in out.records)
        attacked = len(cell.attack.eps) * self.n_eval * len(cell.targets)
        rate = f", {attacked / seconds:,.0f} samples x eps/s" if seconds > 0 else ""
        eta = elapsed / self.done * (self.todo - self.done)
        where = cell.source_name + " -> " if cell.source is not None else ""
        targets = ", ".join(f"{m.name}/{d.name}" for m, d in cell.targets)
        log.log(self.level, "cell %d/%d done: %s on %s%s (%.1f s%s); elapsed %s, ETA %s", self.done, self.todo,
                cell.attack.name, where, targets, seconds, rate, _clock(elapsed), _clock(eta))


def _say_other_numerics(cache: CellCache, missing: list[str], numerics: str) -> None:
    """Cells this run must compute that the cache holds under other numerics: say so, and how to reuse them."""
    found: dict[str, int] = {}
    for same_cell in missing:
        for other in cache.other_numerics(same_cell, numerics):
            found[other] = found.get(other, 0) + 1
    if not found:
        return
    other, count = max(found.items(), key=lambda kv: kv[1])
    how = (f"rerun with --threads {other.split('threads=')[1]}" if "threads=" in other
           else f"rerun on that device (--device {other.split('/')[0]})")
    log.warning("%d of the %d cells to compute are in the cache under other numerics (%s; this run: %s). Numbers "
                "can differ in the last bits between thread counts and devices, so they are computed anew; to reuse "
                "them as they are, %s", count, len(missing), other, numerics, how)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``str()`` says what was kept for the next run."""


def interrupted_summary(done: int, finished: int, total: int, classifiers: ClassifierStore,
                        cache_dir: str | Path | None) -> str:
    """What an interrupted run leaves behind, in one line."""
    trained = f"{classifiers.trained} classifier(s) trained"
    if cache_dir is None:
        return (f"interrupted after {done} new cell(s) and {trained}; nothing is cached (no cache folder), "
                "so a rerun starts over")
    if finished == 0 and classifiers.trained == 0:
        return "interrupted before any classifier or cell finished; nothing was cached"
    return (f"interrupted: {finished} of {total} cells and {trained} are in the cache at {cache_dir}; "
            "a rerun resumes from there")


def run_pipeline(
    suite: SuiteConfig,
    data: Data,
    *,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    checks: bool = True,
    prebuilt: Mapping[ClassifierId, Classifier] | None = None,
    executor: Executor | None = None,
    manifest_config: dict[str, Any] | None = None,
    threads: int | None = None,
) -> Results:
    """Run ``suite`` on ``data`` and return its Results (nothing is written but the caches).

    ``prebuilt`` classifiers (``benchmark()``'s model) are used as given instead of being trained. ``threads``
    sets torch's CPU threads for the run (restored afterwards); the numbers can depend on it, so it is part of
    every cache key and of the manifest."""
    executor_threads = getattr(executor, "threads", None)
    if threads is None:  # the executor's cells run with its threads: the numerics in the cache keys must say so
        threads = executor_threads
    elif executor_threads is not None and threads != executor_threads:
        raise ConfigError(f"threads={threads} but the executor runs each cell with {executor_threads} thread(s); "
                          "with the ray executor set the CPUs per task (--num-cpus) instead of --threads")
    tuned = resolve_device(device or suite.device)
    with torch_threads(threads), cudnn_autotune(tuned, suite.evaluation.cudnn_benchmark):
        return _run_pipeline(suite, data, device=device, cache_dir=cache_dir, progress=progress, checks=checks,
                             prebuilt=prebuilt, executor=executor, manifest_config=manifest_config)


def _run_pipeline(
    suite: SuiteConfig, data: Data, *, device: str | None, cache_dir: str | Path | None, progress: bool,
    checks: bool, prebuilt: Mapping[ClassifierId, Classifier] | None, executor: Executor | None,
    manifest_config: dict[str, Any] | None,
) -> Results:
    dev = resolve_device(device or suite.device)
    ev = suite.evaluation
    index = subset_index(len(data.y_test), ev.n, suite.seed, ev.subset)
    x_eval, y_eval = data.x_test[index], data.y_test[index]
    sample_ids = [int(i) for i in data.test_ids[index].tolist()]  # where each sits in the user's data
    if len(index) < len(data.y_test):
        log.info("evaluating %s %d of the %d test samples (evaluation.subset = %s)",
                 "the first" if ev.subset == "first" else "a seeded random", len(index), len(data.y_test), ev.subset)
    eval_data = EvalData(x_eval, y_eval, tuple(data.spec.class_names)).to(dev)
    manifest = new_manifest(suite=suite.name, seed=suite.seed, device=dev,
                            config=manifest_config if manifest_config is not None else suite.raw)
    manifest["source"] = suite.source
    manifest["numerics"] = numerics(dev)
    manifest["numerics_fingerprint"] = numerics_fingerprint(dev)  # where the numbers hold bit for bit
    manifest["precision"] = suite.evaluation.precision  # of the attacks' passes; decisions are fp32
    manifest["batch_size"] = suite.evaluation.batch_size or "auto"
    manifest["compile"] = suite.evaluation.compile
    if suite.evaluation.micro_batch:  # said only when set: results of runs without it keep their manifest
        manifest["micro_batch"] = suite.evaluation.micro_batch
    manifest["cudnn_benchmark"] = suite.evaluation.cudnn_benchmark and dev.startswith("cuda")
    manifest["standard_autoattack"] = [c.name for c in suite.attacks if getattr(c.build(), "is_standard", False)]
    manifest["autoattack_versions"] = {c.name: v for c in suite.attacks
                                       if (v := getattr(c.build(), "reference_version", None))}
    manifest["data"] = {**data.spec.as_dict(), "train": len(data.y_train), "test": len(data.y_test),
                        "evaluated": len(y_eval), "subset": ev.subset if len(index) < len(data.y_test) else "all"}
    classifiers = ClassifierStore(data, seed=suite.seed, device=dev, x_check=eval_data.x, y_check=eval_data.y,
                              cache_dir=cache_dir, progress=progress, checks=checks, models=suite.models,
                              defenses=suite.defenses)
    for ident, clf in (prebuilt or {}).items():
        classifiers.add(ident, clf, key="prebuilt:" + "/".join(ident))
    cells = plan_cells(suite, data.spec.name)
    check_class_counts(suite, {c.num_classes for c in (prebuilt or {}).values()} or {data.spec.num_classes})
    for cfg in suite.attacks:  # the norm of every eps, said once per attack (DeepFool's eps are L2 budgets)
        attack = cfg.build()
        log.info("attack %s: %s, %s; eps %s are %s budgets", cfg.name, cfg.kind, attack.role,
                 ", ".join(f"{e:g}" for e in cfg.eps),
                 {"inf": "Linf", "latent": "latent-space L2"}.get(attack.norm, "L2"))
    cache = CellCache(cache_dir)
    prebuilt_keys = {ident: classifiers.key(ident) for ident in (prebuilt or {})}

    def clf_key(m: Any, d: Any) -> str:
        return prebuilt_keys.get((m.name, d.name)) or classifier_key(m, d, data, suite.seed, classifiers.numerics)

    keys = [cell_key(cell, [clf_key(m, d) for m, d in cell.targets],
                     None if cell.source is None else [clf_key(m, d) for m, d in cell.source], classifiers.numerics)
            for cell in cells]
    def loose_key(m: Any, d: Any) -> str:  # a classifier's key whatever the numerics
        return prebuilt_keys.get((m.name, d.name)) or classifier_key(m, d, data, suite.seed, "")

    same_cells = [cell_key(cell, [loose_key(m, d) for m, d in cell.targets],
                           None if cell.source is None else [loose_key(m, d) for m, d in cell.source], "")
                  for cell in cells]
    outputs: dict[int, CellOutput] = {}
    for i, key in enumerate(keys):
        cached = cache.load(key)
        if cached is not None:
            outputs[i] = cached
    if outputs:
        log.info("resuming: %d of %d cells cached%s", len(outputs), len(cells),
                 "" if len(outputs) < len(cells) else " (nothing to compute)")
    _say_other_numerics(cache, [same_cells[i] for i in range(len(cells)) if i not in outputs], classifiers.numerics)

    graph = JobGraph()
    resumed_shards = 0
    pairs: list[Pair] = []
    for i, cell in enumerate(cells):  # a classifier's jobs just before its first cell: the local order
        cell_pairs = (*(cell.source or ()), *cell.targets)
        ids = {}
        for m, d in cell_pairs:
            ids[(m.name, d.name)] = classifiers.plan(m, d, graph)
            pairs.append((m, d))
            if DEFENSES.get(d.kind).report_uses_reference:  # its report section is measured with the reference
                classifiers.plan(REFERENCE, NO_DEFENSE, graph)
                pairs.append((REFERENCE, NO_DEFENSE))
        if i in outputs:
            continue
        prepared = classifiers.plan_attack(AttackNeeds(cell.attack, suite.seed, classifiers.numerics), graph)
        if not cell_shards(cell):
            graph.add(CellJob(i, cell, tuple(ids.items()), prepared))
            continue
        shards = []
        for start, stop in shard_bounds(len(eval_data.y), ev.shard_size):
            job = ShardJob(i, cell, tuple(ids.items()), prepared, start=start, stop=stop)
            shards.append(job.id)
            cached_shard = cache.load_shard(keys[i], start, stop)
            if cached_shard is not None:
                graph.resolve(job.id, cached_shard)
                resumed_shards += 1
            else:
                graph.add(job)
        graph.add(MergeJob(i, cell, tuple(shards)))
    if resumed_shards:
        log.info("resuming: %d shard(s) of unfinished cells cached", resumed_shards)
    todo = graph.pending()
    if todo:
        log.info("%d job(s) to run: %s", len(todo), ", ".join(f"{n} {what}(s)" for what, n in
                                                            Counter(job.what for job in todo).items()))
    elif executor is not None and not isinstance(executor, LocalExecutor):
        log.info("every cell and classifier is cached: the %s executor is not started", type(executor).__name__)
    done = 0
    meter = CellMeter(sum(isinstance(job, OfCell) and not isinstance(job, ShardJob) for job in todo),
                      len(eval_data.y))
    try:
        if todo:
            runner = executor or LocalExecutor(progress=progress)
            for job_id, out in runner.run(graph, classifiers.env(eval_data), desc=f"suite {suite.name}"):
                job = graph.jobs[job_id]
                if isinstance(job, ShardJob):  # kept at once: a run stopped now loses only the shards in flight
                    cache.save_shard(keys[job.index], job.start, job.stop, out)
                    continue
                if not isinstance(job, OfCell):
                    classifiers.accept(job, out)
                    continue
                outputs[job.index] = out
                cache.save(keys[job.index], out, same_cell=same_cells[job.index], numerics=classifiers.numerics)
                cache.drop_shards(keys[job.index])
                done += 1
                meter.finished(job.cell, out)
    except KeyboardInterrupt:
        raise RunInterrupted(interrupted_summary(done, len(outputs), len(cells), classifiers, cache_dir)) from None
    classifiers.finish(pairs)
    combined = CellOutput([])
    for i in range(len(cells)):
        combined.extend(outputs[i])
    order = _plan_order(suite, cells)
    combined.records.sort(key=order)
    combined.samples.sort(key=order)
    return aggregate(combined, manifest=manifest, labels=[int(v) for v in eval_data.y.cpu().tolist()],
                     sample_ids=sample_ids, flags=classifiers.flags, sections=classifiers.sections, checks=checks)


def run_suite(
    suite: SuiteConfig | str | Path,
    *,
    out: str | Path | None = None,
    device: str | None = None,
    seed: int | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
    progress: bool = True,
    executor: Executor | None = None,
    threads: int | None = None,
) -> Results:
    """Run a suite (a :class:`SuiteConfig`, a built-in name or a file) and return its :class:`Results`.

    ``out`` writes results.csv, results.json, samples.csv.gz and index.html there; trained weights and finished
    cells are cached in ``cache_dir`` (default ``out/cache``; no cache when both are None or ``cache=False``).
    ``threads``: torch's CPU threads for this run (default: as set, normally one per core). ``executor``: where
    cells run (default: the suite's ``[execution]`` table, else this process).
    """
    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if device is not None:
        overrides["device"] = device
    if not isinstance(suite, SuiteConfig):
        suite = load_suite(suite, overrides=overrides)
    elif overrides:
        folder = Path(suite.source).parent if Path(suite.source).is_file() else None
        suite = validate_suite({**suite.raw, **overrides}, source=suite.source, base=folder)
    if not cache:
        cache_dir = None
    elif cache_dir is None and out is not None:
        cache_dir = Path(out) / "cache"
    if executor is None:
        ex = suite.execution
        executor = make_executor(ex.executor, address=ex.address, num_cpus=ex.num_cpus, num_gpus=ex.num_gpus,
                                 progress=progress)
    results = run_pipeline(suite, load_suite_data(suite), cache_dir=cache_dir, progress=progress,
                           executor=executor, threads=threads)
    if out is not None:
        from ..reports import write_run

        write_run(results, out, progress=progress)
    warn_flags(results.flags)
    return results
