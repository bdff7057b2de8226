"""AutoAttack's cascade (Croce & Hein 2020): each component only on the samples still robust, per-component rows,
the saturated-softmax model, the gradient-masking flag, the export card, and (slow) the cross-check against
torchattacks' AutoAttack(version="standard")."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_gan import benchmark
from robustbench_gan.attacks import APGD, APGDT, PGD, AutoAttack, Goal, make_attack
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.classifier import Classifier
from robustbench_gan.errors import ConfigError
from robustbench_gan.export import robustbench_entries
from robustbench_gan.purified import PurifiedClassifier, Purifier, Rejecting, detections
from test_purified import Quantize  # rounds pixels without autograd: zero naive gradients

N = 100


class Scaled(nn.Module):
    def __init__(self, inner: nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x):
        return self.factor * self.inner(x)


class Quantized(nn.Module):
    """Rounds pixels to 4 levels before the model: zero input gradients almost everywhere (gradient masking)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 3) / 3)


def robust(clf: Classifier, x: torch.Tensor, y: torch.Tensor) -> int:
    return int((clf.predict(x).argmax(1) == y).sum())


def test_each_component_attacks_only_the_samples_still_robust(cnn, digits):
    """The cascade's APGD-T costs exactly what APGD-T costs on the samples APGD-CE left (plus one verifying pass),
    and each component's cumulative accuracy is what running them one after another gives (``custom`` keeps the
    reference's 5 restarts for APGD-CE)."""
    x, y, eps = digits.x_test[:N], digits.y_test[:N], 0.11
    clean_ok = (cnn.predict(x).argmax(1) == y).nonzero().squeeze(1)
    before = cnn.queries
    # each sample's draws are keyed by its id: the ids the cascade gives them, the random starts it draws
    adv = APGD(steps=10, restarts=5)(cnn, x[clean_ok], Goal(y[clean_ok], ids=clean_ok), eps=eps)
    q_ce = cnn.queries - before
    standing = clean_ok[cnn.predict(adv).argmax(1) == y[clean_ok]]
    before = cnn.queries
    adv_t = APGDT(steps=10, targets=3)(cnn, x[standing], Goal(y[standing], ids=standing), eps=eps)
    q_t = cnn.queries - before
    left = int((cnn.predict(adv_t).argmax(1) == y[standing]).sum())
    assert 0 < len(standing) < len(clean_ok) and left < len(standing)  # both components do some work

    aa = AutoAttack(version="custom", attacks=["apgd-ce", "apgd-t"], steps=10, targets=3)
    (outcome,) = evaluate_attack(cnn, x, y, aa, [eps], batch_size=N, progress=False)
    (ce_label, ce), (t_label, t) = [(c.label, c.outcome) for c in outcome.components]
    assert (ce_label, t_label) == ("apgd-ce", "apgd-t")
    assert ce.metrics["queries"] == q_ce + len(clean_ok)  # its attack + one pass confirming the successes
    assert t.metrics["queries"] == q_t + len(standing)
    assert ce.metrics["robust_accuracy"] == pytest.approx(len(standing) / N)
    assert t.metrics["robust_accuracy"] == pytest.approx(left / N) == pytest.approx(
        outcome.metrics["robust_accuracy"])


def test_suite_rows_per_component_and_the_cascade_as_worst_case(cnn, digits):
    aa = AutoAttack(version="custom", attacks=["apgd-ce", "square"], steps=10, queries=50)
    res = benchmark(cnn, (digits.x_test[:60], digits.y_test[:60]), attacks=[aa], eps=[0.1, 0.2], progress=False,
                    checks=False)
    rows = {(r["attack"], r["eps"]): r for r in res.records}
    assert {a for a, _ in rows} == {"autoattack", "autoattack/apgd-ce", "autoattack/square"}
    for eps in (0.1, 0.2):
        ce, sq, cascade = (rows[(a, eps)] for a in ("autoattack/apgd-ce", "autoattack/square", "autoattack"))
        assert ce["robust_accuracy"] >= sq["robust_accuracy"] == cascade["robust_accuracy"]
        assert (ce["attack_role"], sq["attack_role"], cascade["attack_role"]) == ("iterative", "black-box",
                                                                                   "ensemble")
        assert sq["threat"] == "black-box" and sq["queries"] > 0
    board = {b["eps"]: b for b in res.leaderboard}
    assert board[0.2]["worst_case_accuracy"] == rows[("autoattack", 0.2)]["robust_accuracy"]
    assert res.manifest["standard_autoattack"] == []  # a custom, reduced cascade is not "AutoAttack"


