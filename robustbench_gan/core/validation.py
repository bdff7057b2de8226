"""Validation of hyperparameters at the boundary: one-line ConfigErrors a user can act on."""
from __future__ import annotations

import difflib
import math
from typing import Any, Iterable

from ..errors import ConfigError


def check_params(
    what: str, given: Iterable[str], accepted: Iterable[str], *, noun: str = "parameter",
    error: type[Exception] = ConfigError,
) -> None:
    """Raise ``error`` naming the first of ``given`` that is not ``accepted``, with "did you mean" and the list.

    The one unknown-parameter check of the package: attacks, defenses, models, data sets and ART attacks use it.
    """
    accepted = list(accepted)
    unknown = [k for k in given if k not in accepted]
    if not unknown:
        return
    close = difflib.get_close_matches(str(unknown[0]), accepted, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise error(f"{what} has no {noun} {unknown[0]!r}; {hint}it accepts: {', '.join(accepted) or 'none'}")


def check_positive(name: str, value: Any, *, allow_zero: bool = False, integer: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a (non-negative when allow_zero) finite number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0) and (not integer or int(value) == value)
    if not ok:
        kind = "integer" if integer else "number"
        raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} {kind}, got {value!r}")


def check_seed(value: Any, name: str = "seed") -> None:
    """Raise ConfigError unless ``value`` is an integer seed torch accepts (0 .. 2**63 - 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ConfigError(f"{name} must be an integer in [0, 2**63), got {value!r}")


def check_bool(name: str, value: Any) -> None:
    """Raise ConfigError unless ``value`` is true or false (a string such as "no" would silently count as true)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def eps_values(values: Iterable[Any], *, context: str = "", hint: str = "",
               error: type[Exception] = ConfigError) -> tuple[float, ...]:
    """Attack budgets as floats: each a finite number >= 0 (never a bool or a string); the one eps parser of suite
    files and ``benchmark()``. ``context`` prefixes the error ("suite.toml: [[attacks]] 'pgd'"), ``hint`` ends it."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise error(f"{context + ': ' if context else ''}eps values must be finite numbers >= 0, got {v!r}"
                        f"{'; ' + hint if hint else ''}")
        out.append(float(v))
    return tuple(out)


def bounds_pair(value: Any, *, context: str = "", hint: str = "",
                error: type[Exception] = ConfigError) -> tuple[float, float]:
    """Pixel bounds ``[low, high]``: two finite numbers with low < high (a list or tuple); the one bounds parser of
    suite files and data loaders."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or not float(value[0]) < float(value[1]):
        raise error(f"{context + ': ' if context else ''}bounds must be [low, high] with finite numbers low < high"
                    f"{', ' + hint if hint else ''}; got {value!r}")
    return float(value[0]), float(value[1])
