"""``benchmark()``: evaluate a user's own classifier with the toolkit's attacks in one call."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .attacks import Attack, make_attack
from .classifier import Classifier
from .data import Data, from_tensors, load_dataset, subset
from .errors import ConfigError, DataError, ModelError
from .evaluation import evaluate_attack
from .results import Results, new_manifest
from .samples import sample_block, samples_table, worst_case
from .runner import resolve_device

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
    x, y = subset(d.x_test, d.y_test, n, seed)
    x, y = x.to(dev), y.to(dev)
    if isinstance(model, Classifier):
        clf = model.to(dev)
    else:
        model = model.to(dev)
        k = num_classes
        if k is None:
            with torch.no_grad():
                out_shape = model.eval()(x[:2]).shape
            k = int(out_shape[-1]) if len(out_shape) == 2 else d.spec.num_classes
        clf = Classifier(model, num_classes=k, bounds=d.spec.bounds, mean=d.spec.mean or mean, std=d.spec.std or std)
    clf.eval()
    clf.check(x)
    eps_list = [float(e) for e in eps]
    if any(e < 0 for e in eps_list):
        raise ConfigError(f"eps values must be >= 0, got {eps_list}")
    model_name = name or type(getattr(clf, "model", clf)).__name__
    results = Results(manifest=new_manifest(suite="benchmark", seed=seed, device=dev, config={
        "model": model_name, "attacks": [a if isinstance(a, str) else repr(a) for a in attacks], "eps": eps_list,
        "n": len(y), "bounds": list(d.spec.bounds)}))
    blocks: list[dict[str, Any]] = []
    for spec_or_attack in attacks:
        attack = make_attack(spec_or_attack) if isinstance(spec_or_attack, str) else spec_or_attack
        label = spec_or_attack if isinstance(spec_or_attack, str) else attack.name
        meta = {"model": model_name, "defense": "none", "attack": label, "threat": attack.threat, "source": "",
                "norm": attack.norm, "attack_kind": attack.name}
        for o in evaluate_attack(clf, x, y, attack, eps_list, batch_size=batch_size, seed=seed,
                                 desc=f"{model_name}/{label}", progress=progress):
            block = sample_block(meta, o)
            if block is not None:
                blocks.append(block)
            results.records.append({
                "suite": "benchmark", "dataset": d.spec.name, "model": model_name, "defense": "none",
                "attack": label, "threat": attack.threat, "source": "", "targeted": bool(attack.targeted),
                "target_mode": attack.target_mode, "norm": attack.norm, "eps": o.eps, **o.metrics,
            })
            if o.gallery and o.eps == max(eps_list):
                results.gallery.append({"model": model_name, "defense": "none", "attack": label, "eps": o.eps,
                                        "class_names": list(d.spec.class_names), "items": o.gallery})
    results.samples = samples_table(blocks, [int(v) for v in y.cpu().tolist()])
    results.extra["leaderboard"] = worst_case(results.samples, len(y))
    if checks:
        from .checks import classifier_flags, table_flags

        results.flags = classifier_flags(clf, x, y, model=model_name, defense="none") + table_flags(results.records)
        for f in results.flags:
            log.warning("sanity check %s: %s: %s", f["check"], model_name, f["message"])
    results.manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if out is not None:
        results.write(out)
    return results
