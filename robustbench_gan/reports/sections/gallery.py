"""Examples: per stored gallery entry, the originals, adversarial examples and perturbations as one image."""
from __future__ import annotations

import logging
from typing import Any

from .. import plots
from ..formats import fmt_eps, fmt_text
from .base import Run, Section

log = logging.getLogger(__name__)


def is_natural(entry: dict[str, Any]) -> bool:
    """A gallery entry of the natural adversarial search (its items carry the reconstruction ``x_rec``)."""
    return any(isinstance(i, dict) and "x_rec" in i for i in entry.get("items") or [])


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


def entries(results: Any) -> list[dict[str, Any]]:
    return [g for g in results.gallery or [] if not is_natural(g) and not g.get("strip")]  # a corruption strip: its section


def build(run: Run) -> list[dict[str, str]]:
    return build_gallery(entries(run.results), tick=run.tick)


SECTION = Section("gallery", "Examples", build, "sections/gallery.html", units=lambda r: max(len(entries(r)), 1))
