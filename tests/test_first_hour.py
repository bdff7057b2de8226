"""The first hour of a new user (issue: plugging in your own classifier works the way RobustBench and torchattacks
users expect): each rough edge found then now works, or fails with a one-line error and exit 2 naming the fix."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustbench_gan import benchmark
from robustbench_gan.cli import main
from robustbench_gan.errors import ConfigError, DataError
from suite_files import FGSM, suite_toml

ROOT = Path(__file__).resolve().parents[1]

NETS = textwrap.dedent('''
    from torch import nn


    def make(num_classes=3):
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                             nn.Linear(128, num_classes))
''')

USER_SUITE = textwrap.dedent('''
    name = "mine"
    seed = 0

    [data]
    dataset = "imagefolder"
    root = "images"
    mean = [0.5, 0.4, 0.3]
    std = [0.25, 0.2, 0.3]

    [[models]]
    name = "net"
    factory = "mymodels.nets:make"     # a package next to this file, found without PYTHONPATH
    weights = "net.pt"                 # saved from the bare model: the wrapper owns normalization

    [[models]]
    name = "net-own-norm"
    factory = "mymodels.nets:make"
    weights = "net.pt"
    mean = [0.45, 0.45, 0.45]
    std = [0.2, 0.2, 0.2]

    [[attacks]]
    name = "pgd"
    kind = "pgd"
    steps = 3
    eps = [0.02, 0.05]

    [transfer]
    sources = "none"
''')


def _write_user_project(folder: Path) -> None:
    from PIL import Image

    (folder / "mymodels").mkdir(parents=True)
    (folder / "mymodels" / "__init__.py").write_text("")
    (folder / "mymodels" / "nets.py").write_text(NETS)
    g = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog", "fox")):
        (folder / "images" / name).mkdir(parents=True)
        for i in range(12):
            img = np.clip(g.normal(60 + 60 * c, 30, (10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / "images" / name / f"{i}.png")
    (folder / "suite.toml").write_text(USER_SUITE)
    sys.path.insert(0, str(folder))
    try:
        import mymodels.nets as nets

        torch.manual_seed(0)
        torch.save(nets.make().state_dict(), folder / "net.pt")
    finally:
        sys.path.remove(str(folder))
        for mod in [m for m in sys.modules if m == "mymodels" or m.startswith("mymodels.")]:
            del sys.modules[mod]


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    return subprocess.run([sys.executable, "-m", "robustbench_gan.cli", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_user_model_suite_with_normalization_on_an_image_folder(tmp_path):
    """mean/std per data set and per model; a factory package next to the suite file; weights of the bare model;
    then a rerun says how much it resumes; the output lines stay clean when redirected."""
    project = tmp_path / "project"
    _write_user_project(project)
    first = _cli(["run", "suite.toml", "--out", "out", "--device", "cpu"], cwd=project)
    assert first.returncode == 0, first.stderr
    assert "samples.csv.gz" in first.stdout and "index.html" in first.stdout
    assert "ART_DATA_PATH" not in first.stderr and "\r" not in first.stderr  # no ART chatter, no progress bars
    doc = json.loads((project / "out" / "results.json").read_text())
    models = {r["model"] for r in doc["records"]}
    assert models == {"net", "net-own-norm"}
    assert doc["manifest"]["data"]["mean"] == [0.5, 0.4, 0.3]
    again = _cli(["run", "suite.toml", "--out", "out", "--device", "cpu"], cwd=project)
    assert again.returncode == 0 and "resuming: 2 of 2 cells cached" in again.stderr, again.stderr


def test_model_normalization_reaches_the_wrapper(tmp_path, monkeypatch):
    from robustbench_gan.run import NO_DEFENSE
    from robustbench_gan.run.classifier_store import ClassifierStore
    from robustbench_gan.run.pipeline import load_suite_data
    from robustbench_gan.suite import load_suite

    project = tmp_path / "p"
    _write_user_project(project)
    monkeypatch.chdir(project)
    suite = load_suite("suite.toml")
    data = load_suite_data(suite)
    assert data.spec.mean == (0.5, 0.4, 0.3) and data.spec.std == (0.25, 0.2, 0.3)
    store = ClassifierStore(data, seed=0, device="cpu", x_check=data.x_test, y_check=data.y_test, progress=False,
                        checks=False, models=suite.models)
    plain, own = (store.obtain(m, NO_DEFENSE)[0] for m in suite.models)
    assert torch.allclose(plain.mean.flatten(), torch.tensor([0.5, 0.4, 0.3]))
    assert torch.allclose(own.mean.flatten(), torch.tensor([0.45, 0.45, 0.45]))
    assert set(plain.model.state_dict()) == set(own.model.state_dict())  # the bare model's keys: weights load


def test_model_input_bounds_rescale_inside_the_wrapper():
    from robustbench_gan import Classifier

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(x)
            return torch.zeros(len(x), 2)

    clf = Classifier(Probe(), num_classes=2, bounds=(0.0, 1.0), input_bounds=(0.0, 255.0))
    clf(torch.tensor([[[[0.0, 0.5, 1.0]]]]))
    assert torch.allclose(seen[0], torch.tensor([[[[0.0, 127.5, 255.0]]]]))


def test_a_factory_that_is_nowhere_names_where_it_looked(tmp_path):
    (tmp_path / "s.toml").write_text(textwrap.dedent('''
        name = "x"
        [[models]]
        name = "m"
        factory = "nowhere_pkg.nets:make"
        [[attacks]]
        name = "fgsm"
        eps = [0.1]
    '''))
    r = _cli(["run", "s.toml", "--out", "o", "--device", "cpu", "-q"], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "nowhere_pkg" in r.stderr and "next to the suite file" in r.stderr


TINY = suite_toml("tiny", evaluation={"n": 40})


def test_global_flags_after_the_command_and_bench_help(tmp_path, capsys):
    (tmp_path / "t.toml").write_text(TINY)
    assert main(["run", str(tmp_path / "t.toml"), "-q", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("images per batch", "PGD steps", "repetitions", "where to measure"):
        assert phrase in text


def test_ctrl_c_says_what_was_kept(tmp_path, monkeypatch, capsys):
    import robustbench_gan.defenses.base as defenses_base

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    (tmp_path / "t.toml").write_text(TINY)
    monkeypatch.setattr(defenses_base, "train_model", interrupt)
    assert main(["run", str(tmp_path / "t.toml"), "-q", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 130
    err = capsys.readouterr().err
    assert "nothing was cached" in err and "finished cells are cached" not in err
    monkeypatch.undo()
    assert main(["run", str(tmp_path / "t.toml"), "-q", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0


def test_export_card_lists_each_flag_once_and_counts_attacks_in_words():
    from robustbench_gan.export import robustbench_entries
    from robustbench_gan.results import Results

    board = [{"model": "m", "defense": "none", "norm": "inf", "eps": 0.1, "n": 10, "clean_accuracy": 0.9,
              "worst_case_accuracy": 0.5, "worst_case_low": 0.2, "worst_case_high": 0.8, "attacks": 1,
              "strongest_attack": "pgd", "strongest_attack_accuracy": 0.5}]
    flags = [{"check": "accuracy-rises-with-eps", "model": "m", "defense": "none", "attack": a} for a in ("a", "b")]
    (card,) = robustbench_entries(Results(manifest={"suite": "s"}, flags=flags, leaderboard=board))
    assert card["sanity_flags"] == ["accuracy-rises-with-eps"]
    assert "over 1 attack of" in card["footnote"]


# ------------------------------------------------------------------------------------------ the Python API


@pytest.fixture(scope="module")
def small(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(digits.x_train), digits.y_train).backward()
        opt.step()
    return model.eval()


def _records(res):
    return [(r["attack"], r["eps"], r["robust_accuracy"]) for r in res.records]


def test_benchmark_accepts_what_users_pass(small, digits):
    x, y = digits.x_test[:60], digits.y_test[:60]
    base = benchmark(small, (x, y), attacks=("pgd",), eps=(0.1,), progress=False, checks=False)
    same = [
        benchmark(small, (x, y), attacks="pgd", eps=0.1, progress=False, checks=False),
        benchmark(small, (x, y), attacks=("PGD",), eps=[0.1], progress=False, checks=False),
        benchmark(small, (x.numpy(), y.numpy()), attacks="pgd", eps=0.1, progress=False, checks=False),
        benchmark(small, DataLoader(TensorDataset(x, y), batch_size=16), attacks="pgd", eps=0.1, progress=False,
                  checks=False),
        benchmark(small, (x, torch.nn.functional.one_hot(y, 10)), attacks="pgd", eps=0.1, progress=False,
                  checks=False),
    ]
    for res in same:
        assert _records(res) == _records(base)
    assert base.records[0]["attack_kind"] == "pgd" and base.records[0]["queries"] > 0
    whole = benchmark(small, digits, attacks="fgsm", eps=0.1, n=50, progress=False, checks=False)  # a Data object
    assert whole.records[0]["n"] == 50


def test_benchmark_refuses_an_eps_in_grey_levels(small, digits):
    with pytest.raises(ConfigError, match=r"8/255"):
        benchmark(small, (digits.x_test[:20], digits.y_test[:20]), attacks="pgd", eps=(8,), progress=False)


def test_benchmark_restores_the_callers_train_mode_and_says_so(digits, caplog):
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10)).train()
    with caplog.at_level(logging.WARNING, logger="robustbench_gan"):
        benchmark(model, (digits.x_test[:20], digits.y_test[:20]), attacks="fgsm", eps=0.1, progress=False,
                  checks=False)
    assert model.training
    assert sum("train mode" in r.getMessage() for r in caplog.records) == 1


def test_normalized_evaluation_data_gets_a_fix_not_a_train_message(small, digits):
    x = (digits.x_test[:20] - 0.5) / 0.25
    with pytest.raises(DataError) as err:
        benchmark(small, (x, digits.y_test[:20]), attacks="fgsm", eps=0.1, progress=False)
    text = str(err.value)
    assert "train" not in text and "mean" in text and "std" in text and "evaluation" in text
    with pytest.raises(DataError, match="one-hot"):
        benchmark(small, (digits.x_test[:20], torch.rand(20, 10)), attacks="fgsm", eps=0.1, progress=False)


def test_deepfool_through_benchmark_is_batched_and_keeps_its_distances(small, digits, monkeypatch):
    """ART's default batch_size=1 is replaced by the evaluation batch; rows and samples carry real L2 distances."""
    from robustbench_gan.attacks.art import ArtAttack

    built = []
    build = ArtAttack._build
    monkeypatch.setattr(ArtAttack, "_build", lambda self, *a, **kw: built.append(build(self, *a, **kw)) or built[-1])
    x, y = digits.x_test[:100], digits.y_test[:100]
    res = benchmark(small, (x, y), attacks="art:DeepFool", eps=(0.5, 1.0), progress=False, checks=False)
    assert built and all(type(a).__name__ == "DeepFool" and a.batch_size == 100 for a in built), built
    rows = {r["eps"]: r for r in res.records}
    assert all(r["norm"] == "2" and r["attack_role"] == "minimum-norm" for r in rows.values())
    assert rows[0.5]["mean_l2"] > 0 and rows[0.5]["mean_l2"] == rows[1.0]["mean_l2"]  # the distances found
    found = res.samples[res.samples["eps"] == 0.5]["perturbation"]
    assert (found > 0).sum() > 50 and np.isfinite(found).sum() > 50
    assert rows[0.5]["robust_accuracy"] >= rows[1.0]["robust_accuracy"]
    from robustbench_gan.reports.html import render_report

    assert 'id="minimum-norm"' in render_report(res)


