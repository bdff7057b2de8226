"""Defense-GAN on digits: the projection (deterministic, batch-independent, runs under no_grad, masks naive
gradients), the weight-cache round trip, and the must-show: it looks robust to naive PGD while BPDA and the
unrolled projection break it."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.attacks import make_attack
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.attacks.base import Goal, flat_norm, input_gradient
from robustbench_gan.defenses import DefenseGanProjection, make_defense
from robustbench_gan.errors import ConfigError
from robustbench_gan.zoo import build_model
from robustbench_gan.purified import PurifiedClassifier, gradient_view, naive_gradients_masked
from robustbench_gan.classifier_training import TrainConfig
from suite_files import NO_TRANSFER, suite_toml

SMALL = {"gan_epochs": 12, "width": 32, "z_dim": 16, "steps": 50, "restarts": 4}
"""~10 s to fit on 2 cores; the paper's L = 200, R = 10 cost 16x more per purification."""


def _make(digits):
    return lambda: build_model("cnn", digits.spec)


@pytest.fixture(scope="module")
def defended(digits):
    defense = make_defense("defense-gan", **SMALL)
    clf = defense.fit(_make(digits), digits, train=TrainConfig(epochs=10), seed=0, device="cpu", progress=False)
    return defense, clf


def test_projection_is_deterministic_batch_independent_and_no_grad_safe(defended, digits):
    _, clf = defended
    assert isinstance(clf, PurifiedClassifier) and isinstance(clf.purifier, DefenseGanProjection)
    x = digits.x_test[:12]
    with torch.no_grad():
        a = clf.purify(x)
    b = clf.purify(x)
    assert torch.equal(a, b) and a.shape == x.shape and not a.requires_grad
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.allclose(clf.purify(x[3:7]), a[3:7], atol=1e-4)  # a sample's projection ignores its batch
    err, apart = float(((a - x) ** 2).mean()), float(((x - x.roll(1, 0)) ** 2).mean())
    assert err < 0.5 * apart, (err, apart)  # close to the input (measured 0.032 vs 0.13 between digits)
    assert not clf.purifier.generator.training
    assert naive_gradients_masked(clf)
    goal = Goal(digits.y_test[:12])
    grad, _ = input_gradient(clf, x, goal)
    assert float(grad.abs().max()) == 0.0  # naive gradients vanish: the masking the checks flag
    grad, _ = input_gradient(gradient_view(clf, "unroll"), x, goal)
    assert float(grad.abs().max()) > 0.0


def test_whole_state_round_trips_through_the_skeleton(defended, digits):
    defense, clf = defended
    skeleton = defense.classifier(_make(digits), digits, seed=0)
    assert any(k.startswith("purifier.generator.") for k in skeleton.state_dict())
    skeleton.load_state_dict(clf.state_dict())
    skeleton.eval()
    x = digits.x_test[:8]
    assert torch.equal(skeleton.predict(x), clf.predict(x))


@pytest.mark.slow
def test_naive_pgd_is_masked_and_adaptive_attacks_break_it(defended, digits):
    """Measured (100 test digits, eps 0.2, PGD-10; ~30 s): clean 0.86, naive 0.85, BPDA 0.22, unroll 0.17,
    latent 0.28."""
    _, clf = defended
    x, y = digits.x_test[:100], digits.y_test[:100]
    robust = {}
    for adaptive in ("none", "bpda", "unroll", "latent"):
        attack = make_attack("latent") if adaptive == "latent" else make_attack("pgd", steps=10, adaptive=adaptive)
        (outcome,) = evaluate_attack(clf, x, y, attack, [0.2], progress=False)
        robust[adaptive] = outcome.metrics["robust_accuracy"]
        clean = outcome.metrics["clean_accuracy"]
    assert clean >= 0.75
    assert robust["none"] >= clean - 0.1, robust  # looks robust to the naive attack
    assert robust["bpda"] <= robust["none"] - 0.3, robust
    assert robust["unroll"] <= robust["none"] - 0.3, robust
    assert robust["latent"] <= robust["none"] - 0.3, robust


