"""The attack contract, over every registered attack (and one through ART), written once: the examples keep the
input's shape, dtype and device, carry no gradient, are finite, stay in the classifier's bounds and in the eps-ball
of the attack's norm (a latent ball for generated examples), eps = 0 returns the input, the input is never
modified, and :meth:`~robustbench_gan.attacks.Attack.run` returns one example per eps with per-eps queries or
none. Checked on a digits CNN at both norms, and on random problems (shapes, bounds, dtypes, eps, targets) drawn by
hypothesis. A registered attack is in both lists without any edit here."""
from __future__ import annotations

import inspect
import os
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from robustbench_gan.attacks import ATTACKS, AttackResult, make_attack
from robustbench_gan.attacks.base import flat_norm
from robustbench_gan.classifier import Classifier

ATTACK_KINDS = ATTACKS.names() + ["art:FastGradientMethod"]  # every registered attack, plus one through ART

# 25 examples per attack in the regular run; FUZZ_EXAMPLES=2000 fuzzes longer.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def assert_keeps_the_contract(attack: Any, clf: Classifier, x: Tensor, goal: Any, eps: float) -> None:
    """Every property of the contract for ``attack`` on ``(x, goal)`` at eps 0 and ``eps``."""
    lo, hi = clf.bounds
    x_before = x.clone()
    result = attack.run(clf, x, goal, [0.0, eps])
    assert isinstance(result, AttackResult) and len(result.examples) == 2
    assert result.queries is None or (len(result.queries) == 2 and all(q >= 0 for q in result.queries))
    outputs = result.examples + [attack(clf, x, goal, eps=eps)]
    assert torch.equal(x, x_before), "the attack modified its input in place"
    for e, xa in zip([0.0, eps, eps], outputs):
        assert xa.shape == x.shape and xa.dtype == x.dtype and xa.device == x.device
        assert not xa.requires_grad
        assert torch.isfinite(xa).all()
        assert float(xa.min()) >= lo and float(xa.max()) <= hi, (float(xa.min()), float(xa.max()), lo, hi)
        if attack.norm == "latent":  # generated images G(z~): the budget is ||z~ - I(x)|| (the input where none)
            found = attack.run(clf, x, goal, [e])  # the search's latent distances come with its result
            assert bool((found.log.distance[(found.examples[0] != x).flatten(1).any(1)] <= e).all())
        elif attack.norm in ("inf", "2"):  # a corruption's severity bounds no norm
            start = x if attack.starts_from_input else attack.noise_like(clf, x)
            assert float(flat_norm(xa - start, attack.norm).max()) <= e + 1e-5
        if e == 0 and attack.starts_from_input:
            assert torch.equal(xa, x)


@pytest.mark.parametrize("kind", ATTACK_KINDS)
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_the_contract_on_a_digits_cnn(kind, norm, cnn, batch, stand_in):
    x, y = batch[0][:32], batch[1][:32]
    attack = make_attack(kind)
    if norm == "2":
        if "norm" not in inspect.signature(type(attack)).parameters:
            pytest.skip("attack has no L2 variant")
        attack = make_attack(kind, norm="2")
    attack = stand_in(attack, x.shape[1:], cnn.bounds)
    eps = 3 if attack.eps_kind == "severity" else 0.3 if norm == "inf" else 1.5
    assert_keeps_the_contract(attack, cnn, x, attack.make_goal(cnn, x, y), eps)


CHEAP_PARAMS: dict[str, dict[str, Any]] = {"noise": {"samples": 4}, "natural": {"samples": 16, "step": 0.25},
                                           "substitute": {"rounds": 2, "epochs": 2},
                                           "apgd": {"steps": 5}, "apgd-t": {"steps": 4, "targets": 2},
                                           "square": {"queries": 20}, "fab": {"steps": 5},
                                           "fab-t": {"steps": 4, "targets": 2},
                                           "autoattack": {"steps": 3, "targets": 2, "queries": 10},
                                           "fmn": {"steps": 5}, "ddn": {"steps": 5}, "fab-min": {"steps": 4},
                                           "certify": {"n0": 8, "n": 50}, "smooth-pgd": {"steps": 3, "n": 20}}
MIN_CLASSES = {"apgd-t": 4, "autoattack": 4}  # the targeted DLR loss needs four classes


