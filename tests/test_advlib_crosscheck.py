"""APGD-CE, APGD-T, FAB-T and FAB cross-checked against adv-lib 0.2 (a second independent implementation of
AutoAttack's attacks, adapted from fra31/auto-attack with the same step-size schedules) on the same models and
data: ours must not be weaker beyond the sampling error (tests/yardstick.py).

Both sides run Linf at eps 0.1 and 0.2 on the first 100 digits test images, on the natural and the PGD-trained
CNN. Where an attack draws a random start (APGD), the per-sample "still standing" masks are concatenated over
the same seeds for both (ours: ``seed=s``; adv-lib draws from torch's global generator: ``torch.manual_seed(s)``
before its call; both draw ``2 * rand - 1`` for the whole batch first, so the starts coincide and APGD-CE's
trajectories agree sample by sample). FAB with one restart starts from the input on both sides: one
deterministic run.

adv-lib's functions take the model and inputs (``apgd(model, x, y, eps=..., norm=inf, ...)``); the model is our
:class:`Classifier` (pixel space, logits), in eval mode with its parameters frozen, as ours runs it. Each test
prints its standing counts (``pytest -s``).
"""
from __future__ import annotations

import math

import pytest
import torch

from robustbench_gan.attacks import APGD, APGDT, FAB, FABT, Goal
from robustbench_gan.classifier import Classifier, frozen
from yardstick import assert_not_weaker, standing

N = 100  # evaluated samples: one sample is 1%
STEPS = 15  # the file in about a minute on 2 cores, fixtures included
SEEDS = range(2)
MODELS = ["natural", "pgd-trained"]
EPS = [0.1, 0.2]
CASES = [("natural", 0.1), ("pgd-trained", 0.1), ("pgd-trained", 0.2)]  # the natural CNN falls nearly whole at 0.2


def _setup(which, eps, cnn, pgd_trained, digits):
    clf = cnn if which == "natural" else pgd_trained
    return clf.eval(), digits.x_test[:N], digits.y_test[:N]


