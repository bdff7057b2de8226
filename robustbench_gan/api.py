"""``benchmark()``: evaluate a user's own classifier with the toolkit's attacks in one call.

It is a one-classifier run of the same pipeline as suites (:mod:`robustbench_gan.run`): the same records,
per-sample data, leaderboard, gallery, sanity checks and files.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .attacks import Attack, make_attack
from .classifier import Classifier
from .core.device import resolve_device
from .data import Data, from_tensors, load_dataset
from .errors import ConfigError, DataError, ModelError
from .results import Results
from .run import run_pipeline
from .suite import AttackConfig, EvalConfig, ModelConfig, SuiteConfig, TransferConfig

log = logging.getLogger(__name__)


def _as_data(data: Any, *, num_classes: int | None, bounds: Sequence[float], mean: Any, std: Any) -> Data:
    if isinstance(data, str):
        return load_dataset(data)
    if isinstance(data, Dataset):
        xs, ys = [], []
        for xb, yb in DataLoader(data, batch_size=512, shuffle=False):
            xs.append(torch.as_tensor(xb))
            ys.append(torch.as_tensor(yb))
        if not xs:
            raise DataError("the Dataset is empty")
        data = (torch.cat(xs), torch.cat(ys))
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return from_tensors(data[0], data[1], num_classes=num_classes, bounds=bounds, mean=mean, std=std)
    raise DataError(
        f"data must be an (x, y) tensor pair, a torch Dataset or a registered dataset name, got {type(data).__name__}"
    )


def _attack_config(spec: str | Attack, eps: tuple[float, ...]) -> AttackConfig:
    if isinstance(spec, str):
        attack = make_attack(spec)  # fails early on an unknown name
        return AttackConfig(spec, spec, eps, transfer=False)
    if not isinstance(spec, Attack):
        raise ConfigError(f"attacks must be registry names or Attack objects, got {type(spec).__name__}")
    attack = spec
    return AttackConfig(attack.name, attack.name, eps, params=dict(attack.params()), transfer=False, instance=attack)


def benchmark(
    model: nn.Module,
    data: tuple[Tensor, Tensor] | Dataset | str,
    *,
    attacks: Sequence[str | Attack] = ("fgsm", "pgd"),
    eps: Sequence[float] = (0.03, 0.1, 0.3),
    num_classes: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    n: int | None = None,
    batch_size: int = 256,
    name: str | None = None,
    checks: bool = True,
    progress: bool = True,
) -> Results:
    """Attack ``model`` (any ``nn.Module`` returning logits) on ``data`` and return :class:`Results`.

    ``data`` is an ``(x, y)`` pair of pixel-space tensors within ``bounds``, a ``Dataset`` yielding such pairs,
    or a registered dataset name (its test split). ``attacks`` are registry names or Attack objects; ``eps``
    is in pixel units. Normalization (``mean``/``std``) is applied inside the wrapper, so attacks perturb
    pixels. ``n`` evaluates a seeded subset; ``out`` also writes results.csv, results.json, samples.csv.gz and
    index.html. The results carry per-sample data and the worst-case leaderboard, and (``checks=True``) the sanity
    flags of :mod:`robustbench_gan.checks` (gradient masking and friends; a fixed cost per model).
    """
    dev = resolve_device(device)
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
    d = _as_data(data, num_classes=num_classes, bounds=bounds, mean=mean, std=std)
    eps_list = tuple(float(e) for e in eps)
    if any(e < 0 for e in eps_list):
        raise ConfigError(f"eps values must be >= 0, got {list(eps_list)}")
    if isinstance(model, Classifier):
        clf = model
    else:
        model = model.to(dev)
        k = num_classes
        if k is None:
            with torch.no_grad():
                out_shape = model.eval()(d.x_test[:2].to(dev)).shape
            k = int(out_shape[-1]) if len(out_shape) == 2 else d.spec.num_classes
        clf = Classifier(model, num_classes=k, bounds=d.spec.bounds, mean=d.spec.mean or mean, std=d.spec.std or std)
    model_name = name or type(getattr(clf, "model", clf)).__name__
    configs = tuple(_attack_config(a, eps_list) for a in attacks)
    suite = SuiteConfig(
        name="benchmark", data={"dataset": d.spec.name}, models=(ModelConfig(model_name),), attacks=configs,
        evaluation=EvalConfig(n=n, batch_size=batch_size), transfer=TransferConfig(sources="none"), seed=seed,
        device=dev,
    )
    config = {"model": model_name, "attacks": [a if isinstance(a, str) else repr(a) for a in attacks],
              "eps": list(eps_list), "n": n, "bounds": list(d.spec.bounds)}
    results = run_pipeline(suite, d, device=dev, progress=progress, checks=checks,
                           prebuilt={(model_name, "none"): clf}, manifest_config=config)
    if out is not None:
        from .reports import write_run

        write_run(results, out)
    return results
