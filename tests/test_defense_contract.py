"""The contract every registered defense keeps (registry-driven, like the attack contract in test_fuzz.py):
it fits on tiny digits, returns a Classifier in eval mode with finite logits of the right shape, is
deterministic for a seed, and its report (if any) is JSON."""
from __future__ import annotations

import json

import pytest
import torch

from robustbench_gan.classifier import Classifier
from robustbench_gan.data import Data
from robustbench_gan.defenses import DEFENSES, FitContext, ReportContext, make_defense
from robustbench_gan.zoo import build_model
from robustbench_gan.classifier_training import TrainConfig

CHEAP: dict[str, list[dict]] = {
    # every registered defense kind needs an entry (a new defense gets one with its cheapest settings)
    "none": [{}],
    "adversarial-training": [{"method": m, "eps": 0.1, "steps": 2} for m in ("fgsm", "pgd", "fast", "trades")]
    + [{"method": "pgd", "eps": 0.5, "steps": 2, "norm": "2"}],
    "distillation": [{"temperature": 20}],
    "defense-gan": [{"gan_epochs": 1, "width": 8, "z_dim": 8, "steps": 5, "restarts": 2}],
    "gan-augmentation": [{"gan_epochs": 1, "width": 8, "z_dim": 8, "samples": 60},
                         {"gan_epochs": 1, "width": 8, "z_dim": 8, "samples": 60, "adversarial": "fast", "eps": 0.1}],
    "magnet": [{"ae_epochs": 1}, {"ae_epochs": 1, "detector": False}, {"ae_epochs": 1, "reformer": False, "error": "l1"}],
    "noise-training": [{"sigma": 0.25}],
}
CASES = [(kind, params) for kind in DEFENSES.names() for params in CHEAP.get(kind, [None])]


@pytest.fixture(scope="module")
def tiny(digits) -> Data:
    return Data(digits.x_train[:160], digits.y_train[:160], digits.x_test[:40], digits.y_test[:40], digits.spec)


def _fit(kind: str, params: dict, data: Data, seed: int) -> tuple[Classifier, object, FitContext]:
    defense = make_defense(kind, name=f"{kind}-contract", **params)
    context = FitContext()
    clf = defense.fit(lambda: build_model("mlp", data.spec, hidden=[16]), data, train=TrainConfig(epochs=2),
                      seed=seed, device="cpu", progress=False, context=context)
    return clf, defense, context


def test_every_registered_defense_has_a_contract_case():
    assert set(DEFENSES.names()) <= set(CHEAP), f"add cheap settings for {set(DEFENSES.names()) - set(CHEAP)}"


@pytest.mark.parametrize(("kind", "params"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_defense_contract(kind, params, tiny):
    clf, defense, context = _fit(kind, params, tiny, seed=3)
    assert isinstance(clf, Classifier) and not clf.training
    assert clf.num_classes == tiny.spec.num_classes and clf.bounds == tiny.spec.bounds
    with torch.no_grad():
        logits = clf(tiny.x_test)
    assert logits.shape == (len(tiny.x_test), tiny.spec.num_classes) and torch.isfinite(logits).all()
    assert all(p.requires_grad for p in clf.parameters())  # attacks freeze and restore; training must not leave it
    again, _, _ = _fit(kind, params, tiny, seed=3)
    for (name, a), (_, b) in zip(clf.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), f"{kind}: {name} differs between two fits with the same seed"
    other, _, _ = _fit(kind, params, tiny, seed=4)
    assert any(not torch.equal(a, b) for a, b in zip(clf.state_dict().values(), other.state_dict().values()))
    section = defense.report(ReportContext(tiny, 3, "cpu", "mlp", f"{kind}-contract",
                                           classifier=lambda m, d: clf, reference=lambda: clf, fit=context))
    if section is not None:
        assert isinstance(section, dict) and section
        json.dumps(section, allow_nan=False)
