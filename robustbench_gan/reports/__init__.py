"""Reports: formatting, plots, the self-contained HTML page and run comparisons. Reads results; never imports
attacks or defenses."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..results import Results


def write_run(results: "Results", out: str | Path, *, html: bool = True, progress: bool = False) -> Path:
    """Write a run folder: results.csv, results.json, samples.csv.gz and (``html=True``) index.html;
    ``progress``: a progress bar (log lines when redirected) while the report's figures render."""
    page = None
    if html:
        from .html import render_report

        page = render_report(results, progress=progress)
    return results.write(out, page=page)
