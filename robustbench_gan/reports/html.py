"""The self-contained HTML report: ``render_report(results) -> str``.

Every figure is an inline PNG data URI and all CSS/JS is inline, so ``index.html`` makes no network request
and can be mailed or archived as one file. Autoescaping is on: every user string (suite, model, class names,
messages, config) is escaped by Jinja2, never marked safe.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..checks.row_checks import is_adaptive
from ..core.progress import progress_bar
from ..results import THREATS
from . import plots
from .sections import navigation, render_sections
from .formats import (MISSING, acc_cell, as_float, cell, fmt_acc_ci, fmt_eps, fmt_interval, fmt_num,  # noqa: F401
                      fmt_pct, fmt_seconds, fmt_targeted, fmt_text, is_missing, sort_key, truthy)

if TYPE_CHECKING:
    from ..results import Results

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
THREAT_ORDER = {threat: i for i, threat in enumerate(THREATS)}  # the order results.THREATS gives


# --------------------------------------------------------------------------------------------- sections
def _unique(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for v in values:
        if not is_missing(v) and str(v) not in out:
            out.append(str(v))
    return out


PROBE_NOTE = ("a probe, not an attack on the evaluated inputs: the fraction of (noise image, class) pairs that one "
              "gradient step makes the model assign to that class with high confidence (Goodfellow et al. 2014); "
              "left out of the worst case")


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


def _column_key(row: dict[str, Any]) -> tuple[str, str, str, bool, str, str]:
    """Which summary column group a record belongs to: (threat, attack, source, targeted, target_mode, norm)."""
    threat = fmt_text(row.get("threat"))
    source = "" if threat == "white-box" or is_missing(row.get("source")) else str(row.get("source"))
    targeted = bool(truthy(row.get("targeted")))
    mode = "" if not targeted or is_missing(row.get("target_mode")) else str(row.get("target_mode"))
    return (threat, fmt_text(row.get("attack")), source, targeted, mode, plots.norm_label(row.get("norm")))


def _group_detail(key: tuple[str, str, str, bool, str, str]) -> str:
    threat, _attack, source, targeted, mode, norm = key
    parts = [f"{threat} from {source}" if source else threat, norm]
    if mode == "each-class":  # the noise probe
        return " · ".join([*parts, "probe: fooling rate"])
    if targeted:
        parts.append(f"targeted ({mode})" if mode else "targeted")
    return " · ".join(parts)


def build_leaderboard(board: list[dict[str, Any]], flags: list[dict[str, Any]]) -> dict[str, Any]:
    """Model × defense rows: clean accuracy, then worst-case robust accuracy [95% CI] per (norm, ε), the
    strongest single attack (see :func:`_strongest`), and the number of sanity flags raised for that classifier."""
    if not board:
        return {"columns": [], "rows": []}
    columns = sorted({(fmt_text(b.get("norm")), as_float(b.get("eps"))) for b in board
                      if as_float(b.get("eps")) is not None}, key=lambda c: (c[0], c[1]))
    index = {c: i for i, c in enumerate(columns)}
    flagged: dict[tuple[str, str], int] = {}
    for f in flags:
        k = (fmt_text(f.get("model")), fmt_text(f.get("defense")))
        flagged[k] = flagged.get(k, 0) + 1
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for b in board:
        k = (fmt_text(b.get("model")), fmt_text(b.get("defense")))
        row = rows.setdefault(k, {"model": k[0], "defense": k[1], "flags": flagged.get(k, 0),
                                  "clean": cell(fmt_pct(b.get("clean_accuracy")), b.get("clean_accuracy"), num=True),
                                  "cells": [cell(MISSING, None, num=True) for _ in columns], "_entries": []})
        col = (fmt_text(b.get("norm")), as_float(b.get("eps")))
        if col not in index:
            continue
        acc = b.get("worst_case_accuracy")
        title = (f"n = {b.get('n')}; {b.get('attacks')} attacks; strongest alone: {fmt_text(b.get('strongest_attack'))}"
                 f" ({fmt_pct(b.get('strongest_attack_accuracy'))})")
        row["cells"][index[col]] = acc_cell(acc, b.get("worst_case_low"), b.get("worst_case_high"), title)
        row["_entries"].append(b)
    out = []
    for row in rows.values():
        row["strongest"] = _strongest(row.pop("_entries"))
        out.append(row)
    heads = [{"norm": plots.norm_label(norm), "eps": fmt_eps(eps)} for norm, eps in columns]
    return {"columns": heads, "rows": out}


def _strongest(entries: list[dict[str, Any]]) -> str:
    """The strongest single attack at the largest ε that leaves anything standing (else at the smallest ε)."""
    with_eps = [b for b in entries if as_float(b.get("eps")) is not None]
    if not with_eps:
        return MISSING
    alive = [b for b in with_eps if (as_float(b.get("worst_case_accuracy")) or 0) > 0]
    b = max(alive, key=lambda e: as_float(e.get("eps"))) if alive else min(with_eps, key=lambda e: as_float(e.get("eps")))
    return (f"{fmt_text(b.get('strongest_attack'))} at ε = {fmt_eps(b.get('eps'))}: "
            f"{fmt_pct(b.get('strongest_attack_accuracy'))}")


def build_summary(rows: list[dict[str, Any]], manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Model × defense rows; clean accuracy, then robust accuracy [95% CI] per attack group and ε. A group of an
    AutoAttack cascade carries its :func:`autoattack_note` (``aa``), and ``autoattack`` lists those notes."""
    if not rows:
        return {"groups": [], "rows": [], "autoattack": []}
    manifest = manifest or {}
    df = pd.DataFrame.from_records(rows)
    df["_model"] = [fmt_text(r.get("model")) for r in rows]
    df["_defense"] = [fmt_text(r.get("defense")) for r in rows]
    keys = [_column_key(r) for r in rows]
    first_seen: dict[tuple[Any, ...], int] = {}
    for i, k in enumerate(keys):
        first_seen.setdefault(k, i)
    notes = {g: autoattack_note(rows[i], manifest) for g, i in first_seen.items()}
    group_keys = sorted(first_seen, key=lambda g: (THREAT_ORDER.get(g[0], 9), first_seen[g]))
    gid = {g: i for i, g in enumerate(group_keys)}
    df["_gid"] = [gid[k] for k in keys]
    df["_eps"] = pd.to_numeric(df["eps"], errors="coerce")
    df["_threat_rank"] = [THREAT_ORDER.get(k[0], 9) for k in keys]

    groups: list[dict[str, Any]] = []
    columns: list[tuple[int, float | None]] = []
    for g in group_keys:
        eps_values = df.loc[df["_gid"] == gid[g], "_eps"]
        eps_cols: list[float | None] = sorted({float(e) for e in eps_values.dropna()})
        if eps_values.isna().any():
            eps_cols.append(None)
        groups.append({"attack": g[1], "detail": _group_detail(g), "eps": [fmt_eps(e) for e in eps_cols],
                       "aa": notes[g]})
        columns.extend((gid[g], e) for e in eps_cols)

    out_rows = []
    for (model, defense), part in df.groupby(["_model", "_defense"], sort=False):
        clean_vals = [as_float(v) for v in part.sort_values("_threat_rank", kind="stable")["clean_accuracy"]]
        clean = next((v for v in clean_vals if v is not None), None)
        distinct = {round(v, 6) for v in clean_vals if v is not None}
        if len(distinct) > 1:
            log.debug("clean accuracy differs across rows of %s/%s: %s; showing %s", model, defense, distinct, clean)
        cells = []
        for g, e in columns:
            at_eps = part["_eps"].isna() if e is None else part["_eps"] == e
            hit = part[(part["_gid"] == g) & at_eps]
            if hit.empty:
                cells.append(cell(MISSING, None, num=True))
                continue
            if len(hit) > 1:
                log.warning("%d rows for %s/%s %s eps=%s; the summary shows the first", len(hit), model, defense,
                            group_keys[g][1], e)
            r = hit.iloc[0]
            n = as_float(r.get("n"))
            title = f"n = {int(n)}" if n is not None else ""
            if r.get("attack_role") == "probe":  # a probe has no robust accuracy: show what it measures
                cells.append(cell(f"fooling rate {fmt_pct(r.get('attack_success_rate'))}",
                                  r.get("attack_success_rate"), num=True, title=f"{title}; {PROBE_NOTE}"))
                continue
            cells.append(cell(fmt_acc_ci(r["robust_accuracy"], r["robust_accuracy_low"], r["robust_accuracy_high"]),
                              r["robust_accuracy"], num=True, title=title))
        out_rows.append({"model": model, "defense": defense, "clean": cell(fmt_pct(clean), clean, num=True),
                         "cells": cells})
    return {"groups": groups, "rows": out_rows, "autoattack": build_autoattack_notes(rows, manifest)}


