"""APGD and APGD-T (Croce & Hein 2020) cross-checked against torchattacks 3.5 on the same models and data: ours
must not be weaker beyond the sampling error (tests/yardstick.py).

Both draw a random start, so one seed against one seed differs by a sample or two either way (30 seeds each on
the PGD-trained CNN at eps 0.2, 25 steps: ours 35.50% +- 1.04, torchattacks 35.57% +- 1.22). The comparison is
therefore over a few seeds, the same seeds for both, sample by sample."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_gan.attacks import APGD, APGDT, PGD, Goal
from robustbench_gan.attacks.apgd import dlr_loss, targeted_dlr_loss
from robustbench_gan.classifier import Classifier
from yardstick import assert_not_weaker, standing


N = 100  # evaluated samples: one sample is 1%
STEPS = 25
SEEDS = range(4)


def accuracy(clf: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((clf.predict(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("which", ["natural", "pgd-trained"])
@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_apgd_and_apgd_t_at_least_as_strong_as_torchattacks(torchattacks, which, eps, cnn, pgd_trained, digits):
    clf = cnn if which == "natural" else pgd_trained
    x, y = digits.x_test[:N], digits.y_test[:N]
    makers = [
        (lambda s: APGD(steps=STEPS, seed=s),
         lambda s: torchattacks.APGD(clf, norm="Linf", eps=eps, steps=STEPS, loss="ce", seed=s)),
        (lambda s: APGDT(steps=STEPS, targets=3, seed=s),  # torchattacks: n_classes - 1 = 3 target classes
         lambda s: torchattacks.APGDT(clf, norm="Linf", eps=eps, steps=STEPS, n_classes=4, seed=s)),
    ]
    for ours, theirs in makers:
        ours_left, theirs_left = [], []  # per-sample "still standing", over the seeds
        for seed in SEEDS:
            x_ours = ours(seed)(clf, x, Goal(y), eps=eps)
            assert float((x_ours - x).abs().max()) <= eps + 1e-6 and x_ours.min() >= 0 and x_ours.max() <= 1
            ours_left.append(standing(clf, x_ours, y))
            theirs_left.append(standing(clf, theirs(seed)(x, y), y))
        assert_not_weaker(torch.cat(ours_left), torch.cat(theirs_left), f"{ours(0).kind} {which} eps {eps}")


def test_apgd_l2_stays_in_the_ball_and_lowers_accuracy(cnn, digits):
    x, y = digits.x_test[:N], digits.y_test[:N]
    adv = APGD(norm="2", steps=STEPS)(cnn, x, Goal(y), eps=1.0)
    assert float((adv - x).flatten(1).norm(dim=1).max()) <= 1.0 + 1e-5
    assert accuracy(cnn, adv, y) < accuracy(cnn, x, y) - 0.3


class Scaled(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return 1000.0 * self.inner(x)


def test_dlr_sees_through_a_saturated_softmax(cnn, digits):
    """Logits x 1000: cross-entropy gradients vanish (PGD-CE stalls); DLR is scale-invariant and does not."""
    clf = Classifier(Scaled(cnn), num_classes=10).eval()
    x, y = digits.x_test[:N], digits.y_test[:N]
    ce = accuracy(clf, PGD(steps=20)(clf, x, Goal(y), eps=0.2), y)
    margin = accuracy(clf, PGD(steps=20, loss="margin")(clf, x, Goal(y), eps=0.2), y)
    dlr = accuracy(clf, APGD(steps=STEPS, loss="dlr")(clf, x, Goal(y), eps=0.2), y)
    assert ce > margin + 0.3
    assert dlr <= margin + 2 / N  # as strong as PGD on the margin loss, up to a sample or two of random starts


def test_dlr_losses_match_their_definitions():
    z = torch.tensor([[3.0, 1.0, 0.5, -1.0], [0.0, 2.0, 1.0, 0.0]])
    y = torch.tensor([0, 2])
    # sample 0: z_y = 3 is the top; other max 1; top - third = 3 - 0.5
    # sample 1: z_y = 1, other max 2; top - third = 2 - 0
    assert torch.allclose(dlr_loss(z, y), torch.tensor([-(3 - 1) / 2.5, -(1 - 2) / 2.0]))
    t = torch.tensor([3, 0])
    expected = torch.tensor([-(3 - -1) / (3 - 0.5 * (0.5 - 1.0)), -(1 - 0) / (2 - 0.5 * (0 + 0))])
    assert torch.allclose(targeted_dlr_loss(z, y, t), expected)
    assert torch.allclose(dlr_loss(10 * z + 7, y), dlr_loss(z, y))  # scale and shift invariant


def test_an_art_attack_missing_its_optional_dependency_is_a_one_line_error(tmp_path, capsys):
    """ART's AutoAttack imports `multiprocess` when it runs; without it the CLI says what to install (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("multiprocess") is not None:
        pytest.skip("multiprocess is installed here")
    from robustbench_gan.cli import main

    (tmp_path / "s.toml").write_text('name = "aa"\n[[models]]\nname = "logistic"\narch = "logistic"\nepochs = 1\n'
                                     '[[attacks]]\nname = "aa"\nkind = "art:AutoAttack"\neps = [0.1]\n'
                                     '[evaluation]\nn = 20\n')
    assert main(["-q", "run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'multiprocess'" in err and "pip install multiprocess" in err


def test_eot_averages_the_gradient_of_every_gradient_attack(cnn, digits):
    """``eot_samples`` (Athalye et al. 2018) on FGSM, PGD, BIM and APGD: k passes per gradient, averaged."""
    from robustbench_gan.attacks import BIM, FGSM
    from robustbench_gan.attacks.base import goal_loss
    from robustbench_gan.attacks.engine.descent import gradient

    x, y = digits.x_test[:16], digits.y_test[:16]

    class Noisy(nn.Module):  # a randomized model: Gaussian noise on its input
        def __init__(self) -> None:
            super().__init__()
            self.inner = cnn

        def forward(self, z):
            return self.inner(z + 0.1 * torch.randn_like(z))

    clf = Classifier(Noisy(), num_classes=10).eval()
    torch.manual_seed(5)
    averaged, _ = gradient(clf, x, goal_loss(Goal(y)), eot_samples=4)
    torch.manual_seed(5)
    singles = [gradient(clf, x, goal_loss(Goal(y)))[0] for _ in range(4)]
    assert torch.allclose(averaged, torch.stack(singles).mean(0))
    for attack, passes in ((FGSM(eot_samples=3), 3), (PGD(steps=2, random_start=False, eot_samples=3), 3 * 2 + 1),
                           (BIM(steps=2, eot_samples=3), 3 * 2 + 1)):
        clf.queries = 0
        attack(clf, x, Goal(y), eps=0.5)  # large eps: still, the stop at success is per batch, so count the floor
        assert clf.queries >= len(x) * min(passes, 3), (attack, clf.queries)
    clf.queries = 0
    APGD(steps=2, eot_samples=3)(clf, x, Goal(y), eps=0.01)
    assert clf.queries == len(x) * 3 * (2 + 1)  # start + 2 steps, 3 passes each (eps too small to stop early)
