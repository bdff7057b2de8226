"""What a report section is: an id (its HTML anchor), a title (its heading), a ``build`` that turns a run into its
template's context (None: the section is left out of the page) and a template. The page's own sections are one
module each in this package; a defense (or anyone) adds one with :func:`register_section`, and its ``report()``
returns ``{section_id: payload}``. A section id nobody registered (a results.json re-rendered without the
defense's module) is still shown, as a generic table of its payloads: a section is never dropped."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable

from ..formats import is_missing

if TYPE_CHECKING:
    from ...results import Results

log = logging.getLogger(__name__)


class Run:
    """A run as the sections read it: the results, their rows as dicts and the manifest, each made once; and
    ``tick()``, one more unit of a section's work on the report's progress bar."""

    def __init__(self, results: "Results", tick: Callable[[], None] = lambda: None) -> None:
        self.results = results
        self.tick = tick

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        table = self.results.table
        return table.to_dict("records") if not table.empty else []

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return dict(self.results.manifest or {})

    def payloads(self, section_id: str) -> list[Any]:
        """What the run's classifiers reported under ``section_id`` (a defense's ``report()``)."""
        return list(self.results.sections.get(section_id) or [])


@dataclass(frozen=True)
class Section:
    """``id``: the HTML anchor (and the key a defense's report uses); ``title``: the heading; ``build(run)``: the
    template's context (the template sees it as ``section``), None to leave the section out; ``template``: its
    partial, a file under ``reports/templates`` (``sections/<id>.html`` for the page's own), or ``source``: Jinja
    source (a registered section's); ``nav``: the nav label when shorter than the title; ``units(results)``: how
    many progress-bar units its build takes (a section that calls ``run.tick()`` per item says how many)."""

    id: str
    title: str
    build: Callable[[Run], Any]
    template: str = ""
    source: str = ""
    nav: str = ""
    units: Callable[["Results"], int] = lambda results: 1


def unique(values: Any) -> list[str]:
    """The distinct non-missing values as strings, in first-seen order."""
    out: list[str] = []
    for v in values:
        if not is_missing(v) and str(v) not in out:
            out.append(str(v))
    return out


GENERIC_TEMPLATE = """
{% for item in section.payloads %}
{% if item.rows %}
<table><tbody>{% for key, value in item.rows %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</tbody></table>
{% else %}<pre>{{ item.text }}</pre>{% endif %}
{% endfor %}
"""


def generic_context(payloads: list[Any], results: "Results") -> dict[str, Any]:
    """Each payload as rows of (key, value) when it is a flat mapping, else as indented JSON."""
    items = []
    for p in payloads:
        if isinstance(p, dict) and all(not isinstance(v, (dict, list)) for v in p.values()):
            items.append({"rows": [(str(k), "–" if v is None else str(v)) for k, v in p.items()], "text": ""})
        else:
            items.append({"rows": [], "text": json.dumps(p, indent=1, default=str)})
    return {"payloads": items}


def from_payloads(section_id: str, title: str, source: str,
                  build: Callable[[list[Any], "Results"], Any]) -> Section:
    """A section whose context is ``build(payloads, results)`` over what classifiers reported under its id, shown
    by the Jinja ``source``."""
    return Section(section_id, title, lambda run: build(run.payloads(section_id), run.results), source=source)


def guarded(what: str, make: Callable[[], Any], default: Any) -> Any:
    """``make()``, or ``default`` after logging: a plotting failure must not cost the user the whole report."""
    try:
        return make()
    except Exception:
        log.exception("%s failed; the report goes on without them", what)
        return default


def figures(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    """(title, data URI) pairs as the templates' figure entries."""
    return [{"title": t, "uri": u} for t, u in pairs]
