"""Sample shards and results that do not depend on how the work is cut (issue 24, points 1 and 2).

Every random draw an attack makes for a sample is keyed by the run's seed, the attack's seed and the sample's id
(:class:`~robustbench_gan.attacks.engine.draws.SampleDraws`); with ``micro_batch`` every forward pass runs on
chunks of a fixed size, so a sample's arithmetic never depends on its neighbours either. A cell cut into shards of
13 or 50 samples, or run whole, then gives the same per-sample results and the same rows, here and on Ray."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from robustbench_gan import benchmark
from robustbench_gan.attacks import APGDT, PGD, AutoAttack, Goal, Square
from robustbench_gan.attacks.engine.draws import SampleDraws
from robustbench_gan.classifier import Classifier
from robustbench_gan.errors import ConfigError
from robustbench_gan.run.cache import CellCache
from robustbench_gan.run.plan import shard_bounds
from robustbench_gan.suite import validate_suite
from processes import kill_when
from suite_files import CNN, suite_doc, suite_toml

N = 60


def cifar_shaped() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CIFAR-shaped CNN (3x32x32, batch norm with running statistics off their init) and 60 images, 40 of
    them labelled as the model classifies them (so attacks have work to do) and 20 not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                          nn.Linear(256, 10)).eval()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.1, 0.1)
        model[1].running_var.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(N, 3, 32, 32, generator=g), torch.randint(0, 10, (N,), generator=g)
    with torch.no_grad():
        y[:40] = model(x[:40]).argmax(1)
    return model, x, y


def attacks() -> list:
    return [PGD(steps=3, restarts=2), APGDT(steps=3, targets=2), Square(queries=30),
            AutoAttack(version="custom", attacks=["apgd-ce", "apgd-t", "square"], steps=3, targets=2, queries=20)]


def run(shard_size: int, **options):
    model, x, y = cifar_shaped()
    return benchmark(model, (x, y), attacks=attacks(), eps=[2 / 255, 8 / 255], micro_batch=8, shard_size=shard_size,
                     progress=False, checks=False, **options)


def same_results(a, b) -> None:
    """Identical results.csv (seconds aside) and per-sample table."""
    ta, tb = (r.table.drop(columns=["seconds"]) for r in (a, b))
    assert list(ta.columns) == list(tb.columns)
    assert ta.equals(tb), ta.compare(tb)
    assert a.samples.equals(b.samples)


def test_a_samples_draws_are_its_own_whatever_the_batch():
    full = SampleDraws(5, torch.arange(100), stream=2)
    part = SampleDraws(5, torch.arange(40, 60), stream=2)
    for _ in range(3):  # the sequence of draws: the n-th draw of a sample is the same in any batch
        assert torch.equal(full.rand((3, 4))[40:60], part.rand((3, 4)))
    other_seed, other_stream = SampleDraws(6, torch.arange(100), stream=2), SampleDraws(5, torch.arange(100))
    u = SampleDraws(5, torch.arange(100), stream=2).rand((3, 4))
    assert not torch.equal(u, other_seed.rand((3, 4))) and not torch.equal(u, other_stream.rand((3, 4)))
    big = SampleDraws(0, torch.arange(2000)).rand((500,))
    assert 0 <= float(big.min()) and float(big.max()) < 1 and abs(float(big.mean()) - 0.5) < 0.002
    assert abs(float(big.var()) - 1 / 12) < 0.001
    z = SampleDraws(0, torch.arange(2000)).randn((500,))
    assert abs(float(z.mean())) < 0.005 and abs(float(z.std()) - 1) < 0.005
    k = SampleDraws(0, torch.arange(2000)).randint(3, 10, (50,))
    counts = torch.bincount(k.flatten() - 3, minlength=7).float() / k.numel()
    assert int(k.min()) == 3 and int(k.max()) == 9 and float((counts - 1 / 7).abs().max()) < 0.005


def test_rows_share_the_counter_of_their_parent():
    ids = torch.arange(10, 20)
    a = SampleDraws(1, ids)
    a.rand((2,))
    second = a.rows(torch.tensor([4, 1])).rand((2,))  # the second draw, for samples 14 and 11
    b = SampleDraws(1, ids)
    b.rand((2,))
    assert torch.equal(second, b.rand((2,))[[4, 1]])


def test_a_random_start_and_a_random_target_follow_the_sample():
    """PGD's random start and a random target of sample 13 are the same in a batch of 60 and in one of 5."""
    x, y = torch.rand(60, 1, 4, 4), torch.randint(0, 10, (60,))
    from robustbench_gan.attacks.base import choose_targets
    from robustbench_gan.attacks.engine.norms import random_delta

    whole = random_delta(x, 0.1, "inf", Goal(y, ids=torch.arange(60), stream=4).draws(0))
    part = random_delta(x[10:15], 0.1, "inf", Goal(y[10:15], ids=torch.arange(10, 15), stream=4).draws(0))
    assert torch.equal(whole[10:15], part)
    clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 10)), num_classes=10)
    t_whole = choose_targets(clf, x, y, "random", seed=4, ids=torch.arange(60))
    t_part = choose_targets(clf, x[10:15], y[10:15], "random", seed=4, ids=torch.arange(10, 15))
    assert torch.equal(t_whole[10:15], t_part) and bool((t_whole != y).all())


