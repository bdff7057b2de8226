"""The purification seam: a classifier that transforms its input, and the gradient views adaptive attacks take."""
from __future__ import annotations

import pytest
import torch

from robustbench_gan.attacks import make_attack
from robustbench_gan.evaluation import evaluate_attack
from robustbench_gan.errors import ConfigError
from robustbench_gan.purified import Purifier, PurifiedClassifier, gradient_view, naive_gradients_masked


class Quantize(Purifier):
    """Rounds pixels to 1/4 steps, computed without autograd: naive gradients are zero (shattered gradients,
    Athalye et al. 2018's thermometer/quantization case)."""

    differentiable = False

    def forward(self, x):
        return (x.detach() * 4).round() / 4


def test_naive_pgd_is_masked_and_bpda_breaks_the_purifier(cnn, batch):
    x, y = batch
    defended = PurifiedClassifier(cnn, Quantize()).eval()
    assert naive_gradients_masked(defended)
    naive = evaluate_attack(defended, x, y, make_attack("pgd", steps=10), [0.2], progress=False)[0]
    adaptive = evaluate_attack(defended, x, y, make_attack("pgd", steps=10, adaptive="bpda"), [0.2],
                               progress=False)[0]
    clean = naive.metrics["clean_accuracy"]
    assert clean > 0.8
    # zero gradients: the naive attack only has its random start; BPDA goes through the identity
    assert naive.metrics["robust_accuracy"] > 0.6
    assert adaptive.metrics["robust_accuracy"] < naive.metrics["robust_accuracy"] - 0.3


def test_a_view_has_the_real_forward_and_counts_queries_on_the_defended_model(cnn, batch):
    x, _ = batch
    defended = PurifiedClassifier(cnn, Quantize()).eval()
    view = gradient_view(defended, "bpda")
    before = defended.queries
    assert torch.equal(view(x[:8]), defended(x[:8]))
    assert defended.queries - before == 16
    xg = x[:8].clone().requires_grad_(True)
    view(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_a_view_another_defense_offers_falls_back_to_bpda_and_unknown_modes_are_errors(cnn, caplog):
    import robustbench_gan.defenses  # noqa: F401  (registers the purifiers that offer views)

    defended = PurifiedClassifier(cnn, Quantize())
    with caplog.at_level("WARNING"):
        assert gradient_view(defended, "unroll").mode == "bpda"  # Defense-GAN's view; one suite, every defense
    assert "not offered by Quantize" in caplog.text
    with pytest.raises(ConfigError, match="'unrol' is not a gradient view of any defense; use one of bpda, "):
        gradient_view(defended, "unrol")
    with pytest.raises(ConfigError, match="adaptive must be a mode name"):
        make_attack("pgd", adaptive="BPDA!")
    assert gradient_view(cnn, "unroll") is cnn  # nothing to adapt to on an undefended model
    assert make_attack("apgd", adaptive="bpda").adaptive == "bpda"
