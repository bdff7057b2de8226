"""The active set of PGD and BIM (issue 15): a sample that is fooled leaves the batch at once, so it stops
costing forward passes, and the examples are identical with and without it (same seed); and a sample's random
restarts (PGD, APGD, APGD-T) never depend on which other samples are still running. APGD's own active set is
checked in test_autoattack.py."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.attacks import make_attack
from robustbench_gan.attacks.base import Goal
from conftest import assert_same_decisions

N = 120


def batch_sizes(clf) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    """Rows of every forward pass of ``clf``'s model, recorded by a hook."""
    sizes: list[int] = []
    return sizes, clf.model.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))


@pytest.mark.parametrize("name, params, eps", [
    ("pgd", {"steps": 20}, 0.1),
    ("pgd", {"steps": 10, "restarts": 3}, 0.08),
    ("pgd", {"steps": 20, "loss": "margin", "norm": "2"}, 1.0),
    ("pgd", {"steps": 20, "targeted": True, "target_mode": "least-likely"}, 0.15),
    ("bim", {}, 0.1),
])
@pytest.mark.parametrize("exact", [False, True])
def test_same_examples_with_and_without_the_active_set(name, params, eps, exact, cnn, per_sample_cnn, digits):
    """The same samples fall with and without the active set, for fewer passes; bit for bit where the kernels
    cannot depend on the batch (the per-sample model: each sample's trajectory is its own)."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    clf = per_sample_cnn if exact else cnn
    runs = {}
    for active in (True, False):
        attack = make_attack(name, **params)
        attack.active_set = active
        before = clf.queries
        runs[active] = attack(clf, x, Goal(y), eps=eps), clf.queries - before
    (with_set, q_with), (without, q_without) = runs[True], runs[False]
    assert_same_decisions(clf, with_set, without, x, y, eps, params.get("norm", "inf"))
    if exact:
        assert torch.equal(with_set, without)
    assert q_with < q_without


def test_fooled_samples_stop_costing_passes(cnn, digits):
    """Each pass holds only the samples not yet fooled: the batch shrinks as they fall, and the passes equal
    those of the samples still standing (every sample falls here, so the loop ends early)."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    attack = make_attack("pgd", steps=50)
    sizes, hook = batch_sizes(cnn)
    try:
        adv = attack(cnn, x, Goal(y), eps=0.3)
    finally:
        hook.remove()
    assert (cnn.predict(adv).argmax(1) != y).all()  # everything falls at this eps
    assert sizes[0] == N and sizes == sorted(sizes, reverse=True) and sizes[-1] < N
    assert len(sizes) < 50 and sum(sizes) < 0.6 * N * len(sizes)

    attack.active_set = False  # without it every pass holds the whole batch until the last sample falls
    sizes_full, hook = batch_sizes(cnn)
    try:
        attack(cnn, x, Goal(y), eps=0.3)
    finally:
        hook.remove()
    assert set(sizes_full) == {N} and len(sizes_full) == len(sizes)


@pytest.mark.parametrize("name, params, eps", [
    ("pgd", {"steps": 5, "restarts": 3}, 0.05),
    ("pgd", {"steps": 5, "restarts": 3, "norm": "2"}, 0.6),
    ("apgd", {"steps": 5, "restarts": 3}, 0.05),
    ("apgd-t", {"steps": 5, "targets": 3}, 0.05),
])
def test_a_samples_random_restarts_do_not_depend_on_the_others(name, params, eps, per_sample_cnn, digits):
    """The first 30 samples get wrong labels, so they count as fooled at once and leave before the second restart;
    every other sample must get the very same example as when those 30 were still running (its restart draws are
    its own, not the next in a stream shared by whoever is left). Bit for bit, on the per-sample model (kernels
    that do not depend on the batch around a sample)."""
    clf = per_sample_cnn
    x, y = digits.x_test[:N], digits.y_test[:N]
    wrong = y.clone()
    wrong[:30] = (y[:30] + 1) % 10
    first = make_attack(name, **params)(clf, x, Goal(y), eps=eps)
    second = make_attack(name, **params)(clf, x, Goal(wrong), eps=eps)
    standing = (clf.predict(first).argmax(1) == y)[30:]
    assert standing.sum() > 10  # restarts happened for these
    assert torch.equal(first[30:], second[30:])
