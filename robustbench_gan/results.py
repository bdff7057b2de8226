"""Results: records <-> pandas DataFrame, CSV/JSON writers, the run manifest.

``results.csv`` has one row per evaluated cell with at least :data:`COLUMNS`; ``results.json`` holds
``{"manifest", "records", "flags", "gan"}`` (plus ``"gallery"``, the examples shown in the report, the
``"leaderboard"`` of worst-case accuracies and, where a defense gave any, its report ``"sections"``); ``samples.csv.gz`` holds the per-sample data
(:data:`~robustbench_gan.samples.SAMPLE_COLUMNS`).
"""
from __future__ import annotations

import json
import logging
import platform
import sys
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .core.io import atomic_write_bytes, atomic_write_text
from .errors import RobustBenchError

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "suite", "dataset", "model", "defense", "attack", "threat", "source", "targeted", "target_mode", "norm",
    "eps", "n", "clean_accuracy", "robust_accuracy", "robust_accuracy_low", "robust_accuracy_high",
    "attack_success_rate", "mean_linf", "mean_l2", "queries", "seconds",
)
THREATS = ("white-box", "transfer", "black-box", "smoothed", "certified", "corruption")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for pkg in ("robustbench_gan", "torch", "torchvision", "adversarial-robustness-toolbox", "numpy", "pandas"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def new_manifest(*, suite: str, seed: int, device: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run manifest: versions, platform, seed, device, suite config, start time (end time set on finish)."""
    return {
        "suite": suite,
        "seed": seed,
        "device": device,
        "versions": package_versions(),
        "platform": platform.platform(),
        "config": config or {},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "finished": None,
    }


SAMPLES_FILE = "samples.csv.gz"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None; numpy scalars become Python numbers."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


@dataclass
class Results:
    """The outcome of a benchmark: records (one per cell), manifest, sanity flags, GAN metrics, gallery."""

    records: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    gan: list[dict[str, Any]] = field(default_factory=list)
    gallery: list[dict[str, Any]] = field(default_factory=list)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    """The worst case over every attack per (classifier, eps), from the per-sample table
    (:func:`robustbench_gan.leaderboard.worst_case`)."""
    substitute: list[dict[str, Any]] = field(default_factory=list)
    """The black-box substitute attack's rounds (oracle queries, substitute accuracy) per classifier."""
    gan_details: list[dict[str, Any]] = field(default_factory=list)
    """Each generator's report (grid, losses, corner cases), merged over the defenses sharing it; its metrics
    are :attr:`gan`."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of a loaded results.json this version does not know (kept, so writing it again loses nothing)."""
    sections: dict[str, list[Any]] = field(default_factory=dict)
    """Report sections the defenses handed back, by section id (each a list of JSON-able payloads, one per
    classifier that gave it); the GAN's go to :attr:`gan` instead. See :mod:`robustbench_gan.reports.sections`."""
    samples: pd.DataFrame | None = field(default=None, repr=False)
    """Per-sample data (one row per sample, classifier, attack, source and eps); see :mod:`robustbench_gan.samples`."""

    @property
    def table(self) -> pd.DataFrame:
        """The records as a DataFrame whose first columns are exactly :data:`COLUMNS`."""
        df = pd.DataFrame.from_records(self.records)
        for col in COLUMNS:
            if col not in df.columns:
                df[col] = pd.Series(dtype="object")
        rest = [c for c in df.columns if c not in COLUMNS]
        return df[list(COLUMNS) + rest]

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        self.records.extend(records)

    def to_json_dict(self) -> dict[str, Any]:
        out = {
            "manifest": self.manifest,
            "records": [{k: _clean(v) for k, v in r.items()} for r in self.records],
            "flags": self.flags,
            "gan": self.gan,
            "gallery": self.gallery,
            **({"sections": self.sections} if self.sections else {}),
            "leaderboard": self.leaderboard,
            **({"substitute": self.substitute} if self.substitute else {}),
            **({"gan_details": self.gan_details} if self.gan_details else {}),
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def write(self, out: str | Path, *, page: str | None = None) -> Path:
        """Write ``results.csv``, ``results.json``, ``samples.csv.gz`` and (given its text) ``index.html`` into ``out``.

        :func:`robustbench_gan.reports.write_run` renders the page and calls this. Everything is serialised before
        anything is written: a failure leaves no partial set of files."""
        out = Path(out)
        csv_text = self.table.to_csv(index=False)
        json_text = json.dumps(self.to_json_dict(), indent=1, allow_nan=False)
        samples = (self.samples.to_csv(index=False).encode()
                   if self.samples is not None and not self.samples.empty else None)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.csv", csv_text)
        atomic_write_text(out / "results.json", json_text)
        if samples is not None:
            atomic_write_bytes(out / SAMPLES_FILE, samples, compress=True)
        if page is not None:
            atomic_write_text(out / "index.html", page)
        log.info("wrote results to %s", out)
        return out

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        """Read a ``results.json`` (or the folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        if not path.is_file():
            raise RobustBenchError(f"no results.json at {str(path)!r}; point at the output folder of a run")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RobustBenchError(f"{str(path)!r} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
        if not isinstance(doc, dict) or "records" not in doc:
            raise RobustBenchError(f"{str(path)!r} has no 'records'; is it a robustbench-gan results.json?")
        known = {f.name for f in fields(cls)} - {"extra", "samples"}  # the keys to_json_dict writes
        samples_path = path.parent / SAMPLES_FILE
        samples = None
        if samples_path.is_file():
            try:
                samples = pd.read_csv(samples_path, keep_default_na=False, na_values=[""],
                                      dtype={c: str for c in ("model", "defense", "attack", "threat", "source", "norm")})
                samples["source"] = samples["source"].fillna("")
            except (OSError, ValueError, EOFError, KeyError) as exc:
                log.warning("ignoring unreadable %s (%s)", samples_path, exc)
        return cls(
            records=list(doc.get("records", [])),
            manifest=dict(doc.get("manifest", {})),
            flags=list(doc.get("flags", [])),
            gan=list(doc.get("gan", [])),
            gallery=list(doc.get("gallery", [])),
            sections={str(k): list(v) for k, v in dict(doc.get("sections") or {}).items()},
            leaderboard=list(doc.get("leaderboard") or []),
            substitute=list(doc.get("substitute") or []),
            gan_details=list(doc.get("gan_details") or []),
            extra={k: v for k, v in doc.items() if k not in known},
            samples=samples,
        )
