"""Typed errors. Every error a user can fix derives from :class:`RobustBenchError`.

The CLI turns these into a one-line message and exit code 2; the Python API raises them as they are.
"""
from __future__ import annotations


class RobustBenchError(Exception):
    """Base class of errors caused by input the user can fix (config, data, model, file).

    Messages are one line: line breaks that come from user input (a key, a name, a third-party message) are
    shown escaped, so the CLI's ``error: ...`` line stays a single line.
    """

    def __str__(self) -> str:
        text = super().__str__()
        return text.replace("\r", "\\r").replace("\n", "\\n") if ("\n" in text or "\r" in text) else text


class ConfigError(RobustBenchError, ValueError):
    """A suite file, option or parameter is wrong (unknown key, wrong type, bad value)."""


class DataError(RobustBenchError, ValueError):
    """A data set is missing, malformed, or outside its declared bounds."""


class ModelError(RobustBenchError, ValueError):
    """A model cannot be built, loaded, or does not behave like a classifier."""


class CheckpointError(ModelError):
    """A checkpoint cannot be loaded safely (for example, it needs pickled code)."""


class AttackContractError(RobustBenchError):
    """An attack returned examples that break its threat model (outside its eps ball or the pixel bounds, of
    another shape, or not finite): scoring them would report a wrong number, so the run stops instead."""