def test_autoattack_is_not_fooled_by_a_saturated_softmax(cnn, digits):
    """Logits x 1000: CE-PGD stalls, margin-PGD does not, and neither does the cascade (APGD-T's DLR, FAB-T and
    Square are all scale-invariant)."""
    clf = Classifier(Scaled(cnn, 1000.0), num_classes=10).eval()
    x, y, eps = digits.x_test[:N], digits.y_test[:N], 0.2
    ce = robust(clf, PGD(steps=20)(clf, x, Goal(y), eps=eps), y)
    margin = robust(clf, PGD(steps=20, loss="margin")(clf, x, Goal(y), eps=eps), y)
    aa = AutoAttack(steps=20, targets=3, queries=200)
    cascade = robust(clf, aa(clf, x, Goal(y), eps=eps), y)
    assert ce > margin + 20
    assert cascade <= margin + 1


def test_square_beating_the_gradients_inside_the_cascade_is_flagged(cnn, digits):
    clf = Classifier(Quantized(cnn), num_classes=10).eval()
    aa = AutoAttack(version="custom", attacks=["apgd-ce", "square"], steps=10, queries=300)
    res = benchmark(clf, (digits.x_test[:N], digits.y_test[:N]), attacks=[aa], eps=[0.2], progress=False)
    flagged = {(f["check"], f["attack"]) for f in res.flags}
    assert ("square-after-gradients", "autoattack/square") in flagged  # AutoAttack's check_square_sr


def test_versions_and_bad_configs():
    standard = AutoAttack()
    assert standard.component_names == ("apgd-ce", "apgd-t", "fab-t", "square") and standard.is_standard
    assert not AutoAttack(steps=20).is_standard
    rand = make_attack("autoattack", version="rand")
    assert [label for label, _ in rand.components()] == ["apgd-ce", "apgd-dlr"]
    assert all(c.eot_samples == 20 for _, c in rand.components())
    assert not rand.is_standard
    custom = AutoAttack(version="custom", attacks=["square", "apgd-dlr"])
    assert [type(c).__name__ for _, c in custom.components()] == ["Square", "APGD"]
    for bad, words in (({"version": "plus+"}, "version must be one of standard, plus, rand, custom"),
                       ({"version": "custom"}, "needs attacks"),
                       ({"version": "custom", "attacks": ["apgd-ce", "pgd"]}, "unknown autoattack component 'pgd'"),
                       ({"attacks": ["square"]}, "only for version = 'custom'")):
        with pytest.raises(ConfigError, match=words):
            AutoAttack(**bad)
    with pytest.raises(ConfigError, match="untargeted"):
        AutoAttack(version="custom", attacks=["square"]).perturb_many(
            None, torch.zeros(1, 1, 2, 2), Goal(torch.zeros(1, dtype=torch.long), True), [0.1])


def test_export_card_says_autoattack_only_for_the_standard_version():
    from robustbench_gan.results import Results

    board = [{"model": "m", "defense": "none", "norm": "inf", "eps": 0.3, "n": 10, "clean_accuracy": 0.9,
              "worst_case_accuracy": 0.4, "worst_case_low": 0.2, "worst_case_high": 0.7, "attacks": 3,
              "strongest_attack": "aa", "strongest_attack_accuracy": 0.4}]
    records = [{"model": "m", "defense": "none", "attack": "aa", "norm": "inf", "eps": 0.3, "source": "",
                "robust_accuracy": 0.5},
               {"model": "m", "defense": "none", "attack": "aa/square", "norm": "inf", "eps": 0.3, "source": "",
                "robust_accuracy": 0.5}]
    ran = Results(manifest={"suite": "s", "standard_autoattack": ["aa"]}, leaderboard=board)
    ran.extend(records)
    (card,) = robustbench_entries(ran)
    assert card["autoattack_acc"] == "50.00" and card["worst_case_acc"] == "40.00"
    assert card["footnote"].startswith("AutoAttack (standard") and "not AutoAttack" not in card["footnote"]
    other = Results(manifest={"suite": "s", "standard_autoattack": []}, leaderboard=board)
    other.extend(records)
    (card,) = robustbench_entries(other)
    assert card["autoattack_acc"] == "40.00" and "not AutoAttack" in card["footnote"]


@pytest.mark.slow
@pytest.mark.parametrize("which, eps", [  # about 3 minutes each on 2 cores: two in CI, all four in `make test-heavy`
    ("natural", 0.1), ("pgd-trained", 0.2),
    pytest.param("natural", 0.2, marks=pytest.mark.heavy), pytest.param("pgd-trained", 0.1, marks=pytest.mark.heavy)])
