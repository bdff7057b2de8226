"""Device hygiene of evaluation: automatic batch size, frozen parameters, inference-mode clean passes, compile,
channels_last and cuDNN autotuning switches (the CUDA-only effects are exercised through their CPU code paths)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_gan.attacks import make_attack
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.classifier import Classifier
from robustbench_gan.core.device import cudnn_autotune, largest_batch, tune_for_device, uses_convolutions
from robustbench_gan.errors import ConfigError
from robustbench_gan.purified import Purifier, PurifiedClassifier
from robustbench_gan.run import tuning
from robustbench_gan.suite import load_suite


def _oom_above(limit: int, calls: list[int]):
    def fits(b: int) -> None:
        calls.append(b)
        if b > limit:
            raise torch.OutOfMemoryError(f"fake: {b} > {limit}")
    return fits


@pytest.mark.parametrize("limit, expected", [(300, 256), (1000, 512), (100, 64), (10**6, 8192)])
def test_largest_batch_climbs_and_descends_the_doubling_ladder(limit, expected):
    calls: list[int] = []
    assert largest_batch(_oom_above(limit, calls), start=256, limit=8192) == expected
    assert max(b for b in calls if b <= limit) == expected


class Greedy(nn.Module):
    """A linear model that 'runs out of memory' on batches above 600 and counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if len(x) > 600:
            raise torch.OutOfMemoryError("fake")
        return self.fc(x.flatten(1))


def test_the_automatic_batch_size_is_probed_once_per_architecture_and_halved_for_headroom(digits):
    x = digits.x_test[:400]
    first = Classifier(Greedy(), num_classes=10)
    assert tuning.batch_size_for(first, x, None, probe=True) == 256  # 512 fits, 800 not: half of 512
    second = Classifier(Greedy(), num_classes=10)  # same architecture and input: remembered, not probed
    assert tuning.batch_size_for(second, x, None, probe=True) == 256 and second.model.calls == 0
    assert tuning.batch_size_for(first, x[:50], None, probe=True) <= 50  # never more than the evaluated set
    assert tuning.batch_size_for(first, x, 32, probe=True) == 32  # a batch size the user sets wins
    assert tuning.batch_size_for(first, x, None) == tuning.CPU_BATCH  # CPU tensors: no probe


def test_attacks_run_with_parameters_frozen_and_restore_them(cnn, batch):
    x, y = batch
    seen: list[bool] = []

    class Spy(type(make_attack("fgsm"))):
        def perturb_many(self, clf, xb, goal, eps_list):
            seen.append(any(p.requires_grad for p in clf.parameters()))
            return super().perturb_many(clf, xb, goal, eps_list)

    before = [p.requires_grad for p in cnn.parameters()]
    evaluate_attack(cnn, x[:16], y[:16], Spy(), [0.1], progress=False)
    assert seen == [False]
    assert [p.requires_grad for p in cnn.parameters()] == before


def test_clean_passes_use_inference_mode_but_hand_back_ordinary_tensors(cnn, batch):
    x, _ = batch
    modes: list[bool] = []
    hook = cnn.model.register_forward_hook(lambda *_: modes.append(torch.is_inference_mode_enabled()))
    try:
        logits = cnn.predict(x[:8])
    finally:
        hook.remove()
    assert modes == [True] and not logits.is_inference()
    labels = logits.argmax(1)
    xg = x[:8].clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(cnn(xg), labels).backward()  # usable as labels in a later gradient
    assert xg.grad is not None


class Optimising(Purifier):
    """A purifier that runs autograd inside its forward (as Defense-GAN's projection does)."""

    differentiable = False

    def forward(self, x):
        with torch.enable_grad():
            z = x.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad((z ** 2).sum(), z)
        return (x - 0.0 * g).detach()


def test_a_purifier_that_optimises_inside_its_forward_still_predicts(cnn, batch):
    x, _ = batch
    defended = PurifiedClassifier(cnn, Optimising())
    assert torch.equal(defended.predict(x[:8]).argmax(1), cnn.predict(x[:8]).argmax(1))