ATTACK_HEADERS: tuple[tuple[str, bool], ...] = (
    ("Model", False), ("Defense", False), ("Attack", False), ("Threat", False), ("Source", False),
    ("Targeted", False), ("Norm", False), ("ε", True), ("n", True), ("Clean", True), ("Robust [95% CI]", True),
    ("Success rate", True), ("Mean L∞", True), ("Mean L2", True), ("Queries", True), ("Seconds", True),
)


DETECTION_HEADERS = (("Rejected clean", True), ("Rejected adv.", True))
"""Shown after "Success rate" when a defense with a detector (MagNet) was evaluated: the fractions of clean and
of adversarial inputs it rejected (a rejected adversarial input counts as robust)."""


def build_attack_rows(rows: list[dict[str, Any]], with_dataset: bool,
                      manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every record as a table row (plus a leading Dataset column when the run spans several datasets, and the
    detection columns when a defense with a detector was evaluated). An AutoAttack cascade's attack cell carries
    the badge of its :func:`autoattack_note` (the note itself as its title)."""
    headers = [{"text": t, "num": n} for t, n in ATTACK_HEADERS]
    with_detection = any(not is_missing(r.get("detected")) for r in rows)
    at = [t for t, _ in ATTACK_HEADERS].index("Success rate") + 1
    if with_detection:
        headers[at:at] = [{"text": t, "num": n} for t, n in DETECTION_HEADERS]
    if with_dataset:
        headers.insert(0, {"text": "Dataset", "num": False})
    body = []
    for r in rows:
        cells = [
            cell(fmt_text(r.get("model"))), cell(fmt_text(r.get("defense"))), cell(fmt_text(r.get("attack"))),
            cell(fmt_text(r.get("threat"))), cell(fmt_text(r.get("source"))),
            cell(fmt_targeted(r.get("targeted"), r.get("target_mode"))), cell(plots.norm_label(r.get("norm"))),
            cell(fmt_eps(r.get("eps")), r.get("eps"), num=True, title=fmt_num(r.get("eps"), 6)),
            cell(fmt_num(r.get("n")), r.get("n"), num=True),
            cell(fmt_pct(r.get("clean_accuracy")), r.get("clean_accuracy"), num=True),
            cell(fmt_acc_ci(r.get("robust_accuracy"), r.get("robust_accuracy_low"), r.get("robust_accuracy_high")),
                 r.get("robust_accuracy"), num=True),
            cell(fmt_pct(r.get("attack_success_rate")), r.get("attack_success_rate"), num=True),
            cell(fmt_num(r.get("mean_linf")), r.get("mean_linf"), num=True),
            cell(fmt_num(r.get("mean_l2")), r.get("mean_l2"), num=True),
            cell(fmt_num(r.get("queries")), r.get("queries"), num=True),
            cell(fmt_seconds(r.get("seconds")), r.get("seconds"), num=True),
        ]
        note = autoattack_note(r, manifest or {})
        if note is not None:
            cells[2].update(badge={"text": note["badge"], "cls": "aa-standard" if note["standard"] else "aa-other"},
                            title=f"{note['attack']} {note['text']}")
        if with_detection:
            cells[at:at] = [cell(fmt_pct(r.get(k)), r.get(k), num=True) for k in ("detected_clean", "detected")]
        if with_dataset:
            cells.insert(0, cell(fmt_text(r.get("dataset"))))
        body.append(cells)
    return {"headers": headers, "rows": body}


def build_adaptive(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Naive against adaptive white-box accuracy, side by side, per (model, defense, norm, eps) of a defense that
    purifies its input (rows marked ``purified``; on other models an adaptive attack is the naive one): the lowest
    robust accuracy of the naive gradient attacks (single-step and iterative, ``adaptive`` none) next to the lowest
    of the adaptive ones (``adaptive`` set, or the latent attack), with the attacks that reached them and the gap."""
    def usable(r: dict[str, Any]) -> bool:
        return (r.get("threat") == "white-box" and not truthy(r.get("targeted"))
                and as_float(r.get("robust_accuracy")) is not None)

    groups: dict[tuple[str, str, str, float], list[dict[str, Any]]] = {}
    for r in rows:
        if usable(r):
            groups.setdefault((fmt_text(r.get("model")), fmt_text(r.get("defense")), fmt_text(r.get("norm")),
                               float(r["eps"])), []).append(r)
    out = []
    for (model, defense, norm, eps), group in groups.items():
        if not any(truthy(r.get("purified")) for r in group):
            continue
        naive = [r for r in group if r.get("attack_role") in ("single-step", "iterative") and not is_adaptive(r)]
        adaptive = [r for r in group if is_adaptive(r)]
        low_n = min(naive, key=lambda r: r["robust_accuracy"], default=None)
        low_a = min(adaptive, key=lambda r: r["robust_accuracy"], default=None)

        def shown(r: dict[str, Any] | None) -> tuple[str, str]:
            if r is None:
                return MISSING, MISSING
            mode = r.get("adaptive")
            how = f" ({mode})" if not is_missing(mode) and mode not in ("", "none") else ""
            return fmt_acc_ci(r["robust_accuracy"], r.get("robust_accuracy_low"), r.get("robust_accuracy_high")), \
                f"{fmt_text(r.get('attack'))}{how}"

        (n_acc, n_by), (a_acc, a_by) = shown(low_n), shown(low_a)
        gap = fmt_pct(low_n["robust_accuracy"] - low_a["robust_accuracy"]) if low_n and low_a else MISSING
        out.append({"model": model, "defense": defense, "norm": plots.norm_label(norm), "eps": fmt_eps(eps),
                    "naive": n_acc, "naive_by": n_by, "adaptive": a_acc, "adaptive_by": a_by, "gap": gap})
    return sorted(out, key=lambda r: (r["model"], r["defense"], r["norm"], r["eps"]))


def build_gan(gan: list[dict[str, Any]]) -> dict[str, Any]:
    """GAN records as a plain table over the union of their keys."""
    columns: list[str] = []
    for rec in gan:
        columns.extend(k for k in rec if k not in columns)
    numeric = {c: all(as_float(rec.get(c)) is not None or is_missing(rec.get(c)) for rec in gan)
               and any(as_float(rec.get(c)) is not None for rec in gan) for c in columns}
    rows = [[cell(fmt_num(rec.get(c)), rec.get(c), num=True) if numeric[c] else cell(fmt_text(rec.get(c)))
             for c in columns] for rec in gan]
    return {"columns": [{"text": GAN_LABELS.get(c, c), "num": numeric[c]} for c in columns], "rows": rows}


GAN_LABELS = {"model": "Model", "defense": "Defense", "modes_captured": "Modes captured",
              "high_quality_fraction": "High-quality fraction", "class_kl": "Class KL (gen ‖ real)",
              "fid": "FID (reference CNN)", "conditional_accuracy": "Conditional accuracy"}


def _thousands(value: Any) -> str | None:
    return f"{int(value):,}" if isinstance(value, int) and value > 0 else None


def build_gan_details(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per trained generator: sample grid, loss curves and, per model, corner cases as images; failures are
    skipped (logged), never fatal."""
    out = []
    for d in details:
        users = d.get("used_by") or [{"model": d.get("model"), "defense": d.get("defense")}]
        entry: dict[str, Any] = {"title": ", ".join(f"{fmt_text(u.get('model'))} / {fmt_text(u.get('defense'))}"
                                                    for u in users), "corners": []}
        for key, fn, arg in (("grid", plots.gan_sample_grid, d.get("grid")),
                             ("losses", plots.gan_losses, d.get("losses"))):
            entry[key] = _safe_plot(fn, arg, key, entry["title"])
        cases = d.get("corner_cases") or []
        for c in cases if isinstance(cases, list) else [cases]:
            uri = _safe_plot(plots.corner_case_gallery, c, "corner cases", entry["title"])
            if uri:
                entry["corners"].append({"uri": uri, "classifier": fmt_text(c.get("classifier")),
                                         "fraction": as_float(c.get("fraction")), "n": _thousands(c.get("n"))})
        out.append(entry)
    return out


def _safe_plot(fn: Any, arg: Any, what: str, title: str) -> str | None:
    try:
        return fn(arg) if arg else None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        log.warning("GAN %s plot for %s skipped: %s", what, title, exc)
        return None


def build_gallery(gallery: list[dict[str, Any]], tick: Any = None) -> list[dict[str, str]]:
    """One image per gallery entry; a malformed entry is logged and skipped, never fatal. ``tick()`` is called
    after each entry (a progress bar's ``update``)."""
    out = []
    for i, entry in enumerate(gallery):
        if i and tick is not None:
            tick()
        caption = (f"{fmt_text(entry.get('model'))} / {fmt_text(entry.get('defense'))} — "
                   f"{fmt_text(entry.get('attack'))}, ε = {fmt_eps(entry.get('eps'))}")
        try:
            uri = plots.gallery_image(entry)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("gallery entry %d (%s) skipped: %s", i, caption, exc)
            continue
        out.append({"caption": caption, "uri": uri})
    return out


def is_natural(entry: dict[str, Any]) -> bool:
    """A gallery entry of the natural adversarial search (its items carry the reconstruction ``x_rec``)."""
    return any(isinstance(i, dict) and "x_rec" in i for i in entry.get("items") or [])


def build_natural(rows: list[dict[str, Any]], gallery: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The natural adversarial examples (Zhao et al. 2018): one row per classifier and latent budget, and the
    galleries of original / reconstruction / natural example; None when the run has none."""
    found = [r for r in rows if r.get("norm") == "latent"]
    if not found:
        return None
    body = [[cell(fmt_text(r.get("model"))), cell(fmt_text(r.get("defense"))), cell(fmt_text(r.get("attack"))),
             cell(fmt_eps(r.get("eps")), r.get("eps"), num=True),
             cell(fmt_pct(r.get("clean_accuracy")), r.get("clean_accuracy"), num=True),
             cell(fmt_pct(r.get("reconstruction_accuracy")), r.get("reconstruction_accuracy"), num=True),
             cell(fmt_pct(r.get("attack_success_rate")), r.get("attack_success_rate"), num=True),
             cell(fmt_num(r.get("mean_latent_distance")), r.get("mean_latent_distance"), num=True),
             cell(fmt_num(r.get("mean_l2")), r.get("mean_l2"), num=True),
             cell(fmt_num(r.get("queries")), r.get("queries"), num=True)] for r in found]
    heads = [("Model", False), ("Defense", False), ("Attack", False), ("Latent budget", True), ("Clean", True),
             ("On G(I(x))", True), ("Found", True), ("Mean latent distance", True), ("Mean pixel L2", True),
             ("Queries", True)]
    return {"headers": [{"text": t, "num": n} for t, n in heads], "rows": body,
            "gallery": build_gallery([g for g in gallery if is_natural(g)])}


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


# --------------------------------------------------------------------------------------------- rendering
@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment over ``reports/templates`` with HTML autoescaping on."""
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


WORST_CASE = "worst case (all attacks)"


def _guarded(what: str, make: Any, default: Any) -> Any:
    """``make()``, or ``default`` after logging: a plotting failure must not cost the user the whole report."""
    try:
        return make()
    except Exception:
        log.exception("%s failed; the report goes on without them", what)
        return default


def _with_worst_case(table: pd.DataFrame, board: list[dict[str, Any]]) -> pd.DataFrame:
    """The table with the leaderboard's worst case prepended as one more white-box "attack" (the first panel)."""
    if not board or table.empty:
        return table
    worst = pd.DataFrame([{"model": b.get("model"), "defense": b.get("defense"), "attack": WORST_CASE,
                           "threat": "white-box", "targeted": False, "target_mode": None, "norm": b.get("norm"),
                           "eps": b.get("eps"), "robust_accuracy": b.get("worst_case_accuracy"),
                           "robust_accuracy_low": b.get("worst_case_low"),
                           "robust_accuracy_high": b.get("worst_case_high")} for b in board])
    return pd.concat([worst, table], ignore_index=True)


def build_context(results: "Results", *, progress: bool = False) -> dict[str, Any]:
    """Everything the template needs, already formatted as strings. ``progress``: a progress bar over the
    figures (log lines where output is redirected; the default suite's report takes about 20 s on 2 cores)."""
    table = results.table
    rows: list[dict[str, Any]] = table.to_dict("records") if not table.empty else []
    manifest = dict(results.manifest or {})
    suites = _unique(r.get("suite") for r in rows)
    suite = fmt_text(manifest.get("suite")) if not is_missing(manifest.get("suite")) else (
        ", ".join(suites) if suites else "robustbench-gan")
    datasets = _unique(r.get("dataset") for r in rows)
    board = list(results.leaderboard)
    gallery = [g for g in results.gallery or [] if not is_natural(g)]
    figures: dict[str, Any] = {  # the plotted sections, each made once, in this order, under one progress bar
        "curves": lambda: [{"title": t, "uri": u} for t, u in _guarded(
            "accuracy-vs-eps plots", lambda: plots.accuracy_vs_eps(_with_worst_case(table, board)), [])],
        "transfer": lambda: [{"title": t, "uri": u} for t, u in _guarded(
            "transfer heatmaps", lambda: plots.transfer_matrices(table), [])],
        "substitute_plot": lambda: _guarded(
            "substitute plot", lambda: plots.substitute_progress(list(results.substitute)), None),
        "blackbox_plot": lambda: _guarded("black-box plot", lambda: plots.blackbox_queries(table), None),
        "distances": lambda: [{"title": t, "uri": u} for t, u in _guarded(
            "distance curves", lambda: plots.distance_curves(results.samples), [])],
        "gan": lambda: build_gan(list(results.gan)) if results.gan else None,
        "gan_details": lambda: build_gan_details(list(results.gan_details)),
        "natural": lambda: build_natural(rows, list(results.gallery or [])),
        "gallery": lambda: build_gallery(gallery, tick=bar.update),
    }
    made: dict[str, Any] = {}
    with progress_bar(total=len(figures) + max(len(gallery) - 1, 0), enabled=progress, desc="report figures",
                      unit="fig") as bar:
        for name, make in figures.items():
            made[name] = make()
            bar.update()
    blackbox = [{"model": fmt_text(r.get("model")), "defense": fmt_text(r.get("defense")),
                 "attack": fmt_text(r.get("attack")), "eps": fmt_eps(r.get("eps")),
                 "robust": fmt_acc_ci(r.get("robust_accuracy"), r.get("robust_accuracy_low"),
                                      r.get("robust_accuracy_high")),
                 "success": fmt_pct(r.get("attack_success_rate")),
                 "queries": MISSING if is_missing(r.get("queries")) else f"{int(r['queries']):,}"}
                for r in rows if r.get("threat") == "black-box"]
    context = {
        **made,
        "blackbox": blackbox,
        "adaptive": build_adaptive(rows),
        "suite": suite,
        "datasets": datasets,
        "n_records": len(rows),
        "models": _unique(r.get("model") for r in rows),
        "attacks": _unique(r.get("attack") for r in rows),
        "threats": _unique(r.get("threat") for r in rows),
        "summary": build_summary(rows, manifest),
        "attack_table": build_attack_rows(rows, with_dataset=len(datasets) > 1, manifest=manifest),
        "leaderboard": build_leaderboard(board, list(results.flags or [])),
        "flags": [{k: fmt_text(f.get(k)) for k in ("check", "model", "defense", "attack", "message")}
                  for f in (results.flags or [])],
        "flag_notes": _flag_notes(results.flags or []),
        "extra_sections": render_sections(results, environment()),
        "manifest": build_manifest(manifest),
        "missing": MISSING,
    }
    context["nav"] = navigation(context)
    return context


def _flag_notes(flags: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One plain explanation and reference per distinct check that raised a flag."""
    from ..checks import EXPLANATIONS

    notes, seen = [], set()
    for f in flags:
        check = str(f.get("check", ""))
        if check in seen:
            continue
        seen.add(check)
        explanation, reference = EXPLANATIONS.get(check, (f.get("explanation", ""), f.get("reference", "")))
        notes.append({"check": check, "explanation": explanation or "", "reference": reference or ""})
    return notes


def render_report(results: "Results", *, progress: bool = False) -> str:
    """Render ``results`` as one self-contained HTML page (inline CSS, JS and images; no network). ``progress``:
    say so and show a progress bar over its figures (the plots take most of the time)."""
    if progress:
        log.info("rendering the report: %d records, %d example galleries", len(results.table),
                 len(results.gallery or []))
    context = build_context(results, progress=progress)
    html = environment().get_template("report.html").render(**context)
    log.debug("rendered report: %d records, %d plots, %d gallery images, %d bytes", context["n_records"],
              len(context["curves"]), len(context["gallery"]), len(html))
    return html
