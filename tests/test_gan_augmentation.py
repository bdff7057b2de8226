"""The gan-augmentation defense, the shared generator cache, and the GAN report data of a suite run."""
from __future__ import annotations

import json

import pytest
import torch

import robustbench_gan.gan.training as gan_training
from robustbench_gan.cli import main
from robustbench_gan.defenses import FitContext, make_defense
from robustbench_gan.defenses import gan_augmentation as gan_aug
from robustbench_gan.errors import ConfigError
from robustbench_gan.gan.cache import GeneratorCache
from robustbench_gan.gan.training import GanConfig, sample_balanced
from robustbench_gan.zoo import build_model
from robustbench_gan.classifier_training import TrainConfig
from robustbench_gan.core.weight_cache import WeightCache
from suite_files import NO_TRANSFER, suite_toml

SMALL_GAN = {"gan_epochs": 3, "width": 16, "z_dim": 16}


class Spy:
    """Records the training data each inner defense is fitted on, instead of training (fast)."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, object]] = []
        self.teachers: list = []
        spy = self

        def teacher_fit(defense, *args, **kwargs):
            spy.teachers.append(self._nodefense_fit(defense, *args, **kwargs))
            return spy.teachers[-1]

        def fake_fit(defense, make_model, data, *, train, seed, device, progress=True, context=None):
            spy.calls.append((type(defense).__name__, data))
            return defense.classifier(make_model, data, seed=seed)

        monkeypatch.setattr(gan_aug.AdversarialTraining, "fit", fake_fit)
        self._nodefense_fit = gan_aug.NoDefense.fit
        monkeypatch.setattr(gan_aug.NoDefense, "fit", lambda d, *a, **k: (
            teacher_fit(d, *a, **k) if d.name.endswith("-teacher") else fake_fit(d, *a, **k)))


def fit(defense, digits, context=None, epochs=2):
    return defense.fit(lambda: build_model("cnn", digits.spec), digits, train=TrainConfig(epochs=epochs), seed=0,
                       context=context,
                       device="cpu", progress=False)


def test_trains_on_real_plus_generated(digits, monkeypatch):
    spy = Spy(monkeypatch)
    defense = make_defense("gan-augmentation", samples=200, **SMALL_GAN)
    fit(defense, digits)
    (kind, data), = spy.calls
    n_real = len(digits.y_train)
    assert kind == "NoDefense" and len(data.y_train) == n_real + 200
    assert torch.equal(data.x_train[:n_real], digits.x_train) and torch.equal(data.x_test, digits.x_test)
    generated_y = data.y_train[n_real:]
    assert torch.equal(torch.bincount(generated_y, minlength=10), torch.full((10,), 20))  # balanced by class
    x_gen = data.x_train[n_real:]
    lo, hi = digits.spec.bounds
    assert x_gen.min() >= lo and x_gen.max() <= hi and x_gen.shape[1:] == digits.x_train.shape[1:]
    assert defense.generator is not None and len(defense.history.g_loss) > 0 and defense.generator_key


def test_teacher_relabels_and_filters(digits, monkeypatch):
    spy = Spy(monkeypatch)
    defense = make_defense("gan-augmentation", samples=300, labels="teacher", min_confidence=0.6, **SMALL_GAN)
    fit(defense, digits, epochs=8)
    (_, data), = spy.calls
    teacher, = spy.teachers
    n_real = len(digits.y_train)
    x_gen, y_gen = data.x_train[n_real:], data.y_train[n_real:]
    assert 0 < len(y_gen) < 300  # a 3-epoch GAN makes many samples the teacher is unsure about: dropped
    conf, pred = torch.softmax(teacher.predict(x_gen), 1).max(1)
    assert torch.equal(y_gen, pred) and bool((conf >= 0.6).all())


def test_adversarial_training_on_the_mix(digits, monkeypatch):
    spy = Spy(monkeypatch)
    fit(make_defense("gan-augmentation", samples=100, adversarial="pgd", eps=0.2, **SMALL_GAN), digits)
    (kind, data), = spy.calls
    assert kind == "AdversarialTraining" and len(data.y_train) == len(digits.y_train) + 100


def test_generator_is_shared_and_cached_on_disk(digits, tmp_path, monkeypatch):
    Spy(monkeypatch)
    context = FitContext(WeightCache(tmp_path))
    a = make_defense("gan-augmentation", name="a", samples=50, **SMALL_GAN)
    b = make_defense("gan-augmentation", name="b", samples=50, labels="teacher", **SMALL_GAN)
    c = make_defense("gan-augmentation", name="c", samples=50, **{**SMALL_GAN, "width": 8})
    for d in (a, b, c):
        fit(d, digits, context)
    assert [label for label, _ in context.built] == ["GAN generator"] * 2
    assert a.generator is b.generator and a.generator is not c.generator
    fresh = FitContext(WeightCache(tmp_path))  # a later run: loads from disk, trains nothing
    d = make_defense("gan-augmentation", name="d", samples=50, **SMALL_GAN)
    fit(d, digits, fresh)
    assert fresh.built == [] and d.history.g_loss == a.history.g_loss
    x_a, _ = sample_balanced(a.generator, 3, seed=5)
    x_d, _ = sample_balanced(d.generator, 3, seed=5)
    assert torch.equal(x_a, x_d)


def test_corrupt_generator_cache_is_retrained(digits, tmp_path):
    cfg = GanConfig(epochs=1, width=8, z_dim=8)
    first = GeneratorCache(WeightCache(tmp_path))
    first.get(digits, cfg, seed=0, device="cpu", progress=False)
    key = GeneratorCache().key(digits, cfg, 0)
    (tmp_path / "models" / f"{key}.history.json").write_text("{not json")
    again = GeneratorCache(WeightCache(tmp_path))
    again.get(digits, cfg, seed=0, device="cpu", progress=False)
    assert again.trained == 1


@pytest.mark.parametrize("params, message", [
    ({"labels": "oracle"}, "labels must be one of"),
    ({"min_confidence": 1.0}, "min_confidence"),
    ({"adversarial": "cw"}, "adversarial must be one of"),
    ({"samples": 0}, "samples"),
    ({"gan_epochs": 0}, "epochs"),
    ({"width": 2.5}, "width"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        make_defense("gan-augmentation", **params)


SUITE = suite_toml(
    "gan-small", seed=0, models=[{"name": "cnn", "arch": "cnn", "epochs": 4}],
    defenses=[{"name": "gan-aug", "kind": "gan-augmentation", "gan_epochs": 6, "width": 16},
              {"name": "gan-aug-teacher", "kind": "gan-augmentation", "labels": "teacher", "min_confidence": 0.5,
               "gan_epochs": 6, "width": 16}],
    transfer=NO_TRANSFER, evaluation={"n": 100})


@pytest.mark.slow
def test_suite_reports_gan_metrics_and_reuses_cache(tmp_path, monkeypatch):
    path = tmp_path / "gan.toml"
    path.write_text(SUITE)
    calls = []
    real_train = gan_training.train_gan
    monkeypatch.setattr(gan_training, "train_gan", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert main(["-q", "run", str(path), "--out", str(out), "--cache-dir", str(cache), "--device", "cpu"]) == 0
    assert len(calls) == 1  # two defenses, one GAN
    doc = json.loads((out / "results.json").read_text())
    assert [g["defense"] for g in doc["gan"]] == ["gan-aug", "gan-aug-teacher"]
    for g in doc["gan"]:
        assert set(g) == {"model", "defense", "pack", "unroll", "modes_captured", "high_quality_fraction", "class_kl", "fid",
                          "conditional_accuracy"}
        assert 0 <= g["high_quality_fraction"] <= 1 and g["class_kl"] >= 0 and g["fid"] >= 0
        assert 0 <= g["modes_captured"] <= 10 and 0 <= g["conditional_accuracy"] <= 1
    details, = doc["gan_details"]
    assert details["used_by"] == [{"model": "cnn", "defense": "gan-aug"}, {"model": "cnn", "defense": "gan-aug-teacher"}]
    assert details["gan"]["width"] == 16
    assert len(details["grid"]["images"]) == 10 and len(details["losses"]["d_loss"]) == len(details["losses"]["steps"])
    corners, = details["corner_cases"]
    assert corners["model"] == "cnn"
    assert len(corners["rate_per_class"]) == 10 and corners["n"] == 1000
    assert len(corners["items"]) == min(16, round(corners["fraction"] * 1000))
    assert all(0 <= item["conf"] <= 1 and (item["pred"] != item["label"] or item["conf"] < 0.5)
               for item in corners["items"])
    html = (out / "index.html").read_text()
    gan_html = html[html.index('id="gan"'):html.index('id="gallery"')]
    assert "Generator used by cnn / gan-aug, cnn / gan-aug-teacher" in gan_html
    assert gan_html.count("data:image/png;base64,") == 3  # sample grid, losses, corner cases
    # a second run takes the generator, the classifiers and the cells from the cache
    assert main(["-q", "run", str(path), "--out", str(tmp_path / "again"), "--cache-dir", str(cache),
                 "--device", "cpu"]) == 0
    assert len(calls) == 1
    assert json.loads((tmp_path / "again" / "results.json").read_text())["gan"] == doc["gan"]
