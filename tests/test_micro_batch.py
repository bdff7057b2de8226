"""Numbers that do not depend on the batch size (issue 24, point 2): with ``micro_batch`` every forward pass runs
on chunks of exactly that many samples (the last padded), so a sample's logits and input gradients are the same
bits whether it was evaluated in a batch of 7 or of 64, and so are a deterministic attack's per-sample results."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan import benchmark
from robustbench_gan.attacks import BIM, FGSM, PGD
from robustbench_gan.classifier import Classifier
from robustbench_gan.data import DataSpec
from robustbench_gan.errors import ConfigError
from robustbench_gan.run.tuning import MicroBatched, micro_batched
from robustbench_gan.suite import validate_suite
from robustbench_gan.zoo import build_model
from suite_files import suite_doc

CIFAR = DataSpec("c", (3, 32, 32), 10)


def small_wrn() -> Classifier:
    torch.manual_seed(1)
    model = build_model("wide-resnet", CIFAR, depth=10, width=2)
    with torch.no_grad():  # running statistics away from their init, so batch norm does real arithmetic
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return Classifier(model, num_classes=10).eval()


def in_cuts(clf: Classifier, x: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and input gradients of ``x`` computed ``size`` samples at a time."""
    logits, grads = [], []
    for start in range(0, len(x), size):
        xb = x[start:start + size].clone().requires_grad_(True)
        out = clf(xb)
        out.logsumexp(1).sum().backward()
        logits.append(out.detach())
        grads.append(xb.grad)
    return torch.cat(logits), torch.cat(grads)


def test_fixed_chunks_give_the_same_bits_for_any_cut():
    clf = small_wrn()
    for p in clf.parameters():
        p.requires_grad_(False)
    x = torch.rand(48, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    chunked = micro_batched(clf, 16)
    assert isinstance(chunked.model, MicroBatched) and chunked.model.model is clf.model  # shares the weights
    assert micro_batched(clf, 16) is chunked  # made once per classifier and size
    reference = in_cuts(chunked, x, 48)
    for size in (1, 5, 7, 16, 33):
        logits, grads = in_cuts(chunked, x, size)
        assert torch.equal(logits, reference[0]) and torch.equal(grads, reference[1]), size


@pytest.mark.slow
def test_a_deterministic_attack_gives_the_same_per_sample_results_at_batch_7_and_64():
    """Through ``benchmark()``: FGSM, PGD without a random start and BIM (the active-set loop shrinks its calls)
    at batch sizes 7 and 64 with 16-sample chunks: identical results.csv and samples.csv.gz (seconds aside)."""
    clf = small_wrn()
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(40, 3, 32, 32, generator=g), torch.randint(0, 10, (40,), generator=g)
    y[:20] = clf.predict(x[:20]).argmax(1)  # half of them classified correctly: attacks have work to do
    attacks = [FGSM(), PGD(steps=5, random_start=False), BIM(steps=5)]
    runs = [benchmark(clf, (x, y), attacks=attacks, eps=[2 / 255, 8 / 255], batch_size=b, micro_batch=16,
                      progress=False, checks=False) for b in (7, 64)]
    tables = [r.table.drop(columns=["seconds"]) for r in runs]
    assert tables[0].equals(tables[1]) and (tables[0]["robust_accuracy"] < tables[0]["clean_accuracy"]).any()
    assert runs[0].samples.equals(runs[1].samples) and len(runs[0].samples) == 3 * 2 * 40
    assert runs[0].manifest["micro_batch"] == 16


def test_micro_batch_is_checked_where_it_is_given():
    assert validate_suite(suite_doc(evaluation={"micro_batch": 32})).evaluation.micro_batch == 32
    assert validate_suite(suite_doc()).evaluation.micro_batch == 0
    with pytest.raises(ConfigError, match="micro_batch must be an integer >= 0"):
        validate_suite(suite_doc(evaluation={"micro_batch": -2}))
    with pytest.raises(ConfigError, match="micro_batch must be a non-negative integer"):
        benchmark(torch.nn.Flatten(), (torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)), attacks="fgsm",
                  eps=0.1, micro_batch=True, progress=False)