def test_shards_cover_the_samples_once():
    assert shard_bounds(60, 0) == [(0, 60)] and shard_bounds(60, 100) == [(0, 60)]
    assert shard_bounds(60, 13) == [(0, 13), (13, 26), (26, 39), (39, 52), (52, 60)]
    assert validate_suite(suite_doc(evaluation={"shard_size": 13})).evaluation.shard_size == 13
    assert validate_suite(suite_doc()).evaluation.shard_size == 1000
    with pytest.raises(ConfigError, match="shard_size must be an integer >= 0"):
        validate_suite(suite_doc(evaluation={"shard_size": -1}))
    with pytest.raises(ConfigError, match="shard_size must be a non-negative integer"):
        benchmark(nn.Flatten(), (torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)), attacks="fgsm",
                  eps=0.1, shard_size=1.5, progress=False)  # type: ignore[arg-type]


@pytest.mark.slow
def test_same_seed_any_cut_same_per_sample_results():
    """PGD with restarts, APGD-T, Square and the AutoAttack cascade (APGD-CE, APGD-T, Square) on a CIFAR-shaped
    model: shard sizes 0, 13 and 50 give identical rows and per-sample results."""
    whole = run(0)
    table = whole.table
    assert (table["robust_accuracy"] < table["clean_accuracy"]).any() and (table["robust_accuracy"] > 0).any()
    for size in (13, 50):
        same_results(whole, run(size))


def test_random_attacks_give_the_same_per_sample_results_at_batch_7_and_64():
    """The random attacks (PGD with restarts, APGD-T, Square, the AutoAttack cascade) with 8-sample chunks: a batch
    of 7 and one of 64 give identical rows and per-sample results, since neither their draws (keyed by sample id)
    nor their arithmetic (fixed chunks) depends on the batch."""
    small, large = run(0, batch_size=7), run(0, batch_size=64)
    assert (small.table["robust_accuracy"] < small.table["clean_accuracy"]).any()
    same_results(small, large)


@pytest.mark.slow
def test_ray_workers_give_the_results_of_one_process():
    """Shards of 13 as Ray tasks on 2 workers (1 thread each) against the whole cell in this process with 1
    thread: identical rows and per-sample results."""
    pytest.importorskip("ray")
    from robustbench_gan.run.executors import make_executor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run(0)
    finally:
        torch.set_num_threads(threads)
    sharded = run(13, executor=make_executor("ray", num_cpus=1, progress=False))
    same_results(local, sharded)


