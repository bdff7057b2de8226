"""Model zoo, user factories, safe weight loading and the classifier's output checks."""
from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from robustbench_gan.classifier import Classifier
from robustbench_gan.data import DataSpec
from robustbench_gan.errors import CheckpointError, ConfigError, ModelError
from robustbench_gan.checkpoints import load_weights
from robustbench_gan.zoo import MODELS, build_model, build_user_model

SPECS = [DataSpec("d", (1, 8, 8), 10), DataSpec("m", (1, 28, 28), 10), DataSpec("c", (3, 32, 32), 7)]


# every architecture at every shape, but the 36-46 M-parameter Wide ResNets at CIFAR's only (test_cifar_nets.py
# runs a small one on 1x8x8)
ZOO_CASES = [(arch, spec) for arch in MODELS.names() for spec in SPECS
             if not (arch.startswith(("wide-resnet", "wrn-")) and spec.shape[0] == 1)]


@pytest.mark.parametrize("arch, spec", ZOO_CASES, ids=[f"{s.name}-{a}" for a, s in ZOO_CASES])
def test_zoo_adapts_to_shape_and_classes(arch, spec):
    model = build_model(arch, spec).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *spec.shape))
    assert out.shape == (2, spec.num_classes)


def test_unknown_model_parameter():
    with pytest.raises(ConfigError, match="no parameter 'width'"):
        build_model("mlp", SPECS[0], width=3)


def test_classifier_normalizes_in_pixel_space():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    clf = Classifier(model, num_classes=2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.rand(3, 3, 4, 4)
    assert torch.allclose(clf(x), model((x - 0.5) / 0.25))
    with pytest.raises(ModelError, match="both mean and std"):
        Classifier(model, num_classes=2, mean=(0.5,))


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), "expected \\[batch, 10\\] logits"),
    (nn.Sequential(nn.Flatten(), nn.Linear(30, 10)), "fails on inputs of shape \\(1, 8, 8\\)"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Unflatten(1, (2, 5))), "expected \\[batch, 10\\]"),
])
def test_classifier_check_names_the_problem(model, message):
    with pytest.raises(ModelError, match=message):
        Classifier(model, num_classes=10).check(torch.rand(4, 1, 8, 8))


def test_classifier_check_rejects_nan_logits():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        model[1].bias.fill_(float("nan"))
    with pytest.raises(ModelError, match="NaN"):
        Classifier(model, num_classes=10).check(torch.rand(4, 1, 8, 8))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "from torch import nn\n"
        "def make_net(num_classes, in_channels, width=16):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, width), nn.ReLU(), nn.Linear(width, num_classes))\n"
        "def broken():\n"
        "    raise RuntimeError('no GPU here')\n"
        "def not_a_module():\n"
        "    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_models"


def test_user_factory_gets_shape_keywords(user_module):
    model = build_user_model(f"{user_module}:make_net", SPECS[0], width=8)
    assert model[1].out_features == 8 and model[3].out_features == 10


@pytest.mark.parametrize("ref, message", [
    ("my_models:broken", "raised RuntimeError: no GPU here"),
    ("my_models:not_a_module", "expected a torch.nn.Module"),
    ("my_models:missing", "has no attribute 'missing'"),
    ("no_such_module_xyz:f", "cannot import module"),
])
def test_user_factory_errors(user_module, ref, message):
    with pytest.raises((ModelError, ConfigError), match=message):
        build_user_model(ref, SPECS[0])


def test_weights_roundtrip_and_mismatch(tmp_path):
    spec = SPECS[0]
    a, b = build_model("mlp", spec), build_model("mlp", spec)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    load_weights(b, tmp_path / "w.pt")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(CheckpointError, match="do not fit the model"):
        load_weights(build_model("cnn", spec), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(b, tmp_path / "nope.pt")


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"weight": _Evil(str(marker))}, fh)
    with pytest.raises(CheckpointError, match="needs pickled code.*--trust-checkpoint"):
        load_weights(build_model("mlp", SPECS[0]), bad)
    assert not marker.exists()