def test_threads_option_sets_the_numerics_and_is_restored(tmp_path):
    (tmp_path / "t.toml").write_text(TINY)
    before = torch.get_num_threads()
    assert main(["run", str(tmp_path / "t.toml"), "-q", "--out", str(tmp_path / "o"), "--device", "cpu",
                 "--threads", "1"]) == 0
    assert torch.get_num_threads() == before
    manifest = json.loads((tmp_path / "o" / "results.json").read_text())["manifest"]
    assert manifest["numerics"] == "cpu/threads=1"
    assert main(["run", str(tmp_path / "t.toml"), "-q", "--out", str(tmp_path / "o"), "--threads", "0"]) == 2


def test_benchmark_more_inputs_randomized_models_and_submodule_modes(small, digits):
    from torch.utils.data import IterableDataset

    x, y = digits.x_test[:40], digits.y_test[:40]
    base = benchmark(small, (x, y), attacks="fgsm", eps=0.1, progress=False, checks=False)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(zip(x, y))

    pairs = [(x[i], y[i]) for i in range(len(x))]
    for data, eps in ((pairs, np.float64(0.1)), (Stream(), torch.tensor([0.1], dtype=torch.float64))):
        assert _records(benchmark(small, data, attacks="fgsm", eps=eps, progress=False, checks=False)) == \
            _records(base)

    class Noisy(nn.Module):  # random at evaluation time: same seed must still give the same numbers
        def __init__(self):
            super().__init__()
            self.inner = small

        def forward(self, z):
            return self.inner(z + 0.2 * torch.randn_like(z))

    runs = [_records(benchmark(Noisy(), (x, y), attacks="pgd", eps=0.1, seed=0, progress=False, checks=False))
            for _ in range(2)]
    assert runs[0] == runs[1]

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Linear(16, 10)).train()
    net[2].eval()  # a frozen batch norm inside a model being fine-tuned
    benchmark(net, (x, y), attacks="fgsm", eps=0.1, progress=False, checks=False)
    assert net.training and not net[2].training


