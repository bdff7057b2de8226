"""No lost work and determinism (issue 7, items 3 and 4).

- ``kill -9`` in the middle of a run, then the same command again: finished cells are reused (never recomputed),
  and the CSV is the one an uninterrupted run writes.
- A corrupted cache entry (valid JSON, wrong numbers) fails its checksum and is recomputed.
- The same suite, seed and device give an identical results.csv on the CPU.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustbench_gan.cli import main
from robustbench_gan.run import plan_cells, run_suite
from robustbench_gan.suite import load_suite
from processes import kill_when
from suite_files import CNN, LOGISTIC, MLP, suite_toml

# 12 cells (2 models x 3 attacks white-box, plus transfer both ways) spread over a few seconds (the CNN's PGD and
# BIM cells take ~0.5 s each), so a kill as soon as the first cell is on disk lands mid-suite.
RESUME_SUITE = suite_toml(
    "resume", seed=0, models=[LOGISTIC, CNN],
    attacks=[{"name": "fgsm", "eps": [0.1, 0.2]},
             {"name": "pgd", "kind": "pgd", "steps": 40, "restarts": 2, "eps": [0.02, 0.05]},
             {"name": "bim", "kind": "bim", "steps": 40, "eps": [0.02, 0.05]}],
    evaluation={"n": 449})


# Tiny: everything in a second or two, transfer included.
TINY_SUITE = suite_toml(
    "tiny", seed=3, models=[{**LOGISTIC, "epochs": 1}, {**MLP, "epochs": 1}],
    attacks=[{"name": "fgsm", "eps": [0.1, 0.3]},
             {"name": "pgd", "kind": "pgd", "steps": 3, "eps": [0.1]},
             {"name": "noise-baseline", "kind": "uniform-noise", "eps": [0.2]}],
    evaluation={"n": 50})


def rows_without_seconds(path: Path) -> list[dict[str, str]]:
    """The CSV rows as strings (so "identical" means byte-for-byte per value), minus the wall-time column."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, f"{path} has no rows"
    for r in rows:
        r.pop("seconds")
    return rows


def cell_files(cache: Path) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((cache / "cells").glob("*.json"))}


def cli(suite: Path, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "robustbench_gan.cli", "-q", "run", str(suite), "--out", str(out),
            "--cache-dir", str(cache), "--device", "cpu"]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_mid_suite_then_rerun_finishes_without_redoing_cells(tmp_path):
    suite = tmp_path / "resume.toml"
    suite.write_text(RESUME_SUITE)
    n_cells = len(plan_cells(load_suite(suite)))
    assert n_cells >= 8

    # 1. start a run and kill -9 it as soon as at least one cell is on disk (but the run is not finished)
    out, cache = tmp_path / "out", tmp_path / "cache"
    kill_when(cli(suite, out, cache), lambda: bool(list((cache / "cells").glob("*.json"))), env=ENV, cwd=tmp_path,
              timeout=120)
    before = cell_files(cache)
    assert 1 <= len(before) < n_cells, f"{len(before)} of {n_cells} cells before the kill"
    assert not (out / "results.csv").exists() and not (out / "index.html").exists()  # no report of half a run

    # 2. the same command again: finishes, reusing the finished cells untouched
    time.sleep(0.01)  # make any rewrite visible in st_mtime_ns even on coarse clocks
    rerun = subprocess.run(cli(suite, out, cache), env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = cell_files(cache)
    assert len(after) == n_cells
    for path, (mtime, content) in before.items():
        assert after[path] == (mtime, content), f"finished cell {path.name} was recomputed"

    # 3. an uninterrupted run with its own cache writes the same CSV
    out2, cache2 = tmp_path / "out2", tmp_path / "cache2"
    full = subprocess.run(cli(suite, out2, cache2), env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr
    assert rows_without_seconds(out / "results.csv") == rows_without_seconds(out2 / "results.csv")
    assert len(rows_without_seconds(out2 / "results.csv")) == sum(len(c.attack.eps) for c in plan_cells(load_suite(suite)))


def test_same_suite_seed_and_device_give_identical_csv(tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["-q", "run", str(suite), "--out", str(out), "--device", "cpu", "--seed", "3", "--no-cache"]) == 0
    # two separate output folders (so two separate caches, whatever --no-cache does): two full computations
    rows = rows_without_seconds(a / "results.csv")
    assert rows == rows_without_seconds(b / "results.csv")
    assert {r["threat"] for r in rows} >= {"white-box", "transfer"}
    records = [json.loads((o / "results.json").read_text())["records"] for o in (a, b)]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in records[0]] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in records[1]]


