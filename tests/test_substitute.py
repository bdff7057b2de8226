"""The Papernot et al. 2017 substitute attack: label-only oracle, query counting, augmentation, effect."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.attacks import make_attack
from robustbench_gan.attacks.substitute import Oracle, SubstituteAttack
from robustbench_gan.attacks import evaluate_attack


class Spy(torch.nn.Module):
    """Wraps a model; records every forward pass, and fails if anyone could get gradients through it."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.inputs = 0
        self.with_grad = 0

    def forward(self, x):
        self.inputs += len(x)
        if torch.is_grad_enabled() or x.requires_grad:
            self.with_grad += 1
        return self.model(x)


@pytest.fixture
def spied(cnn):
    from robustbench_gan.classifier import Classifier

    spy = Spy(cnn.model)
    return Classifier(spy, num_classes=10).eval(), spy


def test_oracle_exposes_only_labels(spied, batch):
    clf, spy = spied
    oracle = Oracle(clf)
    x = batch[0][:20].clone().requires_grad_(True)
    labels = oracle(x)
    assert labels.dtype == torch.int64 and labels.shape == (20,) and not labels.requires_grad
    assert oracle.queries == 20 and spy.inputs == 20 and spy.with_grad == 0
    assert not hasattr(oracle, "__dict__")  # no attribute can be added or read beyond the declared ones
    assert set(Oracle.__slots__) == {"_predict", "queries", "num_classes", "bounds"}


def test_attack_code_never_sees_logits_or_gradients(spied, batch):
    """Every pass through the target during the attack is a label query without gradients, and counted."""
    clf, spy = spied
    x, y = batch
    attack = SubstituteAttack(holdout=50, rounds=3, epochs=3)
    goal_labels = y
    from robustbench_gan.attacks.base import Goal

    attack.perturb_many(clf, x, Goal(goal_labels), [0.1])
    assert spy.with_grad == 0
    assert spy.inputs == attack.queries_made  # the query counter equals the oracle calls on inputs


def test_augmentation_doubles_the_set_and_counts_queries(cnn, batch):
    x, y = batch
    attack = SubstituteAttack(holdout=40, rounds=4, epochs=2)
    evaluate_attack(cnn, x, y, attack, [0.1], progress=False)
    assert [h.set_size for h in attack.history] == [40, 80, 160, 320]
    assert [h.queries for h in attack.history] == [40, 80, 160, 320]
    assert attack.queries_made == 320


def test_reservoir_sampling_caps_new_points(cnn, batch):
    x, y = batch
    attack = SubstituteAttack(holdout=40, rounds=4, epochs=2, reservoir=30)
    evaluate_attack(cnn, x, y, attack, [0.1], progress=False)
    assert [h.set_size for h in attack.history] == [40, 70, 100, 130]


def test_periodic_step_size():
    a = SubstituteAttack(lmbda=0.1, tau=3)
    assert [a.step_size(r) for r in range(7)] == [0.1, 0.1, 0.1, -0.1, -0.1, -0.1, 0.1]


def test_substitute_beats_uniform_noise_and_excludes_holdout(cnn, digits):
    x, y = digits.x_test, digits.y_test
    sub = make_attack("substitute")
    outs = evaluate_attack(cnn, x, y, sub, [0.2, 0.3], progress=False)
    noise = evaluate_attack(cnn, x, y, make_attack("uniform-noise"), [0.2, 0.3], progress=False)
    assert outs[0].metrics["n"] == len(y) - 150  # the attacker's seed set is not evaluated
    assert outs[0].metrics["queries"] == 150 * 2 ** 5
    for o, nz in zip(outs, noise):
        assert o.metrics["robust_accuracy"] < nz.metrics["robust_accuracy"] - 0.3
    assert sub.history[-1].agreement > 0.8
    assert outs[0].metrics["substitute_accuracy"] == pytest.approx(sub.history[-1].substitute_accuracy)


def test_bad_substitute_parameters():
    from robustbench_gan.errors import ConfigError

    with pytest.raises(ConfigError, match="rounds"):
        make_attack("substitute", rounds=0)
    with pytest.raises(ConfigError, match="craft"):
        make_attack("substitute", craft="cw")
    with pytest.raises(ConfigError, match="unknown model architecture"):
        make_attack("substitute", substitute="transformer")
