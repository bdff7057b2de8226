"""End to end: suites through the runner and the CLI, caching, determinism, the README example, results."""
from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from robustbench_gan.cli import main
from robustbench_gan.core.stats import wilson_interval
from robustbench_gan.results import COLUMNS, Results
from robustbench_gan.run import plan_cells, run_suite
from robustbench_gan.suite import load_suite
from suite_files import LOGISTIC, MLP, suite_toml

ROOT = Path(__file__).resolve().parents[1]

SMALL = suite_toml(
    "small", seed=1, models=[{**LOGISTIC, "epochs": 3}, {**MLP, "params": {"hidden": [32]}}],
    attacks=[{"name": "fgsm", "eps": [0.1, 0.3]}, {"name": "pgd5", "kind": "pgd", "steps": 5, "eps": [0.1]}],
    evaluation={"n": 100})


@pytest.fixture
def small_suite(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_default_suite_end_to_end(default_run):
    """`robustbench-gan run` on the default suite writes its files with the documented columns."""
    out = default_run
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    suite = load_suite("default")
    expected_rows = sum(len(c.attack.eps) * len(c.targets) for c in plan_cells(suite))
    assert len(table) == expected_rows
    assert set(table["threat"]) == {"white-box", "transfer", "black-box"} and set(table["model"]) == {"cnn", "logistic"}
    defenses = ("none", "pgd-at", "distillation", "gan-aug")
    assert set(table["defense"]) == set(defenses)
    transfer = table[table["threat"] == "transfer"]
    classifiers = {m if d == "none" else f"{m}/{d}" for m in ("cnn", "logistic") for d in defenses}
    assert set(transfer["source"]) == classifiers | {"ensemble(cnn+logistic)"}
    # every ordered pair of distinct classifiers, for every transferable attack and eps
    pairs = {(s, m if d == "none" else f"{m}/{d}") for s, m, d in
             transfer[["source", "model", "defense"]].itertuples(index=False)}
    assert len(pairs) == 8 * 7 + 8
    assert (table.loc[table["threat"] != "transfer", "source"] == "").all()
    blackbox = table[table["threat"] == "black-box"]
    assert set(blackbox["attack"]) == {"substitute"} and (blackbox["queries"] == 150 * 2 ** 5).all()
    attacks = table[table["attack"] != "noise"]  # the noise probe has no robust accuracy (see test_pipeline.py)
    assert (attacks["robust_accuracy"].astype(float) <= attacks["clean_accuracy"]).all()
    assert ((attacks["robust_accuracy_low"].astype(float) <= attacks["robust_accuracy"].astype(float)) &
            (attacks["robust_accuracy"].astype(float) <= attacks["robust_accuracy_high"].astype(float))).all()
    assert set(table.loc[table["attack"] == "fgsm-ll", "target_mode"]) == {"least-likely"}
    clean = table.groupby("model")["clean_accuracy"].first()
    assert clean["cnn"] > 0.9 and clean["logistic"] > 0.85
    doc = json.loads((out / "results.json").read_text())
    assert set(doc) >= {"manifest", "records", "flags", "gan"} and len(doc["records"]) == expected_rows
    flagged = {(f["defense"], f["check"]) for f in doc["flags"]}
    assert ("distillation", "zero-gradients") in flagged  # the masked model is called out
    assert not any(d == "none" for d, _ in flagged)
    assert doc["manifest"]["seed"] == 0 and doc["manifest"]["finished"] and doc["manifest"]["versions"]["torch"]
    html = (out / "index.html").read_text()
    assert doc["substitute"] and len(doc["substitute"][0]["rounds"]) == 6
    # one GAN (same data, settings and seed) serves both models' gan-aug defense; it covers every class
    assert [(g["model"], g["defense"]) for g in doc["gan"]] == [("cnn", "gan-aug"), ("logistic", "gan-aug")]
    assert all(g["modes_captured"] == 10 and g["conditional_accuracy"] >= 0.8 for g in doc["gan"])
    details, = doc["gan_details"]  # one generator, with corner cases for each model's undefended classifier
    assert [c["model"] for c in details["corner_cases"]] == ["cnn", "logistic"]
    for section in ("summary", "curves", "attacks", "transfer", "blackbox", "flags", "gan", "gallery", "manifest"):
        assert f'id="{section}"' in html
    assert "https://" not in html and "http://" not in html


def test_rerun_uses_cache_and_is_deterministic(small_suite, tmp_path, monkeypatch):
    out1, out2 = tmp_path / "a", tmp_path / "b"
    r1 = run_suite(small_suite, out=out1, progress=False)
    calls = []
    import robustbench_gan.run.jobs as executors

    monkeypatch.setattr(executors, "run_cell", lambda *a, **k: calls.append(1))
    r_cached = run_suite(small_suite, out=out1, progress=False)  # everything from the cache
    assert calls == [] and r_cached.table.drop(columns="seconds").equals(r1.table.drop(columns="seconds"))
    monkeypatch.undo()
    r2 = run_suite(small_suite, out=out2, progress=False)  # a fresh run, no cache: same numbers
    cols = [c for c in COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(r1.table[cols], r2.table[cols])


def test_seed_changes_results(small_suite):
    a = run_suite(small_suite, seed=1, progress=False).table
    b = run_suite(small_suite, seed=2, progress=False).table
    assert not a["robust_accuracy"].equals(b["robust_accuracy"]) or not a["clean_accuracy"].equals(b["clean_accuracy"])


def test_cells_are_independent_tasks(small_suite):
    suite = load_suite(small_suite)
    cells = plan_cells(suite)
    direct = [c for c in cells if c.source is None]
    transfer = [c for c in cells if c.source is not None]
    assert {(c.targets[0][0].name, c.attack.name) for c in direct} == {
        ("logistic", "fgsm"), ("logistic", "pgd5"), ("mlp", "fgsm"), ("mlp", "pgd5")}
    assert all(len(c.targets) == 1 for c in direct)
    # every ordered pair of models, for every transferable attack: one cell per (source, attack) crafts once and
    # evaluates every other classifier
    assert {(c.source_name, m.name, c.attack.name) for c in transfer for m, _ in c.targets} == {
        (s, t, a) for s in ("logistic", "mlp") for t in ("logistic", "mlp") if s != t for a in ("fgsm", "pgd5")}
    assert len(transfer) == 2 * 2
    pickle.loads(pickle.dumps(cells))  # plain, picklable tasks


def test_corrupt_weight_cache_is_retrained(small_suite, tmp_path):
    out = tmp_path / "o"
    r1 = run_suite(small_suite, out=out, progress=False)
    for f in (out / "cache" / "models").glob("*.pt"):
        f.write_bytes(b"garbage")
    for f in (out / "cache" / "cells").glob("*.json"):
        f.unlink()
    r2 = run_suite(small_suite, out=out, progress=False)
    assert r1.table["robust_accuracy"].equals(r2.table["robust_accuracy"])


def test_report_command_rerenders(small_suite, tmp_path):
    out = tmp_path / "o"
    run_suite(small_suite, out=out, progress=False)
    (out / "index.html").unlink()
    assert main(["report", str(out)]) == 0
    assert 'id="summary"' in (out / "index.html").read_text()
    assert main(["report", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-suite"], "neither a file nor a built-in suite"),
    (["run", "default", "--seed", "-3"], "non-negative integer"),
    (["run", "default", "--device", "tpu"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
    ([], "choose a command"),
])
def test_cli_bad_input_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_bad_suite_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace("epochs = 3", "epochz = 3"))
    assert main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "did you mean 'epochs'" in err


def test_cli_wrong_model_shape_exit_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "shapes.py").write_text(
        "from torch import nn\ndef wrong():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = tmp_path / "s.toml"
    suite.write_text(SMALL.replace('arch = "logistic"', 'factory = "shapes:wrong"'))
    assert main(["run", str(suite), "--out", str(tmp_path / "o")]) == 2
    assert "expected [batch, 10] logits" in capsys.readouterr().err


def test_cli_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("digits", "cnn", "fgsm", "pgd", "noise", "art:", "default"):
        assert word in out


def test_readme_benchmark_example_runs(tmp_path, monkeypatch):
    """The README's Python example runs as written."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "benchmark(" in b and 'load_dataset("digits")' in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    results = namespace["results"]
    table = results.table
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(table) == 6 and (table["robust_accuracy"] <= table["clean_accuracy"]).all()
    assert table["clean_accuracy"].iloc[0] > 0.85
    assert (tmp_path / "reports/my-model/index.html").is_file()


def test_benchmark_accepts_dataset_and_normalization(digits):
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from robustbench_gan import benchmark

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    ds = TensorDataset(digits.x_test[:50], digits.y_test[:50])
    r = benchmark(model, ds, attacks=("fgsm",), eps=(0.0, 0.1), mean=(0.3,), std=(0.4,), progress=False)
    assert len(r.records) == 2 and r.records[0]["robust_accuracy"] == r.records[0]["clean_accuracy"]
    from robustbench_gan.errors import DataError
    with pytest.raises(DataError, match=r"outside the declared bounds \[0, 1\]; rescale"):
        benchmark(model, (digits.x_test * 3, digits.y_test), progress=False)
    assert torch.is_tensor(digits.x_test)


def test_wilson_interval_matches_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0


def test_results_roundtrip(tmp_path):
    r = Results(records=[{c: None for c in COLUMNS} | {"model": "m", "robust_accuracy": float("nan")}],
                manifest={"seed": 0})
    r.write(tmp_path)
    back = Results.load(tmp_path)
    assert back.records[0]["model"] == "m" and back.records[0]["robust_accuracy"] is None


@pytest.mark.slow
def test_console_script_subprocess(tmp_path):
    """The installed console script: exit 0 on a run, exit 2 with one line and no traceback on bad input."""
    exe = Path(sys.executable).parent / "robustbench-gan"
    suite = tmp_path / "s.toml"
    suite.write_text(SMALL)
    ok = subprocess.run([str(exe), "-q", "run", str(suite), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "index.html").is_file()
    bad = subprocess.run([str(exe), "run", str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "missing.toml" in bad.stderr


@pytest.mark.slow
def test_mnist_suite_on_shared_split(tmp_path):
    """The built-in mnist suite on the real MNIST test split, when the shared folder is present."""
    root = ROOT.parent / "shared" / "data" / "mnist-t10k"
    if not root.is_dir():
        pytest.skip("no shared MNIST split on this machine")
    suite = tmp_path / "m.toml"
    suite.write_text(textwrap.dedent(f"""
        name = "mnist-small"
        [data]
        dataset = "mnist"
        root = "{root}"
        train_size = 2000
        test_size = 300
        [[models]]
        name = "cnn"
        epochs = 3
        [[attacks]]
        name = "fgsm"
        eps = [0.1, 0.3]
    """))
    r = run_suite(suite, progress=False)
    t = r.table
    assert t["clean_accuracy"].iloc[0] > 0.85 and t["robust_accuracy"].iloc[-1] < t["robust_accuracy"].iloc[0]
