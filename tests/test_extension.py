"""Extending the toolkit is one file: an attack, or a defense with its own report section, written in a module of
the user's (here a temporary one, imported as a suite run would import it) and registered there, runs through a
suite and shows in the report; no file of the package is touched."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from robustbench_gan.attacks import ATTACKS
from robustbench_gan.data import DATASETS
from robustbench_gan.errors import ConfigError
from robustbench_gan.defenses import DEFENSES
from robustbench_gan.reports import sections as report_sections
from robustbench_gan.reports import write_run
from robustbench_gan.run import run_suite
from robustbench_gan.suite import validate_suite

ATTACK_MODULE = '''
import torch

from robustbench_gan.attacks import ATTACKS, Attack


@ATTACKS.register("sign-of-noise")
class SignOfNoise(Attack):
    """A throwaway attack: a seeded random sign step of size eps (a baseline)."""

    role = "baseline"

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    def perturb(self, clf, x, goal, *, eps):
        g = torch.Generator().manual_seed(self.seed)
        step = torch.randint(0, 2, x.shape, generator=g).to(x) * 2 - 1
        return (x + eps * step).clamp(*clf.bounds)
'''

DEFENSE_MODULE = '''
from robustbench_gan.defenses import DEFENSES
from robustbench_gan.defenses.base import NoDefense
from robustbench_gan.reports.sections import register_section


@DEFENSES.register("noted-training")
class NotedTraining(NoDefense):
    """A throwaway defense: standard training that reports what it trained on in a section of its own."""

    def __init__(self, *, note: str = "", name=None) -> None:
        super().__init__(name=name)
        self.note = note

    def report(self, ctx):
        return {"training-notes": {"model": ctx.model, "train samples": len(ctx.data.y_train), "note": self.note}}


register_section("training-notes", "Training notes",
                 "<ul>{% for p in section %}<li>{{ p.model }}: {{ p['train samples'] }} samples, {{ p.note }}</li>"
                 "{% endfor %}</ul>", build=lambda payloads, results: payloads)
'''


DATASET_MODULE = '''
import numpy as np
import torch

from robustbench_gan.data import DATASETS, Data, DataSpec


@DATASETS.register("signed-digits", bounds=(-1.0, 1.0), paths=("folder",))
def load_signed_digits(*, folder: str = ".", n: int = 600) -> Data:
    """A throwaway data set: scikit-learn's digits in [-1, 1], as many tools store images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:n] / 8.0 - 1.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:n], dtype=torch.long)
    spec = DataSpec("signed-digits", (1, 8, 8), 10, bounds=(-1.0, 1.0))
    return Data(x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :], spec)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Import a module written to a temporary folder; the registries it adds to are restored afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry in (ATTACKS, DEFENSES, DATASETS):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
        monkeypatch.setattr(registry, "_meta", dict(registry._meta))
    monkeypatch.setattr(report_sections, "SECTIONS", dict(report_sections.SECTIONS))

    def load(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return importlib.import_module(name)

    return load


def suite(**parts):
    doc = {"name": "extension", "data": {"dataset": "digits"}, "models": [{"name": "m", "arch": "logistic", "epochs": 2}],
           "attacks": [{"name": "fgsm", "kind": "fgsm", "eps": [0.1]}], "evaluation": {"n": 60},
           "transfer": {"sources": "none"}}
    doc.update(parts)
    return validate_suite(doc)


def test_an_attack_in_one_file_runs_through_a_suite_and_the_report(user_module, tmp_path):
    user_module("user_attack", ATTACK_MODULE)
    res = run_suite(suite(attacks=[{"name": "noise-step", "kind": "sign-of-noise", "eps": [0.1, 0.3], "seed": 3}]),
                    progress=False, cache=False)
    rows = res.table
    assert list(rows["attack"]) == ["noise-step", "noise-step"] and set(rows["attack_role"]) == {"baseline"}
    assert (rows["robust_accuracy"] <= rows["clean_accuracy"]).all() and (rows["mean_linf"] > 0.09).all()
    write_run(res, tmp_path / "out")
    assert "noise-step" in (tmp_path / "out" / "index.html").read_text()


def test_a_defense_in_one_file_adds_its_report_section_under_its_own_heading(user_module, tmp_path):
    user_module("user_defense", DEFENSE_MODULE)
    res = run_suite(suite(defenses=[{"name": "noted", "kind": "noted-training", "note": "hello <world>"}]),
                    progress=False, cache=False)
    assert res.sections == {"training-notes": [{"model": "m", "train samples": 1348, "note": "hello <world>"}]}
    write_run(res, tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text()
    assert '<a href="#training-notes">Training notes</a>' in page
    assert '<section id="training-notes">\n  <h2>Training notes</h2>' in page
    assert "<li>m: 1348 samples, hello &lt;world&gt;</li>" in page  # escaped like every value in the report


def test_a_section_nobody_registered_is_shown_as_a_table_not_dropped(user_module, tmp_path):
    """Re-rendered from results.json without the defense's module: the payloads still appear, generically."""
    user_module("user_defense", DEFENSE_MODULE)
    res = run_suite(suite(defenses=[{"name": "noted", "kind": "noted-training", "note": "n"}]), progress=False,
                    cache=False)
    write_run(res, tmp_path / "out")
    from robustbench_gan.reports.html import render_report
    from robustbench_gan.results import Results

    report_sections.SECTIONS.clear()
    page = render_report(Results.load(tmp_path / "out"))
    assert '<section id="training-notes">\n  <h2>Training notes</h2>' in page
    assert "<tr><th>train samples</th><td>1348</td></tr>" in page


def test_section_ids_of_the_page_itself_are_refused():
    with pytest.raises(ValueError, match="other than"):
        report_sections.register_section("summary", "Mine")


def test_a_dataset_in_one_file_declares_its_bounds_and_path_options(user_module, tmp_path):
    """Its registration says [-1, 1] (so a suite checks eps against a range of 2, before loading anything) and
    which option is a path (resolved against the suite's folder); a run attacks within those bounds."""
    user_module("user_dataset", DATASET_MODULE)
    data = {"dataset": "signed-digits", "folder": "images"}
    with pytest.raises(ConfigError, match=r"eps 2.5 is larger than the data's whole pixel range \[-1, 1\]"):
        suite(data=data, attacks=[{"name": "fgsm", "kind": "fgsm", "eps": [2.5]}])
    (tmp_path / "suite").mkdir()
    resolved = validate_suite({"name": "x", "data": data, "models": [{"name": "m", "arch": "logistic"}],
                               "attacks": [{"name": "fgsm", "kind": "fgsm", "eps": [0.2]}]},
                              source=str(tmp_path / "suite" / "s.toml"), base=tmp_path / "suite")
    assert resolved.data["folder"] == str(tmp_path / "suite" / "images")
    res = run_suite(suite(data={"dataset": "signed-digits"}, attacks=[{"name": "fgsm", "kind": "fgsm", "eps": [0.2, 1.5]}]),
                    progress=False, cache=False)
    assert list(res.table["eps"]) == [0.2, 1.5] and res.table["robust_accuracy"].iloc[1] < 0.5
    assert (res.samples["perturbation"] <= 1.5 + 1e-6).all()
