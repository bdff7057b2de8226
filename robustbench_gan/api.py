"""``benchmark()``: evaluate a user's own classifier with the toolkit's attacks in one call.

It is a one-classifier run of the same pipeline as suites (:mod:`robustbench_gan.run`): the same records,
per-sample data, leaderboard, gallery, sanity checks and files.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .attacks import ATTACKS, Attack, make_attack
from .attacks.engine.precision import check_precision
from .checks import warn_flags
from .classifier import Classifier, eval_mode
from .core.device import resolve_device
from .core.validation import eps_values
from .data import Data, from_tensors, load_dataset
from .errors import ConfigError, DataError, ModelError
from .results import Results
from .run import run_pipeline
from .run.plan import Executor
from .suite import SHARD_SIZE, AttackConfig, EvalConfig, ModelConfig, SuiteConfig, TransferConfig, check_eps_range

log = logging.getLogger(__name__)


def _tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a tensor or an array, got {type(value).__name__} ({exc})") from None


def _batches(batches: Iterable[Any]) -> tuple[Tensor, Tensor]:
    """Concatenate an iterable of ``(x, y)`` batches (a DataLoader, a generator, a list of pairs); single samples
    (an image and a scalar label each) are stacked."""
    xs, ys = [], []
    for i, batch in enumerate(batches):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(f"item {i} of the data is a {type(batch).__name__}, expected an (x, y) pair")
        xs.append(_tensor(batch[0], "images"))
        ys.append(_tensor(batch[1], "labels"))
    if not xs:
        raise DataError("the data yielded no batches; it is empty")
    try:
        if ys[0].ndim == 0:  # one sample per item
            return torch.stack(xs), torch.stack(ys)
        return torch.cat(xs), torch.cat(ys)
    except RuntimeError as exc:
        raise DataError(f"the data's items do not fit together ({str(exc).splitlines()[0]}); give (x, y) batches "
                        "of images [N, C, H, W] and labels [N]") from None


def _as_data(data: Any, *, num_classes: int | None, bounds: Sequence[float], mean: Any, std: Any) -> Data:
    """What users pass as evaluation data: a dataset name, a :class:`Data` (its test split), an ``(x, y)`` pair
    of tensors or NumPy arrays, a ``Dataset``, or any iterable of ``(x, y)`` batches such as a DataLoader."""
    if isinstance(data, str):
        return load_dataset(data)
    if isinstance(data, Data):
        return from_tensors(data.x_test, data.y_test, num_classes=num_classes or data.spec.num_classes,
                            bounds=data.spec.bounds, mean=data.spec.mean or mean, std=data.spec.std or std,
                            name=data.spec.name)
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = _tensor(data[0], "images"), _tensor(data[1], "labels")
    elif isinstance(data, Dataset):  # map-style or iterable: the DataLoader batches both
        x, y = _batches(DataLoader(data, batch_size=512, shuffle=False))
    elif isinstance(data, Iterable):
        x, y = _batches(data)
    else:
        raise DataError(f"data must be an (x, y) pair, a Dataset, a DataLoader or other iterable of (x, y) batches, "
                        f"a Data object or a registered dataset name; got {type(data).__name__}")
    return from_tensors(x, y, num_classes=num_classes, bounds=bounds, mean=mean, std=std)


def _as_tuple(value: Any, what: str) -> tuple[Any, ...]:
    """One value or several: ``"pgd"`` and ``0.1`` mean ``("pgd",)`` and ``(0.1,)``."""
    if isinstance(value, (str, int, float, np.generic, Attack)) or not isinstance(value, Iterable):
        return (value,)
    values = tuple(value)
    if not values:
        raise ConfigError(f"{what} must name at least one value")
    return values


def _eps_values(eps: Any) -> tuple[float, ...]:
    if isinstance(eps, (Tensor, np.ndarray)):
        eps = eps.reshape(-1).tolist()
    items = [e.item() if isinstance(e, (np.generic, Tensor)) and getattr(e, "ndim", 0) == 0 else e
             for e in _as_tuple(eps, "eps")]
    return eps_values(items, hint="pixel units, e.g. eps=8/255")


def _attack_config(spec: str | Attack, eps: tuple[float, ...]) -> AttackConfig:
    if isinstance(spec, str):
        kind = spec if spec.startswith("art:") else ATTACKS.resolve(spec)  # "PGD" finds "pgd"
        label = make_attack(kind).label()  # fails early on a bad name
        return AttackConfig(label, kind, eps, transfer=False)
    if not isinstance(spec, Attack):
        raise ConfigError(f"attacks must be registry names or Attack objects, got {type(spec).__name__}")
    return AttackConfig(spec.label(), spec.kind, eps, params=dict(spec.params()), transfer=False, instance=spec)


def _distinct_names(configs: list[AttackConfig]) -> tuple[AttackConfig, ...]:
    """Attacks of the same name (two PGDs) numbered from the second on (``pgd``, ``pgd-2``): rows need their own."""
    import dataclasses

    seen: dict[str, int] = {}
    out = []
    for c in configs:
        seen[c.name] = seen.get(c.name, 0) + 1
        out.append(c if seen[c.name] == 1 else dataclasses.replace(c, name=f"{c.name}-{seen[c.name]}"))
    return tuple(out)


def _check_budget(configs: Sequence[AttackConfig], bounds: tuple[float, float]) -> None:
    """The suites' eps-range check: an Linf eps beyond the whole pixel range is a budget in 0..255 units."""
    for cfg in configs:
        attack = cfg.build()
        attack.check_eps(cfg.eps)
        check_eps_range("benchmark()", f"attack {cfg.name}", cfg.eps, attack.norm, bounds)