def _payload(doc: dict) -> dict:
    """A cell cache entry's payload (entries are ``{"sha256": ..., "payload": {...}}``)."""
    return doc["payload"] if "payload" in doc else doc


def test_corrupted_cell_cache_is_detected_and_recomputed(tmp_path, monkeypatch, caplog):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "out"
    first = run_suite(suite, out=out, device="cpu", progress=False)
    cells = sorted((out / "cache" / "cells").glob("*.json"))
    white_box = [p for p in cells if _payload(json.loads(p.read_text()))["records"][0]["source"] == ""]
    assert white_box and len(cells) > len(white_box)
    target = white_box[0]
    doc = json.loads(target.read_text())
    record = _payload(doc)["records"][0]
    original = record["robust_accuracy"]
    record["robust_accuracy"] = 0.123456 if original != 0.123456 else 0.654321  # flip one number, keep valid JSON
    target.write_text(json.dumps(doc))
    garbage = next(p for p in cells if p != target)
    garbage.write_text('{"sha256": "0", "payload": {"records": [')  # a truncated entry, too

    import robustbench_gan.run.cells as cells_module

    calls: list[str] = []
    real_merge = cells_module.merge_shards
    import robustbench_gan.run.jobs as executors

    # every cell of this suite shards (one shard each): a cell computed anew is a merge
    monkeypatch.setattr(executors, "merge_shards", lambda *a, **k: calls.append("cell") or real_merge(*a, **k))
    with caplog.at_level(logging.WARNING, logger="robustbench_gan"):
        second = run_suite(suite, out=out, device="cpu", progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(target.name in m and "checksum" in m for m in warned), warned
    assert any(garbage.name in m for m in warned), warned
    assert len(calls) == 2  # only the two damaged cells were recomputed
    cols = [c for c in first.table.columns if c != "seconds"]
    assert second.table[cols].equals(first.table[cols])
    repaired = _payload(json.loads(target.read_text()))["records"][0]
    assert repaired["robust_accuracy"] == original


def test_no_cache_flag_neither_reads_nor_writes_the_cache(tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "out"
    assert main(["-q", "run", str(suite), "--out", str(out), "--device", "cpu", "--no-cache"]) == 0
    assert not (out / "cache").exists()


def test_a_users_executor_runs_the_job_graph_in_any_dependency_order(tmp_path):
    """An executor written against the protocol alone (``run(graph, env, *, desc)``) that runs the jobs in a
    shuffled order that only respects their dependencies: the same results as the local executor, and every
    classifier fit comes before the cells that use it."""
    import random

    from robustbench_gan.run import run_suite

    class Shuffled:
        def __init__(self) -> None:
            self.order: list[str] = []

        def run(self, graph, env, *, desc):
            outputs, todo, rng = dict(graph.done), graph.pending(), random.Random(3)
            while todo:
                ready = [job for job in todo if all(dep in outputs for dep in job.deps)]
                job = rng.choice(ready)
                todo.remove(job)
                outputs[job.id] = job.run({dep: outputs[dep] for dep in job.deps}, env)
                self.order.append(job.id)
                yield job.id, outputs[job.id]

    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    executor = Shuffled()
    theirs = run_suite(suite, out=tmp_path / "a", device="cpu", progress=False, executor=executor)
    ours = run_suite(suite, out=tmp_path / "b", device="cpu", progress=False)
    cols = [c for c in ours.table.columns if c != "seconds"]
    assert theirs.table[cols].equals(ours.table[cols])
    kinds = [job_id.split(":")[0] for job_id in executor.order]
    assert kinds.count("classifier") == 2  # each classifier trained once, by a job of the graph
    assert kinds.count("cell") == len(plan_cells(load_suite(suite)))
    cells = [k for k in executor.order if k.startswith("cell:")]
    assert cells != sorted(cells, key=lambda k: int(k.split(":")[1]))  # not the plan's order: shuffled