def _in_ball(adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert float((adv - x).abs().max()) <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def _compare(clf: Classifier, x, y, eps, ours, theirs, seeds, what: str) -> None:
    """``ours(seed)`` and ``theirs(seed)`` return adversarial examples; their standing masks over ``seeds`` go to
    the yardstick. The counts are printed (``pytest -s``) for the record."""
    ours_left, theirs_left = [], []
    for seed in seeds:
        adv = ours(seed)
        _in_ball(adv, x, eps)
        ours_left.append(standing(clf, adv, y))
        torch.manual_seed(seed)
        with frozen(clf):  # input gradients only, as ours
            theirs_left.append(standing(clf, theirs(seed), y))
    o, t = torch.cat(ours_left), torch.cat(theirs_left)
    b, c = int((o & ~t).sum()), int((~o & t).sum())
    print(f"\n{what}: ours {int(o.sum())}/{len(o)} standing, adv-lib {int(t.sum())}/{len(t)}; "
          f"only vs ours {b}, only vs adv-lib {c}")
    assert_not_weaker(o, t, what)


@pytest.mark.parametrize("which, eps", CASES)
def test_apgd_ce_not_weaker_than_adv_lib(which, eps, cnn, pgd_trained, digits):
    """APGD-CE. Ours: ``APGD(loss="ce", steps=15, restarts=1, rho=0.75)``. adv-lib: ``apgd(norm=inf,
    loss_function="ce", n_iter=15, n_restarts=1, rho=0.75, eot_iter=1)``. Seeds 0 and 1 on both sides."""
    adv_lib = pytest.importorskip("adv_lib", minversion="0.2.8")  # noqa: F841 (skips where it is missing)
    from adv_lib.attacks import apgd

    clf, x, y = _setup(which, eps, cnn, pgd_trained, digits)
    _compare(clf, x, y, eps,
             lambda s: APGD(loss="ce", steps=STEPS, restarts=1, rho=0.75, seed=s)(clf, x, Goal(y), eps=eps),
             lambda s: apgd(clf, x, y, eps=eps, norm=math.inf, loss_function="ce", n_iter=STEPS, n_restarts=1,
                            rho=0.75),
             SEEDS, f"apgd-ce {which} eps {eps}")


@pytest.mark.parametrize("which, eps", CASES)
def test_apgd_t_not_weaker_than_adv_lib(which, eps, cnn, pgd_trained, digits):
    """APGD-T. Ours: ``APGDT(steps=15, targets=3, restarts=1, rho=0.75)`` (targeted DLR toward each of the 3 most
    likely other classes; success is misclassification). adv-lib: ``apgd_targeted(norm=inf, loss_function="dlr",
    n_iter=15, n_restarts=1 (per target), num_targets=3, rho=0.75)``: the 3 most likely classes other than the
    clean prediction, one after another on the samples not yet fooled. adv-lib's targeted DLR is ``(z_t -
    max_{i != t} z_i) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` and a run counts a success only when the target is
    reached (a sample pushed into another class is not kept as found); the reference's (and ours) is ``-(z_y -
    z_t) / (...)`` with misclassification as success. Seeds 0 and 1 on both sides."""
    adv_lib = pytest.importorskip("adv_lib", minversion="0.2.8")  # noqa: F841 (skips where it is missing)
    from adv_lib.attacks import apgd_targeted

    clf, x, y = _setup(which, eps, cnn, pgd_trained, digits)
    _compare(clf, x, y, eps,
             lambda s: APGDT(steps=STEPS, targets=3, restarts=1, rho=0.75, seed=s)(clf, x, Goal(y), eps=eps),
             lambda s: apgd_targeted(clf, x, y, eps=eps, norm=math.inf, loss_function="dlr", n_iter=STEPS,
                                     n_restarts=1, num_targets=3, rho=0.75),
             SEEDS, f"apgd-t {which} eps {eps}")


def _judged(adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """adv-lib's FAB is minimum-norm (no budget): its point is judged at eps as ours judges its own (see
    ``FAB._judge``): kept where within eps, else projected into the eps ball and the pixel bounds (a point that is
    then no longer adversarial stands). The reference keeps only points within eps; projecting too can only make
    adv-lib stronger, so the comparison is, if anything, stricter on ours."""
    return (x + (adv - x).clamp(-eps, eps)).clamp(0.0, 1.0)


def _compare_fab(which, cnn, pgd_trained, digits, ours, theirs, what: str) -> None:
    """FAB's trajectory does not depend on eps: adv-lib runs once (minimum-norm) and is judged at each eps; ours
    runs at each eps budget. One deterministic run each (restarts=1 starts from the input on both sides)."""
    clf, x, y = _setup(which, 0.0, cnn, pgd_trained, digits)
    with frozen(clf):
        found = theirs(clf, x, y)
    for eps in EPS:
        _compare(clf, x, y, eps, lambda s: ours(s)(clf, x, Goal(y), eps=eps), lambda s: _judged(found, x, eps),
                 [0], f"{what} {which} eps {eps}")


@pytest.mark.parametrize("which", MODELS)
def test_fab_t_not_weaker_than_adv_lib(which, cnn, pgd_trained, digits):
    """FAB-T at eps 0.1 and 0.2. Ours: ``FABT(steps=15, targets=3, restarts=1, alpha_max=0.1, eta=1.05, beta=0.9)``
    at each eps budget (the 3 most likely other classes by the clean logits; the first run from the input). adv-lib:
    ``fab(norm=inf, n_iter=15, targeted_restarts=True, restarts=3, α_max=0.1, η=1.05, β=0.9)``: one run toward each
    of the 3 most likely other classes, each from the input (random starts only past K - 1 = 9 runs), every run on
    every sample; its smallest adversarial point judged at each eps (``_judged``)."""
    adv_lib = pytest.importorskip("adv_lib", minversion="0.2.8")  # noqa: F841 (skips where it is missing)
    from adv_lib.attacks import fab

    _compare_fab(which, cnn, pgd_trained, digits, lambda s: FABT(steps=STEPS, targets=3, restarts=1, seed=s),
                 lambda clf, x, y: fab(clf, x, y, norm=math.inf, n_iter=STEPS, α_max=0.1, η=1.05, β=0.9,
                                       targeted_restarts=True, restarts=3), "fab-t")


@pytest.mark.parametrize("which", MODELS)
def test_fab_not_weaker_than_adv_lib(which, cnn, pgd_trained, digits):
    """FAB (untargeted: each step toward the nearest linearised boundary among all classes) at eps 0.1 and 0.2.
    Ours: ``FAB(steps=15, restarts=1, alpha_max=0.1, eta=1.05, beta=0.9)`` at each eps budget, from the input.
    adv-lib: ``fab(norm=inf, n_iter=15, restarts=None (one run, from the input), α_max=0.1, η=1.05, β=0.9)``, its
    smallest adversarial point judged at each eps (``_judged``)."""
    adv_lib = pytest.importorskip("adv_lib", minversion="0.2.8")  # noqa: F841 (skips where it is missing)
    from adv_lib.attacks import fab

    _compare_fab(which, cnn, pgd_trained, digits, lambda s: FAB(steps=STEPS, restarts=1, seed=s),
                 lambda clf, x, y: fab(clf, x, y, norm=math.inf, n_iter=STEPS, α_max=0.1, η=1.05, β=0.9), "fab")
