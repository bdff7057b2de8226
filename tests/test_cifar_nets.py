"""The CIFAR architectures of the zoo (issue 24): PreAct-ResNet-18 and Wide ResNets with the parameter counts the
literature gives and the state_dict layout published checkpoints use, so that those load as they are."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.attacks import PGD, Goal
from robustbench_gan.classifier import Classifier
from robustbench_gan.data import DataSpec
from robustbench_gan.suite import validate_suite
from robustbench_gan.zoo import build_model
from suite_files import suite_doc

CIFAR = DataSpec("cifar10", (3, 32, 32), 10)


@pytest.mark.parametrize("arch, millions", [("preact-resnet18", 11.17), ("wrn-28-10", 36.48),
                                            ("wrn-34-10", 46.16)])
def test_parameter_counts_are_the_published_ones(arch, millions):
    """PreAct-ResNet-18: 11.17 M (Rice et al. 2020); WRN-28-10: 36.5 M and WRN-34-10: 46.2 M (Zagoruyko &
    Komodakis 2016, table 1 of Zhang et al. 2019)."""
    model = build_model(arch, CIFAR)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == millions


def test_wide_resnet_keys_are_the_trades_and_robustbench_layout():
    keys = set(build_model("wide-resnet", CIFAR, depth=10, width=2).state_dict())
    block = ("bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
             "conv1.weight", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var",
             "bn2.num_batches_tracked", "conv2.weight")
    expected = {"conv1.weight", "fc.weight", "fc.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                "bn1.running_var", "bn1.num_batches_tracked"}
    for stage in (1, 2, 3):
        expected |= {f"block{stage}.layer.0.{k}" for k in block} | {f"block{stage}.layer.0.convShortcut.weight"}
    assert keys == expected


def test_preact_resnet_keys_are_the_published_layout():
    keys = set(build_model("preact-resnet18", CIFAR).state_dict())
    assert {"conv1.weight", "layer1.0.bn1.weight", "layer1.1.conv2.weight", "layer2.0.shortcut.0.weight",
            "layer4.1.bn2.running_var", "bn.weight", "linear.weight", "linear.bias"} <= keys
    assert "layer1.0.shortcut.0.weight" not in keys and not any(k.startswith("fc") for k in keys)
    assert "bn.weight" not in build_model("preact-resnet18", CIFAR, final_bn=False).state_dict()


@pytest.mark.parametrize("arch, params", [("preact-resnet18", {}), ("preact-resnet18", {"shortcut_from": "input"}),
                                          ("wide-resnet", {"depth": 10, "width": 1})])
def test_they_run_on_other_shapes_and_a_gradient_attack_moves_them(arch, params):
    """Global pooling: a 1x8x8 input works as well as 3x32x32; PGD changes what they predict."""
    torch.manual_seed(0)
    spec = DataSpec("digits", (1, 8, 8), 10)
    clf = Classifier(build_model(arch, spec, **params), num_classes=10).eval()
    x = torch.rand(8, 1, 8, 8)
    y = clf.predict(x).argmax(1)
    adv = PGD(steps=5)(clf, x, Goal(y), eps=0.3)
    assert float((adv - x).abs().max()) <= 0.3 + 1e-6 and bool((clf.predict(adv).argmax(1) != y).any())


def test_a_bad_depth_is_one_config_error_and_suites_name_them():
    from robustbench_gan.errors import ConfigError

    with pytest.raises(ConfigError, match="depth must be 6n \\+ 4"):
        build_model("wide-resnet", CIFAR, depth=27)
    cfg = validate_suite(suite_doc(models=[{"name": "wrn", "arch": "wrn-28-10"},
                                           {"name": "pre", "arch": "preact-resnet18"}]))
    assert [m.arch for m in cfg.models] == ["wrn-28-10", "preact-resnet18"]
