"""Reports: formatting, plots, the self-contained HTML page and run comparisons. Reads results; never imports
attacks or defenses."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..results import Results


def write_run(results: "Results", out: str | Path, *, html: bool = True) -> Path:
    """Write a run folder: results.csv, results.json, samples.csv.gz and (``html=True``) index.html."""
    page = None
    if html:
        from .html import render_report

        page = render_report(results)
    return results.write(out, page=page)
