"""FAB and FAB-T (Croce & Hein 2020) cross-checked against torchattacks 3.5 on the same models and data: at an eps
budget ours must leave at most torchattacks' robust accuracy plus one sample; without one (eps = inf) its points
must be as small as torchattacks'. The hyperplane projection, the core of every step, is checked against
torchattacks' on random problems, and on boxes other than [0, 1] through an affine change of the pixel range.

With one restart FAB starts from the input and is deterministic, so ours and torchattacks' follow the same
trajectories: at 20 steps both leave the same samples standing in every setting below."""
from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

from robustbench_gan.attacks import FAB, FABT, Goal, make_attack
from robustbench_gan.attacks.base import flat_norm
from robustbench_gan.attacks.fab import project_onto_hyperplane
from robustbench_gan.classifier import Classifier
from robustbench_gan.errors import ConfigError


from yardstick import assert_not_weaker, standing  # noqa: E402

N = 60  # evaluated samples
STEPS = 20
TARGETS = 3  # torchattacks' multi-targeted FAB attacks n_classes - 1 targets: n_classes = 4


def robust(clf: Classifier, x: torch.Tensor, y: torch.Tensor) -> int:
    return int((clf.predict(x).argmax(1) == y).sum())


def theirs(clf: Classifier, norm: str, eps: float, targeted: bool = True, steps: int = STEPS) -> Any:
    import torchattacks
    return torchattacks.FAB(clf, norm="Linf" if norm == "inf" else "L2", eps=eps, steps=steps,
                            n_classes=TARGETS + 1, multi_targeted=targeted, n_restarts=1, seed=0)


@pytest.mark.parametrize("norm, p", [("inf", math.inf), ("2", 2.0)])
def test_projection_matches_torchattacks_and_any_box(torchattacks, norm, p):
    """The smallest step onto ``w . z = b`` within the box, on random problems (a fifth of w zero): where
    torchattacks' reaches the hyperplane ours does too, and is as short; on [-1, 3] ours equals the [0, 1] answer
    mapped through the affine change of pixel range."""
    g = torch.Generator().manual_seed(0)
    t = torch.rand(400, 30, generator=g, dtype=torch.float64)
    w = torch.randn(400, 30, generator=g, dtype=torch.float64) * (torch.rand(400, 30, generator=g) > 0.2)
    b = (w * torch.rand(400, 30, generator=g, dtype=torch.float64)).sum(1) * (8 * torch.rand(400, generator=g) - 4)
    d = project_onto_hyperplane(t, w, b, (0.0, 1.0), norm)
    from torchattacks.attacks.fab import projection_l2, projection_linf

    ref = (projection_linf if norm == "inf" else projection_l2)(t, w, b)
    assert (t + d).min() >= 0 and (t + d).max() <= 1
    reached = ((w * (t + d)).sum(1) - b).abs() < 1e-9
    theirs_reached = ((w * (t + ref)).sum(1) - b).abs() < 1e-9
    assert theirs_reached.sum() > 200 and (~theirs_reached).sum() > 20  # both cases occur
    assert bool((reached >= theirs_reached).all())
    assert torch.allclose(d.norm(p=p, dim=1)[theirs_reached], ref.norm(p=p, dim=1)[theirs_reached], atol=1e-9)
    lo, hi = -1.0, 3.0  # z = lo + (hi - lo) u maps [0, 1] onto [lo, hi]
    d_box = project_onto_hyperplane(lo + (hi - lo) * t, w / (hi - lo), b + lo * w.sum(1) / (hi - lo),
                                    (lo, hi), norm)
    assert torch.allclose(d_box, (hi - lo) * d, atol=1e-9)


@pytest.mark.parametrize("which", ["natural", "pgd-trained"])
@pytest.mark.parametrize("norm, eps", [("inf", 0.1), ("inf", 0.2), ("2", 0.5), ("2", 1.0)])
def test_fab_t_at_least_as_strong_as_torchattacks(torchattacks, which, norm, eps, cnn, pgd_trained, digits):
    clf = cnn if which == "natural" else pgd_trained
    x, y = digits.x_test[:N], digits.y_test[:N]
    ours = FABT(norm=norm, steps=STEPS, targets=TARGETS)(clf, x, Goal(y), eps=eps)
    assert float(flat_norm(ours - x, norm).max()) <= eps + 1e-6 and ours.min() >= 0 and ours.max() <= 1
    assert_not_weaker(standing(clf, ours, y), standing(clf, theirs(clf, norm, eps)(x, y), y), f"fab-t {which} {eps}")
    assert robust(clf, ours, y) < robust(clf, x, y)  # the attack does something here