def test_autoattack_at_least_as_strong_as_torchattacks(which, eps, cnn, pgd_trained, digits):
    """Our standard AutoAttack (full budget) is not weaker than torchattacks' AutoAttack(version="standard") beyond
    the sampling error (tests/yardstick.py), on the same model and data."""
    torchattacks = pytest.importorskip("torchattacks")
    clf = cnn if which == "natural" else pgd_trained
    x, y = digits.x_test[:N], digits.y_test[:N]
    from yardstick import assert_not_weaker, standing

    ours = standing(clf, AutoAttack()(clf, x, Goal(y), eps=eps), y)
    theirs = standing(clf, torchattacks.AutoAttack(clf, norm="Linf", eps=eps, version="standard", n_classes=10,
                                                   seed=0)(x, y), y)
    assert_not_weaker(ours, theirs, f"autoattack {which} eps {eps}")


@pytest.mark.parametrize("make", [lambda: APGD(steps=15), lambda: APGD(steps=15, loss="dlr", restarts=2),
                                  lambda: APGDT(steps=10, targets=3)])
@pytest.mark.parametrize("exact", [False, True])
def test_apgd_active_set_gives_the_same_examples_for_fewer_passes(make, exact, cnn, per_sample_cnn, digits):
    """Fooled samples leave the batch: the same samples fall (same seed), for fewer forward passes; identical
    examples where kernels cannot depend on the batch (the per-sample model)."""
    from conftest import assert_same_decisions

    x, y = digits.x_test[:N], digits.y_test[:N]
    clf = per_sample_cnn if exact else cnn
    runs = {}
    for active in (True, False):
        attack = make()
        attack.active_set = active
        before = clf.queries
        runs[active] = attack(clf, x, Goal(y), eps=0.15), clf.queries - before
    (with_set, q_with), (without, q_without) = runs[True], runs[False]
    assert_same_decisions(clf, with_set, without, x, y, 0.15)
    if exact:
        assert torch.equal(with_set, without)
    assert q_with < 0.8 * q_without


@pytest.mark.parametrize("restarts", [1, 2])
def test_apgd_t_targets_side_by_side_fool_exactly_the_samples_one_after_another_fools(restarts, cnn, digits):
    """APGD-T's later targets run side by side by default (``batch_targets``): the same samples fall as with
    AutoAttack's order (each run's trajectory depends only on its sample and start) and the examples stay in the
    ball. A sample fooled by one target leaves every other run, so the samples scored stay close to the order one
    by one (the gain is fewer, larger batches: 12 + 12 steps instead of 5 x 12)."""
    x, y, eps = digits.x_test[:N], digits.y_test[:N], 0.11
    results = {}
    for batch_targets in (None, 2, 1):
        cnn.queries = 0
        adv = APGDT(steps=12, targets=5, restarts=restarts, batch_targets=batch_targets)(cnn, x, Goal(y), eps=eps)
        results[batch_targets] = cnn.predict(adv).argmax(1) != y, cnn.queries
        assert float((adv - x).abs().max()) <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    fooled_one_by_one = results[1][0]
    assert 0 < int(fooled_one_by_one.sum()) < N
    for batch_targets in (None, 2):
        assert torch.equal(results[batch_targets][0], fooled_one_by_one), batch_targets
    assert results[None][1] <= 1.2 * results[1][1], (results[None][1], results[1][1])


def test_apgd_t_rejects_a_bad_batch_targets():
    with pytest.raises(ConfigError, match="batch_targets"):
        APGDT(batch_targets=0)


class OffGrid(Purifier):
    """No purification; the detector rejects an input with a pixel off the digits' 1/16 grid (clean digits are on
    it; an example at eps 0.1 is not)."""

    detects = True

    def forward(self, x):
        return x

    @staticmethod
    def off_grid(x):
        """Per sample, how far its farthest pixel is from the 1/16 grid (in units of 1/16)."""
        return (x * 16 - (x * 16).round()).abs().flatten(1).amax(1)

    def detect(self, x):
        return self.off_grid(x) > 1e-4


