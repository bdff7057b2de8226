"""robustbench_gan: benchmark how robust image classifiers are to adversarial examples.

The public names below are imported on first use (PEP 562), so ``import robustbench_gan.reports`` or the
``report`` command never pays for torch and the attacks.
"""
from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "benchmark": ".api",
    "ATTACKS": ".attacks", "Attack": ".attacks", "Goal": ".attacks", "make_attack": ".attacks",
    "Classifier": ".classifier",
    "DATASETS": ".data", "Data": ".data", "DataSpec": ".data", "load_dataset": ".data",
    "DEFENSES": ".defenses", "Defense": ".defenses",
    "SanityFlagWarning": ".checks",
    "CheckpointError": ".errors", "ConfigError": ".errors", "DataError": ".errors", "ModelError": ".errors",
    "RobustBenchError": ".errors",
    "MODELS": ".zoo",
    "COLUMNS": ".results", "Results": ".results",
    "write_run": ".reports",
    "run_suite": ".run",
    "SuiteConfig": ".suite", "load_suite": ".suite",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # pragma: no cover
    from .api import benchmark
    from .attacks import ATTACKS, Attack, Goal, make_attack
    from .checks import SanityFlagWarning
    from .classifier import Classifier
    from .data import DATASETS, Data, DataSpec, load_dataset
    from .defenses import DEFENSES, Defense
    from .errors import CheckpointError, ConfigError, DataError, ModelError, RobustBenchError
    from .zoo import MODELS
    from .reports import write_run
    from .results import COLUMNS, Results
    from .run import run_suite
    from .suite import SuiteConfig, load_suite