def test_a_merged_cell_forgets_its_shards(tmp_path):
    cache = CellCache(tmp_path)
    cache.save_shard("k", 0, 5, {"start": 0, "stop": 5, "targets": []})
    assert cache.load_shard("k", 0, 5) == {"start": 0, "stop": 5, "targets": []}
    assert cache.load_shard("k", 5, 10) is None
    cache.drop_shards("k")
    assert cache.load_shard("k", 0, 5) is None and not (tmp_path / "cells" / "shards" / "k").exists()


RESUME = suite_toml(
    "shards", seed=0, models=[CNN],
    attacks=[{"name": "aa", "kind": "autoattack", "version": "custom", "attacks": ["apgd-ce", "square"],
              "steps": 60, "queries": 200, "eps": [0.1]}],
    evaluation={"n": 240, "shard_size": 30}, transfer={"sources": "none"})
SHARDS = 240 // 30


def cli(suite: Path, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "robustbench_gan.cli", "run", str(suite), "--out", str(out), "--cache-dir",
            str(cache), "--device", "cpu"]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        out = list(csv.DictReader(fh))
    for r in out:
        r.pop("seconds")
    return out


@pytest.mark.slow
def test_sigkill_mid_cell_recomputes_only_the_unfinished_shards(tmp_path):
    suite = tmp_path / "shards.toml"
    suite.write_text(RESUME)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out, cache = tmp_path / "out", tmp_path / "cache"
    shard_files = cache / "cells" / "shards"
    kill_when(cli(suite, out, cache), lambda: len(list(shard_files.glob("*/*.json"))) >= 2, env=env, cwd=tmp_path)
    kept = len(list((cache / "cells" / "shards").glob("*/*.json")))
    assert 2 <= kept < SHARDS and not list((cache / "cells").glob("*.json"))  # the cell itself is unfinished

    rerun = subprocess.run(cli(suite, out, cache), env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    resumed = re.search(r"resuming: (\d+) shard\(s\) of unfinished cells cached", rerun.stderr)
    todo = re.search(r"job\(s\) to run: .*?(\d+) shard\(s\)", rerun.stderr)
    assert resumed and int(resumed.group(1)) == kept, rerun.stderr
    assert todo and int(todo.group(1)) == SHARDS - kept, rerun.stderr  # only the unfinished shards ran
    assert not list((cache / "cells" / "shards").glob("*/*.json"))  # merged: the cell file holds them

    out2, cache2 = tmp_path / "out2", tmp_path / "cache2"
    full = subprocess.run(cli(suite, out2, cache2), env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert full.returncode == 0, full.stderr
    assert rows(out / "results.csv") == rows(out2 / "results.csv")


def test_the_run_bar_counts_images():
    """Shards add their samples, a whole cell every sample, fits nothing: the bar counts images (its rate is
    images/s); a graph of fits only counts jobs."""
    from robustbench_gan.run.executors import progress_units, run_bar
    from robustbench_gan.run.jobs import CellJob, FitJob, ShardJob
    from robustbench_gan.run.plan import EvalData, JobEnv

    env = JobEnv(None, EvalData(torch.zeros(60, 1), torch.zeros(60, dtype=torch.long), ()))  # type: ignore[arg-type]
    shards = [ShardJob(0, None, (), start=a, stop=b) for a, b in shard_bounds(60, 13)]  # type: ignore[arg-type]
    whole, fit = CellJob(1, None, ()), FitJob(None)  # type: ignore[arg-type]
    assert [progress_units(j, 60) for j in (*shards, whole, fit)] == [13, 13, 13, 13, 8, 60, 0]
    bar, units = run_bar([*shards, whole, fit], env, desc="run", enabled=False)
    assert bar.total == 120 and units(shards[-1]) == 8 and units(fit) == 0
    bar, units = run_bar([fit, fit], env, desc="run", enabled=False)
    assert bar.total == 2 and units(fit) == 1
