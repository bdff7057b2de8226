"""Square Attack (Andriushchenko, Croce, Flammarion & Hein 2020), Linf and L2, cross-checked against torchattacks 3.5
on the natural digits CNN: ours must not be weaker than torchattacks beyond the sampling error (tests/yardstick.py).

Ours draws its windows per image (the paper's Algorithm 1; their code one per batch) and places them anywhere in the
image (their code never at the last row or column), so it is at least as strong at the same query budget. L2 on 100
digits, 300 queries, seeds 0-3, robust samples summed over the seeds: eps 0.5 ours 291, torchattacks 309; eps 1.0
ours 61, torchattacks 100; eps 1.5 ours 1, torchattacks 4.

With ``rescale=False`` (AutoAttack's schedule) ours is compared with torchattacks' ``resc_schedule=False``: the
differences from their code (windows per image, a flip where theirs would score an unchanged point) are kept only
because it is not weaker there either."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustbench_gan.attacks import Goal, Square, make_attack
from robustbench_gan.attacks.square import bump, l2_start, l2_window_update, meta_bump, p_schedule
from robustbench_gan.classifier import Classifier
from robustbench_gan.errors import ConfigError


from yardstick import assert_not_weaker, standing, strength_margin  # noqa: E402

N = 100  # evaluated samples: one sample is 1%
SEEDS = range(4)


@pytest.fixture(autouse=True)
def _one_thread():
    """Runs after conftest's two threads: this file is query loops on a tiny CNN, where a second thread gains little
    and, on a shared busy machine, made every forward pass about ten times slower (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def accuracy(clf: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((clf.predict(x).argmax(1) == y).float().mean())


@pytest.mark.slow
def test_square_at_least_as_strong_as_torchattacks_and_counts_its_queries(torchattacks, cnn, digits):
    """Square (Andriushchenko et al. 2020), Linf, margin loss: ours samples a window per image (the paper's
    Algorithm 1; torchattacks one per batch), so it is at least as strong at the same query budget."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    for eps in (0.1, 0.2):
        ours_left, theirs_left = [], []
        for seed in SEEDS:
            cnn.queries = 0
            adv = Square(queries=300, seed=seed)(cnn, x, Goal(y), eps=eps)
            assert 0 < cnn.queries <= N * 300  # scores only, and a fooled sample stops querying
            assert float((adv - x).abs().max()) <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
            ours_left.append(standing(cnn, adv, y))
            theirs = torchattacks.Square(cnn, norm="Linf", eps=eps, n_queries=300, seed=seed)
            theirs_left.append(standing(cnn, theirs(x, y), y))
        assert_not_weaker(torch.cat(ours_left), torch.cat(theirs_left), f"square eps {eps}")


# fra31/auto-attack a392200, autoattack/square.py, SquareAttack.p_selection (AutoAttack builds Square with
# resc_schedule=False, p_init 0.8, 5,000 queries): p_init / div for low < it <= high, p_init below the first.
AUTOATTACK_P_SELECTION = ((10, 50, 2), (50, 200, 4), (200, 500, 8), (500, 1000, 16), (1000, 2000, 32),
                          (2000, 4000, 64), (4000, 6000, 128), (6000, 8000, 256), (8000, math.inf, 512))


def reference_p(p_init: float, it: int, n_queries: int, rescale_schedule: bool) -> float:
    """Their ``p_selection`` from the breakpoints above."""
    if rescale_schedule:
        it = int(it / n_queries * 10000)
    for low, high, div in AUTOATTACK_P_SELECTION:
        if low < it <= high:
            return p_init / div
    return p_init


def test_the_schedule_without_rescaling_is_autoattacks_and_with_it_unchanged():
    """``rescale=False`` is their ``p_selection`` with ``resc_schedule=False`` at every iteration of AutoAttack's
    5,000 queries; ``rescale=True`` (the default) is theirs with ``resc_schedule=True``, as before the option."""
    for it in range(5000):
        assert p_schedule(0.8, it, 5000, rescale=False) == reference_p(0.8, it, 5000, False), it
    for queries in (100, 300, 1000, 5000, 10000):
        for it in range(queries):
            expected = reference_p(0.8, it, queries, True)
            assert p_schedule(0.8, it, queries) == p_schedule(0.8, it, queries, rescale=True) == expected
    # at 5,000 queries the rescaled windows shrink twice as fast: iteration 30 counts as 60
    assert p_schedule(0.8, 30, 5000, rescale=False) == 0.4 and p_schedule(0.8, 30, 5000) == 0.2
    assert p_schedule(0.8, 30, 10000, rescale=False) == p_schedule(0.8, 30, 10000) == 0.4


def test_rescale_and_eot_samples_are_hyperparameters():
    """Both show up in ``params()`` (records, cache keys, the report) like the others; bad values are one-line
    errors."""
    default = Square().params()
    assert default["rescale"] is True and default["eot_samples"] == 1
    attack = make_attack("square", rescale=False, eot_samples=3)
    assert attack.params()["rescale"] is False and attack.params()["eot_samples"] == 3
    assert "rescale=False" in repr(attack) and "eot_samples=3" in repr(attack)
    for bad, message in (({"rescale": "no"}, "rescale must be true or false"), ({"eot_samples": 0}, "eot_samples"),
                         ({"eot_samples": 1.5}, "eot_samples")):
        with pytest.raises(ConfigError, match=message):
            Square(**bad)


@pytest.mark.parametrize("queries, eps, seeds", [
    (300, 0.1, range(3)),
    pytest.param(300, 0.2, range(3), marks=pytest.mark.slow),
    pytest.param(600, 0.1, range(2), marks=pytest.mark.slow)], ids=["300-eps0.1", "300-eps0.2", "600-eps0.1"])
def test_square_without_rescaling_at_least_as_strong_as_torchattacks_on_autoattacks_schedule(torchattacks, 
        queries, eps, seeds, cnn, digits):
    """``rescale=False`` against torchattacks' copy of their Square with ``resc_schedule=False`` (AutoAttack's
    schedule), Linf, margin loss, same budget: ours draws a window per image and flips a window that already has
    the drawn signs (theirs: one window per batch, and such a draw scores an unchanged point). 300 queries pass the
    breakpoints at 10, 50 and 200, 600 also 500. Measured (seeds 0-3 then), robust samples summed over the seeds:
    300 queries eps 0.1 ours 283, torchattacks 307; eps 0.2 ours 40, torchattacks 87; 1,000 queries eps 0.1 (seeds
    0-1) ours 126, torchattacks 135 (the budgets were cut to keep the fast tests within CI's time)."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    ours_left, theirs_left = [], []
    for seed in seeds:
        adv = Square(queries=queries, rescale=False, seed=seed)(cnn, x, Goal(y), eps=eps)
        ours_left.append(standing(cnn, adv, y))
        theirs = torchattacks.Square(cnn, norm="Linf", eps=eps, n_queries=queries, p_init=0.8, loss="margin",
                                     resc_schedule=False, seed=seed)
        theirs_left.append(standing(cnn, theirs(x, y), y))
    assert_not_weaker(torch.cat(ours_left), torch.cat(theirs_left), f"square rescale=False {queries} eps {eps}")


class NoisyLogits(nn.Module):
    """A randomized model: ``inner``'s logits plus Gaussian noise of standard deviation ``std`` at every pass."""

    def __init__(self, inner: nn.Module, std: float) -> None:
        super().__init__()
        self.inner, self.std = inner, std

    def forward(self, z):
        out = self.inner(z)
        return out + self.std * torch.randn_like(out)


@pytest.mark.slow
def test_eot_keeps_a_lucky_draw_from_stopping_the_search(cnn, digits):
    """On the digits CNN with Gaussian noise (std 0.3) on its logits, 100 iterations, eps 0.15, seeds 0-2. With one
    pass a sample stops at the first draw that happens to misclassify it, often still well inside the class; with
    ``eot_samples=10`` it stops only once the mean margin of ten draws is <= 0. Robust accuracy is decided on
    fixed evaluations: the noise-free CNN (the noisy model's mean logits), where ten passes must leave
    significantly fewer samples standing (McNemar's margin, tests/yardstick.py, the other way round), and the mean
    accuracy of 20 seeded noisy draws. Every pass is a query: each sample's count is a multiple of
    ``eot_samples``. Measured: noise-free robust samples one pass 239, ten 187 (12 stood only against ten passes,
    64 only against one); noisy draws 0.78 and 0.63."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    noisy = Classifier(NoisyLogits(cnn, 0.3), num_classes=10).eval()
    left, drawn = {}, {}
    for k in (1, 10):
        masks, accs = [], []
        for seed in range(3):
            torch.manual_seed(seed)
            noisy.queries = 0
            adv = Square(queries=100, eot_samples=k, seed=seed)(noisy, x, Goal(y), eps=0.15)
            assert noisy.queries % k == 0 and noisy.queries <= N * 100 * k
            masks.append(standing(cnn, adv, y))
            torch.manual_seed(1000 + seed)
            accs += [accuracy(noisy, adv, y) for _ in range(20)]
        left[k], drawn[k] = torch.cat(masks), sum(accs) / len(accs)
    b, c = int((left[10] & ~left[1]).sum()), int((~left[10] & left[1]).sum())  # stood only against eot 10 / 1
    assert c - b > strength_margin(b, c), (int(left[1].sum()), int(left[10].sum()), b, c)
    assert drawn[10] < drawn[1] - 0.05, drawn


def test_every_eot_pass_is_a_query():
    """A model that is never fooled: every sample makes all its iterations, each ``eot_samples`` passes."""

    class Sure(nn.Module):
        def forward(self, z):
            return torch.tensor([9.0, 0.0, 0.0]).expand(len(z), 3) + 0 * z.flatten(1)[:, :1]

    clf = Classifier(Sure(), num_classes=3).eval()
    x, y = torch.rand(7, 1, 6, 6), torch.zeros(7, dtype=torch.long)
    for norm in ("inf", "2"):
        for k in (1, 3):
            clf.queries = 0
            Square(norm=norm, queries=20, eot_samples=k)(clf, x, Goal(y), eps=0.3)
            assert clf.queries == 7 * 20 * k, (norm, k)


def test_square_needs_no_gradient(cnn, digits):
    class NoGradient(nn.Module):
        def forward(self, z):
            return cnn(z).detach()  # scores only: a gradient attack would fail here

    clf = Classifier(NoGradient(), num_classes=10).eval()
    x, y = digits.x_test[:30], digits.y_test[:30]
    adv = Square(queries=200)(clf, x, Goal(y), eps=0.2)
    assert accuracy(clf, adv, y) < accuracy(clf, x, y) - 0.3


@pytest.mark.slow
def test_square_l2_at_least_as_strong_as_torchattacks(torchattacks, cnn, digits):
    """L2 (sec. 3.2), margin loss, 100 queries; measured: eps 0.5 ours 237, torchattacks 240 (seeds 0-2); eps 1.0
    ours 84, torchattacks 110."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    queries, seeds = 100, range(3)
    for eps in (0.5, 1.0):
        ours_left, theirs_left = [], []
        for seed in seeds:
            cnn.queries = 0
            adv = Square(norm="2", queries=queries, seed=seed)(cnn, x, Goal(y), eps=eps)
            assert N < cnn.queries < N * queries  # scores only, and a fooled sample stops querying
            assert float((adv - x).flatten(1).norm(dim=1).max()) <= eps * (1 + 1e-5)
            assert adv.min() >= 0 and adv.max() <= 1
            ours_left.append(standing(cnn, adv, y))
            theirs = torchattacks.Square(cnn, norm="L2", eps=eps, n_queries=queries, n_restarts=1, p_init=0.8,
                                         loss="margin", seed=seed)
            theirs_left.append(standing(cnn, theirs(x, y), y))
        assert_not_weaker(torch.cat(ours_left), torch.cat(theirs_left), f"square L2 eps {eps}")


def test_the_l2_patterns_are_theirs(torchattacks):
    """``bump`` and ``meta_bump`` against torchattacks' copies of the authors' ``pseudo_gaussian_pert_rectangles``
    and ``meta_pseudo_gaussian_pert`` (which transposes at random)."""
    theirs = torchattacks.Square(nn.Identity(), norm="L2")
    theirs.device = "cpu"
    for a in range(1, 12):
        for b in range(1, 12):
            assert torch.allclose(bump(a, b), theirs.eta_rectangles(a, b).double(), atol=1e-6), (a, b)
    torch.manual_seed(0)
    for s in range(1, 14):
        eta = theirs.eta(s).double()
        assert torch.allclose(meta_bump(s), eta, atol=1e-6) or torch.allclose(meta_bump(s).T, eta, atol=1e-6), s
        assert abs(float(meta_bump(s).norm()) - 1) < 1e-12


def test_the_l2_update_moves_the_mass_of_two_windows_into_the_first():
    """Per channel, the first window gets the direction of the step plus its old direction and the mass of both
    windows plus a share of the unused budget; the rest of the second is zeroed, the rest of the image kept; the
    result has norm eps. Overlapping, disjoint and identical windows, perturbations inside the ball and on it."""
    g = torch.Generator().manual_seed(0)
    k, c, h, w, s, eps = 6, 3, 9, 7, 3, 1.5
    delta = torch.randn(k, c, h, w, generator=g, dtype=torch.float64)
    radius = eps * torch.tensor([1, 1, .5, .2, .9, 0], dtype=torch.float64)  # the last: no perturbation yet
    delta = delta / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * radius.view(-1, 1, 1, 1)
    top, left = torch.tensor([0, 6, 2, 3, 0, 4]), torch.tensor([0, 4, 1, 2, 4, 0])
    top2, left2 = torch.tensor([6, 6, 3, 3, 0, 0]), torch.tensor([4, 4, 2, 2, 0, 0])
    step = meta_bump(s).expand(k, c, s, s) * (torch.randint(0, 2, (k, c, 1, 1), generator=g) * 2 - 1)
    out = l2_window_update(delta.clone(), eps, (top, left), (top2, left2), step)
    assert torch.allclose(out.flatten(1).norm(dim=1), torch.full((k,), eps, dtype=torch.float64))
    budget = (eps ** 2 - delta.flatten(1).norm(dim=1) ** 2) / c
    for i in range(k):
        one = torch.zeros(h, w, dtype=torch.bool)
        one[top[i]:top[i] + s, left[i]:left[i] + s] = True
        two = torch.zeros(h, w, dtype=torch.bool)
        two[top2[i]:top2[i] + s, left2[i]:left2[i] + s] = True
        assert torch.equal(out[i][:, ~(one | two)], delta[i][:, ~(one | two)])
        assert not out[i][:, two & ~one].any()
        for ch in range(c):
            new = out[i, ch][one].view(s, s)
            old = delta[i, ch][one].view(s, s)
            mass = (budget[i] + delta[i, ch][one | two].norm() ** 2).sqrt()
            direction = step[i, ch] + old / old.norm().clamp_min(1e-300)
            assert torch.allclose(new, direction / direction.norm() * mass), (i, ch)


def test_the_l2_start_is_a_grid_of_signed_meta_bumps():
    """28 x 28: blocks of side 5 in a centred 5 x 5 grid (rows and columns 1..25), each +- a meta bump or its
    transpose per channel, both orientations and both signs drawn; unit norm."""
    x = torch.zeros(4, 2, 28, 28, dtype=torch.float64)
    start = l2_start(x, Goal(torch.zeros(len(x), dtype=torch.long)).draws(0))
    assert torch.allclose(start.flatten(1).norm(dim=1), torch.ones(4, dtype=torch.float64))
    inner = torch.zeros(28, 28, dtype=torch.bool)
    inner[1:26, 1:26] = True
    assert not start[..., ~inner].any()
    m = meta_bump(5)
    seen = set()
    for i in range(4):
        scale = float(start[i, 0, 1:6, 1:6].norm())
        for ch in range(2):
            for r in range(5):
                for col in range(5):
                    block = start[i, ch, 1 + 5 * r:6 + 5 * r, 1 + 5 * col:6 + 5 * col] / scale
                    kind = [j for j, b in enumerate((m, -m, m.T, -m.T)) if torch.allclose(block, b)]
                    assert len(kind) == 1, (i, ch, r, col)
                    seen.add(kind[0])
    assert seen == {0, 1, 2, 3}


class Logged(nn.Module):
    """Records every input it scores and its logits."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.inputs, self.logits = inner, [], []

    def forward(self, z):
        out = self.inner(z)
        self.inputs.append(z.detach().clone())
        self.logits.append(out.detach().clone())
        return out


def separated(x: torch.Tensor, gap: float, n: int) -> torch.Tensor:
    """Indices of ``n`` images at L2 distance more than ``gap`` from each other (greedy)."""
    chosen: list[int] = []
    for i in range(len(x)):
        if all(float((x[i] - x[j]).norm()) > gap for j in chosen):
            chosen.append(i)
        if len(chosen) == n:
            return torch.tensor(chosen)
    raise AssertionError("not enough separated images")


def test_square_l2_stays_in_the_ball_and_bounds_and_a_fooled_sample_stops_querying(cnn, digits):
    """Pixels in [-1, 2] (the CNN sees them mapped to [0, 1]). Every scored input is logged and assigned to its
    sample (the images are more than 2 eps apart): each lies in the ball and the bounds, they add up to
    ``clf.queries``, a sample's last query is the first that fools it, and an unfooled sample makes exactly
    ``queries`` of them."""
    lo, hi, eps, queries = -1.0, 2.0, 2.4, 60  # eps 0.8 in [0, 1] units
    idx = separated(digits.x_test, 2.2 * eps / (hi - lo), 30)
    x, y = lo + (hi - lo) * digits.x_test[idx], digits.y_test[idx]
    log = Logged(cnn)
    clf = Classifier(log, num_classes=10, bounds=(lo, hi), input_bounds=(0.0, 1.0)).eval()
    adv = Square(norm="2", queries=queries, seed=1)(clf, x, Goal(y), eps=eps)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float((adv - x).flatten(1).norm(dim=1).max()) <= eps * (1 + 1e-5)
    assert float(adv.min()) >= lo and float(adv.max()) <= hi

    scored = lo + (hi - lo) * torch.cat(log.inputs)  # back to pixel units
    logits = torch.cat(log.logits)
    assert len(scored) == clf.queries
    dist = torch.cdist(scored.flatten(1), x.flatten(1))
    near, owner = dist.min(1)
    assert float(near.max()) <= eps * (1 + 1e-5) and float(scored.min()) >= lo and float(scored.max()) <= hi
    fooled_at_end = clf.predict(adv).argmax(1) != y
    assert 0 < int(fooled_at_end.sum()) < len(x)  # some fooled, some not: both cases are checked below
    for i in range(len(x)):
        mine = logits[owner == i]
        z = mine.gather(1, y[i].repeat(len(mine))[:, None]).squeeze(1)
        other = mine.clone()
        other[:, y[i]] = float("-inf")
        fooled = z <= other.amax(1)
        assert not fooled[:-1].any(), i  # no query after the first success
        assert bool(fooled[-1]) == bool(fooled_at_end[i]), i
        if not fooled_at_end[i]:
            assert len(mine) == queries, (i, len(mine))


@pytest.mark.parametrize("shape", [(5, 1, 4, 4), (3, 3, 4, 12), (4, 2, 12, 5), (2, 3, 7, 7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_square_l2_on_small_and_odd_images(shape, dtype):
    """Window sides odd and at least 3 (theirs), but within the image; the start's blocks tile images smaller
    than 5 pixels too. eps 0 returns the input."""
    torch.manual_seed(0)
    n, c, h, w = shape
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 3)).to(dtype)
    clf = Classifier(model, num_classes=3, bounds=(-0.5, 0.25)).eval()
    x = torch.rand(shape, dtype=dtype) * 0.75 - 0.5
    y = torch.randint(0, 3, (n,))
    attack = Square(norm="l2", queries=40, seed=2)
    for eps in (0.05, 0.3, 5.0):
        adv = attack(clf, x, Goal(y), eps=eps)
        assert adv.shape == x.shape and adv.dtype == dtype and torch.isfinite(adv).all()
        assert float((adv - x).flatten(1).norm(dim=1).max()) <= eps * (1 + 1e-5)
        assert float(adv.min()) >= -0.5 and float(adv.max()) <= 0.25
    assert torch.equal(attack(clf, x, Goal(y), eps=0.0), x)
    assert torch.equal(attack(clf, x, Goal(y), eps=0.3), attack(clf, x, Goal(y), eps=0.3))  # seeded
