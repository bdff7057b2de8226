"""A user's checkpoint in the layouts people publish (issue 24): a bare state_dict; nested under ``state_dict``,
``model_state_dict``, ``model`` or ``net`` beside optimizer state; keys prefixed ``module.`` (DataParallel) or
``_orig_mod.`` (torch.compile); ``.safetensors``. Each loads without running pickled code and the log says which
layout it was; a pickled object is still refused; another architecture gets one line naming the keys."""
from __future__ import annotations

import logging
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from robustbench_gan.checkpoints import load_weights
from robustbench_gan.cli import main
from robustbench_gan.data import DataSpec
from robustbench_gan.errors import CheckpointError
from robustbench_gan.zoo import build_model
from test_models import _Evil

SPEC = DataSpec("digits", (1, 8, 8), 10)


def trained_like() -> nn.Module:
    torch.manual_seed(5)
    return build_model("cnn", SPEC, channels=(4, 8), hidden=16)


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


LAYOUTS = {
    "bare": (lambda s: s, "a bare state_dict (torch)"),
    "state_dict": (lambda s: {"state_dict": s, "epoch": 3}, "nested under 'state_dict'"),
    "model_state_dict": (lambda s: {"model_state_dict": s, "optimizer_state_dict": {"state": {}, "param_groups": []},
                                    "epoch": 90}, "nested under 'model_state_dict'"),
    "model": (lambda s: {"model": s, "args": {"lr": 0.1}}, "nested under 'model'"),
    "net": (lambda s: {"net": s, "acc": 94.1}, "nested under 'net'"),
    "data-parallel": (lambda s: {"state_dict": prefixed(s, "module.")}, "key prefix 'module.' removed"),
    "compiled": (lambda s: prefixed(s, "_orig_mod."), "key prefix '_orig_mod.' removed"),
    "compiled-data-parallel": (lambda s: {"model": prefixed(s, "module._orig_mod.")},
                               "key prefix 'module.' + '_orig_mod.' removed"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_published_layout_loads_and_says_which_it_was(layout, tmp_path, caplog):
    source = trained_like()
    wrap, said = LAYOUTS[layout]
    path = tmp_path / "w.pt"
    torch.save(wrap({k: v.clone() for k, v in source.state_dict().items()}), path)
    target = build_model("cnn", SPEC, channels=(4, 8), hidden=16)
    with caplog.at_level(logging.INFO, logger="robustbench_gan.checkpoints"):
        load_weights(target, path)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(target(x), source(x))
    assert said in caplog.text


def test_safetensors_with_a_data_parallel_prefix_loads(tmp_path, caplog):
    source = trained_like()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in prefixed(source.state_dict(), "module.").items()}, str(path))
    target = build_model("cnn", SPEC, channels=(4, 8), hidden=16)
    with caplog.at_level(logging.INFO, logger="robustbench_gan.checkpoints"):
        load_weights(target, path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    assert "a bare state_dict (safetensors), key prefix 'module.' removed" in caplog.text


def test_a_prefix_the_model_itself_uses_is_kept(tmp_path):
    """A model whose own keys start with ``module.`` (a wrapper saved and loaded as such) is not stripped."""
    inner = trained_like()
    wrapped, target = nn.Sequential(), nn.Sequential()
    wrapped.add_module("module", inner)
    target.add_module("module", build_model("cnn", SPEC, channels=(4, 8), hidden=16))
    torch.save(wrapped.state_dict(), tmp_path / "w.pt")
    load_weights(target, tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(wrapped.state_dict().values(), target.state_dict().values()))


def test_a_pickled_object_in_a_nested_checkpoint_is_still_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "w.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model_state_dict": trained_like().state_dict(), "hook": _Evil(str(marker))}, fh)
    with pytest.raises(CheckpointError, match="needs pickled code.*--trust-checkpoint"):
        load_weights(trained_like(), path)
    assert not marker.exists()


def test_another_architecture_gets_one_line_naming_the_keys(tmp_path):
    torch.save({"state_dict": prefixed(trained_like().state_dict(), "module.")}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model("mlp", SPEC), tmp_path / "w.pt")
    message = str(err.value)
    assert "\n" not in message and "nested under 'state_dict'" in message and "'module.' removed" in message
    assert "missing keys net.1.weight" in message or "missing keys" in message
    missing = [k for k in build_model("mlp", SPEC).state_dict() if k not in trained_like().state_dict()]
    unexpected = [k for k in trained_like().state_dict() if k not in build_model("mlp", SPEC).state_dict()]
    assert f"missing keys {', '.join(missing[:3])}" in message and f"unexpected keys {', '.join(unexpected[:3])}" in message
    with pytest.raises(CheckpointError, match=r"shapes differ \(file vs model\): .*\[4, 1, 3, 3\] vs \[8, 1, 3, 3\]"):
        load_weights(build_model("cnn", SPEC, channels=(8, 8), hidden=16), tmp_path / "w.pt")


def test_a_file_without_tensors_says_what_it_holds(tmp_path):
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"no state_dict found .*keys 'epoch', 'optimizer'.*'model_state_dict'"):
        load_weights(trained_like(), tmp_path / "w.pt")


@pytest.mark.slow
def test_a_suite_loads_a_data_parallel_training_checkpoint(tmp_path, suite_file, caplog):
    """End to end: a suite's ``weights`` names a training script's checkpoint; the run uses it without training."""
    from robustbench_gan.classifier_training import TrainConfig, train_model
    from robustbench_gan.data import load_dataset

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("cnn", data.spec, channels=(4, 8), hidden=16)
    train_model(model, data.x_train, data.y_train, config=TrainConfig(epochs=10), seed=0, progress=False)
    torch.save({"epoch": 10, "model_state_dict": prefixed(model.state_dict(), "module."),
                "optimizer_state_dict": {}}, tmp_path / "ckpt.pt")
    suite = suite_file(models=[{"name": "mine", "arch": "cnn", "params": {"channels": [4, 8], "hidden": 16},
                                "weights": "ckpt.pt"}], evaluation={"n": 60}, transfer={"sources": "none"})
    with caplog.at_level(logging.INFO, logger="robustbench_gan.checkpoints"):
        assert main(["-q", "run", str(suite), "--out", str(tmp_path / "out"), "--no-cache", "--device", "cpu"]) == 0
    assert "nested under 'model_state_dict'" in caplog.text
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "results.csv")
    with torch.no_grad():  # the run evaluated these weights, not others: the same clean accuracy on x_test[:60]
        accuracy = float((model(data.x_test[:60]).argmax(1) == data.y_test[:60]).float().mean())
    assert accuracy > 0.5 and table["clean_accuracy"].iloc[0] == pytest.approx(accuracy)
