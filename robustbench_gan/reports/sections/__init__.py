"""The report's sections: the page's own, one module each, in page order (:data:`PAGE`), and those registered with
:func:`register_section` for a defense's ``report()`` payloads, which appear after the GAN's. The nav is generated
from the sections a page shows."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from . import (adaptive, all_results, blackbox, certification, corruptions, curves, flags, gallery, gan, leaderboard,
               manifest, minimum_norm, natural, summary, transfer)
from .base import GENERIC_TEMPLATE, Run, Section, from_payloads, generic_context

if TYPE_CHECKING:
    from jinja2 import Environment

    from ...results import Results

__all__ = ["GENERIC_TEMPLATE", "PAGE", "Run", "SECTIONS", "Section", "register_section", "render_sections",
           "sections_of"]

REGISTERED = "registered"
"""Where in :data:`PAGE` the registered sections go."""

PAGE: tuple[Section | str, ...] = (
    leaderboard.SECTION, summary.SECTION, curves.SECTION, transfer.SECTION, blackbox.SECTION, adaptive.SECTION,
    minimum_norm.SECTION, corruptions.SECTION, certification.SECTION, flags.SECTION, gan.SECTION, REGISTERED, natural.SECTION, gallery.SECTION,
    all_results.SECTION, manifest.SECTION,
)
"""The page's own sections in page order."""

BUILT_IN_IDS = frozenset(s.id for s in PAGE if isinstance(s, Section))
"""Ids the page's own sections use (a registered section cannot take one)."""

SECTIONS: dict[str, Section] = {}
"""The registered sections, by id."""


def register_section(id: str, title: str, template: str = GENERIC_TEMPLATE,
                     build: Callable[[list[Any], "Results"], Any] = generic_context) -> Section:
    """Register the report section ``id`` for the payloads a defense's ``report()`` returns under it; returns it.
    ``template`` is Jinja source that sees ``section``: what ``build(payloads, results)`` returned (by default,
    each payload as a table)."""
    if not id or not isinstance(id, str) or id in BUILT_IN_IDS:
        raise ValueError(f"report section id must be a non-empty string other than {sorted(BUILT_IN_IDS)}, got {id!r}")
    if id in SECTIONS:
        raise ValueError(f"report section {id!r} is already registered")
    SECTIONS[id] = section = from_payloads(id, title, template, build)
    return section


def _reported(results: "Results") -> list[Section]:
    """A section per id the run's classifiers reported under, in the order they first appeared: the registered
    one, or a generic table titled after the id (a section is never dropped). An id the page itself uses (a
    results.json from elsewhere) is anchored as ``section-<id>``."""
    out = []
    for key in results.sections:
        section = SECTIONS.get(key) or from_payloads(key, key.replace("-", " ").replace("_", " ").capitalize(),
                                                     GENERIC_TEMPLATE, generic_context)
        if key in BUILT_IN_IDS:
            section = Section(f"section-{key}", section.title, section.build, source=section.source)
        out.append(section)
    return out


def sections_of(results: "Results") -> list[Section]:
    """Every section a page for ``results`` considers, in page order (a section may still leave itself out)."""
    out: list[Section] = []
    for s in PAGE:
        out.extend(_reported(results) if s == REGISTERED else [s])  # type: ignore[list-item]
    return out


def render_sections(results: "Results", env: "Environment", tick: Callable[[], None] = lambda: None
                    ) -> list[dict[str, str]]:
    """The HTML of every section the page shows, in page order: ``{id, title, nav, html}``. ``tick()`` is called
    once per unit of work (see :attr:`Section.units`)."""
    out, run = [], Run(results)
    for section in sections_of(results):
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            tick()

        run.tick = step
        context = section.build(run)
        for _ in range(section.units(results) - done):
            tick()
        if context is None:
            continue
        template = env.get_template(section.template) if section.template else env.from_string(section.source)
        out.append({"id": section.id, "title": section.title, "nav": section.nav or section.title,
                    "html": template.render(section=context)})
    return out
