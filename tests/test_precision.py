"""Attack precision (issue 15): bf16 / fp16 autocast for the attack's own passes, every success re-checked in fp32
before it counts, fp16 loss scaling, and the suite key / benchmark() argument."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_gan import benchmark
from robustbench_gan.attacks import Goal, Square, make_attack
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.attacks.engine.descent import descend_to_goal, loss_gradient
from robustbench_gan.attacks.engine.precision import attack_precision, current, supported
from robustbench_gan.classifier import Classifier
from robustbench_gan.errors import ConfigError
from robustbench_gan.run.tuning import precision_for
from robustbench_gan.suite import validate_suite

LOW = [p for p in ("bf16", "fp16") if supported("cpu", p)]
N = 100


class Liar(nn.Module):
    """The wrapped classifier's logits in fp32; in low precision, rolled by one class, so every correctly
    classified input *looks* misclassified: a success no fp32 decision confirms."""

    def __init__(self, inner: Classifier) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        logits = self.inner(x)
        return logits if current() == "fp32" else logits.roll(1, dims=1)


def liar(clf: Classifier) -> Classifier:
    return Classifier(Liar(clf), num_classes=clf.num_classes, bounds=clf.bounds).eval()


@pytest.mark.skipif(not LOW, reason="no low-precision autocast on this CPU")
@pytest.mark.parametrize("precision", LOW)
def test_a_low_precision_success_counts_only_once_fp32_confirms_it(precision, cnn, digits):
    x, y = digits.x_test[:N], digits.y_test[:N]
    fake = liar(cnn)
    with attack_precision("cpu", precision):
        adv, found = descend_to_goal(
            fake, x, eps=0.02, norm="inf", steps=5, step_size=0.01,
            loss=lambda i: (lambda z, yi=y[i]: F.cross_entropy(z.float(), yi, reduction="none")),
            success=lambda i: (lambda z, yi=y[i]: z.argmax(1) != yi))
    truly = cnn.predict(adv).argmax(1) != y
    assert torch.equal(found, truly)  # without the fp32 re-check every sample would be "found" at the first step
    assert found.float().mean() < 0.5


class Recorded(nn.Module):
    """``inner``, recording every pass: its precision, inputs and fp32 logits."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.passes = inner, []

    def forward(self, x):
        out = self.inner(x)
        self.passes.append((current(), x.detach().clone(), out.detach().float()))
        return out


@pytest.fixture
def one_thread():
    """Square's query loop on the tiny CNN: a second thread gains little and, on a busy machine, slows every pass
    (see tests/test_square.py); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif("bf16" not in LOW, reason="bf16 autocast does not run on this CPU")
def test_square_stops_a_sample_only_on_an_fp32_confirmed_success(cnn, digits, one_thread):
    """Square (Linf, 100 queries, eps 0.1) under bf16 on the liar: every point looks misclassified in low precision,
    so without the fp32 re-check every sample would leave at its start. Every pass is assigned to its sample (the
    images are more than 2 eps apart in Linf). A sample that stopped ends on an fp32 pass in which the real model is
    fooled, its first such pass; any other makes all its low-precision queries (an unconfirmed success stays in the
    search); and the samples that stopped are exactly those the real model misclassifies in fp32 on the returned
    examples: the attack's robust accuracy is the fp32 one. Measured: 6 of 100 samples fall (Square in fp32 on the
    real model: 27; the liar's low-precision loss misleads the search)."""
    x, y, eps, queries = digits.x_test[:N], digits.y_test[:N], 0.1, 100
    assert float((torch.cdist(x.flatten(1), x.flatten(1), p=float("inf")) + 9 * torch.eye(N)).min()) > 2 * eps
    record = Recorded(cnn)
    fake = liar(Classifier(record, num_classes=10).eval())
    with attack_precision("cpu", "bf16"):
        adv = Square(queries=queries, seed=0)(fake, x, Goal(y), eps=eps)
    inputs = torch.cat([v for _, v, _ in record.passes]).flatten(1)
    logits = torch.cat([z for _, _, z in record.passes])
    low = torch.tensor([p != "fp32" for p, v, _ in record.passes for _ in range(len(v))])
    owner = torch.cdist(inputs, x.flatten(1), p=float("inf")).argmin(1)
    stopped = torch.zeros(N, dtype=torch.bool)
    for i in range(N):
        mine = owner == i
        confirmed = (logits[mine].argmax(1) != y[i]) & ~low[mine]  # the real model fooled, decided in fp32
        assert not confirmed[:-1].any(), i  # no pass after the first confirmed success
        stopped[i] = confirmed[-1]
        assert stopped[i] or int(low[mine].sum()) == queries, i
    assert torch.equal(stopped, cnn.predict(adv).argmax(1) != y)
    assert 0 < int(stopped.sum()) < N // 2 and bool((~low).any())


