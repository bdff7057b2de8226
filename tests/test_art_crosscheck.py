"""Our attacks against ART's implementations on the same model and data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_gan.attacks import Goal, make_attack
from robustbench_gan.attacks.art import art_estimator
from robustbench_gan.evaluation import evaluate_attack


def art_robust(clf, x, y, attack_cls, **kw) -> torch.Tensor:
    """Per sample: classified correctly, and still after ART's attack."""
    est = art_estimator(clf, x.shape[1:])
    adv = attack_cls(est, **kw).generate(x=x.numpy(), y=np.eye(10, dtype=np.float32)[y.numpy()])
    pred = clf.predict(torch.as_tensor(adv)).argmax(1)
    clean = clf.predict(x).argmax(1)
    return (pred == y) & (clean == y)


def art_accuracy(clf, x, y, attack_cls, **kw) -> float:
    return float(art_robust(clf, x, y, attack_cls, **kw).float().mean())


@pytest.mark.parametrize("model", ["cnn", "logistic"])
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2])
def test_fgsm_equals_art_fgm(model, eps, request, batch):
    from art.attacks.evasion import FastGradientMethod

    clf = request.getfixturevalue(model)
    x, y = batch
    ours = evaluate_attack(clf, x, y, make_attack("fgsm"), [eps], progress=False)[0].metrics["robust_accuracy"]
    theirs = art_accuracy(clf, x, y, FastGradientMethod, eps=eps, norm=np.inf)
    assert abs(ours - theirs) <= 1 / len(y) + 1e-9  # within one sample


def test_fgsm_examples_match_art_elementwise(cnn, batch):
    from art.attacks.evasion import FastGradientMethod

    x, y = batch
    ours = make_attack("fgsm")(cnn, x, Goal(y), eps=0.1)
    est = art_estimator(cnn, x.shape[1:])
    theirs = FastGradientMethod(est, eps=0.1).generate(x=x.numpy(), y=np.eye(10, dtype=np.float32)[y.numpy()])
    same = np.isclose(ours.numpy(), theirs, atol=1e-6).mean()
    assert same > 0.999


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.15])
def test_pgd_at_least_as_strong_as_art_pgd(eps, cnn, digits):
    """Same budget (20 steps of 2.5 eps / 20, one random start), whole test split, three seeds each; not weaker
    beyond the sampling error (tests/yardstick.py)."""
    from art.attacks.evasion import ProjectedGradientDescent

    from yardstick import assert_not_weaker

    x, y = digits.x_test, digits.y_test
    steps = 20
    ours, theirs = [], []
    for s in range(3):
        o = evaluate_attack(cnn, x, y, make_attack("pgd", steps=steps, seed=s), [eps], progress=False)[0]
        ours.append((o.clean_pred == y) & (o.adv_pred == y))
        np.random.seed(s)  # ART draws its random start from NumPy's global generator
        theirs.append(art_robust(cnn, x, y, ProjectedGradientDescent, eps=eps, eps_step=2.5 * eps / steps,
                                 max_iter=steps, num_random_init=1, norm=np.inf, verbose=False))
    assert_not_weaker(torch.cat(ours), torch.cat(theirs), f"pgd eps {eps}")


def test_art_adapter_budget_and_min_norm_attacks(cnn, batch):
    x, y = batch[0][:40], batch[1][:40]
    for kind, params in [("art:ProjectedGradientDescent", {"max_iter": 10}), ("art:DeepFool", {"max_iter": 20})]:
        attack = make_attack(kind, **params)
        outs = evaluate_attack(cnn, x, y, attack, [0.0, 0.5, 3.0] if kind.endswith("DeepFool") else [0.0, 0.1, 0.3],
                               progress=False)
        accs = [o.metrics["robust_accuracy"] for o in outs]
        assert accs[0] == pytest.approx(outs[0].metrics["clean_accuracy"])
        assert accs[2] < accs[0]
        assert accs == sorted(accs, reverse=True)
        assert attack.threat == "white-box"


def test_art_black_box_counts_queries(cnn, batch):
    x, y = batch[0][:8], batch[1][:8]
    attack = make_attack("art:HopSkipJump", max_iter=2, max_eval=50, init_eval=10)
    out = evaluate_attack(cnn, x, y, attack, [0.5, 2.0], progress=False)
    assert attack.threat == "black-box"
    assert out[0].metrics["queries"] > 8
