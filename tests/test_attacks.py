"""Attack behaviour: robust accuracy below clean for every attack, and what each attack does (the contract every
attack keeps is in test_attack_contract.py)."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.attacks import ATTACKS, Goal, make_attack
from robustbench_gan.attacks.base import choose_targets, flat_norm
from robustbench_gan.attacks.pgd import BIM, PGD
from robustbench_gan.errors import ConfigError
from robustbench_gan.evaluation import evaluate_attack

PERTURBATION_ATTACKS = [n for n in ATTACKS.names()]
EXTRA = ["art:FastGradientMethod"]  # the ART adapter is an attack too
SMALLER = {"autoattack": {"steps": 10, "queries": 300}, "fab": {"steps": 20}, "fab-t": {"steps": 20},
           "square": {"queries": 500}}
"""Budgets for the 200-sample accuracy test (the paper's are tested against torchattacks elsewhere)."""


def accuracy(clf, x, y) -> float:
    return float((clf.predict(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("kind", [n for n in PERTURBATION_ATTACKS if make_attack(n).role != "probe"])
def test_robust_accuracy_at_most_clean(kind, cnn, batch):
    x, y = batch
    attack = make_attack(kind, **SMALLER.get(kind, {}))
    # a corruption's eps are severities; an L2 attack's budgets are larger than an Linf one's
    eps = [0, 1, 5] if attack.eps_kind == "severity" else [0.0, 0.5, 1.5] if attack.norm == "2" else [0.0, 0.1, 0.3]
    outcomes = evaluate_attack(cnn, x, y, attack, eps, progress=False)
    for o in outcomes:
        assert o.metrics["robust_accuracy"] <= o.metrics["clean_accuracy"]
    assert outcomes[0].metrics["robust_accuracy"] == pytest.approx(outcomes[0].metrics["clean_accuracy"])
    if kind not in ("uniform-noise", "corruption"):  # neither a model-free baseline nor a corruption is an adversary
        assert outcomes[-1].metrics["robust_accuracy"] < outcomes[0].metrics["robust_accuracy"] - 0.3


def test_fgsm_larger_eps_never_helps(cnn, batch):
    x, y = batch
    accs = [o.metrics["robust_accuracy"] for o in
            evaluate_attack(cnn, x, y, make_attack("fgsm"), [0.0, 0.05, 0.1, 0.15, 0.2, 0.3], progress=False)]
    assert accs == sorted(accs, reverse=True)
    assert accs[-1] < 0.2


def test_fgsm_gradient_computed_once_for_many_eps(cnn, batch):
    x, y = batch
    fgsm = make_attack("fgsm")
    calls = []
    handle = cnn.register_forward_hook(lambda *a: calls.append(1))
    try:
        fgsm.perturb_many(cnn, x, Goal(y), [0.1, 0.2, 0.3])
    finally:
        handle.remove()
    assert len(calls) == 1


@pytest.mark.parametrize("mode", ["fixed", "random", "least-likely"])
def test_targeted_success_grows_with_eps(mode, cnn, batch):
    x, y = batch
    attack = make_attack("fgsm", targeted=True, target_mode=mode, target=3)
    rates = [o.metrics["attack_success_rate"] for o in evaluate_attack(cnn, x, y, attack, [0.0, 0.1, 0.3], progress=False)]
    assert rates[0] == 0.0 and rates[1] <= rates[2] and rates[2] > 0.15


def test_targeted_pgd_reaches_target_more_than_fgsm(cnn, batch):
    x, y = batch
    fgsm = make_attack("fgsm", targeted=True, target_mode="random")
    pgd = make_attack("pgd", targeted=True, target_mode="random", steps=20)
    r_f = evaluate_attack(cnn, x, y, fgsm, [0.2], progress=False)[0].metrics["attack_success_rate"]
    r_p = evaluate_attack(cnn, x, y, pgd, [0.2], progress=False)[0].metrics["attack_success_rate"]
    assert r_p > r_f


def test_target_modes(cnn, batch):
    x, y = batch
    fixed = choose_targets(cnn, x, y, "fixed", target=3)
    assert set(fixed.tolist()) <= {3, 4} and bool((fixed[y == 3] == 4).all()) and bool((fixed[y != 3] == 3).all())
    rnd = choose_targets(cnn, x, y, "random", seed=1)
    assert bool((rnd != y).all()) and torch.equal(rnd, choose_targets(cnn, x, y, "random", seed=1))
    assert len(set(rnd.tolist())) > 5
    ll = choose_targets(cnn, x, y, "least-likely")
    assert torch.equal(ll, cnn.predict(x).argmin(1))


def test_pgd_beats_fgsm_and_margin_loss_works(cnn, batch):
    x, y = batch
    acc = {}
    for name, attack in {"fgsm": make_attack("fgsm"), "pgd": PGD(steps=20), "margin": PGD(steps=20, loss="margin")}.items():
        acc[name] = evaluate_attack(cnn, x, y, attack, [0.15], progress=False)[0].metrics["robust_accuracy"]
    assert acc["pgd"] <= acc["fgsm"]
    assert acc["margin"] <= acc["fgsm"]


def test_pgd_l2_restarts_and_seed(cnn, batch):
    x, y = batch
    a = PGD(norm="2", steps=10, restarts=2, seed=5)
    xa1, xa2 = a(cnn, x, Goal(y), eps=1.0), a(cnn, x, Goal(y), eps=1.0)
    assert torch.equal(xa1, xa2)  # same seed, same result
    assert float(flat_norm(xa1 - x, "2").max()) <= 1.0 + 1e-5
    assert accuracy(cnn, xa1, y) < accuracy(cnn, x, y) - 0.2


def test_bim_follows_kurakin_schedule(cnn):
    steps, step = BIM().schedule(cnn, 0.3)
    assert steps == 81 and step == pytest.approx(1 / 255)  # min(0.3*255+4, 1.25*0.3*255) = 80.5 -> 81
    assert BIM(steps=7, step_size=0.05).schedule(cnn, 0.3) == (7, 0.05)


def test_noise_probe_fools_more_with_eps(cnn, batch):
    x, y = batch
    rates = [o.metrics["attack_success_rate"] for o in
             evaluate_attack(cnn, x, y, make_attack("noise", samples=50), [0.0, 0.1, 0.3], progress=False)]
    assert rates[0] < 0.2 and rates[2] > rates[1] > rates[0]


@pytest.mark.parametrize("params, message", [
    ({"steps": 0}, "steps"), ({"step_size": -1.0}, "step_size"), ({"loss": "hinge"}, "loss"),
    ({"norm": "l1"}, "norm"), ({"targeted": True, "target_mode": "nearest"}, "target_mode"), ({"stepz": 3}, "steps"),
])
def test_bad_attack_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        make_attack("pgd", **params)


def test_unknown_attack_suggests_close_name():
    with pytest.raises(ConfigError, match="did you mean 'pgd'"):
        make_attack("pgdd")
    with pytest.raises(ConfigError, match="ART has no evasion attack"):
        make_attack("art:NoSuchAttack")
