"""The Ray executor (issue 14): the same results as a local run, resume across executors, user errors as one line,
a killed worker retried, and no Ray import for local runs. One local Ray cluster (2 CPUs) for the whole session."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from robustbench_gan.cli import main  # noqa: E402
from robustbench_gan.run import plan_cells, run_suite  # noqa: E402
from robustbench_gan.run.ray_executor import RayExecutor  # noqa: E402
from robustbench_gan.suite import load_suite  # noqa: E402
from suite_files import FGSM, LOGISTIC, MLP, NO_TRANSFER, suite_toml  # noqa: E402
from test_pipeline import assert_matches_golden  # noqa: E402
from test_job_graph import DEPENDENT_SUITE, assert_built_once  # noqa: E402
from test_resume import rows_without_seconds  # noqa: E402

# 2 models x 2 attacks white-box + transfer both ways: 6 cells, a few seconds in all
SUITE = suite_toml(
    "ray-small", seed=1, models=[LOGISTIC, MLP],
    attacks=[{"name": "fgsm", "eps": [0.1, 0.2]}, {"name": "pgd", "kind": "pgd", "steps": 40, "eps": [0.05, 0.1]}],
    evaluation={"n": 300})


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) per test session; executors reuse this process's connection."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-suite")
    (folder / "small.toml").write_text(SUITE)
    return folder / "small.toml"


@pytest.fixture(scope="module")
def local_run(small, tmp_path_factory) -> Path:
    """The small suite run locally with one torch thread (the numerics of 1-CPU Ray tasks)."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["-q", "run", str(small), "--out", str(out), "--device", "cpu", "--threads", "1"]) == 0
    return out


def cell_names(cache: Path) -> set[str]:
    return {p.name for p in (cache / "cells").glob("*.json")}


def cached_cells(cache: Path) -> set[tuple[str, str]]:
    """(model, attack) of every cell in the cache."""
    from robustbench_gan.run.cache import CellCache

    store = CellCache(cache)
    return {(r["model"], r["attack"]) for p in (cache / "cells").glob("*.json")
            for r in store.load(p.stem).records}


@pytest.mark.slow
def test_ray_run_writes_the_local_results(ray_cluster, small, local_run, tmp_path):
    out = tmp_path / "out"
    assert main(["-q", "run", str(small), "--out", str(out), "--device", "cpu", "--executor", "ray"]) == 0
    rows = rows_without_seconds(out / "results.csv")
    assert rows == rows_without_seconds(local_run / "results.csv")
    assert {r["threat"] for r in rows} == {"white-box", "transfer"}
    doc, ref = (json.loads((o / "results.json").read_text()) for o in (out, local_run))
    assert doc["flags"] == ref["flags"]
    assert doc["manifest"]["numerics"] == ref["manifest"]["numerics"] == "cpu/threads=1"
    assert (out / "index.html").is_file()
    assert cell_names(out / "cache") == cell_names(local_run / "cache")  # the same keys: resume works both ways


@pytest.mark.slow
def test_resume_across_executors(ray_cluster, small, tmp_path, monkeypatch):
    """Cells finished locally are reused by a Ray run (no task is sent), and a Ray run's cells by a local run."""
    out = tmp_path / "out"
    first = run_suite(small, out=out, device="cpu", progress=False, threads=1)
    submitted: list[int] = []
    real = RayExecutor._run

    def counting(self, ray_, tasks, data, **kw):
        for item in real(self, ray_, tasks, data, **kw):
            submitted.append(item[0])
            yield item

    monkeypatch.setattr(RayExecutor, "_run", counting)
    before = {p: p.stat().st_mtime_ns for p in (out / "cache" / "cells").glob("*.json")}
    second = run_suite(small, out=out, device="cpu", progress=False, executor=RayExecutor(progress=False))
    assert submitted == [] and {p: p.stat().st_mtime_ns for p in before} == before
    cols = [c for c in first.table.columns if c != "seconds"]
    assert second.table[cols].equals(first.table[cols])

    # the other way round: a Ray run's cache, then a local run that computes nothing
    out2 = tmp_path / "out2"
    run_suite(small, out=out2, device="cpu", progress=False, executor=RayExecutor(progress=False))
    import robustbench_gan.run.jobs as executors

    calls: list[int] = []
    monkeypatch.setattr(executors, "run_cell", lambda *a, **k: calls.append(1))
    third = run_suite(small, out=out2, device="cpu", progress=False, threads=1)
    assert calls == [] and third.table[cols].equals(first.table[cols])