@pytest.mark.skipif(not LOW, reason="no low-precision autocast on this CPU")
@pytest.mark.parametrize("precision", LOW)
@pytest.mark.parametrize("attack", ["pgd", "apgd", "square"])
def test_reported_decisions_are_fp32(precision, attack, cnn, digits):
    """The evaluation labels the examples in fp32 whatever the attack believed: with the liar, the reported
    predictions are exactly fp32's on the same examples (the attack's own low-precision view is never reported)."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    fake = liar(cnn)
    params = {"square": {"queries": 50}, "apgd": {"steps": 5}, "pgd": {"steps": 5}}[attack]
    run = make_attack(attack, **params)
    run.precision = precision
    outcome, = evaluate_attack(fake, x, y, run, [0.1], batch_size=N, progress=False)
    again = make_attack(attack, **params)
    with attack_precision("cpu", precision):
        adv, = again.perturb_many(fake, x, again.make_goal(fake, x, y, seed=0), [0.1])
    assert torch.equal(outcome.adv_pred, cnn.predict(adv).argmax(1))


@pytest.mark.skipif(not LOW, reason="no low-precision autocast on this CPU")
@pytest.mark.parametrize("precision", LOW)
def test_low_precision_pgd_is_about_as_strong_as_fp32(precision, cnn, digits):
    x, y = digits.x_test[:200], digits.y_test[:200]
    acc = {}
    for p in ("fp32", precision):
        res = benchmark(cnn, (x, y), attacks=["pgd"], eps=[0.1], precision=p, checks=False, progress=False)
        row = res.table[res.table["eps"] == 0.1].iloc[0]
        acc[p] = float(row["robust_accuracy"])
        assert res.manifest["precision"] == p
    assert abs(acc["fp32"] - acc[precision]) <= 0.05, acc


@pytest.mark.skipif("fp16" not in LOW, reason="no fp16 autocast on this CPU")
def test_fp16_loss_scaling_keeps_small_input_gradients():
    """Logits 1e-6 times a linear map: unscaled fp16 backward flushes a quarter of the input gradients to zero;
    the scaled one keeps them all, equal to fp32's to within fp16 rounding."""
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    class Tiny(nn.Module):
        def forward(self, x):
            return lin(x) * 1e-6

    clf = Classifier(Tiny(), num_classes=10)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    ce = lambda z: F.cross_entropy(z, y, reduction="none")  # noqa: E731
    _, _, g32 = loss_gradient(clf, x, ce)
    with attack_precision("cpu", "fp16"):
        _, _, g16 = loss_gradient(clf, x, ce)
    x2 = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = F.cross_entropy(clf(x2), y, reduction="none").float().sum()
    unscaled, = torch.autograd.grad(loss, x2)
    assert (unscaled == 0).float().mean() > 0.1  # the problem is real here
    assert (g16 != 0).all() and torch.allclose(g16, g32, rtol=0.02, atol=1e-9)


def test_auto_is_the_default_and_bad_values_are_one_line_errors(cnn, digits):
    assert make_attack("pgd").precision == "fp32"  # an attack alone; suites and benchmark() resolve "auto"
    base = {"name": "p", "data": {"dataset": "digits"}, "models": [{"name": "m", "arch": "logistic"}],
            "attacks": [{"name": "fgsm", "eps": [0.1]}]}
    assert validate_suite(base).evaluation.precision == "auto"
    assert validate_suite({**base, "evaluation": {"precision": "bf16"}}).evaluation.precision == "bf16"
    with pytest.raises(ConfigError, match=r"precision must be one of auto, fp32, bf16, fp16, got 'half'"):
        validate_suite({**base, "evaluation": {"precision": "half"}})
    with pytest.raises(ConfigError, match="precision must be one of"):
        benchmark(cnn, (digits.x_test[:10], digits.y_test[:10]), precision="fp8", progress=False)


