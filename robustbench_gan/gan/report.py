"""What the report shows of a trained generator: quality metrics, a sample grid per class, the loss curves, and
the corner cases (generated samples a classifier gets wrong or is unsure about)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..classifier import Classifier
from ..data import DataSpec
from .metrics import corner_cases, gan_quality
from .training import GanConfig, GanHistory, sample_balanced

QUALITY_KEYS = ("modes_captured", "high_quality_fraction", "class_kl", "fid", "conditional_accuracy")


def report_samples(generator: nn.Module, *, seed: int, device: str) -> tuple[Tensor, Tensor]:
    """The 100 samples per class every report figure of a generator is computed on (seeded)."""
    x_gen, y_gen = sample_balanced(generator, 100, seed=seed + 11)
    return x_gen.to(device), y_gen.to(device)


def scaled(t: Tensor, spec: DataSpec) -> Any:
    """Pixels mapped to [0, 1] and rounded, as nested lists for the report."""
    lo, hi = spec.bounds
    return ((t - lo) / (hi - lo)).clamp(0, 1).cpu().numpy().round(3).tolist()


def generator_report(
    generator: nn.Module, history: GanHistory | None, key: str, config: GanConfig, *, reference: Classifier,
    real_x: Tensor, real_y: Tensor, spec: DataSpec, seed: int, device: str,
) -> dict[str, Any]:
    """Quality metrics against ``reference`` features, a sample grid (8 per class) and losses (at most ~300 points)."""
    x_gen, y_gen = report_samples(generator, seed=seed, device=device)
    quality = gan_quality(x_gen, y_gen, reference, real_x=real_x.to(device), real_y=real_y.to(device))
    record = {"model": "", "defense": "", "pack": config.pack, "unroll": config.unroll,
              **{k: quality[k] for k in QUALITY_KEYS}}
    per_class = [x_gen[y_gen == c][:8] for c in range(spec.num_classes)]
    hist = history.as_dict() if history is not None else {}
    stride = max(1, len(hist.get("g_loss", [])) // 300)
    losses: dict[str, Any] = {k: [round(float(v), 4) for v in hist.get(k, [])[::stride]] for k in ("d_loss", "g_loss")}
    losses["steps"] = list(range(0, len(hist.get("g_loss", [])), stride))
    return {"generator": key, "gan": config.as_dict(), "metrics": record,
            "grid": {"class_names": list(spec.class_names), "images": [scaled(t, spec) for t in per_class]},
            "losses": losses}


def corner_case_report(
    generator: nn.Module, classifier: Classifier, *, model: str, spec: DataSpec, seed: int, device: str,
) -> dict[str, Any]:
    """Generated samples ``classifier`` (the model's undefended one) gets wrong or is unsure about."""
    x_gen, y_gen = report_samples(generator, seed=seed, device=device)
    cases = corner_cases(classifier, x_gen, y_gen)
    probs = torch.softmax(classifier.predict(x_gen), 1)
    items = [{"x": scaled(x_gen[i], spec), "label": int(y_gen[i]), "pred": int(probs[i].argmax()),
              "conf": round(float(probs[i].max()), 3)} for i in cases["indices"][:16].tolist()]
    return {"classifier": f"{model} (undefended)", "model": model, "class_names": list(spec.class_names),
            "rate_per_class": [None if r != r else round(float(r), 4) for r in cases["rate_per_class"]],
            "fraction": round(len(cases["indices"]) / max(1, len(y_gen)), 4), "n": len(y_gen), "items": items}
