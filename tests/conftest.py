"""Shared fixtures: digits data and small trained classifiers (trained once per test session, on the CPU)."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.classifier import Classifier
from robustbench_gan.data import load_dataset
from robustbench_gan.zoo import build_model
from robustbench_gan.classifier_training import TrainConfig, seed_everything, train_model


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


class PerSample(torch.nn.Module):
    """``inner`` run one sample at a time. Float kernels are picked by shape (oneDNN) and differ between processors,
    so a sample's logits may change in the last bits with the batch around it; here every kernel sees the same
    shapes whatever the batch holds, so results that should not depend on batch composition can be compared bit
    for bit on any processor."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.inner(x[i : i + 1]) for i in range(len(x))])


@pytest.fixture(scope="session")
def per_sample_cnn(cnn) -> Classifier:
    """The digits CNN, one sample per kernel call (see :class:`PerSample`): batch-composition identities hold bit
    for bit on it."""
    return Classifier(PerSample(cnn.model), num_classes=10).eval()


def assert_same_decisions(clf: Classifier, a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                          eps: float, norm: str = "inf") -> None:
    """Two runs of an attack that should agree: the same samples fall, and both sets of examples lie in the eps
    ball and the pixel bounds (the examples themselves may differ in the last bits: kernels differ with batch
    composition)."""
    from robustbench_gan.attacks.engine.norms import flat_norm

    assert torch.equal(clf.predict(a).argmax(1) != y, clf.predict(b).argmax(1) != y)
    for adv in (a, b):
        assert float(flat_norm(adv - x, norm).max()) <= eps * (1 + 1e-5) + 1e-6
        assert float(adv.min()) >= clf.bounds[0] and float(adv.max()) <= clf.bounds[1]


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
    """The default suite run once through the CLI in a fresh process, its output redirected as in CI or a batch job
    (about 2 minutes on 2 cores); its output folder. ``stderr.jsonl`` there holds each line of its stderr with the
    seconds since the start at which it arrived."""
    import json
    import subprocess
    import sys
    import time

    out = tmp_path_factory.mktemp("default-run") / "out"
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "robustbench_gan.cli", "run", "default", "--out", str(out),
                             "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = [(time.monotonic() - start, line.rstrip("\n")) for line in proc.stderr]
    assert proc.wait(timeout=1200) == 0, "\n".join(text for _, text in lines[-20:])
    (out / "stderr.jsonl").write_text("".join(json.dumps({"t": t, "line": text}) + "\n" for t, text in lines))
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


@pytest.fixture
def torchattacks():
    """torchattacks (the dev extra's yardstick), or a skip of only the test that asks for it."""
    return pytest.importorskip("torchattacks")


@pytest.fixture
def suite_file(tmp_path):
    """``suite_file(file="suite.toml", **parts)``: a suite file in the test's folder (see suite_files.py)."""
    from suite_files import write_suite

    return lambda file="suite.toml", **parts: write_suite(tmp_path, file, **parts)