def benchmark(
    model: nn.Module,
    data: tuple[Tensor, Tensor] | Dataset | str,
    *,
    attacks: str | Attack | Sequence[str | Attack] = ("fgsm", "pgd"),
    eps: float | Sequence[float] = (0.03, 0.1, 0.3),
    num_classes: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    n: int | None = None,
    subset: str = "first",
    batch_size: int | None = None,
    name: str | None = None,
    checks: bool = True,
    progress: bool = True,
    precision: str = "auto",
    compile: bool = False,
    micro_batch: int = 0,
    shard_size: int = SHARD_SIZE,
    executor: Executor | None = None,
) -> Results:
    """Attack ``model`` (any ``nn.Module`` returning logits) on ``data`` and return :class:`Results`.

    ``data`` is an ``(x, y)`` pair of pixel-space tensors or NumPy arrays within ``bounds`` (labels as class
    indices or one-hot rows), a ``Dataset``, a DataLoader or any iterable of ``(x, y)`` batches, a :class:`Data`
    (its test split), or a registered dataset name (its test split). ``attacks`` is a registry name (any case),
    an Attack object, or a list of them; ``eps`` one number or a list, in pixel units (8/255, not 8).
    Normalization (``mean``/``std``) is applied inside the wrapper, so attacks perturb pixels. The model is
    evaluated in eval mode and left in the mode it came in. ``n`` evaluates the first ``n`` samples (as RobustBench
    and papers do; ``subset="random"``: a subset seeded by ``seed``), and each per-sample row's ``sample_id`` is the
    sample's index in ``data`` as given; ``out`` also writes
    results.csv, results.json, samples.csv.gz and index.html. The results carry per-sample data and the worst-case
    leaderboard, and (``checks=True``) the sanity flags of :mod:`robustbench_gan.checks` (gradient masking and
    friends; a fixed cost per model). ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) is that of the attacks'
    own passes (``auto``: fp32 on the CPU; on CUDA bf16 where a calibration run agrees with fp32); every reported
    decision is taken in fp32. ``batch_size`` ``None`` is 256 on the CPU and on CUDA the
    largest batch that fits (found once per architecture); ``compile=True`` attacks a ``torch.compile``'d copy;
    ``micro_batch`` > 0 runs every forward pass on chunks of exactly that many samples, so that no sample's numbers
    depend on the batch it shares (see :class:`~robustbench_gan.run.tuning.MicroBatched`). ``shard_size``: samples
    per job (0: one job per attack); every random draw is a sample's own, so the results do not depend on it.
    ``executor``: where the jobs run (default: this process; e.g. ``make_executor("ray")``).
    """
    dev = resolve_device(device)
    check_precision(precision, allow_auto=True)
    from .data import SUBSETS

    if subset not in SUBSETS:
        raise ConfigError(f"subset must be 'first' (the first n samples) or 'random' (a seeded random subset), "
                          f"got {subset!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"n must be a positive integer (how many samples to evaluate) or None (all), got {n!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer or None (automatic), got {batch_size!r}")
    if not isinstance(compile, bool):
        raise ConfigError(f"compile must be True or False, got {compile!r}")
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 0:
        raise ConfigError(f"micro_batch must be a non-negative integer (0: off), got {micro_batch!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 0:
        raise ConfigError(f"shard_size must be a non-negative integer (0: one shard), got {shard_size!r}")
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
    d = _as_data(data, num_classes=num_classes, bounds=bounds, mean=mean, std=std)
    eps_list = _eps_values(eps)
    configs = _distinct_names([_attack_config(a, eps_list) for a in _as_tuple(attacks, "attacks")])
    _check_budget(configs, d.spec.bounds)
    modes = {m: m.training for m in model.modules()}  # restored one by one: frozen sub-modules stay frozen
    where = next((t.device for t in (*model.parameters(), *model.buffers())), None)
    if model.training:
        log.warning("%s is in train mode: it is evaluated in eval mode (dropout off, batch-norm running statistics), "
                    "as attacks must see a fixed function; its train mode is restored afterwards",
                    name or type(model).__name__)
    try:
        return _benchmark(model, d, configs, eps_list, num_classes=num_classes, mean=mean, std=std, out=out,
                          device=dev, seed=seed, n=n, subset=subset, batch_size=batch_size, name=name, checks=checks,
                          progress=progress, precision=precision, compile=compile, micro_batch=micro_batch,
                          shard_size=shard_size, executor=executor)
    finally:
        for module, training in modes.items():
            module.training = training
        if where is not None:
            model.to(where)


def _output_shape(clf: Classifier, x: Tensor) -> tuple[int, ...]:
    """The shape of the logits for ``x``; a model that fails on the data is a one-line ModelError."""
    try:
        with torch.no_grad(), eval_mode(clf):
            return tuple(clf(x).shape)
    except Exception as exc:  # a user's forward may raise anything
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"the model ({type(clf.model).__name__}) fails on images of shape {tuple(x.shape[1:])} "
                         f"(C, H, W): {type(exc).__name__}: {first}; give images the shape its input layer expects"
                         ) from None


def _check_labels_fit(y: Tensor, k: int, *, given: bool) -> None:
    """Every label a class index of the model's ``k`` outputs, checked before any attack runs."""
    low, top = int(y.min()), int(y.max())
    if top < k:
        return
    outputs = f"num_classes={k}" if given else f"the model has {k} outputs"
    if low >= 1 and top == k:
        raise DataError(f"labels run {low}..{top} but {outputs} (class indices 0..{k - 1}): the labels look "
                        f"1-based; pass y - 1")
    raise DataError(f"labels reach {top} but {outputs} (class indices 0..{k - 1}); give labels 0..{k - 1}"
                    f"{'' if given else ', or a model with one output per class'}")


def _benchmark(
    model: nn.Module, d: Data, configs: tuple[AttackConfig, ...], eps_list: tuple[float, ...], *,
    num_classes: int | None, mean: Any, std: Any, out: str | Path | None, device: str, seed: int, n: int | None,
    subset: str, batch_size: int | None, name: str | None, checks: bool, progress: bool, precision: str = "auto",
    compile: bool = False, micro_batch: int = 0, shard_size: int = SHARD_SIZE, executor: Executor | None = None,
) -> Results:
    dev = device
    if isinstance(model, Classifier):
        clf = model
    else:
        model = model.to(dev)
        wrap = {"bounds": d.spec.bounds, "mean": d.spec.mean or mean, "std": d.spec.std or std}
        k = num_classes
        if k is None:  # as many classes as the model has outputs
            probe = Classifier(model, num_classes=max(2, d.spec.num_classes), **wrap)
            out_shape = _output_shape(probe, d.x_test[:2].to(dev))
            k = int(out_shape[-1]) if len(out_shape) == 2 and out_shape[-1] >= 2 else d.spec.num_classes
        clf = Classifier(model, num_classes=k, **wrap)
    clf.check(d.x_test[:4].to(clf.device))
    _check_labels_fit(d.y_test, clf.num_classes, given=num_classes is not None)
    model_name = name or type(getattr(clf, "model", clf)).__name__
    suite = SuiteConfig(
        name="benchmark", data={"dataset": d.spec.name}, models=(ModelConfig(model_name),), attacks=configs,
        evaluation=EvalConfig(n=n, subset=subset, batch_size=batch_size, precision=precision, compile=compile,
                              micro_batch=micro_batch, shard_size=shard_size), transfer=TransferConfig(sources="none"),
        seed=seed, device=dev,
    )
    config = {"model": model_name, "attacks": [c.kind if c.instance is None else repr(c.instance) for c in configs],
              "eps": list(eps_list), "n": n, "subset": subset, "bounds": list(d.spec.bounds), "precision": precision}
    results = run_pipeline(suite, d, device=dev, progress=progress, checks=checks,
                           prebuilt={(model_name, "none"): clf}, manifest_config=config, executor=executor)
    if out is not None:
        from .reports import write_run

        write_run(results, out, progress=progress)
    warn_flags(results.flags, stacklevel=4)
    return results
