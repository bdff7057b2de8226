"""The data-set registry: every loader registered with its metadata (the pixel bounds it declares, the options that
name files), :func:`load_dataset`, and what a suite may ask of a data set before loading it."""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..core.validation import bounds_pair
from ..errors import DataError, RobustBenchError
from ..registry import Registry
from .spec import Data, validate

log = logging.getLogger(__name__)

DATASETS: Registry[Callable[..., Data]] = Registry("dataset")
"""Loaders by data-set name; ``register(name, bounds=..., paths=...)``: the bounds the loader declares (a pair, or a
function of its options) and the options naming files or folders."""


def required_options(name: str) -> list[str]:
    """The options the loader of data set ``name`` cannot do without (``path`` for npz, ``root`` for imagefolder)."""
    import inspect

    params = inspect.signature(DATASETS.get(name)).parameters.values()
    return [p.name for p in params if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]


def load_dataset(name: str, /, **options: Any) -> Data:
    """Load the registered data set ``name``; ``options`` are passed to its loader."""
    loader = DATASETS.get(name)
    DATASETS.check(name, options, noun="option", error=DataError)
    missing = [k for k in required_options(name) if k not in options]
    if missing:
        raise DataError(f"dataset {name!r} needs the option {missing[0]!r}; set it in [data]")
    try:
        data = loader(**options)
    except RobustBenchError:
        raise
    except TypeError as exc:  # an option of the wrong type
        raise DataError(
            f"dataset {name!r}: an option has the wrong type ({exc}); check the values of {', '.join(options)}"
        ) from exc
    except ValueError as exc:  # a loader's own conversion of an option failed
        raise DataError(f"dataset {name!r}: bad option value ({exc}); check the values of {', '.join(options)}") from exc
    validate(data)
    log.info(
        "dataset %s: %d train / %d test, shape %s, %d classes",
        name, len(data.y_train), len(data.y_test), data.spec.shape, data.spec.num_classes,
    )
    return data


def declared_bounds(dataset: str, options: dict[str, Any]) -> tuple[float, float] | None:
    """The pixel bounds the loader ``dataset`` will declare for ``options``, known without loading any data: its
    registration's ``bounds`` (a pair, or a function of the options); None when it declares none (a loader
    registered without them). Suites use it to check attack budgets early."""
    if dataset not in DATASETS:
        return None
    bounds = DATASETS.meta(dataset).get("bounds")
    if callable(bounds):
        return bounds(options)
    return None if bounds is None else (float(bounds[0]), float(bounds[1]))


def path_options(dataset: str) -> tuple[str, ...]:
    """The options of ``dataset`` that name files or folders (a suite resolves them against its own folder)."""
    return tuple(DATASETS.meta(dataset).get("paths", ())) if dataset in DATASETS else ()


def _parse_bounds(bounds: Any) -> tuple[float, float]:
    return bounds_pair(bounds, error=DataError)
