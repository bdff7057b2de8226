"""Shared fixtures: digits data and small trained classifiers (trained once per test session, on the CPU)."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.classifier import Classifier
from robustbench_gan.data import load_dataset
from robustbench_gan.models import build_model
from robustbench_gan.training import TrainConfig, seed_everything, train_model


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


def _trained(arch: str, data, epochs: int) -> Classifier:
    seed_everything(0)
    clf = Classifier(build_model(arch, data.spec), num_classes=10)
    train_model(clf, data.x_train, data.y_train, config=TrainConfig(epochs=epochs), seed=0, progress=False)
    return clf.eval()


@pytest.fixture(scope="session")
def cnn(digits) -> Classifier:
    return _trained("cnn", digits, 10)


@pytest.fixture(scope="session")
def pgd_trained(digits) -> Classifier:
    """A digits CNN adversarially trained with PGD (eps 0.2, 5 steps, 8 epochs): the robust model the attack
    cross-checks against torchattacks use."""
    from robustbench_gan.defenses import make_defense

    defense = make_defense("adversarial-training", method="pgd", eps=0.2, steps=5)
    return defense.fit(lambda: build_model("cnn", digits.spec), digits, train=TrainConfig(epochs=8), seed=0,
                       device="cpu", progress=False)


@pytest.fixture(scope="session")
def logistic(digits) -> Classifier:
    return _trained("logistic", digits, 30)


@pytest.fixture(scope="session")
def batch(digits):
    """200 test images and labels."""
    return digits.x_test[:200], digits.y_test[:200]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The default suite run once through the CLI (about 100 s on 2 cores); its output folder."""
    from robustbench_gan.cli import main

    out = tmp_path_factory.mktemp("default-run") / "out"
    assert main(["-q", "run", "default", "--out", str(out), "--device", "cpu"]) == 0
    return out


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    yield


class StandInGenerator(torch.nn.Module):
    """A tiny untrained generator ``G(z)`` (linear + sigmoid into the bounds) for tests of attacks that search a
    generator's latent space; the trained one comes from the run (see robustbench_gan.gan.natural)."""

    def __init__(self, shape, bounds, z_dim: int = 4) -> None:
        super().__init__()
        self.z_dim, self.shape, self.bounds = z_dim, tuple(shape), bounds
        self.linear = torch.nn.Linear(z_dim, int(torch.tensor(shape).prod()))

    def forward(self, z):
        lo, hi = self.bounds
        return lo + (hi - lo) * torch.sigmoid(self.linear(z)).view(-1, *self.shape)


@pytest.fixture(scope="session")
def stand_in():
    """``stand_in(attack, shape, bounds)``: hands an attack with ``needs_generator`` a seeded stand-in generator and
    an untrained inverter (other attacks are returned untouched)."""
    from robustbench_gan.gan.inverter import InvertedGenerator, Inverter

    def provide(attack, shape, bounds):
        if attack.needs_generator:
            torch.manual_seed(0)
            g = StandInGenerator(shape, bounds)
            attack.provide([InvertedGenerator(g, Inverter(shape, bounds, z_dim=g.z_dim, width=4))])
        return attack

    return provide
