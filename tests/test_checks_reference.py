"""The checks AutoAttack runs (fra31/auto-attack checks.py), at its sensitivity: Square after the gradient attacks
of a cascade, zero DLR-loss gradients, randomness beyond float noise over 5 passes, a dynamic forward pass. Each:
a case that must trigger it and one that must not."""
from __future__ import annotations

import copy

import torch
from torch import nn

from robustbench_gan.checks import EXPLANATIONS, table_flags
from robustbench_gan.checks.probes import (
    check_outputs, classifier_flags, dynamic_forward, dynamic_problem, output_problems, zero_gradient_problem,
    zero_gradients,
)
from robustbench_gan.checks.row_checks import check_black_box_below_white_box, check_square_after_gradients
from robustbench_gan.classifier import Classifier
from robustbench_gan.defenses import DefenseGanProjection
from robustbench_gan.purified import PurifiedClassifier, Purifier


def checks_of(flags):
    return {f["check"] for f in flags}


# --- Square after the gradient attacks of an AutoAttack cascade ---------------------------------------------------

STANDARD = (("apgd-ce", "iterative", "white-box"), ("apgd-t", "iterative", "white-box"),
            ("fab-t", "iterative", "white-box"), ("square", "black-box", "black-box"))


def cascade(accuracies, *, n=1000, eps=0.3, name="autoattack", components=STANDARD, half=0.03):
    """The rows a cascade writes: its own (role ``ensemble``, the final accuracy) and one per component, in cascade
    order, each with the robust accuracy after that component (cumulative)."""
    def row(attack, role, threat, acc):
        return {"model": "m", "defense": "none", "attack": attack, "attack_kind": "autoattack", "attack_role": role,
                "threat": threat, "source": "", "targeted": False, "norm": "inf", "eps": eps, "n": n,
                "robust_accuracy": acc, "robust_accuracy_low": max(0.0, acc - half),
                "robust_accuracy_high": min(1.0, acc + half)}

    rows = [row(name, "ensemble", "white-box", accuracies[-1])]
    return rows + [row(f"{name}/{label}", role, threat, acc)
                   for (label, role, threat), acc in zip(components, accuracies)]


def test_square_fooling_one_percent_after_fab_t_is_flagged():
    (flag,) = check_square_after_gradients(cascade([0.60, 0.52, 0.50, 0.49]))
    assert flag["check"] == "square-after-gradients" and flag["attack"] == "autoattack/square"
    assert "square fooled 10 of the 500 samples that apgd-ce, apgd-t, fab-t left standing (n = 1,000)" \
        in flag["message"] and "50.0% -> 49.0%" in flag["message"] and "\n" not in flag["message"]
    assert checks_of(table_flags(cascade([0.60, 0.52, 0.50, 0.49]))) == {"square-after-gradients"}


def test_square_within_alpha_is_not_flagged():
    assert check_square_after_gradients(cascade([0.60, 0.52, 0.50, 0.499])) == []  # one sample: 0.1%
    assert check_square_after_gradients(cascade([0.60, 0.52, 0.50, 0.498])) == []  # two: exactly 0.2%, allowed
    assert len(check_square_after_gradients(cascade([0.60, 0.52, 0.50, 0.497]))) == 1  # three: 0.3%
    assert check_square_after_gradients(cascade([0.60, 0.52, 0.50, 0.50])) == []


def test_square_is_judged_against_the_row_just_before_it_from_the_counts():
    # Square fooled 3 of n = 100 (3% > 0.2%): flagged although 0.47 and 0.50 have overlapping intervals
    assert len(check_square_after_gradients(cascade([0.55, 0.50, 0.50, 0.47], n=100, half=0.1))) == 1
    # n = 100: AutoAttack's 0.2 points are less than one sample, so one sample fooled by Square is enough
    assert len(check_square_after_gradients(cascade([0.55, 0.50, 0.50, 0.49], n=100))) == 1
    # a cascade that starts with Square: nothing before it to beat
    first = (("square", "black-box", "black-box"), ("apgd-ce", "iterative", "white-box"))
    assert check_square_after_gradients(cascade([0.40, 0.30], components=first)) == []
    # one check per eps and cascade
    two = cascade([0.6, 0.5, 0.5, 0.49], eps=0.1) + cascade([0.6, 0.5, 0.5, 0.499], eps=0.2)
    assert [f["message"].split(",")[0] for f in check_square_after_gradients(two)] == ["at eps 0.1"]