def test_apgd_transfers_full_strength_examples(cnn, digits):
    from robustbench_gan.attacks import APGD, Goal

    x, y = digits.x_test[:60], digits.y_test[:60]
    attack = APGD(steps=10)
    first = attack.perturb(cnn, x, Goal(y), eps=0.2)
    full = attack.transfer_many(cnn, x, Goal(y), [0.2])[0]
    assert float((full - x).abs().amax()) <= 0.2 + 1e-6

    def loss(xa):
        return float(nn.functional.cross_entropy(cnn.predict(xa), y))

    assert loss(full) > loss(first)  # every step's best point, not the first success
    def acc(xa):
        return float((cnn.predict(xa).argmax(1) == y).float().mean())

    assert acc(full) <= acc(first)


def test_art_info_lines_stay_out_of_the_output_and_the_readme_lists_the_extra_columns(tmp_path):
    (tmp_path / "a.toml").write_text(suite_toml("tiny", attacks=[{**FGSM, "kind": "art:FastGradientMethod"}],
                                                 evaluation={"n": 40}))
    r = _cli(["run", "a.toml", "--out", "o", "--device", "cpu"], cwd=tmp_path)  # INFO level: our lines only
    assert r.returncode == 0, r.stderr
    assert "robustbench_gan" in r.stderr and "ART_DATA_PATH" not in r.stderr and "Inferred" not in r.stderr
    assert json.loads((tmp_path / "o" / "results.json").read_text())["records"][0]["attack_kind"] == \
        "art:FastGradientMethod"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for column in ("attack_kind", "attack_role", "defense_kind"):
        assert f"`{column}`" in readme
