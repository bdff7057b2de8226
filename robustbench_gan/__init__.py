"""robustbench_gan: benchmark how robust image classifiers are to adversarial examples."""
from __future__ import annotations

import logging

from .api import benchmark
from .attacks import ATTACKS, Attack, Goal, make_attack
from .classifier import Classifier
from .data import DATASETS, Data, DataSpec, load_dataset
from .defenses import DEFENSES, Defense
from .errors import CheckpointError, ConfigError, DataError, ModelError, RobustBenchError
from .models import MODELS
from .results import COLUMNS, Results
from .runner import run_suite
from .suite import SuiteConfig, load_suite

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = [
    "ATTACKS", "Attack", "COLUMNS", "CheckpointError", "Classifier", "ConfigError", "DATASETS", "DEFENSES", "Data",
    "DataError", "DataSpec", "Defense", "Goal", "MODELS", "ModelError", "Results", "RobustBenchError", "SuiteConfig",
    "benchmark", "load_dataset", "load_suite", "make_attack", "run_suite",
]
