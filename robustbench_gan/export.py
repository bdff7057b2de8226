"""Export worst-case results in the JSON format of RobustBench's model cards
(``model_info/<dataset>/<threat_model>/<name>.json``, Croce et al. 2021).

RobustBench reads ``clean_acc`` and ``autoattack_acc`` as percentages in strings and ``eps`` as a string
(``"8/255"``); ``link``, ``name``, ``authors``, ``venue`` and ``reported`` are filled in by hand before a
submission, so they are left empty here. ``autoattack_acc`` is the robust accuracy of the suite's ``autoattack``
attack when it ran the standard version at full budget (APGD-CE, APGD-T, FAB-T, Square; 100 steps, 9 targets,
5,000 queries; Croce & Hein 2020) at that ε, else of its rand version at full budget (APGD-CE and APGD-DLR with
EOT over 20 draws: the number RobustBench lists for randomized defenses; the footnote says which); otherwise it holds our worst case over the suite's attacks (per sample,
every attack at that ε) and ``footnote`` says it is *not* AutoAttack. ``worst_case_acc`` is always that worst case.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .reports.formats import fmt_eps
from .core.io import atomic_write_text
from .results import Results

log = logging.getLogger(__name__)

THREAT_MODELS = {"inf": "Linf", "2": "L2"}
def _autoattack_row(results: Results, names: set[str], model: str, defense: str, norm: str,
                    eps: float) -> dict[str, Any] | None:
    for r in results.records:
        if (r.get("attack") in names and r.get("model") == model and r.get("defense") == defense
                and str(r.get("norm")) == norm and not r.get("source") and abs(float(r["eps"]) - eps) < 1e-9):
            return r
    return None


def _model_arch(results: Results, model: str) -> str:
    for m in results.manifest.get("config", {}).get("models", []) or []:
        if isinstance(m, dict) and m.get("name") == model:
            return str(m.get("arch") or m.get("factory") or "")
    return ""


def robustbench_entries(results: Results, eps: float | None = None) -> list[dict[str, Any]]:
    """One RobustBench-style card per (model, defense, threat model) at ``eps`` (default: the largest ε of that
    threat model in the run). Raises ConfigError when the run has no leaderboard or no row at ``eps``."""
    board = results.leaderboard or []
    if not board:
        raise ConfigError("this run has no leaderboard (per-sample results); re-run it with this version to export")
    dataset = str(results.manifest.get("data", {}).get("name") or (results.records[0].get("dataset")
                                                                      if results.records else "unknown"))
    flags: dict[tuple[str, str], list[str]] = {}
    for f in results.flags:
        checks = flags.setdefault((str(f.get("model")), str(f.get("defense"))), [])
        if str(f.get("check")) not in checks:  # a check raised for several attacks is listed once
            checks.append(str(f.get("check")))
    standard = set(results.manifest.get("standard_autoattack") or [])
    versions = results.manifest.get("autoattack_versions") or {name: "standard" for name in standard}
    rand = {name for name, v in versions.items() if v == "rand"}
    out = []
    for norm, threat in THREAT_MODELS.items():
        rows = [b for b in board if str(b.get("norm")) == norm]
        if not rows:
            continue
        target = max(float(b["eps"]) for b in rows) if eps is None else float(eps)
        chosen = [b for b in rows if abs(float(b["eps"]) - target) < 1e-9]
        if eps is not None and not chosen:
            have = ", ".join(sorted({f"{float(b['eps']):g}" for b in rows}))
            raise ConfigError(f"no {threat} results at eps {eps:g}; this run has eps {have}")
        for b in chosen:
            model, defense = str(b["model"]), str(b["defense"])
            aa = _autoattack_row(results, standard, model, defense, norm, float(b["eps"]))
            aa_rand = _autoattack_row(results, rand, model, defense, norm, float(b["eps"])) if aa is None else None
            worst = f"{100 * float(b['worst_case_accuracy']):.2f}"
            if aa is not None:
                acc = f"{100 * float(aa['robust_accuracy']):.2f}"
                footnote = (f"AutoAttack (standard; Croce & Hein 2020), robustbench-gan's native implementation "
                            f"(attack {aa['attack']!r}); worst case over {_count(b['attacks'], 'attack')} of the "
                            f"suite: {worst}%; n = {b['n']}.")
            elif aa_rand is not None:
                acc = f"{100 * float(aa_rand['robust_accuracy']):.2f}"
                footnote = (f"AutoAttack, rand version for randomized defenses (APGD-CE and APGD-DLR with EOT over "
                            f"20 draws; Croce & Hein 2020), as RobustBench lists randomized defenses; "
                            f"robustbench-gan's native implementation (attack {aa_rand['attack']!r}); worst case "
                            f"over {_count(b['attacks'], 'attack')} of the suite: {worst}%; n = {b['n']}.")
            else:
                acc = worst
                footnote = (f"Worst case over {_count(b['attacks'], 'attack')} of the robustbench-gan suite "
                            f"{results.manifest.get('suite', '')!s} (per sample), not AutoAttack; n = {b['n']}.")
            out.append({
                "link": "", "name": f"{model} ({defense})" if defense != "none" else model, "authors": "",
                "additional_data": False,  # generated samples come from the training set: not extra data
                "number_forward_passes": 1, "dataset": dataset, "venue": "",
                "architecture": _model_arch(results, model), "eps": fmt_eps(b["eps"]),
                "clean_acc": f"{100 * float(b['clean_accuracy']):.2f}", "reported": "",
                "autoattack_acc": acc, "worst_case_acc": worst, "footnote": footnote,
                "threat_model": threat, "n_examples": int(b["n"]), "defense": defense,
                "worst_case_interval": [round(100 * float(b["worst_case_low"]), 2),
                                        round(100 * float(b["worst_case_high"]), 2)],
                "strongest_attack": b.get("strongest_attack"), "sanity_flags": flags.get((model, defense), []),
            })
    return out


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def export_robustbench(results: Results, out: str | Path, *, eps: float | None = None) -> list[Path]:
    """Write each card to ``out/<dataset>/<threat_model>/<model>__<defense>.json``; returns the paths."""
    paths = []
    for card in robustbench_entries(results, eps):
        path = Path(out) / _safe(card["dataset"]) / card["threat_model"] / f"{_safe(card['name'])}.json"
        atomic_write_text(path, json.dumps(card, indent=2) + "\n")
        paths.append(path)
    log.info("wrote %d RobustBench-style cards under %s", len(paths), out)
    return paths
