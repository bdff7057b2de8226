"""The manifest: seed, device, times, versions and the suite configuration of the run."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..formats import MISSING, fmt_text
from .base import Run, Section


def _duration(started: Any, finished: Any) -> str:
    try:
        delta = datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))
    except (TypeError, ValueError):
        return MISSING
    seconds = int(delta.total_seconds())
    return MISSING if seconds < 0 else f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def build_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Seed, device, times, versions and the suite config (pretty JSON), plus any other manifest keys."""
    known = {"suite", "seed", "device", "versions", "platform", "config", "started", "finished"}
    versions = manifest.get("versions") or {}
    if not isinstance(versions, dict):
        versions = {"versions": versions}
    config = manifest.get("config") or {}
    return {
        "fields": [
            ("Seed", fmt_text(manifest.get("seed"))),
            ("Device", fmt_text(manifest.get("device"))),
            ("Platform", fmt_text(manifest.get("platform"))),
            ("Started", fmt_text(manifest.get("started"))),
            ("Finished", fmt_text(manifest.get("finished"))),
            ("Duration", _duration(manifest.get("started"), manifest.get("finished"))),
        ],
        "versions": [(str(k), fmt_text(v)) for k, v in versions.items()],
        "config_json": json.dumps(config, indent=2, default=str, ensure_ascii=False),
        "other": [(str(k), json.dumps(v, default=str, ensure_ascii=False)) for k, v in manifest.items()
                  if k not in known],
    }


def build(run: Run) -> dict[str, Any]:
    return build_manifest(run.manifest)


SECTION = Section("manifest", "Manifest", build, "sections/manifest.html")