def test_a_rejected_example_leaves_the_sample_standing_for_the_next_component(cnn, digits):
    """The report counts an input the detector rejects as defended, so the cascade must too: a component whose
    examples are all rejected fools no sample, and the next component attacks every sample."""
    defended = PurifiedClassifier(cnn, OffGrid()).eval()
    x, y = digits.x_test[:N], digits.y_test[:N]
    assert not detections(defended, x).any()
    aa = AutoAttack(version="custom", attacks=["apgd-ce", "square"], steps=10, queries=20)
    (outcome,) = evaluate_attack(defended, x, y, aa, [0.1], batch_size=N, progress=False)
    ce, sq = [c.outcome for c in outcome.components]
    clean = outcome.metrics["clean_accuracy"]
    assert ce.metrics["robust_accuracy"] == sq.metrics["robust_accuracy"] == outcome.metrics["robust_accuracy"]
    assert outcome.metrics["robust_accuracy"] == pytest.approx(clean)
    assert sq.metrics["queries"] >= round(clean * N)  # Square ran on every sample APGD-CE left (all of them)
    undefended = AutoAttack(version="custom", attacks=["apgd-ce", "square"], steps=10, queries=20)
    (plain,) = evaluate_attack(cnn, x, y, undefended, [0.1], batch_size=N, progress=False)
    assert plain.metrics["robust_accuracy"] < clean - 0.2  # the same attacks do fool the model without detector


def test_adaptive_autoattack_breaks_a_purifier_the_naive_cascade_cannot(cnn, digits):
    """Against zero naive gradients, APGD-CE/APGD-T learn nothing; with ``adaptive = "bpda"`` they differentiate
    the identity instead, the cascade falls far lower, and decisions (rows, per-component results) stay the
    defended model's. FAB-T runs through the view too. Only the naive full-budget cascade is standard."""
    defended = PurifiedClassifier(cnn, Quantize()).eval()
    x, y = digits.x_test[:N], digits.y_test[:N]
    accs = {}
    for adaptive in ("none", "bpda"):
        aa = AutoAttack(version="custom", attacks=["apgd-ce", "apgd-t", "fab-t"], steps=10, targets=3,
                        adaptive=adaptive)
        (outcome,) = evaluate_attack(defended, x, y, aa, [0.2], batch_size=N, progress=False)
        accs[adaptive] = outcome.metrics["robust_accuracy"]
        assert outcome.components[-1].outcome.metrics["robust_accuracy"] == pytest.approx(accs[adaptive])
    assert accs["none"] > 0.6 and accs["bpda"] < accs["none"] - 0.3, accs
    assert AutoAttack().is_standard and not AutoAttack(adaptive="bpda").is_standard
    # the component rows say what they differentiated; Square (scores only) is not adaptive
    assert [(label, c.adaptive) for label, c in AutoAttack(adaptive="bpda").components()] == [
        ("apgd-ce", "bpda"), ("apgd-t", "bpda"), ("fab-t", "bpda"), ("square", "none")]
    with pytest.raises(ConfigError, match="adaptive must be a mode name"):
        AutoAttack(adaptive="BPDA!")


class Reformer(OffGrid):
    """Shrinks the input toward grey and rejects inputs off the digits' 1/16 grid; its ``detector-aware`` view adds
    how far off the grid an input is, so a detector-aware attack must stay on it (a stand-in for MagNet)."""

    views = ("detector-aware",)

    def forward(self, x):
        return 0.9 * x + 0.05

    def view(self, mode):
        return lambda x: Rejecting(self(x), self.off_grid(x) - 1e-4)


def test_fab_and_apgd_through_a_view_with_a_rejection_column(cnn, digits):
    """On a view whose logits carry the detector's column, FAB-T and APGD-T treat it as no class, and every
    success they count is an input the detector lets through (here none: the off-grid examples are all
    rejected)."""
    defended = PurifiedClassifier(cnn, Reformer()).eval()
    x, y = digits.x_test[:N], digits.y_test[:N]
    aa = AutoAttack(version="custom", attacks=["apgd-t", "fab-t"], steps=10, targets=3, adaptive="detector-aware")
    (outcome,) = evaluate_attack(defended, x, y, aa, [0.1], batch_size=N, progress=False)
    assert outcome.metrics["robust_accuracy"] == pytest.approx(outcome.metrics["clean_accuracy"])
    for o in [c.outcome for c in outcome.components]:
        assert o.metrics["robust_accuracy"] == pytest.approx(outcome.metrics["clean_accuracy"])
        assert o.metrics["queries"] > 0


