"""A researcher's first day with their own model (issue 21): each rough edge now works, or fails before anything
trains with a one-line error (exit 2 from the CLI) whose every suggestion, followed, gives correct numbers."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_gan import SanityFlagWarning, benchmark
from robustbench_gan.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def bn_net(digits) -> nn.Module:
    """A small convolutional net with batch norm, trained on pixels in [0, 1]: fed 0..255 values, its batch-norm
    statistics no longer fit and its accuracy collapses (as a ResNet's does)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
    return _fit(net, digits.x_train, digits.y_train, steps=60)


def _clean(res) -> float:
    return float(res.records[0]["clean_accuracy"])


def _quiet(**kwargs):
    return {"attacks": "fgsm", "eps": 0.1, "progress": False, **kwargs}


def test_uint8_images_are_scaled_and_every_suggestion_gives_correct_numbers(bn_net, digits):
    """uint8 images are scaled as torchvision's ToTensor does; a user who declares bounds=(0, 255) for a model
    trained on [0, 1] gets an input-scale flag whose advice, followed, gives the true clean accuracy; float images
    in 0..255 are refused with a message whose [0, 1] suggestion gives it too."""
    x, y = digits.x_test, digits.y_test
    truth = _clean(benchmark(bn_net, (x, y), **_quiet(checks=False)))
    assert truth > 0.8
    x8 = (x * 255).round().to(torch.uint8)
    assert _clean(benchmark(bn_net, (x8, y), **_quiet(checks=False))) == pytest.approx(truth, abs=1 / len(y))
    assert _clean(benchmark(bn_net, (x8.numpy(), y.numpy()), **_quiet(checks=False))) == \
        pytest.approx(truth, abs=1 / len(y))

    with pytest.warns(SanityFlagWarning, match="input-scale"):
        wrong = benchmark(bn_net, (x8, y), **_quiet(bounds=(0, 255), eps=25))
    assert _clean(wrong) < truth - 0.15
    (flag,) = [f for f in wrong.flags if f["check"] == "input-scale"]
    assert "x / 255 with bounds=(0, 1)" in flag["message"]
    followed = benchmark(bn_net, (x8.float() / 255, y), **_quiet(bounds=(0, 1)))
    assert _clean(followed) == pytest.approx(truth, abs=1 / len(y))
    assert "input-scale" not in {f["check"] for f in followed.flags}

    with pytest.raises(DataError) as err:
        benchmark(bn_net, (x8.float(), y), **_quiet())
    message = str(err.value)
    assert "\n" not in message and "x / 255" in message and "bounds=(0, 255)" in message
    assert _clean(benchmark(bn_net, (x8.float() / 255, y), **_quiet(checks=False))) == \
        pytest.approx(truth, abs=1 / len(y))


def test_flags_reach_a_python_user_who_set_up_no_logging(tmp_path):
    """A fresh process, no logging configured: benchmark() on a model that returns probabilities prints the flag's
    name on stderr (a SanityFlagWarning)."""
    code = textwrap.dedent('''
        import torch
        from torch import nn
        from robustbench_gan import benchmark, load_dataset
        d = load_dataset("digits")
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softmax(dim=1))
        benchmark(net, (d.x_test[:60], d.y_test[:60]), attacks="fgsm", eps=0.1, progress=False)
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SanityFlagWarning" in r.stderr and "outputs-are-probabilities" in r.stderr


def test_n_takes_the_first_samples_and_sample_ids_index_the_users_data(digits):
    """``n=100`` evaluates ``x[:100]`` (RobustBench's and every paper's choice), ``sample_id`` is the index in the
    data as given, so the rows line up with torchattacks run on ``x[:100]``; ``subset="random"`` keeps a seeded
    random subset, its ids still indices into the user's data."""
    torchattacks = pytest.importorskip("torchattacks")
    from yardstick import assert_not_weaker

    x, y = digits.x_test, digits.y_test
    net = _fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), digits.x_train,
               digits.y_train)
    res = benchmark(net, (x, y), attacks="pgd", eps=0.1, n=100, progress=False, checks=False)
    s = res.samples.sort_values("sample_id")
    assert s["sample_id"].tolist() == list(range(100))
    assert (y[s["sample_id"].to_numpy()].numpy() == s["true_label"].to_numpy()).all()
    with torch.no_grad():
        assert (net(x[:100]).argmax(1).numpy() == s["clean_pred"].to_numpy()).all()
    theirs = torchattacks.PGD(net, eps=0.1, alpha=0.025, steps=10, random_start=True)(x[:100], y[:100])
    with torch.no_grad():
        theirs_robust = torch.as_tensor((net(theirs).argmax(1) == y[:100]).numpy())
    assert_not_weaker(torch.as_tensor(s["robust"].to_numpy()), theirs_robust, "pgd on x[:100]")

    rnd = benchmark(net, (x, y), attacks="fgsm", eps=0.1, n=100, subset="random", progress=False, checks=False)
    ids = rnd.samples["sample_id"].to_numpy()
    assert ids.max() >= 100 and (y[ids].numpy() == rnd.samples["true_label"].to_numpy()).all()
    with pytest.raises(ConfigError, match="subset"):
        benchmark(net, (x, y), attacks="fgsm", eps=0.1, n=10, subset="last", progress=False)


def test_suite_sample_ids_index_the_source_file(tmp_path):
    """A suite on an .npz with its own test split and n = 30: the ids are positions in x_test, so y_test[id]
    is every row's label."""
    rng = np.random.default_rng(0)
    xt, yt = rng.random((80, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 80)
    np.savez(tmp_path / "d.npz", x=rng.random((40, 1, 8, 8), dtype=np.float32), y=rng.integers(0, 3, 40),
             x_test=xt, y_test=yt)
    (tmp_path / "s.toml").write_text(textwrap.dedent(f'''
        name = "ids"
        [data]
        dataset = "npz"
        path = "{tmp_path / 'd.npz'}"
        test_size = 60
        [[models]]
        name = "m"
        arch = "logistic"
        epochs = 1
        [[attacks]]
        name = "fgsm"
        kind = "fgsm"
        eps = [0.1]
        [evaluation]
        n = 30
    '''))
    from robustbench_gan.run import run_suite

    res = run_suite(tmp_path / "s.toml", progress=False, cache=False)
    s = res.samples
    assert len(set(s["sample_id"])) == 30 and (yt[s["sample_id"].to_numpy()] == s["true_label"].to_numpy()).all()


def test_layout_and_label_mistakes_fail_before_any_attack_with_the_fix(digits):
    """Channels-last images and 1-based labels: one line each, naming the fix; following it works. Negative labels
    are called evaluation labels, not "train"."""
    net = _fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), digits.x_train, digits.y_train, steps=50)
    x, y = digits.x_test[:50], digits.y_test[:50]
    rgb = torch.randn(6, 3, 32, 32).clamp(0, 1)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    conv(rgb[:1])
    with pytest.raises(DataError, match=r"channels-last.*permute\(0, 3, 1, 2\)") as err:
        benchmark(conv, (rgb.permute(0, 2, 3, 1), torch.arange(6)), **_quiet())
    assert "\n" not in str(err.value)
    benchmark(conv, (rgb.permute(0, 2, 3, 1).permute(0, 3, 1, 2), torch.arange(6)), **_quiet(checks=False))

    with pytest.raises(DataError, match=r"1-based; pass y - 1") as err:
        benchmark(net, (x, y + 1), **_quiet())
    followed = benchmark(net, (x, (y + 1) - 1), **_quiet(checks=False))
    assert _clean(followed) > 0.8
    with pytest.raises(DataError) as err:
        benchmark(net, (x, y - 1), **_quiet())
    assert "evaluation labels" in str(err.value) and "train" not in str(err.value)

    from robustbench_gan.errors import ModelError

    with pytest.raises(ModelError, match=r"fails on images of shape \(1, 8, 8\)"):
        benchmark(conv, (x, y), **_quiet())


def test_an_attack_that_cannot_run_on_the_classes_fails_before_training(tmp_path):
    """APGD-T on two classes: exit 2 at once (no classifier trained), naming the attack and what to use."""
    (tmp_path / "s.toml").write_text(textwrap.dedent('''
        name = "two"
        [data]
        dataset = "npz"
        path = "d.npz"
        [[models]]
        name = "m"
        arch = "cnn"
        epochs = 50
        [[attacks]]
        name = "aa-t"
        kind = "apgd-t"
        eps = [0.1]
    '''))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((200, 1, 8, 8), dtype=np.float32), y=rng.integers(0, 2, 200))
    r = subprocess.run([sys.executable, "-m", "robustbench_gan.cli", "run", "s.toml", "--out", "o"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: attack 'aa-t' (apgd-t)") and "at least 4 classes" in last and "apgd" in last
    assert "training" not in r.stderr and not (tmp_path / "o" / "cache").exists()


def test_one_based_labels_in_a_suite_file_are_refused_with_the_option_that_fixes_them(tmp_path, digits):
    """An .npz whose labels run 1..10: refused before training (exit 2) naming first_label; with first_label = 1 the
    run works and its labels are 0..9 again."""
    np.savez(tmp_path / "d.npz", x=digits.x_train.numpy(), y=digits.y_train.numpy() + 1,
             x_test=digits.x_test.numpy(), y_test=digits.y_test.numpy() + 1)
    suite = textwrap.dedent('''
        name = "one-based"
        [data]
        dataset = "npz"
        path = "d.npz"
        {extra}
        [[models]]
        name = "m"
        arch = "logistic"
        epochs = 3
        [[attacks]]
        name = "fgsm"
        kind = "fgsm"
        eps = [0.1]
        [evaluation]
        n = 50
    ''')
    (tmp_path / "s.toml").write_text(suite.format(extra=""))
    cli = [sys.executable, "-m", "robustbench_gan.cli", "-q", "run", "s.toml", "--out", "o"]
    r = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "labels run 1..10 and none is 0" in r.stderr and "first_label = 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "s.toml").write_text(suite.format(extra="first_label = 1"))
    r = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    samples = pd.read_csv(tmp_path / "o" / "samples.csv.gz")
    assert samples["true_label"].between(0, 9).all()
    assert (samples["true_label"].to_numpy() == digits.y_test.numpy()[samples["sample_id"].to_numpy()]).all()


def test_a_redirected_default_run_says_what_it_is_doing_at_every_stage(default_run):
    """The default suite with its output going to a pipe (no terminal): a line when each classifier starts
    training, one line per finished cell with throughput and ETA, a line when the report's figures start, and the
    flag summary at the end (the 30-second bound on silence itself is a wall-clock test below, in ``make test-heavy``)."""
    import json

    lines = [json.loads(s)["line"] for s in (default_run / "stderr.jsonl").read_text().splitlines()]
    doc = json.loads((default_run / "results.json").read_text())
    cells = [line for line in lines if " done: " in line and line.split(": ", 1)[1].startswith("cell ")]
    assert cells and len(cells) == int(re.search(r"cell \d+/(\d+) done", cells[0]).group(1)), cells[:3]
    assert all("samples x eps/s" in c and "ETA" in c for c in cells), cells[:3]
    trained = {(r["model"], r["defense"]) for r in doc["records"]}
    assert sum("training " in line for line in lines) >= len(trained)
    assert any("rendering the report" in line for line in lines)
    summary = [i for i, line in enumerate(lines) if "sanity flag(s)" in line]
    assert summary and f"{len(doc['flags'])} sanity flag(s)" in lines[summary[-1]]


@pytest.mark.slow
@pytest.mark.heavy
def test_a_redirected_default_run_is_never_silent_for_30_seconds(default_run):
    """Wall clock, so out of CI (``make test-heavy``: it depends on the machine's load and needs the default run,
    3.5 minutes, in that session too): a line at least every 30 s of work."""
    import json

    lines = [json.loads(s) for s in (default_run / "stderr.jsonl").read_text().splitlines()]
    times = [0.0] + [entry["t"] for entry in lines]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) <= 30.0, max(zip(gaps, [entry["line"] for entry in lines]))


STAND_IN = textwrap.dedent('''
    from torch import nn


    def ResNet18(num_classes=10):
        """A tiny stand-in with the same interface: normalised 3x32x32 images in, logits out."""
        return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                             nn.Flatten(), nn.Linear(128, num_classes))
''')


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own CIFAR-style model in one call", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


def test_the_readmes_first_example_runs_on_a_tiny_stand_in(tmp_path, monkeypatch, request):
    """The README's first code block, as written, on a tiny stand-in for ResNet18 and 24 synthetic CIFAR-shaped
    images (uint8 NHWC in an npz): normalisation applied by the wrapper, the checkpoint loaded without pickled code,
    the standard AutoAttack, and the export card; then the README's export command."""
    (tmp_path / "my_models.py").write_text(STAND_IN)
    sys.modules.pop("my_models", None)  # another test's module of that name
    request.addfinalizer(lambda: sys.modules.pop("my_models", None))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import my_models

    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1), torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(24) % 10
    x = (torch.rand(24, 3, 32, 32, generator=g) * 0.5 + 0.05 * y.view(-1, 1, 1, 1)).clamp(0, 1)
    x8 = (x * 255).round().to(torch.uint8)
    net = _fit(my_models.ResNet18(), (x8.float() / 255 - mean) / std, y, steps=200)
    torch.save(net.state_dict(), tmp_path / "resnet18_cifar10.pt")
    np.savez(tmp_path / "cifar10_test.npz", x_test=x8.permute(0, 2, 3, 1).numpy(), y_test=y.numpy())
    with torch.no_grad():
        truth = float((net((x8.float() / 255 - mean) / std).argmax(1) == y).float().mean())

    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SanityFlagWarning)
        exec(compile(_readme_example(), "README.md", "exec"), namespace)
    results = namespace["results"]
    rows = results.table
    cascade = rows[rows["attack"] == "autoattack"]
    assert len(cascade) == 1 and cascade["clean_accuracy"].iloc[0] == pytest.approx(truth)
    assert results.manifest["standard_autoattack"] == ["autoattack"]
    assert sorted(results.samples["sample_id"].unique()) == list(range(24))

    from robustbench_gan.cli import main

    assert main(["-q", "export", "reports/resnet18"]) == 0
    (card_path,) = (tmp_path / "reports" / "resnet18" / "robustbench").rglob("*.json")
    import json

    card = json.loads(card_path.read_text())
    assert card["eps"] == "8/255" and card["footnote"].startswith("AutoAttack (standard")
    assert float(card["autoattack_acc"]) == pytest.approx(100 * cascade["robust_accuracy"].iloc[0], abs=0.01)


from test_first_hour import TINY  # noqa: E402  (a one-model suite on digits)


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robustbench_gan.cli", "run", "t.toml", "--out", "o", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_other_threads_say_the_cache_holds_the_cells_and_how_to_reuse_them(tmp_path):
    """A rerun with other --threads recomputes (the numbers may differ in the last bits) and says that the cache
    holds the same cells and which flag reuses them; following it resumes everything. With every cell cached, the
    Ray executor is not started at all."""
    (tmp_path / "t.toml").write_text(TINY)
    assert _run_cli(tmp_path, "--threads", "1").returncode == 0
    other = _run_cli(tmp_path, "--threads", "2")
    assert other.returncode == 0, other.stderr
    assert "in the cache under other numerics (cpu/threads=1" in other.stderr
    assert "rerun with --threads 1" in other.stderr
    again = _run_cli(tmp_path, "--threads", "1")
    assert "resuming: 1 of 1 cells cached (nothing to compute)" in again.stderr
    assert "other numerics" not in again.stderr
    ray = _run_cli(tmp_path, "--executor", "ray", "--num-cpus", "1")
    assert ray.returncode == 0, ray.stderr
    assert "the RayExecutor executor is not started" in ray.stderr and "Started a local Ray instance" not in ray.stderr


def test_a_randomized_model_has_one_clean_accuracy_per_run_and_its_rand_autoattack_fills_the_card(digits):
    """A model with noise in its forward pass: every row of a run (each attack, the cascade and its components)
    reports the same clean accuracy, from one seeded clean pass; the export card takes the rand version's
    number and says so."""
    from robustbench_gan.attacks import AutoAttack
    from robustbench_gan.export import robustbench_entries

    net = _fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), digits.x_train,
               digits.y_train)

    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = net

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.inner(z + 0.35 * torch.randn_like(z))

    x, y = digits.x_test[:150], digits.y_test[:150]
    with torch.no_grad():
        draws = {float((Noisy()(x).argmax(1) == y).float().mean()) for _ in range(5)}
    assert len(draws) > 1  # the model really is random: each clean pass would give its own accuracy
    cascade = AutoAttack(version="custom", attacks=["apgd-ce", "square"], steps=5, queries=20)
    res = benchmark(Noisy(), (x, y), attacks=("fgsm", "pgd", cascade), eps=(0.1, 0.2), progress=False,
                    checks=False)
    assert len(res.records) == 2 * 3 + 2 * 2
    assert len({r["clean_accuracy"] for r in res.records}) == 1, {r["attack"]: r["clean_accuracy"] for r in res.records}
    again = benchmark(Noisy(), (x, y), attacks="fgsm", eps=0.1, progress=False, checks=False)
    assert again.records[0]["clean_accuracy"] == res.records[0]["clean_accuracy"]

    rand = AutoAttack(version="rand")
    assert rand.reference_version == "rand" and not rand.is_standard
    assert AutoAttack(version="rand", steps=10).reference_version is None
    board = [{"model": "m", "defense": "none", "norm": "inf", "eps": 0.1, "n": 100, "clean_accuracy": 0.9,
              "worst_case_accuracy": 0.3, "worst_case_low": 0.2, "worst_case_high": 0.4, "attacks": 2,
              "strongest_attack": "aa"}]
    records = [{"attack": "aa", "model": "m", "defense": "none", "norm": "inf", "eps": 0.1, "source": "",
                "robust_accuracy": 0.35}]
    from robustbench_gan.results import Results

    ran = Results(manifest={"suite": "s", "standard_autoattack": [], "autoattack_versions": {"aa": "rand"}},
                  leaderboard=board)
    ran.extend(records)
    (card,) = robustbench_entries(ran)
    assert card["autoattack_acc"] == "35.00" and "rand version" in card["footnote"]
    assert "not AutoAttack" not in card["footnote"]
