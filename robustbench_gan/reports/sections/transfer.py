"""Transfer: per target, robust accuracy on examples crafted on each source model, as heatmaps."""
from __future__ import annotations

from .. import plots
from .base import Run, Section, figures, guarded


def build(run: Run) -> list[dict[str, str]] | None:
    return figures(guarded("transfer heatmaps", lambda: plots.transfer_matrices(run.results.table), [])) or None


SECTION = Section("transfer", "Transfer", build, "sections/transfer.html")
