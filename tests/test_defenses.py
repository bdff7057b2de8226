"""Defenses on digits: what each must show, plus parameter validation."""
from __future__ import annotations

import pytest

from robustbench_gan.attacks import make_attack
from robustbench_gan.checks.probes import classifier_flags
from robustbench_gan.cli import main
from robustbench_gan.defenses import make_defense
from robustbench_gan.errors import ConfigError
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.zoo import build_model
from robustbench_gan.run import run_suite
from robustbench_gan.classifier_training import TrainConfig


def fit(kind, digits, epochs=15, **params):
    return make_defense(kind, **params).fit(lambda: build_model("cnn", digits.spec), digits,
                                            train=TrainConfig(epochs=epochs), seed=0, device="cpu", progress=False)


def acc(clf, digits, attack, eps):
    return evaluate_attack(clf, digits.x_test, digits.y_test, attack, [eps], progress=False)[0].metrics


@pytest.fixture(scope="module")
def undefended(digits):
    return fit("none", digits)


@pytest.mark.slow
def test_pgd_adversarial_training_raises_pgd_accuracy(digits, undefended):
    defended = fit("adversarial-training", digits, method="pgd", eps=0.2)
    pgd = make_attack("pgd", steps=20)
    base, robust = acc(undefended, digits, pgd, 0.2), acc(defended, digits, pgd, 0.2)
    assert robust["robust_accuracy"] > base["robust_accuracy"] + 0.25
    assert robust["clean_accuracy"] > base["clean_accuracy"] - 0.05


def test_distillation_masks_gradients_and_is_seen_through(digits, undefended):
    student = fit("distillation", digits, epochs=30, temperature=100)
    x, y = digits.x_test, digits.y_test
    ce = acc(student, digits, make_attack("pgd", steps=20), 0.2)
    margin = acc(student, digits, make_attack("pgd", steps=20, loss="margin"), 0.2)
    assert ce["clean_accuracy"] > 0.85
    assert ce["robust_accuracy"] > 0.6  # looks robust to the CE-loss attack ...
    assert margin["robust_accuracy"] < 0.1  # ... but the margin loss sees through it
    flags = {f["check"] for f in classifier_flags(student, x, y, model="cnn", defense="distillation")}
    assert {"zero-gradients", "robust-at-huge-eps"} <= flags
    # transfer from the undefended model also beats the white-box CE attack
    from robustbench_gan.evaluation import craft, evaluate_transfer

    crafted = craft(undefended, x, y, make_attack("pgd", steps=20), [0.2])
    transferred = evaluate_transfer(student, x, y, crafted)[0].metrics["robust_accuracy"]
    assert transferred < ce["robust_accuracy"] - 0.3


@pytest.mark.slow
def test_fgsm_adversarial_training_is_flagged(suite_file):
    suite = suite_file("fgsm-at.toml", name="fgsm-at", models=[{"name": "cnn", "epochs": 30}],
                       defenses=[{"name": "fgsm-at", "kind": "adversarial-training", "method": "fgsm", "eps": 0.3}],
                       attacks=[{"name": "fgsm", "eps": [0.2, 0.3]}, {"name": "pgd", "steps": 20, "eps": [0.2, 0.3]}])
    results = run_suite(suite, progress=False)
    flagged = {(f["defense"], f["check"]) for f in results.flags}
    assert ("fgsm-at", "single-step-far-above-iterative") in flagged
    assert not any(d == "none" for d, _ in flagged)
    t = results.table
    fgsm = t[(t.defense == "fgsm-at") & (t.attack == "fgsm") & (t.threat == "white-box")].robust_accuracy.max()
    pgd = t[(t.defense == "fgsm-at") & (t.attack == "pgd") & (t.threat == "white-box")].robust_accuracy.max()
    assert fgsm > pgd + 0.25


@pytest.mark.parametrize("method", ["fast", "trades"])
def test_other_adversarial_training_methods_help(method, digits, undefended):
    defended = fit("adversarial-training", digits, epochs=10, method=method, eps=0.2, steps=5)
    pgd = make_attack("pgd", steps=10)
    assert acc(defended, digits, pgd, 0.1)["robust_accuracy"] > acc(undefended, digits, pgd, 0.1)["robust_accuracy"] + 0.05


def test_eps_ramp_up():
    at = make_defense("adversarial-training", method="pgd", eps=0.3)
    assert [round(at.eps_at(e, 10), 3) for e in range(6)] == [0.075, 0.15, 0.225, 0.3, 0.3, 0.3]
    assert make_defense("adversarial-training", method="fgsm", eps=0.3).eps_at(0, 10) == 0.3
    assert make_defense("adversarial-training", method="pgd", eps=0.3, ramp_epochs=0).eps_at(0, 10) == 0.3


@pytest.mark.parametrize("kind, params, message", [
    ("adversarial-training", {"method": "magic"}, "method must be one of fgsm, pgd, fast, trades"),
    ("adversarial-training", {"eps": -0.1}, "eps must be a positive number"),
    ("adversarial-training", {"alpha": 2}, "alpha must be in"),
    ("adversarial-training", {"steps": 0}, "steps must be a positive integer"),
    ("distillation", {"temperature": 0}, "temperature must be a positive number"),
    ("distillation", {"temperature": -5}, "temperature must be a positive number"),
    ("distillation", {"temp": 5}, "no parameter 'temp'"),
])
def test_bad_defense_parameters(kind, params, message):
    with pytest.raises(ConfigError, match=message):
        make_defense(kind, **params)


@pytest.mark.parametrize("setting, message", [
    ({"method": "magic"}, "method must be one of"), ({"eps": -0.3}, "eps must be a positive number"),
])
def test_bad_defense_in_suite_exits_2(suite_file, tmp_path, capsys, setting, message):
    def write(defense: dict) -> str:
        return str(suite_file("s.toml", name="x", data=None, models=[{"name": "cnn"}],
                              defenses=[{"name": "at", **defense}]))

    assert main(["run", write({"kind": "adversarial-training", **setting}), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "defenses[0] (at)" in err and "Traceback" not in err
    assert main(["run", write({"kind": "distillation", "temperature": 0})]) == 2
    assert "temperature must be a positive number" in capsys.readouterr().err
