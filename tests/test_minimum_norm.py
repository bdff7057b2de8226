"""Native minimum-norm attacks (FMN, DDN, FAB without a budget), the robustness curves one run gives, AttackBench's
optimality and the check that ties a curve to the fixed-eps attacks (issue 25, point 2).

The yardstick is adv-lib 0.2 (a test extra): ``fmn(model, x, y, norm=inf | 2 | 1 | 0, steps=100)`` with its defaults
(alpha_init 1, gamma 0.05 to 0.001) and ``ddn(model, x, y, steps=100)`` (gamma 0.05, init_norm 1, 256 levels), on the
digits CNN of the fixtures and its first 100 test images, our attacks with the same steps and defaults."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustbench_gan import benchmark
from robustbench_gan.attacks import DDN, FMN, PGD, FABMinimumNorm, Goal
from robustbench_gan.attacks.minimum_norm import distance
from robustbench_gan.checks.row_checks import check_minimum_norm_curve_above_fixed_eps
from robustbench_gan.errors import ConfigError
from robustbench_gan.curves import (ENSEMBLE, curve, minimum_norm_distances, optimality,
                                               optimality_table, with_ensemble)

N = 100
EPS = [0.25, 0.5, 0.75, 1.0]


@pytest.fixture(scope="module")
def frozen_cnn(cnn):
    for p in cnn.parameters():
        p.requires_grad_(False)
    yield cnn.eval()
    for p in cnn.parameters():
        p.requires_grad_(True)


def distances(clf, x, y, adv, norm: str) -> torch.Tensor:
    """Per sample: the distance of ``adv`` where it fools the classifier, inf elsewhere."""
    fooled = clf.predict(adv).argmax(1) != y
    return torch.where(fooled, distance(adv - x, norm), torch.tensor(math.inf))


@pytest.mark.parametrize("attack", [FMN(norm="2", steps=40), FMN(norm="inf", steps=40), FMN(norm="1", steps=40),
                                    FMN(norm="0", steps=40), DDN(steps=40), FABMinimumNorm(norm="2", steps=20)],
                         ids=["fmn-l2", "fmn-linf", "fmn-l1", "fmn-l0", "ddn", "fab-min"])
def test_examples_lie_within_their_distance_and_the_bounds(frozen_cnn, digits, attack):
    x, y = digits.x_test[:40], digits.y_test[:40]
    eps_list = {"1": [0.5, 1.0, 2.0], "0": [1, 2, 4, 8]}.get(attack.norm, EPS)
    result = attack.run(frozen_cnn, x, Goal(y), eps_list)
    found = result.found
    assert found is not None and found.min() >= 0 and found.max() <= 1
    d = distance(found - x, attack.norm)
    fooled = frozen_cnn.predict(found).argmax(1) != y
    assert fooled.float().mean() > 0.9  # they find something for nearly every sample
    for e, adv in zip(eps_list, result.examples):
        assert adv.min() >= 0 and adv.max() <= 1
        assert float(distance(adv - x, attack.norm).max()) <= e  # within the ball, to the bit
        kept = d <= e
        assert torch.equal(adv[kept], found[kept]) and torch.equal(adv[~kept], x[~kept])


@pytest.mark.parametrize("norm", ["2", "inf", "1", "0"])
def test_fmn_is_no_weaker_than_adv_libs(frozen_cnn, digits, norm):
    adv_lib = pytest.importorskip("adv_lib.attacks")
    x, y = digits.x_test[:N], digits.y_test[:N]
    ours = distances(frozen_cnn, x, y, FMN(norm=norm, steps=100).search(frozen_cnn, x, Goal(y)), norm)
    theirs = distances(frozen_cnn, x, y, adv_lib.fmn(frozen_cnn, x, y, norm=math.inf if norm == "inf" else int(norm),
                                                     steps=100), norm)
    print(f"FMN L{norm}: median ours {ours.median():.4f} adv-lib {theirs.median():.4f}; "
          f"fooled ours {torch.isfinite(ours).sum()} adv-lib {torch.isfinite(theirs).sum()}")
    assert torch.isfinite(ours.median()) and ours.median() <= theirs.median() * 1.05


def test_ddn_is_no_weaker_than_adv_libs(frozen_cnn, digits):
    adv_lib = pytest.importorskip("adv_lib.attacks")
    x, y = digits.x_test[:N], digits.y_test[:N]
    ours = distances(frozen_cnn, x, y, DDN(steps=100).search(frozen_cnn, x, Goal(y)), "2")
    theirs = distances(frozen_cnn, x, y, adv_lib.ddn(frozen_cnn, x, y, steps=100), "2")
    print(f"DDN: median ours {ours.median():.4f} adv-lib {theirs.median():.4f}")
    assert torch.isfinite(ours.median()) and ours.median() <= theirs.median() * 1.05


def test_fmn_without_the_box_aware_step_is_the_reference_step(frozen_cnn, digits):
    """``box_aware = false`` is FMN's published step: the same per-sample distances as adv-lib's FMN (whose L2
    projection rescales onto the sphere, which at alpha 1 the step nearly always leaves), and it stalls on the samples
    whose gradient pushes saturated pixels: the box-aware default fools them."""
    adv_lib = pytest.importorskip("adv_lib.attacks")
    x, y = digits.x_test[:N], digits.y_test[:N]
    plain = distances(frozen_cnn, x, y, FMN(steps=100, box_aware=False).search(frozen_cnn, x, Goal(y)), "2")
    theirs = distances(frozen_cnn, x, y, adv_lib.fmn(frozen_cnn, x, y, norm=2, steps=100), "2")
    assert torch.equal(torch.isfinite(plain), torch.isfinite(theirs))
    both = torch.isfinite(plain)
    rel = (plain[both] - theirs[both]).abs() / theirs[both].clamp_min(1e-6)
    assert float(rel.median()) < 1e-4 and float((rel < 0.01).float().mean()) >= 0.95  # they part late, where
    # the step is short enough to stay inside the ball and adv-lib rescales it onto the sphere
    aware = distances(frozen_cnn, x, y, FMN(steps=100).search(frozen_cnn, x, Goal(y)), "2")
    assert int(torch.isfinite(aware).sum()) > int(both.sum()) + 20


@pytest.fixture(scope="module")
def curve_run(cnn, digits):
    return benchmark(cnn, (digits.x_test[:N], digits.y_test[:N]),
                     attacks=[FMN(steps=50), DDN(steps=50), FABMinimumNorm(steps=20)], eps=EPS, progress=False,
                     checks=False)


def test_curves_from_one_run_equal_the_fixed_eps_rows(curve_run):
    dist = minimum_norm_distances(curve_run.samples)
    assert set(dist["attack"]) == {"fmn", "ddn", "fab-min"} and len(dist) == 3 * N
    table = curve_run.table
    for attack, g in dist.groupby("attack"):
        rows = table[table["attack"] == attack].sort_values("eps")
        assert rows["eps"].tolist() == EPS
        assert curve(g["distance"].to_numpy(), EPS) == pytest.approx(rows["robust_accuracy"].tolist(), abs=0)
    assert (table["robust_accuracy"] < table["clean_accuracy"]).all()


def test_the_best_attack_scores_one_and_a_weakened_one_lower(curve_run):
    scores = optimality_table(curve_run.samples).set_index("attack")["optimality"]
    assert scores[ENSEMBLE] == 1.0
    assert all(0.8 < scores[a] <= 1.0 for a in ("fmn", "ddn", "fab-min"))
    dist = with_ensemble(minimum_norm_distances(curve_run.samples))
    best = dist[dist["attack"] == ENSEMBLE].sort_values("sample_id")["distance"].to_numpy()
    ddn = dist[dist["attack"] == "ddn"].sort_values("sample_id")["distance"].to_numpy()
    weakened = np.where(np.arange(len(ddn)) % 2 == 0, ddn * 1.5, ddn)  # every other sample's distance 1.5x
    assert optimality(weakened, best) < optimality(ddn, best)
    never = np.where(best > 0, np.inf, 0.0)  # fools none of the correctly classified samples
    assert optimality(never, best) == pytest.approx(0.0)
    assert optimality(best, best) == 1.0


def test_a_weak_curve_below_a_fixed_eps_attack_is_flagged(cnn, digits):
    x, y = digits.x_test[:N], digits.y_test[:N]
    run = benchmark(cnn, (x, y), attacks=[DDN(steps=2), PGD(norm="2", steps=20)], eps=[0.75], progress=False,
                    checks=False)
    records = run.table.to_dict("records")
    flags = check_minimum_norm_curve_above_fixed_eps(records)
    assert [f["attack"] for f in flags] == ["ddn"], run.table[["attack", "robust_accuracy"]]
    strong = benchmark(cnn, (x, y), attacks=[DDN(steps=100), PGD(norm="2", steps=20)], eps=[0.75], progress=False,
                       checks=False)
    assert check_minimum_norm_curve_above_fixed_eps(strong.table.to_dict("records")) == []


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="gamma_final <= gamma_init < 1"):
        FMN(gamma_init=0.001, gamma_final=0.01)
    with pytest.raises(ConfigError, match="box_aware must be true or false"):
        FMN(box_aware="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="levels must be at least 2"):
        DDN(levels=1)
    with pytest.raises(ConfigError, match="norm must be 'inf', '2', '1', '0'"):
        FMN(norm="3")
    with pytest.raises(ConfigError, match="norm must be 'inf', '2', got"):
        PGD(norm="1")  # only FMN takes the sparse norms


def test_the_report_draws_the_curves_with_the_best_of_all_and_lists_optimality(curve_run):
    from robustbench_gan.reports.html import render_report

    page = render_report(curve_run)
    section = page[page.index('id="minimum-norm"'):]
    assert "best of all" in section and "Optimality" in section and section.count("<img") >= 1
    assert ">100.0%<" in section.split("</table>")[0]  # the best of all scores 100% by construction


def test_a_samples_ddn_and_fmn_do_not_depend_on_its_batch(per_sample_cnn, digits):
    """Every draw DDN makes for a sample (a random direction where its gradient vanishes) is its own, drawn every
    step: on the one-sample-per-kernel CNN, rows 3..7 attacked alone equal those rows of the whole batch."""
    x, y = digits.x_test[:16], digits.y_test[:16]
    clf = per_sample_cnn
    for p in clf.parameters():
        p.requires_grad_(False)
    for attack in (DDN(steps=15), FMN(steps=15)):
        whole = attack.search(clf, x, attack.make_goal(clf, x, y))
        part = attack.search(clf, x[3:8], attack.make_goal(clf, x[3:8], y[3:8], ids=torch.arange(3, 8)))
        assert torch.equal(whole[3:8], part), type(attack).__name__
    for p in clf.parameters():
        p.requires_grad_(True)


def test_fmn_and_ddn_take_a_target(frozen_cnn, digits):
    x, y = digits.x_test[:30], digits.y_test[:30]
    for attack in (FMN(steps=50, targeted=True, target_mode="least-likely"),
                   DDN(steps=50, targeted=True, target_mode="least-likely")):
        goal = attack.make_goal(frozen_cnn, x, y)
        found = attack.search(frozen_cnn, x, goal)
        hit = frozen_cnn.predict(found).argmax(1) == goal.labels
        assert goal.targeted and float(hit.float().mean()) > 0.9


def test_an_l1_and_an_l0_curve_come_from_one_run_through_the_guard(cnn, digits):
    """FMN in L1 and L0 through ``benchmark()``: the guard checks their balls, the rows are the curves at eps."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    for norm, eps in (("1", [0.5, 1.0, 2.0]), ("0", [1, 2, 4])):
        run = benchmark(cnn, (x, y), attacks=[FMN(norm=norm, steps=30)], eps=eps, progress=False, checks=False)
        dist = minimum_norm_distances(run.samples)
        assert set(dist["norm"]) == {norm}
        assert curve(dist["distance"].to_numpy(), eps) == run.table.sort_values("eps")["robust_accuracy"].tolist()