def test_a_randomized_model_is_scored_on_the_cascades_own_draws(cnn, digits):
    """Gaussian noise on the logits, version = "rand" (with fewer steps and draws): the cascade's row is its own
    per-sample decisions, so it is never above its last component's row (before, the returned point was
    classified again with a fresh draw: a sample fell only when two draws agreed)."""
    from robustbench_gan.evaluation import evaluate_attack

    class NoisyLogits(nn.Module):
        def forward(self, z):
            logits = cnn(z)
            return logits + 2.0 * torch.randn_like(logits)

    noisy = Classifier(NoisyLogits(), num_classes=10).eval()
    x, y = digits.x_test[:N], digits.y_test[:N]
    for seed in range(3):
        torch.manual_seed(seed)
        aa = AutoAttack(version="rand", steps=5, eot_samples=2, seed=seed)
        outcome, = evaluate_attack(noisy, x, y, aa, [0.1], progress=False, seed=seed)
        last = outcome.components[-1].outcome.metrics["robust_accuracy"]
        assert outcome.metrics["robust_accuracy"] == last, seed
        assert outcome.metrics["clean_accuracy"] == outcome.components[0].outcome.metrics["clean_accuracy"]


def test_versions_use_the_references_restarts():
    """fra31/auto-attack a392200, autoattack.py: APGD and FAB are built with n_restarts=5 (what `custom` keeps),
    set_version("standard") and "rand" set 1, "plus" keeps 5 for APGD-CE/DLR and FAB; APGD-T and FAB-T run one
    restart; Square runs its unrescaled schedule."""
    def restarts(aa):
        return {label: getattr(attack, "restarts", None) for label, attack in aa.components()}

    assert restarts(AutoAttack()) == {"apgd-ce": 1, "apgd-t": 1, "fab-t": 1, "square": None}
    assert restarts(AutoAttack(version="plus")) == {"apgd-ce": 5, "apgd-dlr": 5, "fab": 5, "square": None,
                                                   "apgd-t": 1, "fab-t": 1}
    assert restarts(AutoAttack(version="rand")) == {"apgd-ce": 1, "apgd-dlr": 1}
    custom = AutoAttack(version="custom", attacks=["apgd-ce", "apgd-dlr", "fab", "fab-t", "apgd-t", "square"])
    assert restarts(custom) == {"apgd-ce": 5, "apgd-dlr": 5, "fab": 5, "fab-t": 1, "apgd-t": 1, "square": None}
    assert all(not a.rescale for label, a in AutoAttack().components() if label == "square")
    assert AutoAttack(version="plus").reference_version == "plus" and not AutoAttack(version="plus").is_standard
    assert AutoAttack(version="rand").components()[0][1].eot_samples == 20


def test_the_cascade_rebatches_the_samples_still_standing_before_each_component(cnn, digits, monkeypatch):
    """As the reference's ``run_standard_evaluation``: each component gets the samples still standing in batches of
    ``batch_size`` (not one short run per evaluation batch), every batch within ``batch_size``; the rows are those of
    the per-sample record whatever the batching."""
    from robustbench_gan.attacks.square import Square

    sizes: dict[str, list[int]] = {"apgd": [], "square": []}
    for cls, key in ((APGD, "apgd"), (Square, "square")):
        original = cls.perturb

        def spy(self, clf, x, goal, *, eps, _original=original, _key=key):
            sizes[_key].append(len(x))
            return _original(self, clf, x, goal, eps=eps)
        monkeypatch.setattr(cls, "perturb", spy)
    x, y = digits.x_test[:N], digits.y_test[:N]
    aa = AutoAttack(version="custom", attacks=["apgd-ce", "square"], steps=5, queries=20)
    (outcome,) = evaluate_attack(cnn, x, y, aa, [0.1], batch_size=30, progress=False)
    correct = int((cnn.predict(x).argmax(1) == y).sum())
    after_apgd, after_square = [c.outcome for c in outcome.components]
    standing = round(after_apgd.metrics["robust_accuracy"] * N)
    assert sizes["apgd"] == [30] * (correct // 30) + ([correct % 30] if correct % 30 else [])
    assert 30 < standing < correct  # APGD fools some, and what stands spans more than one batch
    assert sizes["square"] == [30] * (standing // 30) + ([standing % 30] if standing % 30 else [])
    assert after_square.metrics["robust_accuracy"] == outcome.metrics["robust_accuracy"]


def test_the_cascades_targeted_components_keep_a_pass_within_batch_size(cnn, digits, monkeypatch):
    """APGD-T's later targets run side by side only as far as ``batch_size`` rows allow (on a CPU a pass several
    times the batch runs slower per row; on a GPU it may not fit): every forward pass of the cascade holds at most
    ``batch_size`` rows."""
    rows: list[int] = []
    handle = cnn.model.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
    x, y = digits.x_test[:N], digits.y_test[:N]
    aa = AutoAttack(version="custom", attacks=["apgd-t"], steps=3, targets=5)
    try:
        evaluate_attack(cnn, x, y, aa, [0.05], batch_size=40, progress=False)
    finally:
        handle.remove()
    assert max(rows) <= 40 < N and len(rows) > 10
