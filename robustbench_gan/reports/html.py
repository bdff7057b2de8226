"""The self-contained HTML report: ``render_report(results) -> str``.

The page is a header (what ran, how to read it, a nav) over its sections (:mod:`.sections`: one module each for
the page's own, plus those a defense registered), each rendered from its own template partial. Every figure is an
inline PNG data URI and all CSS/JS is inline, so ``index.html`` makes no network request and can be mailed or
archived as one file. Autoescaping is on: every user string (suite, model, class names, messages, config) is
escaped by Jinja2, never marked safe.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ..core.progress import progress_bar
from .formats import MISSING, fmt_text, is_missing
from .sections import render_sections, sections_of
from .sections.base import unique

if TYPE_CHECKING:
    from ..results import Results

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment over ``reports/templates`` with HTML autoescaping on."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["missing"] = MISSING
    return env


def build_context(results: "Results", *, progress: bool = False) -> dict[str, Any]:
    """The page's header (suite, datasets, counts) and its rendered sections. ``progress``: a progress bar over
    the sections' work (log lines where output is redirected; the default suite's report takes about 20 s on 2
    cores, most of it plots)."""
    table = results.table
    rows = table.to_dict("records") if not table.empty else []
    manifest = results.manifest or {}
    suites = unique(r.get("suite") for r in rows)
    suite = fmt_text(manifest.get("suite")) if not is_missing(manifest.get("suite")) else (
        ", ".join(suites) if suites else "robustbench-gan")
    units = sum(section.units(results) for section in sections_of(results))
    with progress_bar(total=units, enabled=progress, desc="report figures", unit="fig") as bar:
        sections = render_sections(results, environment(), tick=bar.update)
    return {
        "suite": suite,
        "datasets": unique(r.get("dataset") for r in rows),
        "n_records": len(rows),
        "models": unique(r.get("model") for r in rows),
        "attacks": unique(r.get("attack") for r in rows),
        "n_flags": len(results.flags or []),
        "sections": sections,
    }


def render_report(results: "Results", *, progress: bool = False) -> str:
    """Render ``results`` as one self-contained HTML page (inline CSS, JS and images; no network). ``progress``:
    say so and show a progress bar over its figures (the plots take most of the time)."""
    if progress:
        log.info("rendering the report: %d records, %d example galleries", len(results.table),
                 len(results.gallery or []))
    context = build_context(results, progress=progress)
    html = environment().get_template("report.html").render(**context)
    log.debug("rendered report: %d records, %d sections, %d bytes", context["n_records"], len(context["sections"]),
              len(html))
    return html