def test_untargeted_fab_at_least_as_strong_as_torchattacks(torchattacks, cnn, digits):
    """Untargeted FAB: the nearest linearised boundary over all classes (the full Jacobian every step)."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    for norm, eps in (("inf", 0.1), ("2", 0.5)):
        ours = FAB(norm=norm, steps=STEPS)(cnn, x, Goal(y), eps=eps)
        assert float(flat_norm(ours - x, norm).max()) <= eps + 1e-6
        assert_not_weaker(standing(cnn, ours, y), standing(cnn, theirs(cnn, norm, eps, targeted=False)(x, y), y),
                          f"fab {norm} {eps}")
        assert robust(cnn, ours, y) < robust(cnn, x, y)


@pytest.mark.parametrize("targeted", [True, False])
@pytest.mark.parametrize("norm, p", [("inf", math.inf), ("2", 2.0)])
def test_minimum_norm_points_as_small_as_torchattacks(torchattacks, norm, p, targeted, pgd_trained, digits):
    """eps = inf: no budget, no early stop: FAB's minimum-norm points. Ours finds at least as many as torchattacks
    (but one) and, on the samples both find, their median norm is within 2% of torchattacks' (and the norms
    agree sample by sample: the same algorithm)."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    attack = FABT(norm=norm, steps=STEPS, targets=TARGETS) if targeted else FAB(norm=norm, steps=STEPS)
    ours = attack(pgd_trained, x, Goal(y), eps=math.inf)
    ref = theirs(pgd_trained, norm, 1e9, targeted)(x, y)
    clean = pgd_trained.predict(x).argmax(1) == y
    found = clean & (pgd_trained.predict(ours).argmax(1) != y)
    found_ref = clean & (pgd_trained.predict(ref).argmax(1) != y)
    assert_not_weaker(~found, ~found_ref, f"minimum-norm fab {norm} targeted={targeted}")
    assert int(found_ref.sum()) > 10
    both = found & found_ref
    ours_norm, ref_norm = (ours - x)[both].flatten(1).norm(p=p, dim=1), (ref - x)[both].flatten(1).norm(p=p, dim=1)
    assert float(ours_norm.median()) <= 1.02 * float(ref_norm.median()), (ours_norm.median(), ref_norm.median())
    assert float(ours_norm.median()) > 0.02  # minimal points, but not trivially small ones
    # one restart starts at the input: the same trajectories as torchattacks' (all samples agree to 2e-7 here)
    assert int(((ours_norm - ref_norm).abs() > 1e-3).sum()) <= 2, (ours_norm - ref_norm).abs().topk(3)