@st.composite
def attack_problems(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    severity = not kind.startswith("art:") and make_attack(kind).eps_kind == "severity"
    c = draw(st.sampled_from([1, 3]) if severity else st.integers(1, 3))  # corruptions: grey or RGB images
    h, w = draw(st.integers(4, 12)), draw(st.integers(4, 12))
    lo = draw(st.integers(-128, 64)) / 64  # multiples of 1/64: exact in float32 and float64 alike
    hi = lo + draw(st.integers(6, 192)) / 64
    frac = draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1)))
    params: dict[str, Any] = {}
    accepted = inspect.signature(make_attack(kind).__class__).parameters if not kind.startswith("art:") else {}
    norm = draw(st.sampled_from(["inf", "2"])) if "norm" in accepted or kind.startswith("art:") else "inf"
    if norm != "inf":
        params["norm"] = norm
    if "targeted" in accepted and draw(st.booleans()):
        params.update(targeted=True, target_mode=draw(st.sampled_from(["fixed", "random", "least-likely"])))
    if kind == "pgd":
        params.update(steps=draw(st.integers(1, 8)), restarts=draw(st.integers(1, 2)),
                      random_start=draw(st.booleans()), loss=draw(st.sampled_from(["ce", "margin"])))
    params.update(CHEAP_PARAMS.get(kind, {}))
    dtype = torch.float32 if kind.startswith("art:") else draw(st.sampled_from([torch.float32, torch.float64]))
    eps = draw(st.integers(0, 5)) if severity else frac * (hi - lo)
    return {"shape": (draw(st.integers(1, 6)), c, h, w), "bounds": (lo, hi), "eps": eps,
            "classes": draw(st.integers(MIN_CLASSES.get(kind, 2), 5)), "params": params, "dtype": dtype,
            "seed": draw(st.integers(0, 2**16))}


@pytest.mark.parametrize("kind", ATTACK_KINDS)
@FUZZ
@given(data=st.data())
def test_the_contract_on_random_problems(kind, data, stand_in):
    p = data.draw(attack_problems(kind))
    n, c, h, w = p["shape"]
    lo, hi = p["bounds"]
    g = torch.Generator().manual_seed(p["seed"])
    torch.manual_seed(p["seed"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, p["classes"])).to(p["dtype"])
    clf = Classifier(model, num_classes=p["classes"], bounds=(lo, hi)).eval()
    x = (lo + (hi - lo) * torch.rand(p["shape"], generator=g, dtype=torch.float64)).to(p["dtype"]).clamp(lo, hi)
    y = torch.randint(0, p["classes"], (n,), generator=g)
    attack = stand_in(make_attack(kind, **p["params"]), (c, h, w), (lo, hi))
    assert_keeps_the_contract(attack, clf, x, attack.make_goal(clf, x, y, seed=p["seed"]), p["eps"])


def test_an_attack_implements_one_of_perturb_perturb_many_and_run_and_gets_the_others(cnn, batch):
    """The base class derives the other two entry points from the one an attack writes (and says so when it
    writes none); an attack writing only ``run`` reports its own queries."""
    from robustbench_gan.attacks import Attack, Goal

    x, y = batch[0][:8], batch[1][:8]

    class OnlyRun(Attack):
        def run(self, clf, x, goal, eps_list, *, context=None):
            return AttackResult([(x + e).clamp(*clf.bounds) for e in eps_list], queries=[7] * len(eps_list))

    class OnlyPerturb(Attack):
        def perturb(self, clf, x, goal, *, eps):
            clf.predict(x)
            return (x - eps).clamp(*clf.bounds)

    a, b = OnlyRun(), OnlyPerturb()
    assert torch.equal(a.perturb(cnn, x, Goal(y), eps=0.1), (x + 0.1).clamp(0, 1))
    assert len(a.perturb_many(cnn, x, Goal(y), [0.1, 0.2])) == 2
    result = b.run(cnn, x, Goal(y), [0.1, 0.2])
    assert torch.equal(result.examples[1], (x - 0.2).clamp(0, 1)) and result.queries == [8, 8]
    with pytest.raises(NotImplementedError, match="implements none of"):
        Attack().perturb(cnn, x, Goal(y), eps=0.1)