@pytest.mark.skipif("bf16" not in LOW, reason="bf16 autocast does not run on this CPU")
def test_auto_precision_is_fp32_on_the_cpu_and_bf16_on_cuda_only_where_calibration_agrees(cnn, digits):
    x, y = digits.x_test[:N], digits.y_test[:N]
    assert precision_for(cnn, x, y, "auto") == "fp32"  # CPU tensors: fp32, no calibration
    assert precision_for(cnn, x, y, "fp16") == "fp16"  # what the user sets wins
    assert precision_for(cnn, x, y, "auto", probe=True) == "bf16"  # an honest model: bf16 PGD matches fp32
    # a model whose low-precision gradients point the wrong way: the bf16 attack is weaker, so fp32 it is
    assert precision_for(liar(cnn), x, y, "auto", probe=True) == "fp32"


@pytest.mark.skipif(not LOW, reason="no low-precision autocast on this CPU")
@pytest.mark.parametrize("precision", LOW)
def test_apgd_and_fab_stop_only_on_successes_fp32_confirms(precision, cnn, digits):
    """In low precision the liar makes every input look misclassified: APGD's and FAB's runs must count (and stop)
    only the samples an fp32 pass calls fooled."""
    from robustbench_gan.attacks.apgd import apgd_run, random_start
    from robustbench_gan.attacks.base import Goal
    from robustbench_gan.attacks.fab import fab_run
    from robustbench_gan.classifier import frozen

    x, y = digits.x_test[:N], digits.y_test[:N]
    fake = liar(cnn)
    ce = lambda idx: (lambda z, yi=y[idx]: F.cross_entropy(z.float(), yi, reduction="none"))  # noqa: E731
    with frozen(fake), attack_precision("cpu", precision):
        adv, found, _ = apgd_run(fake, x, Goal(y), ce, eps=0.05, norm="inf", steps=5, rho=0.75,
                                 start=random_start(x, "inf", Goal(y).draws(0)))
        best, dist = fab_run(fake, x, Goal(y), start=x, norm="inf", steps=5, alpha_max=0.1, eta=1.05, beta=0.9)
    assert found.float().mean() < 0.5 and torch.equal(found, cnn.predict(adv).argmax(1) != y)
    fooled = torch.isfinite(dist)
    assert fooled.float().mean() < 0.5 and bool((cnn.predict(best[fooled]).argmax(1) != y[fooled]).all())


@pytest.mark.skipif(not LOW, reason="no low-precision autocast on this CPU")
@pytest.mark.parametrize("precision", LOW)
def test_every_autoattack_decision_is_fp32(precision, cnn, digits):
    """AutoAttack under low precision on the liar: the cascade's row and each component's row come from fp32
    decisions (the reported predictions are fp32's on the returned examples, the last component's row equals the
    cascade's, each component's row is the fp32 robust accuracy after it), and such a cascade is never reported as
    the standard AutoAttack."""
    from robustbench_gan.attacks import AutoAttack

    x, y = digits.x_test[:N], digits.y_test[:N]
    fake = liar(cnn)
    aa = AutoAttack(version="custom", attacks=["apgd-ce", "apgd-t", "fab-t", "square"], steps=5, targets=3,
                    queries=30)
    assert AutoAttack().is_standard
    aa.precision = precision
    low = AutoAttack(version="standard")
    low.precision = precision
    assert not low.is_standard and low.reference_version is None
    outcome, = evaluate_attack(fake, x, y, aa, [0.1], batch_size=N, progress=False)
    assert outcome.metrics["clean_accuracy"] == pytest.approx(float((cnn.predict(x).argmax(1) == y).float().mean()))
    rows = [c.outcome.metrics["robust_accuracy"] for c in outcome.components]
    assert rows == sorted(rows, reverse=True) and rows[-1] == outcome.metrics["robust_accuracy"]
    assert rows[0] > 0.3  # the liar's low-precision "everything is fooled" never stopped the cascade
    again = AutoAttack(version="custom", attacks=["apgd-ce", "apgd-t", "fab-t", "square"], steps=5, targets=3,
                       queries=30)
    again.precision = precision
    with attack_precision("cpu", precision):
        adv, = again.perturb_many(fake, x, Goal(y), [0.1])
    robust = (cnn.predict(adv).argmax(1) == y)
    assert outcome.metrics["robust_accuracy"] == pytest.approx(float(robust.float().mean()))