@pytest.mark.slow
def test_training_tasks_respect_dependencies_and_train_each_thing_once(ray_cluster, tmp_path):
    """The same job graph as a local run (test_job_graph.py), as Ray tasks: the distillation teacher and the GAN
    shared by two defenses are each built by one task that the fits wait on; every classifier trains once; the
    results, GAN report and cache equal a local run's; a second Ray run on the same cache trains nothing."""
    path = tmp_path / "dependent.toml"
    path.write_text(DEPENDENT_SUITE)
    local = run_suite(path, out=tmp_path / "local", device="cpu", progress=False, threads=1)
    executor = RayExecutor(progress=False)
    remote = run_suite(path, out=tmp_path / "ray", device="cpu", progress=False, executor=executor)

    built = [(b.what, b.key) for b in executor.trainings]
    assert_built_once(built)
    assert {b.pid for b in executor.trainings} - {os.getpid()} == {b.pid for b in executor.trainings}  # not here
    teacher, = (key for what, key in built if what == "distillation teacher")
    generator, = (key for what, key in built if what == "GAN generator")
    models = {p.name for p in (tmp_path / "ray" / "cache" / "models").glob("*.pt")}
    assert models == {p.name for p in (tmp_path / "local" / "cache" / "models").glob("*.pt")}
    assert {f"{teacher}.pt", f"{generator}.pt"} <= models  # the driver cached what the tasks built

    cols = [c for c in local.table.columns if c != "seconds"]
    assert remote.table[cols].equals(local.table[cols])
    doc, ref = (json.loads((tmp_path / o / "results.json").read_text()) for o in ("ray", "local"))
    assert doc["gan"] == ref["gan"] and doc["flags"] == ref["flags"]
    assert [g["defense"] for g in doc["gan"]] == ["gan-a", "gan-b"]

    again = RayExecutor(progress=False)
    run_suite(path, out=tmp_path / "ray", device="cpu", progress=False, executor=again)
    assert again.trainings == []


# ART checks num_random_init only when the attack meets its model, in the cell
FAILING_SUITE = suite_toml(
    "fails", seed=0, models=[{**LOGISTIC, "epochs": 1}, {**MLP, "epochs": 1}],
    attacks=[FGSM, {"name": "art-fgm", "kind": "art:FastGradientMethod", "num_random_init": -1, "eps": [0.1]}],
    transfer=NO_TRANSFER, evaluation={"n": 100})


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_user_error_in_a_task_is_one_line_and_keeps_finished_cells(executor, ray_cluster, tmp_path, capsys):
    """A bad ART parameter fails the first cell that builds the attack (logistic/art-fgm, the second of four):
    exit 2 with the same one line as a local run, and the cells finished (or, on Ray, in flight) are cached."""
    suite = tmp_path / "fails.toml"
    suite.write_text(FAILING_SUITE)
    out = tmp_path / "out"
    code = main(["-q", "run", str(suite), "--out", str(out), "--device", "cpu", "--threads", "1"]
                + (["--executor", "ray"] if executor == "ray" else []))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, err
    assert "ART FastGradientMethod rejected its parameters" in lines[0] and "Traceback" not in err
    cached = cached_cells(out / "cache")
    assert len(plan_cells(load_suite(suite))) == 4
    if executor == "local":
        assert cached == {("logistic", "fgsm")}  # then the run stops
    else:  # the jobs in flight when the ART cell fails finish and are cached; mlp's cells run if its fit was done
        assert ("logistic", "fgsm") in cached and cached <= {("logistic", "fgsm"), ("mlp", "fgsm")}
    assert not (out / "results.csv").exists()


