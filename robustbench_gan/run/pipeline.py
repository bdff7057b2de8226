"""One run, suites and ``benchmark()`` alike: plan -> classifiers -> cells (cached, through an executor) ->
records -> Results."""
from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..classifier import Classifier
from ..core.device import resolve_device
from ..data import DATASETS, Data, load_dataset, subset
from ..results import Results, new_manifest
from ..suite import SuiteConfig, load_suite, validate_suite
from .cache import CellCache, cell_key
from .cells import EvalData
from .classifiers import Classifiers
from .executors import Executor, LocalExecutor, Task
from .plan import Cell, ClassifierId, classifier_pairs, plan_cells, source_name
from .records import CellOutput, aggregate

log = logging.getLogger(__name__)


def load_suite_data(suite: SuiteConfig) -> Data:
    """Load the suite's data set; its split seed defaults to the suite seed."""
    opts = {k: v for k, v in suite.data.items() if k != "dataset"}
    loader = DATASETS.get(suite.data["dataset"])
    if "seed" in inspect.signature(loader).parameters:
        opts.setdefault("seed", suite.seed)
    return load_dataset(suite.data["dataset"], **opts)


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
) -> Results:
    """Run ``suite`` on ``data`` and return its Results (nothing is written but the caches).

    ``prebuilt`` classifiers (``benchmark()``'s model) are used as given instead of being trained."""
    dev = resolve_device(device or suite.device)
    x_eval, y_eval = subset(data.x_test, data.y_test, suite.evaluation.n, suite.seed)
    eval_data = EvalData(x_eval, y_eval, tuple(data.spec.class_names)).to(dev)
    manifest = new_manifest(suite=suite.name, seed=suite.seed, device=dev,
                            config=manifest_config if manifest_config is not None else suite.raw)
    manifest["source"] = suite.source
    manifest["data"] = {**data.spec.as_dict(), "train": len(data.y_train), "test": len(data.y_test),
                        "evaluated": len(y_eval)}
    classifiers = Classifiers(data, seed=suite.seed, device=dev, x_check=eval_data.x, y_check=eval_data.y,
                              cache_dir=cache_dir, progress=progress, checks=checks, models=suite.models,
                              defenses=suite.defenses)
    for ident, clf in (prebuilt or {}).items():
        classifiers.add(ident, clf, key="prebuilt:" + "/".join(ident))
    cells = plan_cells(suite, data.spec.name)
    cache = CellCache(cache_dir)
    outputs: dict[int, CellOutput] = {}
    keys: dict[int, str] = {}

    def tasks() -> Iterator[Task]:
        """Cells not in the cache, each with its classifiers (trained on first need, so a run that is stopped
        keeps every classifier and cell finished so far)."""
        for i, cell in enumerate(cells):
            for m, d in (*(cell.source or ()), *cell.targets):
                classifiers.obtain(m, d)
            keys[i] = cell_key(cell, [classifiers.key((m.name, d.name)) for m, d in cell.targets],
                               None if cell.source is None else
                               [classifiers.key((m.name, d.name)) for m, d in cell.source])
            cached = cache.load(keys[i])
            if cached is not None:
                outputs[i] = cached
                continue
            yield i, cell, classifiers.mapping(cell.classifier_ids())

    for i, out in (executor or LocalExecutor(progress=progress)).run(tasks(), eval_data, total=len(cells),
                                                                      desc=f"suite {suite.name}"):
        outputs[i] = out
        cache.save(keys[i], out)
    combined = CellOutput([])
    for i in range(len(cells)):
        combined.extend(outputs[i])
    order = _plan_order(suite, cells)
    combined.records.sort(key=order)
    combined.samples.sort(key=order)
    return aggregate(combined, manifest=manifest, labels=[int(v) for v in eval_data.y.cpu().tolist()],
                     flags=classifiers.flags, sections=classifiers.sections, checks=checks)


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
) -> Results:
    """Run a suite (a :class:`SuiteConfig`, a built-in name or a file) and return its :class:`Results`.

    ``out`` writes results.csv, results.json, samples.csv.gz and index.html there; trained weights and finished
    cells are cached in ``cache_dir`` (default ``out/cache``; no cache when both are None or ``cache=False``).
    """
    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if device is not None:
        overrides["device"] = device
    if not isinstance(suite, SuiteConfig):
        suite = load_suite(suite, overrides=overrides)
    elif overrides:
        suite = validate_suite({**suite.raw, **overrides}, source=suite.source)
    if not cache:
        cache_dir = None
    elif cache_dir is None and out is not None:
        cache_dir = Path(out) / "cache"
    results = run_pipeline(suite, load_suite_data(suite), cache_dir=cache_dir, progress=progress,
                           executor=executor)
    if out is not None:
        from ..reports import write_run

        write_run(results, out)
    return results
