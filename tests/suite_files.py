"""Suite files for tests: the parts most suites share, and one writer, so that a test spells out only what it is
about. ``suite_toml(models=[LOGISTIC, MLP], evaluation={"n": 40})`` is the text of a suite file; the
``suite_file`` fixture (conftest.py) writes one into the test's folder. Tests of the suite format itself (comments,
syntax, a user's file as typed) keep their TOML literal."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

DIGITS = {"dataset": "digits"}
LOGISTIC = {"name": "logistic", "arch": "logistic", "epochs": 2}
MLP = {"name": "mlp", "arch": "mlp", "epochs": 2, "params": {"hidden": [16]}}
CNN = {"name": "cnn", "arch": "cnn", "epochs": 1, "params": {"channels": [8, 16], "hidden": 32}}
FGSM = {"name": "fgsm", "eps": [0.1]}
NO_TRANSFER = {"sources": "none"}

ARRAYS = ("models", "defenses", "attacks")
"""The suite's arrays of tables, written in this order after ``[data]``."""


def value(v: Any) -> str:
    """One TOML value: strings, booleans, numbers, arrays and (inline) tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def table(header: str, entries: dict[str, Any]) -> str:
    return "\n".join([header, *(f"{k} = {value(v)}" for k, v in entries.items())])


def suite_toml(name: str = "tiny", *, data: dict[str, Any] | None = DIGITS, models: Iterable[dict] = (LOGISTIC,),
               attacks: Iterable[dict] = (FGSM,), defenses: Iterable[dict] = (), **top: Any) -> str:
    """A suite file's text: ``name``, then the other top-level scalars (``seed``, ...), ``[data]``, the arrays of
    tables and every other table given as a dict (``evaluation``, ``transfer``, ``execution``, ...); ``data=None``
    leaves ``[data]`` out (the default data set)."""
    scalars = {k: v for k, v in top.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in top.items() if isinstance(v, dict)}
    parts = ["\n".join(f"{k} = {value(v)}" for k, v in {"name": name, **scalars}.items())]
    parts += [table("[data]", data)] if data is not None else []
    arrays = {"models": models, "defenses": defenses, "attacks": attacks}
    parts += [table(f"[[{key}]]", entry) for key in ARRAYS for entry in arrays[key]]
    parts += [table(f"[{key}]", entries) for key, entries in tables.items()]
    return "\n".join(parts) + "\n"


def write_suite(folder: Path, file: str = "suite.toml", **parts: Any) -> Path:
    """Write ``suite_toml(**parts)`` to ``folder/file``; returns its path."""
    path = Path(folder) / file
    path.write_text(suite_toml(**parts), encoding="utf-8")
    return path


def suite_doc(name: str = "tiny", **parts: Any) -> dict[str, Any]:
    """``suite_toml(name, **parts)`` as the dict a suite file parses to (for ``validate_suite``)."""
    import tomllib

    return tomllib.loads(suite_toml(name, **parts))