def test_missing_ray_is_a_one_line_error_naming_the_install_command(small, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["-q", "run", str(small), "--out", str(tmp_path / "out"), "--device", "cpu", "--executor", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert err.startswith("error:") and "pip install 'robustbench_gan[ray]'" in err
    assert not (tmp_path / "out" / "cache").exists()  # failed before training anything


def test_execution_table_is_validated_and_chooses_the_executor(small, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE + '\n[execution]\nexecutor = "ray"\nnum_cpu = 2\n')
    with pytest.raises(Exception, match=r"\[execution\]: unknown key 'num_cpu'; did you mean 'num_cpus'"):
        load_suite(bad)
    bad.write_text(SUITE + '\n[execution]\nexecutor = "dask"\n')
    with pytest.raises(Exception, match="executor must be one of local, ray"):
        load_suite(bad)
    good = tmp_path / "good.toml"
    good.write_text(SUITE + '\n[execution]\nexecutor = "ray"\naddress = "auto"\nnum_cpus = 0.5\nnum_gpus = 0\n')
    ex = load_suite(good).execution
    assert (ex.executor, ex.address, ex.num_cpus, ex.num_gpus) == ("ray", "auto", 0.5, 0.0)
    assert load_suite(good, overrides={"execution.executor": "local"}).execution.executor == "local"


def test_a_local_run_never_imports_ray(small, tmp_path):
    code = textwrap.dedent(f'''
        import sys
        from robustbench_gan.cli import main
        assert main(["-q", "run", {str(small)!r}, "--out", {str(tmp_path / "out")!r}, "--device", "cpu",
                     "--threads", "1"]) == 0
        print("ray" in sys.modules)
    ''')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def _shard_workers() -> list[int]:
    """Pids of Ray workers attacking samples right now: Ray titles a worker process after the task it runs
    (``ray::robustbench_gan.shard``: every cell of these suites is a shard job and a merge), which shows in
    /proc/PID/cmdline."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::robustbench_gan.shard"):
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds worker processes through /proc")
def test_a_worker_killed_mid_shard_is_retried_and_the_results_are_the_same(ray_cluster, small, local_run, tmp_path):
    out = tmp_path / "out"
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["code"] = main(["-q", "run", str(small), "--out", str(out), "--device", "cpu", "--executor", "ray"])
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while thread.is_alive() and killed is None and time.monotonic() < deadline:
        pids = _shard_workers()
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    thread.join(timeout=300)
    assert killed is not None, "no worker was seen running a shard"
    assert result.get("code") == 0, result
    assert rows_without_seconds(out / "results.csv") == rows_without_seconds(local_run / "results.csv")


TWO_NODES = textwrap.dedent('''
    import json, sys
    import ray
    from ray.cluster_utils import Cluster
    from robustbench_gan.run import run_suite
    from robustbench_gan.run.ray_executor import RayExecutor

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    executor = RayExecutor(progress=False)
    run_suite(sys.argv[1], out=sys.argv[2], device="cpu", progress=False, executor=executor)
    print(json.dumps({"nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]],
                      "ran_on": [p.node for p in executor.placements]}))
    ray.shutdown()
    cluster.shutdown()
''')


@pytest.mark.slow
def test_a_two_node_cluster_runs_cells_on_both_nodes_with_the_same_results(small, local_run, tmp_path):
    """Two raylets of 1 CPU each on this machine (``ray.cluster_utils.Cluster``), in a process of its own so the
    session's cluster is left alone."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", TWO_NODES, str(small), str(out)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(doc["nodes"]) == 2
    assert set(doc["ran_on"]) == set(doc["nodes"]), doc  # cells ran on both nodes
    assert rows_without_seconds(out / "results.csv") == rows_without_seconds(local_run / "results.csv")


@pytest.mark.slow
@pytest.mark.heavy  # 3 minutes: `make test-heavy` (kept out of CI's time budget)
def test_the_default_suite_on_ray_matches_the_golden_copy(tmp_path):
    """``robustbench-gan run default --executor ray --num-cpus 2`` (a local cluster of this machine's 2 CPUs, tasks
    with 2 torch threads, the golden copy's numerics; classifiers, the GAN and cells all trained in tasks): the
    golden results.csv, flags and leaderboard. In a process of its own, so the session's cluster is left alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "robustbench_gan.cli", "-q", "run", "default", "--no-cache",
                           "--executor", "ray", "--num-cpus", "2", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_matches_golden(out)