def test_compile_attacks_a_compiled_twin_with_the_same_results(cnn, batch, monkeypatch):
    monkeypatch.setattr(tuning, "COMPILE_BACKEND", "eager")  # the wiring; inductor itself is torch's to test
    x, y = batch
    twin = tuning.compiled(cnn)
    assert twin is not cnn and tuning.compiled(cnn) is twin and twin.model is not cnn.model
    assert twin.mean is cnn.mean if cnn.normalized else True
    attack = make_attack("pgd", steps=5)
    plain = evaluate_attack(cnn, x[:64], y[:64], attack, [0.1], progress=False)[0]
    fast = evaluate_attack(twin, x[:64], y[:64], attack, [0.1], progress=False)[0]
    assert plain.metrics["robust_accuracy"] == fast.metrics["robust_accuracy"]
    assert tuning.compiled(PurifiedClassifier(cnn, Optimising())).__class__ is PurifiedClassifier


def test_channels_last_and_cudnn_autotuning_apply_to_cuda_only():
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    assert uses_convolutions(conv) and not uses_convolutions(nn.Linear(3, 2))
    tuned = tune_for_device(conv, "cpu")
    assert tuned[0].weight.is_contiguous()  # the CPU keeps NCHW
    before = torch.backends.cudnn.benchmark
    with cudnn_autotune("cpu", True):
        assert torch.backends.cudnn.benchmark == before
    with cudnn_autotune("cuda", True):
        assert torch.backends.cudnn.benchmark is True
    with cudnn_autotune("cuda", False):
        assert torch.backends.cudnn.benchmark == before
    assert torch.backends.cudnn.benchmark == before


def _suite(tmp_path, evaluation: str):
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\n[data]\ndataset = "digits"\n[[models]]\nname = "m"\narch = "logistic"\n'
                    '[[attacks]]\nname = "fgsm"\nkind = "fgsm"\neps = [0.1]\n[evaluation]\n' + evaluation)
    return load_suite(str(path))


def test_suite_keys_for_device_tuning(tmp_path):
    assert _suite(tmp_path, 'batch_size = "auto"\n').evaluation.batch_size is None
    ev = _suite(tmp_path, "batch_size = 64\ncompile = true\ncudnn_benchmark = true\n").evaluation
    assert (ev.batch_size, ev.compile, ev.cudnn_benchmark) == (64, True, True)
    with pytest.raises(ConfigError, match="compile must be true or false"):
        _suite(tmp_path, 'compile = "yes"\n')
    with pytest.raises(ConfigError, match="batch_size must be a positive integer or auto"):
        _suite(tmp_path, 'batch_size = "big"\n')


def test_the_cpu_batch_is_bounded_by_memory_and_stays_256_for_small_models(monkeypatch):
    """256 (every earlier release's batch) unless one batch's estimated forward+backward memory would pass a
    quarter of the machine's memory; then fewer, found once per architecture and shape, the same on every run."""
    from robustbench_gan.data import DataSpec
    from robustbench_gan.zoo import build_model

    monkeypatch.setattr(tuning, "_batch_sizes", {})
    spec = DataSpec("c", (3, 32, 32), 10)
    small = Classifier(build_model("cnn", DataSpec("d", (1, 8, 8), 10)), num_classes=10).eval()
    assert tuning.batch_size_for(small, torch.rand(4, 1, 8, 8), None) == tuning.CPU_BATCH
    big = Classifier(build_model("preact-resnet18", spec), num_classes=10).eval()
    x = torch.rand(4, 3, 32, 32)
    per_sample = tuning.BACKWARD_FACTOR * tuning.activation_bytes(big, x)
    assert 8 * 2**20 < per_sample < 12 * 2**20  # 4.5 MiB of activations per 32x32 image, twice
    monkeypatch.setattr(tuning, "physical_memory", lambda: 2**30)  # a 1 GiB machine: 256 MiB for one batch
    assert tuning.batch_size_for(big, x, None) == int(2**28 // per_sample) < tuning.CPU_BATCH
    monkeypatch.setattr(tuning, "physical_memory", lambda: 2**40)
    assert tuning.batch_size_for(big, x, None) == int(2**28 // per_sample)  # remembered, not recomputed
    assert tuning.batch_size_for(big, x, 7) == 7  # a batch size the user sets wins


def test_the_memory_estimate_leaves_the_random_generators_alone(monkeypatch):
    """Its one-sample forward pass must not shift a randomized model's draws (the estimate runs in whichever cell
    meets an architecture first)."""
    class Noisy(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10] + torch.randn(len(x), 10)

    monkeypatch.setattr(tuning, "_batch_sizes", {})
    clf, x = Classifier(Noisy(), num_classes=10).eval(), torch.rand(4, 1, 4, 4)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert tuning.batch_size_for(clf, x, None) == tuning.CPU_BATCH
    assert torch.equal(torch.rand(3), expected)