def test_any_pixel_range_and_float64(cnn, digits):
    """The same model on pixels in [-1, 1] (float64) gives the same result as on [0, 1] at the mapped eps, and the
    points stay in that box and ball."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    wide = Classifier(copy.deepcopy(cnn.model).double(), num_classes=10, bounds=(-1.0, 1.0),
                      input_bounds=(0.0, 1.0)).eval()
    x2 = (2 * x - 1).double()
    for attack in (FABT(steps=STEPS, targets=TARGETS), FAB(steps=STEPS, norm="2")):
        eps = 0.1 if attack.norm == "inf" else 0.5
        adv = attack(cnn, x, Goal(y), eps=eps)
        adv2 = attack(wide, x2, Goal(y), eps=2 * eps)
        assert adv2.dtype == torch.float64 and adv2.min() >= -1 and adv2.max() <= 1
        assert float(flat_norm(adv2 - x2, attack.norm).max()) <= 2 * eps + 1e-9
        assert abs(robust(wide, adv2, y) - robust(cnn, adv, y)) <= 1
        assert torch.equal(attack(wide, x2, Goal(y), eps=0.0), x2)


class ThreeClasses(nn.Module):
    """Linear logits on two pixels: class 0 at the origin; class 1, the most likely other class there, can never
    win (class 2 overtakes it first along every path), so FAB-T toward class 1 fools the model into class 2."""

    def forward(self, z):
        u = z.flatten(1)[:, 0]
        return torch.stack([torch.zeros_like(u), 2 * u - 0.2, 3 * u - 0.3], 1)


def test_fab_t_success_is_misclassification():
    clf = Classifier(ThreeClasses(), num_classes=3).eval()
    x, y = torch.zeros(1, 1, 1, 2), torch.tensor([0])
    adv = FABT(steps=10, targets=1)(clf, x, Goal(y), eps=0.2)
    assert int(clf.predict(adv).argmax(1)) == 2 and float((adv - x).abs().max()) <= 0.2


def test_targeted_goal_reaches_its_target(cnn, digits):
    x, y = digits.x_test[:N], digits.y_test[:N]
    target = (y + 1) % 10
    for kind in ("fab", "fab-t"):
        adv = make_attack(kind, steps=STEPS)(cnn, x, Goal(target, targeted=True), eps=0.3)
        assert float((adv - x).abs().max()) <= 0.3 + 1e-6
        assert float((cnn.predict(adv).argmax(1) == target).float().mean()) > 0.6, kind


def test_stops_per_sample_and_targets_side_by_side_are_as_strong(cnn, digits):
    """A sample stops at its first point within eps: at a large eps FAB-T scores a small fraction of its full
    budget. The targets after the first run side by side (the default) or one after another: same robust
    accuracy, no more queries."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    cnn.queries = 0
    adv = FABT(steps=100)(cnn, x, Goal(y), eps=0.3)
    assert robust(cnn, adv, y) == 0 and cnn.queries < 0.05 * N * 9 * 100 * 2
    counts = []
    for batch_targets in (None, 1):
        cnn.queries = 0
        adv = FABT(steps=STEPS, targets=TARGETS, batch_targets=batch_targets)(cnn, x, Goal(y), eps=0.1)
        counts.append((robust(cnn, adv, y), cnn.queries))
    assert counts[0][0] <= counts[1][0] and counts[0][1] <= 1.5 * counts[1][1], counts


def test_restarts_only_add_and_stay_in_the_ball(cnn, digits):
    """Restarts after the first start at a random point at half eps, on the samples still standing: never fewer
    samples fooled than with one run, and the points stay in the ball."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    for norm, eps in (("inf", 0.1), ("2", 0.5)):
        one = FAB(norm=norm, steps=STEPS)(cnn, x, Goal(y), eps=eps)
        three = FAB(norm=norm, steps=STEPS, restarts=3, seed=1)(cnn, x, Goal(y), eps=eps)
        assert float(flat_norm(three - x, norm).max()) <= eps + 1e-6 and three.min() >= 0 and three.max() <= 1
        assert robust(cnn, three, y) <= robust(cnn, one, y)


@pytest.mark.parametrize("params", [{"alpha_max": 1.5}, {"beta": -0.1}, {"eta": 0}, {"steps": 0}, {"norm": "1"},
                                    {"targets": 0}, {"batch_targets": 0}, {"restarts": 1.5}])
def test_bad_hyperparameters_are_config_errors(params):
    with pytest.raises(ConfigError):
        make_attack("fab-t", **params)


@pytest.mark.parametrize("make", [lambda: FAB(steps=STEPS), lambda: FABT(steps=STEPS, targets=TARGETS),
                                  lambda: FABT(norm="2", steps=STEPS, targets=TARGETS)])
def test_one_run_gives_every_eps(make, per_sample_cnn, digits):
    """Several eps from one FAB run (its trajectory does not depend on eps): the very samples fall at each eps that
    a run per eps fools (bit for bit on the per-sample model), every example lies in its ball, and the passes are
    those of about one run, not one per eps."""
    clf, x, y = per_sample_cnn, digits.x_test[:40], digits.y_test[:40]
    attack = make()
    eps_list = [0.05, 0.1, 0.2] if attack.norm == "inf" else [0.3, 0.6, 1.2]
    clf.queries = 0
    together = attack.perturb_many(clf, x, Goal(y), eps_list)
    shared = clf.queries
    clf.queries = 0
    apart = [attack.perturb(clf, x, Goal(y), eps=e) for e in eps_list]
    assert shared < 0.7 * clf.queries, (shared, clf.queries)
    for eps, a, b in zip(eps_list, together, apart):
        assert torch.equal(clf.predict(a).argmax(1) != y, clf.predict(b).argmax(1) != y), eps
        assert float(flat_norm(a - x, attack.norm).max()) <= eps * (1 + 1e-5) + 1e-6
    fooled = [int((clf.predict(a).argmax(1) != y).sum()) for a in together]
    assert fooled == sorted(fooled) and fooled[0] < fooled[-1]
