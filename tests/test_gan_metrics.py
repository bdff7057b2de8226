"""GAN quality metrics on hand-built sample sets: real images, a collapsed set, noise, and known distributions."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustbench_gan.classifier import Classifier
from robustbench_gan.data import load_dataset
from robustbench_gan.errors import DataError, ModelError
from robustbench_gan.gan.metrics import (
    class_distribution,
    corner_cases,
    frechet_distance,
    gan_quality,
    kl_divergence,
    penultimate_features,
)
from robustbench_gan.zoo import build_model
from robustbench_gan.classifier_training import TrainConfig, seed_everything, train_model


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def reference(data) -> Classifier:
    """A cnn reference classifier trained on the real digits (one thread: fast even on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seed_everything(0)
        clf = Classifier(build_model("cnn", data.spec), num_classes=10)
        train_model(clf, data.x_train, data.y_train, config=TrainConfig(epochs=10), seed=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return clf.eval()


def _noise(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


KEYS = {"modes_captured", "high_quality_fraction", "class_kl", "fid", "conditional_accuracy", "n"}


# ---------------------------------------------------------------- gan_quality on hand-built sets


def test_real_images_cover_all_modes(data, reference):
    q = gan_quality(data.x_test, data.y_test, reference, real_x=data.x_train, real_y=data.y_train)
    assert set(q) == KEYS
    assert q["n"] == len(data.x_test)
    assert q["modes_captured"] == 10
    assert q["conditional_accuracy"] > 0.9
    assert q["class_kl"] < 0.05
    assert q["high_quality_fraction"] > 0.5


def test_fid_real_halves_much_smaller_than_noise(data, reference):
    half = len(data.x_test) // 2
    xa, ya, xb, yb = data.x_test[:half], data.y_test[:half], data.x_test[half:], data.y_test[half:]
    real = gan_quality(xa, ya, reference, real_x=xb, real_y=yb)["fid"]
    noise = gan_quality(_noise(half), ya, reference, real_x=xb, real_y=yb)["fid"]
    assert 0.0 <= real
    assert noise > 5 * real


def test_collapsed_generator_captures_one_mode(data, reference):
    probs = reference.predict(data.x_test).softmax(1)
    good = (probs.argmax(1) == data.y_test) & (probs.max(1).values >= 0.9) & (data.y_test == 0)
    zeros = data.x_test[good]
    assert len(zeros) >= 10
    samples = zeros[torch.arange(200) % len(zeros)]
    labels = torch.arange(200) % 10  # the generator claims all ten classes
    q = gan_quality(samples, labels, reference, real_x=data.x_train, real_y=data.y_train)
    assert q["modes_captured"] == 1
    assert q["class_kl"] > 1.5
    assert q["class_kl"] == pytest.approx(math.log(10), abs=0.2)
    assert q["conditional_accuracy"] == pytest.approx(0.1, abs=0.02)
    assert q["high_quality_fraction"] == 1.0


def test_uniform_noise_is_low_quality(data, reference):
    noise = _noise(300)
    q = gan_quality(noise, torch.arange(300) % 10, reference, real_x=data.x_train, real_y=data.y_train)
    real = gan_quality(data.x_test, data.y_test, reference, real_x=data.x_train, real_y=data.y_train)
    assert q["high_quality_fraction"] < 0.2
    assert q["fid"] > 10 * real["fid"]
    assert q["conditional_accuracy"] < 0.3


def test_gan_quality_validates_inputs(data, reference):
    with pytest.raises(DataError):
        gan_quality(data.x_test[:10], data.y_test[:9], reference, real_x=data.x_train, real_y=data.y_train)
    with pytest.raises(DataError):
        gan_quality(torch.rand(10, 1, 4, 4), data.y_test[:10], reference, real_x=data.x_train, real_y=data.y_train)


# ---------------------------------------------------------------- Frechet distance


def test_frechet_identical_samples_is_zero():
    a = torch.randn(500, 5, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_mean_shift_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    n = 50_000
    d = torch.tensor([1.0, 2.0, 0.0])
    a = torch.randn(n, 3, generator=g)
    b = torch.randn(n, 3, generator=g) + d
    assert frechet_distance(a, b) == pytest.approx(float(d @ d), abs=0.15)


def test_frechet_different_covariances_matches_closed_form():
    g = torch.Generator().manual_seed(1)
    n = 50_000
    sa, sb = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 1.0, 1.0])  # standard deviations
    d = torch.tensor([0.5, -1.0, 1.0])
    a = torch.randn(n, 3, generator=g) * sa
    b = torch.randn(n, 3, generator=g) * sb + d
    expected = float(d @ d + ((sa - sb) ** 2).sum())  # diagonal covariances: Tr term = sum (sigma_a - sigma_b)^2
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.2)


def test_frechet_is_symmetric_and_finite_when_singular():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(300, 6, generator=g) @ torch.randn(6, 6, generator=g)
    b = torch.randn(200, 6, generator=g) @ torch.randn(6, 6, generator=g) + 1.0
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    few_a, few_b = torch.randn(5, 10, generator=g), torch.randn(6, 10, generator=g)  # rank-deficient covariances
    value = frechet_distance(few_a, few_b)
    assert math.isfinite(value) and value >= 0.0
    with pytest.raises(DataError):
        frechet_distance(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(DataError):
        frechet_distance(torch.randn(1, 3), torch.randn(10, 3))


# ---------------------------------------------------------------- penultimate features


def test_penultimate_features_shapes(data, reference):
    x = data.x_test[:37]
    assert penultimate_features(reference, x).shape == (37, 128)
    mlp = Classifier(build_model("mlp", data.spec), num_classes=10)
    assert penultimate_features(mlp, x).shape == (37, 200)
    logistic = Classifier(build_model("logistic", data.spec), num_classes=10)
    feats = penultimate_features(logistic, x)
    assert feats.shape == (37, 64)
    assert torch.equal(feats, x.flatten(1))


def test_penultimate_features_batched_and_clean(data, reference):
    x = data.x_test[:50]
    full = penultimate_features(reference, x)
    assert torch.allclose(penultimate_features(reference, x, batch_size=7), full, atol=1e-5)
    layer = reference.model[-1]
    assert isinstance(layer, nn.Linear) and not layer._forward_hooks  # hook removed
    reference.train()
    try:
        penultimate_features(reference, x)
        assert reference.training  # mode restored
    finally:
        reference.eval()


def test_penultimate_features_needs_a_linear_layer():
    clf = Classifier(nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten()), num_classes=10)
    with pytest.raises(ModelError):
        penultimate_features(clf, torch.rand(4, 1, 8, 8))


# ---------------------------------------------------------------- distributions and KL


def test_class_distribution():
    dist = class_distribution(torch.tensor([0, 0, 1, 3]), 4)
    assert torch.allclose(dist, torch.tensor([0.5, 0.25, 0.0, 0.25], dtype=torch.float64))
    with pytest.raises(DataError):
        class_distribution(torch.tensor([0, 4]), 4)


def test_kl_divergence_known_values():
    p = torch.tensor([0.2, 0.3, 0.5])
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])) == pytest.approx(math.log(2))
    assert kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])) == pytest.approx(
        0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)
    )
    one_hot, uniform = torch.zeros(10), torch.full((10,), 0.1)
    one_hot[3] = 1.0
    assert kl_divergence(one_hot, uniform) == pytest.approx(math.log(10))
    blown = kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]))  # q = 0 where p > 0: clamped
    assert math.isfinite(blown) and blown == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-10))


