"""Model zoo (a registry of builders adapting to the data's shape) and loading a user's own model."""
from __future__ import annotations

import importlib
import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .data import DataSpec
from .errors import ConfigError, ModelError, RobustBenchError
from .registry import Registry

log = logging.getLogger(__name__)

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model architecture")


@MODELS.register("logistic")
def logistic(spec: DataSpec) -> nn.Module:
    """Shallow softmax regression on raw pixels (the linear model of Goodfellow et al. 2014, sec. 5)."""
    c, h, w = spec.shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, spec.num_classes))


@MODELS.register("mlp")
def mlp(spec: DataSpec, *, hidden: Sequence[int] = (200, 200)) -> nn.Module:
    """Fully connected ReLU network; the default two hidden layers of 200 units follow Papernot et al. 2017."""
    c, h, w = spec.shape
    layers: list[nn.Module] = [nn.Flatten()]
    width = c * h * w
    for units in hidden:
        layers += [nn.Linear(width, int(units)), nn.ReLU()]
        width = int(units)
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


@MODELS.register("cnn")
def cnn(spec: DataSpec, *, channels: Sequence[int] = (32, 64), hidden: int = 128) -> nn.Module:
    """LeNet-style CNN: two 3x3 conv + ReLU + 2x2 max-pool blocks, then a hidden dense layer."""
    c, h, w = spec.shape
    layers: list[nn.Module] = []
    in_ch = c
    for out_ch in channels:
        layers += [nn.Conv2d(in_ch, int(out_ch), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        in_ch = int(out_ch)
        h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise ModelError(f"cnn: input {spec.shape} is too small for {len(channels)} pooling blocks; use fewer channels")
    layers += [nn.Flatten(), nn.Linear(in_ch * h * w, int(hidden)), nn.ReLU(), nn.Linear(int(hidden), spec.num_classes)]
    return nn.Sequential(*layers)


@MODELS.register("resnet18")
def resnet18(spec: DataSpec) -> nn.Module:
    """ResNet-18 (He et al. 2016) with the CIFAR stem: 3x3 stride-1 first conv and no max-pool."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(weights=None, num_classes=spec.num_classes)
    net.conv1 = nn.Conv2d(spec.shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


@MODELS.register("preact-resnet18")
def preact_resnet18(spec: DataSpec, *, shortcut_from: str = "activation", final_bn: bool = True) -> nn.Module:
    """PreAct-ResNet-18 (He et al. 2016), in the layout of Rice et al. 2020's adversarially trained CIFAR models
    (:mod:`~robustbench_gan.cifar_nets`)."""
    from .cifar_nets import PreActResNet

    return PreActResNet((2, 2, 2, 2), in_channels=spec.shape[0], num_classes=spec.num_classes,
                        shortcut_from=shortcut_from, final_bn=final_bn)


@MODELS.register("wide-resnet")
def wide_resnet(spec: DataSpec, *, depth: int = 28, width: int = 10, dropout: float = 0.0) -> nn.Module:
    """Wide ResNet WRN-depth-width (Zagoruyko & Komodakis 2016) in the layout of TRADES and most RobustBench
    CIFAR entries (:mod:`~robustbench_gan.cifar_nets`); 28-10 by default."""
    from .cifar_nets import WideResNet

    return WideResNet(int(depth), int(width), in_channels=spec.shape[0], num_classes=spec.num_classes,
                      dropout=float(dropout))


@MODELS.register("wrn-28-10")
def wrn_28_10(spec: DataSpec) -> nn.Module:
    """WRN-28-10 (36.5 M parameters), the network of most robust CIFAR-10 models."""
    return wide_resnet(spec, depth=28, width=10)


@MODELS.register("wrn-34-10")
def wrn_34_10(spec: DataSpec) -> nn.Module:
    """WRN-34-10 (46.2 M parameters), the network of Madry et al. 2018 and TRADES (Zhang et al. 2019)."""
    return wide_resnet(spec, depth=34, width=10)


def build_model(arch: str, spec: DataSpec, **params: Any) -> nn.Module:
    """Build zoo architecture ``arch`` for ``spec``; unknown parameters raise ConfigError naming them."""
    builder = MODELS.get(arch)
    MODELS.check(arch, params, skip=("spec",))
    accepted = MODELS.accepted(arch, skip=("spec",))
    try:
        return builder(spec, **params)
    except RobustBenchError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. hidden = "wide", channels = [-1]
        raise ConfigError(
            f"model architecture {arch!r} cannot be built with params {params!r} ({type(exc).__name__}: "
            f"{first_line(exc)}); fix params (it accepts: {', '.join(accepted) or 'no parameters'})"
        ) from exc


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (error messages stay one line)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def _import(module_name: str, search: Sequence[str]) -> Any:
    """Import ``module_name``; when its top-level package is not found, look in ``search`` folders too (a suite
    file's folder and the working directory: where a user keeps ``mymodels/nets.py`` next to the suite)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        extra = [str(Path(p).resolve()) for p in search if str(Path(p).resolve()) not in sys.path]
        if exc.name not in (top, module_name) or not extra:
            raise
    sys.path.extend(extra)  # after sys.path: installed modules win; kept, as the module may import siblings later
    importlib.invalidate_caches()
    return importlib.import_module(module_name)


def import_factory(ref: str, *, search: Sequence[str] = ()) -> Callable[..., nn.Module]:
    """Resolve ``"package.module:function"`` to a callable; ``search`` adds folders to look in (see ``_import``)."""
    if ":" not in ref:
        raise ConfigError(f"factory {ref!r} must look like 'package.module:function'")
    module_name, _, attr = ref.partition(":")
    try:
        module = _import(module_name, search)
    except ImportError as exc:
        where = ", ".join(repr(str(p)) for p in search) or "the working directory"
        raise ModelError(f"cannot import module {module_name!r} for factory {ref!r}: {exc}; put it next to the suite "
                         f"file or on PYTHONPATH (looked in {where} and sys.path)") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"module {module_name!r} has no attribute {attr!r} (factory {ref!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"factory {ref!r} is not callable")
    return obj


def build_user_model(factory: str, spec: DataSpec, *, search: Sequence[str] = (), **params: Any) -> nn.Module:
    """Call a user's factory. It may accept ``num_classes``, ``input_shape`` and ``in_channels`` keywords.
    Its module is looked for on ``sys.path`` and then in the ``search`` folders."""
    fn = import_factory(factory, search=search)
    try:
        sig = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        sig = {}
    offered = {"num_classes": spec.num_classes, "input_shape": spec.shape, "in_channels": spec.shape[0]}
    kwargs = {k: v for k, v in offered.items() if k in sig and k not in params}
    kwargs.update(params)
    try:
        model = fn(**kwargs)
    except Exception as exc:  # a user's factory may raise anything; report it in one line
        called = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
        raise ModelError(
            f"factory {factory!r} raised {type(exc).__name__}: {first_line(exc)}; fix the factory or its params "
            f"(it was called with {called})"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"factory {factory!r} returned {type(model).__name__}, expected a torch.nn.Module")
    _check_output_shape(model, spec, factory)
    return model


def _check_output_shape(model: nn.Module, spec: DataSpec, factory: str) -> None:
    """Fail early, naming the factory, when its model does not map a batch of 2 inputs of ``spec.shape`` to
    ``[2, num_classes]``. Models that fail to run here are left to the classifier's own check on the real device and
    data; NaN outputs too, since weights may still be loaded into the fresh model."""
    from .classifier import eval_mode

    lo, hi = spec.bounds
    x = lo + (hi - lo) * torch.rand(2, *spec.shape, generator=torch.Generator().manual_seed(0))
    if spec.mean is not None and spec.std is not None:
        x = (x - torch.tensor(spec.mean).view(1, -1, 1, 1)) / torch.tensor(spec.std).view(1, -1, 1, 1)
    first = next(iter(model.parameters()), None)
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(x.to(first.device) if first is not None else x)
    except Exception:  # noqa: BLE001  (reported by Classifier.check with the input shape)
        return
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2 or out.shape[1] != spec.num_classes:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"factory {factory!r}: the model returns {shape} for a batch of 2, expected [batch, {spec.num_classes}] "
            "logits; make its last layer output one logit per class"
        )
