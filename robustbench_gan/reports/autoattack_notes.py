"""What the report says beside an AutoAttack cascade: whether it is the standard AutoAttack, whose robust accuracy
is the number comparable with RobustBench, or why not (the per-attack table and the all-results table show it)."""
from __future__ import annotations

from typing import Any

from .formats import fmt_num, fmt_text, is_missing

AUTOATTACK_STANDARD = ("the standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square; 100 steps, "
                       "9 targets, 5,000 queries)")
AUTOATTACK_BUDGET = (("steps", 100), ("targets", 9), ("queries", 5000))


def _is_cascade(row: dict[str, Any]) -> bool:
    """An AutoAttack cascade's own row (not one of its components' ``<attack>/<component>`` rows)."""
    if row.get("attack_kind") != "autoattack":
        return False
    role = row.get("attack_role")
    return role == "ensemble" if not is_missing(role) else "/" not in str(row.get("attack"))


def _attack_params(manifest: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The suite config's table of attack ``name`` (None when the config does not list it as a table)."""
    config = manifest.get("config")
    attacks = config.get("attacks") if isinstance(config, dict) else None
    for a in attacks if isinstance(attacks, list) else []:
        if isinstance(a, dict) and a.get("name") == name:
            return a
    return None


def _not_standard_because(row: dict[str, Any], manifest: dict[str, Any], name: str) -> str:
    """Why a cascade is not the standard AutoAttack, from its row and the suite config where they say."""
    reasons = []
    if not is_missing(row.get("source")):
        reasons.append(f"transferred from {row.get('source')}")
    params = _attack_params(manifest, name) or {}
    version = params.get("version", "standard")
    if version != "standard":
        parts = params.get("attacks") if version == "custom" else None
        reasons.append(f"{version} version" + (f": {', '.join(map(str, parts))}" if isinstance(parts, list) else ""))
    for key, full in AUTOATTACK_BUDGET:
        value = params.get(key, full)
        if value != full:
            reasons.append(f"{fmt_num(value)} {key} instead of {full:,}")
    if params.get("eot_samples") not in (None, 1):
        reasons.append(f"EOT over {fmt_text(params.get('eot_samples'))} draws")
    adaptive = row.get("adaptive") if not is_missing(row.get("adaptive")) else params.get("adaptive")
    if not is_missing(adaptive) and adaptive != "none":
        reasons.append(f"adaptive: {adaptive}")
    return "; ".join(reasons) or "a custom or rand version, a reduced budget or an adaptive gradient view"


def autoattack_note(row: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What the report says in words beside an AutoAttack cascade's row: whether it is the standard AutoAttack
    (listed in the manifest's ``standard_autoattack``, white-box), whose number is the one comparable with
    RobustBench, or not (a custom or rand version, a reduced budget, an adaptive view, a transfer). None for other
    rows (the cascade's components included) and for runs whose manifest does not say which cascades were standard."""
    if "standard_autoattack" not in manifest:
        return None
    name = fmt_text(row.get("attack"))
    standard = name in set(manifest.get("standard_autoattack") or [])
    if not standard and not _is_cascade(row):
        return None
    source = "" if is_missing(row.get("source")) else str(row.get("source"))
    if standard and not source:
        return {"attack": name, "source": source, "standard": True, "badge": "standard AutoAttack",
                "text": f"is {AUTOATTACK_STANDARD}; its robust accuracy is the number comparable with RobustBench."}
    why = _not_standard_because(row, manifest, name)
    return {"attack": name, "source": source, "standard": False, "badge": "not the standard AutoAttack",
            "text": f"is not the standard AutoAttack ({why}); its robust accuracy is not the number to compare "
                    "with RobustBench."}


def build_autoattack_notes(rows: list[dict[str, Any]], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One note per AutoAttack cascade (and source) of the run, in the order of the rows."""
    notes: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        note = autoattack_note(r, manifest)
        if note is not None:
            notes.setdefault((note["attack"], note["source"]), note)
    return list(notes.values())
