"""The unconditional DCGAN (what Defense-GAN projects onto): shapes, seeding, learning the data, the cached
prerequisite, and that the conditional GAN's weights did not move when the two started sharing code."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.data import DataSpec
from robustbench_gan.defenses import FitContext
from robustbench_gan.defenses.gan_augmentation import GeneratorNeed, UnconditionalGeneratorNeed
from robustbench_gan.errors import ConfigError, DataError
from robustbench_gan.gan.dcgan import ConditionalGenerator, Discriminator, Generator
from robustbench_gan.gan.training import GanConfig, generator_steps, sample_unconditional, train_unconditional_gan
from robustbench_gan.core.weight_cache import WeightCache

SPECS = [
    DataSpec("digits", (1, 8, 8), 10),
    DataSpec("mnist", (1, 28, 28), 10),
    DataSpec("odd", (3, 30, 30), 4, bounds=(-1.0, 2.0)),
]
TINY = GanConfig(epochs=1, batch_size=32, width=8, z_dim=8)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_shapes_and_bounds(spec):
    torch.manual_seed(0)
    g, d = Generator(spec, z_dim=16, width=8), Discriminator(spec, width=8)
    assert g.z_dim == 16 and g.shape == spec.shape and g.bounds == tuple(spec.bounds)
    lo, hi = spec.bounds
    for scale in (1.0, 100.0):
        x = g(scale * torch.randn(5, 16)).detach()
        assert tuple(x.shape) == (5, *spec.shape)
        assert float(x.min()) >= lo and float(x.max()) <= hi
    assert tuple(d(x).shape) == (5,) and torch.isfinite(d(x)).all()
    # same body as the conditional generator, minus the one-hot input
    cond = ConditionalGenerator(spec, z_dim=16, width=8)
    assert cond.project[0].in_features == g.project[0].in_features + spec.num_classes


def test_train_is_seeded_and_counts_steps(digits):
    x = digits.x_train[:128]
    g1, h1 = train_unconditional_gan(x, digits.spec, config=TINY, seed=3, progress=False)
    g2, h2 = train_unconditional_gan(x, digits.spec, config=TINY, seed=3, progress=False)
    g3, _ = train_unconditional_gan(x, digits.spec, config=TINY, seed=4, progress=False)
    s1, s2, s3 = g1.state_dict(), g2.state_dict(), g3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1) and h1.as_dict() == h2.as_dict()
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    assert isinstance(g1, Generator) and not g1.training
    assert len(h1.g_loss) == generator_steps(128, TINY) == 4
    a, b = sample_unconditional(g1, 6, seed=1), sample_unconditional(g1, 6, seed=1)
    assert torch.equal(a, b) and tuple(a.shape) == (6, 1, 8, 8)
    assert not torch.equal(a, sample_unconditional(g1, 6, seed=2))


def test_bad_input(digits):
    with pytest.raises(ConfigError, match="at least 2"):
        train_unconditional_gan(digits.x_train[:1], digits.spec, config=TINY, progress=False)
    with pytest.raises(DataError, match="shape"):
        train_unconditional_gan(digits.x_train[:8].flatten(1), digits.spec, config=TINY, progress=False)
    with pytest.raises(ConfigError, match="n must be"):
        sample_unconditional(Generator(digits.spec, z_dim=4, width=4), -1)


def _nearest_distance(samples: torch.Tensor, data: torch.Tensor) -> float:
    return float(torch.cdist(samples.flatten(1), data.flatten(1)).min(1).values.mean())


def test_learns_the_digits(digits):
    """Trained samples sit much closer to real test digits than an untrained generator's (mean L2 distance to the
    nearest test image), and the trained generator's pixel mean is near the data's."""
    cfg = GanConfig(epochs=12, width=32, z_dim=16)  # ~10 s on 2 cores; the real test set is 1.06 from train
    untrained = Generator(digits.spec, z_dim=16, width=32).eval()
    g, hist = train_unconditional_gan(digits.x_train, digits.spec, config=cfg, seed=0, progress=False)
    real = digits.x_test
    before = _nearest_distance(sample_unconditional(untrained, 200), real)
    after = _nearest_distance(sample_unconditional(g, 200), real)
    assert after < 0.65 * before, (before, after)  # measured: 3.1 -> 1.65
    assert abs(float(sample_unconditional(g, 500).mean()) - float(real.mean())) < 0.1


def test_prerequisite_is_built_once_and_cached_on_disk(digits, tmp_path):
    context = FitContext(WeightCache(tmp_path))
    need = UnconditionalGeneratorNeed(digits, TINY, 0, context.numerics)
    conditional = GeneratorNeed(digits, TINY, 0, context.numerics)
    assert need.key.startswith("ugan-") and conditional.key.startswith("gan-")
    g, hist = context.obtain(need, device="cpu", progress=False)
    assert isinstance(g, Generator) and context.built == [("unconditional GAN generator", need.key)]
    assert context.obtain(UnconditionalGeneratorNeed(digits, TINY, 0, ""), device="cpu")[0] is g  # memo
    fresh = FitContext(WeightCache(tmp_path))  # a later run: from disk, nothing trained
    g2, hist2 = fresh.obtain(UnconditionalGeneratorNeed(digits, TINY, 0, ""), device="cpu", progress=False)
    assert fresh.built == [] and hist2.g_loss == hist.g_loss
    assert torch.equal(sample_unconditional(g, 4), sample_unconditional(g2, 4))