@pytest.mark.parametrize("norm, eps", [("inf", 0.2), ("2", 1.0)])
def test_latent_attack_returns_valid_perturbations(defended, digits, norm, eps):
    _, clf = defended
    x, y = digits.x_test[:16], digits.y_test[:16]
    attack = make_attack("latent", norm=norm, steps=20)
    xa = attack(clf, x, attack.make_goal(clf, x, y), eps=eps)
    assert xa.shape == x.shape and float(xa.min()) >= 0 and float(xa.max()) <= 1
    assert float(flat_norm(xa - x, norm).max()) <= eps + 1e-5
    assert not torch.equal(xa, x)
    assert torch.equal(attack(clf, x, attack.make_goal(clf, x, y), eps=0.0), x)


def test_latent_attack_without_a_generator_is_pgd(cnn, digits):
    x, y = digits.x_test[:16], digits.y_test[:16]
    latent = make_attack("latent", steps=5)
    pgd = make_attack("pgd", steps=5, loss="margin")
    goal = latent.make_goal(cnn, x, y)
    assert torch.equal(latent(cnn, x, goal, eps=0.1), pgd(cnn, x, goal, eps=0.1))


@pytest.mark.parametrize("params, message", [
    ({"steps": 0}, "steps"), ({"restarts": 1.5}, "restarts"), ({"lr": -1}, "lr"), ({"unroll_steps": 0}, "unroll"),
    ({"gan_epochs": 0}, "epochs"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        make_defense("defense-gan", **params)


def test_unknown_view_names_the_known_ones(defended):
    _, clf = defended
    with pytest.raises(ConfigError, match="'unrol' is not a gradient view of any defense; use one of bpda, .*unroll"):
        gradient_view(clf, "unrol")


SMALL_DEFENSE_GAN = {"name": "dgan", "kind": "defense-gan", "steps": 10, "restarts": 2, "gan_epochs": 2, "width": 8,
                     "z_dim": 8}
NAIVE_PGD = {"name": "pgd", "steps": 3, "eps": [0.2]}
BPDA_PGD = {"name": "pgd-bpda", "kind": "pgd", "steps": 3, "adaptive": "bpda", "eps": [0.2]}


def test_suite_flags_naive_only_evaluation_and_reports_adaptive_rows(tmp_path):
    """Through the CLI: naive PGD only -> the purifier flag fires; with a BPDA row -> no flag, the adaptive table
    and the 'adaptive'/'purified' columns (the second run reuses the cached classifiers)."""
    import json

    import pandas as pd

    from robustbench_gan.cli import main

    cache = tmp_path / "cache"
    for name, attacks in (("naive", [NAIVE_PGD]), ("adaptive", [NAIVE_PGD, BPDA_PGD])):
        (tmp_path / f"{name}.toml").write_text(suite_toml(
            "dgan-small", seed=0, models=[{"name": "cnn", "arch": "cnn", "epochs": 3}], defenses=[SMALL_DEFENSE_GAN],
            attacks=attacks, transfer=NO_TRANSFER, evaluation={"n": 40}))
        out = tmp_path / name
        assert main(["-q", "run", str(tmp_path / f"{name}.toml"), "--out", str(out), "--cache-dir", str(cache),
                     "--device", "cpu"]) == 0
        doc = json.loads((out / "results.json").read_text())
        flagged = {(f["model"], f["defense"]) for f in doc["flags"] if f["check"] == "naive-attacks-only-on-purifier"}
        table = pd.read_csv(out / "results.csv")
        dgan = table[table.defense == "dgan"]
        assert dgan.purified.all() and table[table.defense == "none"].purified.isna().all()
        html = (out / "index.html").read_text()
        if name == "naive":
            assert flagged == {("cnn", "dgan")} and "adaptive" not in table
        else:
            assert flagged == set() and set(dgan.adaptive.fillna("none")) == {"none", "bpda"}
            assert 'id="adaptive"' in html