# ---------------------------------------------------------------- corner cases


def _logit_classifier(k: int = 3) -> Classifier:
    """A classifier whose logits are its input pixels: samples [N, 1, 1, k] are their own logits."""
    lin = nn.Linear(k, k)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(k))
        lin.bias.zero_()
    return Classifier(nn.Sequential(nn.Flatten(), lin), num_classes=k, bounds=(-10.0, 10.0))


def test_corner_cases_hand_built():
    logits = torch.tensor(
        [
            [5.0, 0.0, 0.0],  # label 0: right and sure
            [0.1, 0.0, 0.0],  # label 0: right but unsure
            [0.0, 5.0, 0.0],  # label 0: wrong
            [0.0, 0.0, 5.0],  # label 2: right and sure
            [0.0, 3.0, 0.0],  # label 2: wrong
            [1.0, 0.0, 0.0],  # label 1: wrong (sure: p = e / (e + 2) > 0.5)
        ]
    )
    labels = torch.tensor([0, 0, 0, 2, 2, 1])
    out = corner_cases(_logit_classifier(), logits.view(6, 1, 1, 3), labels, confidence=0.5)
    assert out["wrong"].tolist() == [False, False, True, False, True, True]
    assert out["unsure"].tolist() == [False, True, False, False, False, False]
    assert out["rate_per_class"] == pytest.approx([2 / 3, 1.0, 0.5])
    # ascending probability of the conditioning label: rows 2 (~0.007), 4 (~0.045), 5 (~0.21), 1 (~0.36)
    assert out["indices"].tolist() == [2, 4, 5, 1]
    assert out["indices"].dtype == torch.long
    missing = corner_cases(_logit_classifier(), logits.view(6, 1, 1, 3)[:3], labels[:3])
    assert missing["rate_per_class"][0] == pytest.approx(2 / 3) and math.isnan(missing["rate_per_class"][1])


def test_corner_cases_with_half_wrong_labels(data, reference):
    probs = reference.predict(data.x_test).softmax(1)
    right = probs.argmax(1) == data.y_test
    x, y = data.x_test[right][:200], data.y_test[right][:200]
    labels = y.clone()
    labels[100:] = (labels[100:] + 1) % 10  # deliberately wrong conditioning labels
    out = corner_cases(reference, x, labels, confidence=0.5)
    expected_wrong = torch.arange(200) >= 100
    assert torch.equal(out["wrong"], expected_wrong)
    rates = out["rate_per_class"]
    assert len(rates) == 10 and all(0.0 <= r <= 1.0 for r in rates)
    flagged = out["wrong"] | out["unsure"]
    assert set(out["indices"].tolist()) == set(torch.nonzero(flagged).view(-1).tolist())
    label_prob = reference.predict(x).softmax(1)[out["indices"], labels[out["indices"]]]
    assert torch.all(label_prob[1:] >= label_prob[:-1] - 1e-6)
    for c in range(10):
        mask = labels == c
        assert rates[c] == pytest.approx(flagged[mask].float().mean().item())