def test_cascade_rows_read_back_from_a_csv():
    read_back = [{**r, "source": float("nan"), "adaptive": float("nan")} for r in cascade([0.6, 0.5, 0.5, 0.48])]
    assert len(check_square_after_gradients(read_back)) == 1


def test_standalone_black_box_check_leaves_cascade_rows_alone():
    rows = cascade([0.80, 0.80, 0.80, 0.30])  # Square far below the gradients, disjoint intervals
    assert checks_of(table_flags(rows)) == {"square-after-gradients"}
    assert check_black_box_below_white_box(rows) == []
    standalone = {**rows[-1], "attack": "square", "attack_kind": "square"}  # a Square run of its own still is
    assert checks_of(check_black_box_below_white_box(rows + [standalone])) == {"black-box-below-white-box"}


# --- zero gradients, DLR loss ------------------------------------------------------------------------------------

class DetachTopSample(nn.Module):
    """The logits of the batch's brightest input computed under ``no_grad``: its gradient is zero, the others'
    are not."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        with torch.no_grad():
            frozen = self.inner(x)
        top = torch.zeros(len(x), 1, dtype=torch.bool, device=x.device)
        top[x.flatten(1).sum(1).argmax()] = True
        return torch.where(top, frozen, out)


class Quantised(nn.Module):
    """Input quantisation to 16 levels (zero gradient almost everywhere: AutoAttack's issue #44)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 15) / 15)


class ScaleBy(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_a_single_zero_dlr_gradient_is_flagged(cnn, batch):
    x, y = batch[0][:100], batch[1][:100]
    clean = zero_gradients(cnn, x, y)
    assert clean.dlr == 0 and clean.ce == 0 and clean.n > 90 and zero_gradient_problem(clean) is None
    one = zero_gradients(Classifier(DetachTopSample(cnn.model), num_classes=10).eval(), x, y)
    assert one.dlr == 1 and one.n == clean.n
    message = zero_gradient_problem(one)
    assert message.startswith(f"the DLR-loss gradient is all-zero or non-finite at 1 of {one.n} correctly")
    flags = classifier_flags(Classifier(DetachTopSample(cnn.model), num_classes=10).eval(), x, y, model="cnn",
                             defense="top")
    assert "zero-gradients" in checks_of(flags)


def test_quantisation_zeroes_every_gradient(cnn, batch):
    x, y = batch[0][:100], batch[1][:100]
    counts = zero_gradients(Classifier(Quantised(cnn.model), num_classes=10).eval(), x, y)
    assert counts.n > 80 and counts.dlr == counts.n == counts.ce
    assert f"at {counts.n} of {counts.n} correctly classified inputs" in zero_gradient_problem(counts)


def test_saturated_softmax_is_told_apart(cnn, batch):
    x, y = batch[0][:100], batch[1][:100]
    saturated = Classifier(nn.Sequential(cnn.model, ScaleBy(1e4)), num_classes=10).eval()
    counts = zero_gradients(saturated, x, y)
    assert counts.dlr == 0 and counts.ce > 0.5 * counts.n  # the DLR loss ignores the logits' scale
    assert "saturated softmax" in zero_gradient_problem(counts)
    assert zero_gradient_problem(counts._replace(ce=int(0.05 * counts.n))) is None  # a few: below the share


def test_two_classes_fall_back_to_cross_entropy():
    torch.manual_seed(0)
    x = torch.rand(20, 4)
    net = nn.Linear(4, 2)
    y = net(x).argmax(1)
    clf = Classifier(nn.Sequential(net, ScaleBy(1e5)), num_classes=2).eval()
    counts = zero_gradients(clf, x, y)
    assert counts.dlr is None and counts.n == 20
    assert (zero_gradient_problem(counts) is None) == (counts.ce == 0)


# --- randomness: 5 passes, a tolerance ---------------------------------------------------------------------------

class Jitter(nn.Module):
    """The digits CNN plus Gaussian noise of standard deviation ``scale`` on its logits."""

    def __init__(self, inner: nn.Module, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x):
        out = self.inner(x)
        return out + self.scale * torch.randn_like(out)


def test_float_noise_is_not_randomness_but_real_noise_is(cnn, batch):
    x, y = batch[0][:100], batch[1][:100]
    assert check_outputs(cnn, x, y) == []
    kernels = Classifier(Jitter(cnn.model, 1e-7), num_classes=10).eval()  # nondeterministic GPU kernels
    a, b = kernels.predict(x), kernels.predict(x)
    assert not torch.equal(a, b)  # an exact comparison would flag it
    assert check_outputs(kernels, x, y) == []
    noisy = Classifier(Jitter(cnn.model, 0.05), num_classes=10).eval()
    (message,) = output_problems(noisy, x, y).values()
    assert message.startswith("5 eval-mode passes on 100 inputs differ") and "tolerance 0.0001" in message
    flips = Classifier(Jitter(cnn.model, 5.0), num_classes=10).eval()
    assert "correct predictions" in output_problems(flips, x, y)["nondeterministic-outputs"]


# --- dynamic defenses --------------------------------------------------------------------------------------------

class InnerOptimisation(nn.Module):
    """Before classifying, three gradient steps on the input lowering the entropy of the prediction (a test-time
    "purification" by optimisation), with ``torch.autograd.grad`` or ``backward``."""

    def __init__(self, inner: nn.Module, *, use_backward: bool = False) -> None:
        super().__init__()
        self.inner, self.use_backward = inner, use_backward

    def forward(self, x):
        z = x.detach().clone()
        with torch.enable_grad():
            for _ in range(3):
                z.requires_grad_(True)
                p = self.inner(z).softmax(1)
                entropy = -(p * p.clamp_min(1e-12).log()).sum()
                if self.use_backward:
                    entropy.backward()
                    grad = z.grad
                else:
                    (grad,) = torch.autograd.grad(entropy, z)
                z = (z - 0.01 * grad.sign()).clamp(0, 1).detach()
        return self.inner(z)


class Optimising(Classifier):
    autograd_in_forward = True  # its clean passes run under no_grad, not inference_mode (as Defense-GAN's)


class Remembers(nn.Module):
    """Keeps the mean of every input it has seen in a buffer (and uses it): a state that changes with each query."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("seen", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(1, 1, 8, 8))

    def forward(self, x):
        self.mean.mul_(self.seen / (self.seen + len(x))).add_(x.sum(0, keepdim=True) / (self.seen + len(x)))
        self.seen += len(x)
        return self.inner(x - 0.01 * self.mean)


class Identity(Purifier):
    def forward(self, x):
        return x


def test_inner_optimisation_is_a_dynamic_forward(cnn, batch):
    x, y = batch[0][:100], batch[1][:100]
    assert not dynamic_forward(cnn, x[:4]).dynamic
    for use_backward in (False, True):  # backward() fills .grad: a copy keeps the shared fixture clean
        inner = copy.deepcopy(cnn.model) if use_backward else cnn.model
        clf = Optimising(InnerOptimisation(inner, use_backward=use_backward), num_classes=10).eval()
        found = dynamic_forward(clf, x[:4])
        assert found.grad_calls == 3 and found.graph_ops > 0 and found.changed == []
    message = dynamic_problem(clf, found)
    assert message.startswith("one eval-mode forward pass on 4 inputs under no_grad calls autograd's grad/backward "
                              "3 times and records") and "\n" not in message
    flags = classifier_flags(clf, x, y, model="cnn", defense="entropy-min")
    assert "dynamic-forward" in checks_of(flags)
    assert classifier_flags(cnn, x, y, model="cnn", defense="none") == []


def test_a_buffer_updated_in_forward_is_a_dynamic_forward(cnn, batch):
    x = batch[0][:4]
    clf = Classifier(Remembers(cnn.model), num_classes=10).eval()
    found = dynamic_forward(clf, x)
    assert found.grad_calls == 0 and found.graph_ops == 0
    assert found.changed == ["buffer model.seen", "buffer model.mean"]
    assert "changes its buffer model.seen, buffer model.mean" in dynamic_problem(clf, found)


def test_purifier_that_optimises_needs_adaptive_attacks(cnn, batch):
    x = batch[0][:4]
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(8, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    generator.z_dim = 8
    dgan = PurifiedClassifier(cnn, DefenseGanProjection(generator, steps=5, restarts=2)).eval()
    found = dynamic_forward(dgan, x)
    assert found.grad_calls == 5 and not found.changed
    message = dynamic_problem(dgan, found)
    assert 'adaptive = "bpda", "unroll" on PGD/APGD or the latent attack' in message
    assert "DefenseGanProjection" in message
    # a purifier that does not optimise: the class says autograd may run in forward, but none does
    assert PurifiedClassifier.autograd_in_forward
    assert not dynamic_forward(PurifiedClassifier(cnn, Identity()).eval(), x).dynamic


def test_new_checks_are_explained():
    for name in ("square-after-gradients", "dynamic-forward", "zero-gradients", "nondeterministic-outputs"):
        explanation, reference = EXPLANATIONS[name]
        assert len(explanation) > 200 and "AutoAttack" in reference + explanation, name
