"""Reading a user's checkpoint into a model without running pickled code, whatever layout it was published in.

People publish weights as a bare ``state_dict``; nested under ``state_dict``, ``model_state_dict``, ``model`` or
``net`` beside optimizer state and epochs; with every key prefixed ``module.`` (saved from ``DataParallel``) or
``_orig_mod.`` (saved from a ``torch.compile``-d model); or as ``.safetensors``. :func:`load_weights` finds the
tensors in any of these, says which layout it found, and refuses a file that needs pickled code to load unless the
user trusts it. A checkpoint of another architecture gets one line naming its first missing, unexpected and
mis-shaped keys.
"""
from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from .errors import CheckpointError

log = logging.getLogger(__name__)

NESTED_UNDER = ("state_dict", "model_state_dict", "model", "net")
"""Keys a training script's checkpoint dict keeps the model's weights under, tried in this order."""
PREFIXES = ("module.", "_orig_mod.")
"""Key prefixes that wrappers add: ``DataParallel``/``DistributedDataParallel`` and ``torch.compile``."""
SHOWN = 3
"""How many keys of each kind a mismatch error names."""


@dataclass(frozen=True)
class Layout:
    """Where the weights were in the file: ``nested`` (the key they were under, "" for a bare state_dict),
    ``prefixes`` (removed from every key, outermost first) and ``format`` (``torch`` or ``safetensors``)."""

    format: str
    nested: str = ""
    prefixes: tuple[str, ...] = ()

    def describe(self) -> str:
        where = f"a state_dict nested under {self.nested!r}" if self.nested else "a bare state_dict"
        strip = f", key prefix {' + '.join(repr(p) for p in self.prefixes)} removed" if self.prefixes else ""
        return f"{where} ({self.format}){strip}"


def _unpickling_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused, in a few words (its message spans many lines)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"it references {found.group(1)}"
    found = re.search(r"Unsupported operand \d+|Unsupported class [\w.]+", text)
    return found.group(0) if found else "not a plain tensor checkpoint"


def read_checkpoint(path: Path, *, trust_checkpoint: bool = False) -> Any:
    """The object stored in ``path``: ``.safetensors`` through safetensors, anything else through
    ``torch.load(weights_only=True)`` unless ``trust_checkpoint`` (unpickling can run any code)."""
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} not found; check the path in 'weights'")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError("reading .safetensors needs the 'safetensors' package: pip install safetensors") from None
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for a damaged header
            raise CheckpointError(f"cannot read weights file {str(path)!r}: {str(exc).splitlines()[0][:160]}") from None
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr; the error says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=not trust_checkpoint)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {str(path)!r}: it needs pickled code to load ({_unpickling_reason(exc)}); "
            "save a plain state_dict (or .safetensors), or pass --trust-checkpoint if you trust its author"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"cannot read weights file {str(path)!r}: {str(exc).splitlines()[0][:160]}") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def find_state_dict(obj: Any, fmt: str, model_keys: set[str]) -> tuple[dict[str, Tensor], Layout]:
    """The model's tensors in a checkpoint object and where they were: the object itself, or the first of
    :data:`NESTED_UNDER` that holds them (a module saved whole gives its state_dict); then each prefix of
    :data:`PREFIXES` that every key has and the model's keys do not is removed."""
    nested = ""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not _is_state_dict(obj) and isinstance(obj, Mapping):
        for key in NESTED_UNDER:
            inner = obj.get(key)
            inner = inner.state_dict() if isinstance(inner, nn.Module) else inner
            if _is_state_dict(inner):
                obj, nested = inner, key
                break
    if not _is_state_dict(obj):
        what = (f"a dict with keys {', '.join(map(repr, list(obj)[:6]))}" if isinstance(obj, Mapping)
                else f"a {type(obj).__name__}")
        raise CheckpointError(
            f"no state_dict found in the weights file: it holds {what}; expected a state_dict of tensors, bare or "
            f"under one of {', '.join(map(repr, NESTED_UNDER))}")
    state = {k: v for k, v in obj.items()}
    removed: list[str] = []
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in model_keys):
                state = {k[len(prefix):]: v for k, v in state.items()}
                removed.append(prefix)
                changed = True
    return state, Layout(fmt, nested, tuple(removed))


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def mismatch(model: nn.Module, state: Mapping[str, Tensor]) -> str:
    """What keeps ``state`` from loading into ``model`` in a few words ("" when it fits): its first missing,
    unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = [f"{label} {_listed(keys)}" for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                                              ("shapes differ (file vs model):", shapes)) if keys]
    return "; ".join(parts)


def load_weights(model: nn.Module, path: str | Path, *, trust_checkpoint: bool = False) -> nn.Module:
    """Load the weights in ``path`` into ``model`` without running pickled code, from any layout of
    :mod:`this module <robustbench_gan.checkpoints>`; logs the layout it found. A checkpoint that needs pickled
    objects is refused unless ``trust_checkpoint=True`` (dangerous: unpickling can run any code)."""
    path = Path(path)
    obj = read_checkpoint(path, trust_checkpoint=trust_checkpoint)
    fmt = "safetensors" if path.suffix == ".safetensors" else "torch"
    try:
        state, layout = find_state_dict(obj, fmt, set(model.state_dict()))
    except CheckpointError as exc:
        raise CheckpointError(f"{str(path)!r}: {exc}") from None
    problem = mismatch(model, state)
    if problem:
        raise CheckpointError(
            f"weights in {str(path)!r} ({layout.describe()}) do not fit the model: {problem}; give weights saved "
            "from the same architecture and params")
    model.load_state_dict(state)
    log.info("loaded weights from %s: %s", path, layout.describe())
    return model
