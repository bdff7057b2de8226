"""Each sanity check: a case that must trigger it and one that must not."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_gan.checks import EXPLANATIONS, table_flags
from robustbench_gan.checks.probes import accuracy_at_huge_eps, check_outputs, classifier_flags, zero_gradients
from robustbench_gan.checks.row_checks import (
    check_accuracy_rises_with_eps, check_single_step_vs_iterative, check_white_box_above_transfer,
)
from robustbench_gan.classifier import Classifier


ROLES = {"fgsm": "single-step", "pgd": "iterative", "bim": "iterative", "noise": "probe", "square": "black-box"}


def rec(attack, eps, acc, *, kind=None, threat="white-box", source="", model="m", defense="none", n=400, half=0.03):
    kind = kind or attack
    return {"model": model, "defense": defense, "attack": attack, "attack_kind": kind,
            "attack_role": ROLES.get(kind, "iterative"), "threat": threat,
            "source": source, "targeted": False, "norm": "inf", "eps": eps, "n": n, "robust_accuracy": acc,
            "robust_accuracy_low": max(0.0, acc - half), "robust_accuracy_high": min(1.0, acc + half)}


def checks_of(flags):
    return {f["check"] for f in flags}


def test_accuracy_rising_with_eps():
    good = [rec("fgsm", 0.1, 0.6), rec("fgsm", 0.2, 0.3), rec("fgsm", 0.3, 0.3 + 1 / 400)]  # one sample: noise
    assert check_accuracy_rises_with_eps(good) == []
    bad = [rec("fgsm", 0.1, 0.6), rec("fgsm", 0.2, 0.3), rec("fgsm", 0.3, 0.5)]
    (flag,) = check_accuracy_rises_with_eps(bad)
    assert flag["check"] == "accuracy-rises-with-eps" and "0.2" in flag["message"] and flag["reference"]


def test_single_step_vs_iterative():
    normal = [rec("fgsm", 0.2, 0.30), rec("pgd", 0.2, 0.20)]
    assert check_single_step_vs_iterative(normal) == []
    broken = [rec("fgsm", 0.2, 0.20), rec("pgd", 0.2, 0.40)]
    assert checks_of(check_single_step_vs_iterative(broken)) == {"single-step-beats-iterative"}
    masked = [rec("fgsm", 0.2, 0.60), rec("pgd-margin", 0.2, 0.05, kind="pgd")]
    assert checks_of(check_single_step_vs_iterative(masked)) == {"single-step-far-above-iterative"}
    other_eps = [rec("fgsm", 0.1, 0.60), rec("pgd", 0.2, 0.05)]  # different budgets are not compared
    assert check_single_step_vs_iterative(other_eps) == []


def test_white_box_above_transfer():
    ok = [rec("pgd", 0.2, 0.1), rec("pgd", 0.2, 0.5, threat="transfer", source="cnn")]
    assert check_white_box_above_transfer(ok) == []
    masked = [rec("pgd", 0.2, 0.8), rec("pgd", 0.2, 0.3, threat="transfer", source="cnn")]
    (flag,) = check_white_box_above_transfer(masked)
    assert flag["check"] == "white-box-above-transfer" and "cnn" in flag["message"]
    assert checks_of(table_flags(masked)) == {"white-box-above-transfer"}


def linear(scale: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        net[1].weight.mul_(scale)
    return net


class Probabilities(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = linear()

    def forward(self, x):
        return F.softmax(self.net(x), 1)


class AlwaysDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = linear()

    def forward(self, x):
        return self.net(F.dropout(x, 0.5, training=True))


def test_outputs_checks(batch):
    x = batch[0][:50]
    assert check_outputs(Classifier(linear(), num_classes=10), x) == []
    assert check_outputs(Classifier(Probabilities(), num_classes=10), x) == ["outputs-are-probabilities"]
    assert "nondeterministic-outputs" in check_outputs(Classifier(AlwaysDropout(), num_classes=10), x)


def test_zero_gradients_from_saturated_softmax(cnn, batch):
    x, y = batch
    assert zero_gradients(cnn, x, y).ce < 0.05 * len(x)
    saturated = Classifier(nn.Sequential(cnn.model, nn.Flatten(), ScaleBy(1e4)), num_classes=10).eval()
    counts = zero_gradients(saturated, x, y)
    assert counts.ce > 0.5 * counts.n


class ScaleBy(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_huge_eps_catches_gradient_free_models(cnn, batch):
    x, y = batch[0][:100], batch[1][:100]
    assert accuracy_at_huge_eps(cnn, x, y) < 0.05
    masked = Classifier(nn.Sequential(cnn.model, ScaleBy(1e4)), num_classes=10).eval()
    assert accuracy_at_huge_eps(masked, x, y) > 0.5


def test_classifier_flags_end_to_end(cnn, batch):
    x, y = batch
    assert classifier_flags(cnn, x, y, model="cnn", defense="none") == []
    masked = Classifier(nn.Sequential(cnn.model, ScaleBy(1e4)), num_classes=10).eval()
    flags = classifier_flags(masked, x, y, model="cnn", defense="masked")
    assert {"zero-gradients", "robust-at-huge-eps"} <= checks_of(flags)
    assert all(f["explanation"] and f["reference"] for f in flags)


def test_every_check_is_explained():
    for name, (explanation, reference) in EXPLANATIONS.items():
        assert len(explanation) > 40 and reference, name



def test_black_box_below_white_box_flags_masked_gradients():
    from robustbench_gan.checks.row_checks import check_black_box_below_white_box

    masked = [rec("pgd", 0.1, 0.80), rec("fgsm", 0.1, 0.85), rec("square", 0.1, 0.30, threat="black-box")]
    honest = [rec("pgd", 0.1, 0.30), rec("fgsm", 0.1, 0.40), rec("square", 0.1, 0.32, threat="black-box")]
    assert checks_of(check_black_box_below_white_box(masked)) == {"black-box-below-white-box"}
    assert check_black_box_below_white_box(honest) == []
    assert "black-box-below-white-box" in EXPLANATIONS


def test_naive_attacks_only_on_a_purifier_are_flagged():
    from robustbench_gan.checks.row_checks import check_naive_attacks_only_on_purifier

    def purified(attack, acc, **kw):
        return {**rec(attack, 0.2, acc, defense="dgan", **kw), "purified": True}

    naive = [purified("fgsm", 0.9), purified("pgd", 0.85), rec("pgd", 0.2, 0.0)]  # the undefended row: not purified
    (flag,) = check_naive_attacks_only_on_purifier(naive)
    assert flag["defense"] == "dgan" and "fgsm, pgd" in flag["message"] and "85.0%" in flag["message"]
    assert checks_of(table_flags(naive)) == {"naive-attacks-only-on-purifier"}
    bpda = naive + [{**purified("pgd-bpda", 0.2, kind="pgd"), "adaptive": "bpda"}]
    assert check_naive_attacks_only_on_purifier(bpda) == []
    latent = naive + [purified("latent", 0.3)]
    assert check_naive_attacks_only_on_purifier(latent) == []
    read_back = [{**r, "adaptive": float("nan")} for r in naive]  # a CSV read back: empty cells are NaN
    assert len(check_naive_attacks_only_on_purifier(read_back)) == 1
    black_box_only = [purified("square", 0.5, threat="black-box")]
    assert check_naive_attacks_only_on_purifier(black_box_only) == []
