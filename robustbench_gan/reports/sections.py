"""Report sections that defenses (or anyone) add to the HTML report without touching it: one call to
:func:`register_section` gives a section id its title and template; a defense's ``report()`` returns
``{section_id: payload}`` and the page shows every payload under that heading, with a link in the nav. A section id
nobody registered (a results.json re-rendered without the defense's module) still appears, as a generic table of its
payloads: a defense's section is never dropped."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from jinja2 import Environment

    from ..results import Results

PAGE_SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any]], Any]], ...] = (
    ("leaderboard", "Leaderboard", lambda c: c["leaderboard"]["rows"]),
    ("summary", "Per attack", lambda c: True),
    ("curves", "Accuracy vs ε", lambda c: True),
    ("transfer", "Transfer", lambda c: c["transfer"]),
    ("blackbox", "Black-box", lambda c: c["blackbox"]),
    ("adaptive", "Adaptive", lambda c: c["adaptive"]),
    ("minimum-norm", "Minimum-norm", lambda c: c["distances"]),
    ("flags", "Sanity checks", lambda c: True),
    ("gan", "GAN", lambda c: c["gan"]),
    ("", "", lambda c: False),  # where the registered sections go
    ("natural", "Natural adversarial", lambda c: c["natural"]),
    ("gallery", "Examples", lambda c: True),
    ("attacks", "All results", lambda c: True),
    ("manifest", "Manifest", lambda c: True),
)
"""The page's own sections in page order: (anchor, nav title, whether the report's context shows it)."""

BUILT_IN_IDS = frozenset(anchor for anchor, _, _ in PAGE_SECTIONS if anchor)
"""Ids the page's own sections use (a registered section cannot take one)."""

GENERIC_TEMPLATE = """
{% for item in section.payloads %}
{% if item.rows %}
<table><tbody>{% for key, value in item.rows %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</tbody></table>
{% else %}<pre>{{ item.text }}</pre>{% endif %}
{% endfor %}
"""


@dataclass(frozen=True)
class Section:
    """``id`` (the HTML anchor and the key a defense's report uses), ``title`` (its heading and nav label),
    ``template`` (Jinja source; it sees ``section``: what ``build`` returned) and ``build(payloads, results)``
    (the template's context from the payloads of every classifier; None: the section is left out)."""

    id: str
    title: str
    template: str
    build: Callable[[list[Any], "Results"], Any]


SECTIONS: dict[str, Section] = {}


def generic_context(payloads: list[Any], results: "Results") -> dict[str, Any]:
    """Each payload as rows of (key, value) when it is a flat mapping, else as indented JSON."""
    items = []
    for p in payloads:
        if isinstance(p, dict) and all(not isinstance(v, (dict, list)) for v in p.values()):
            items.append({"rows": [(str(k), "–" if v is None else str(v)) for k, v in p.items()], "text": ""})
        else:
            items.append({"rows": [], "text": json.dumps(p, indent=1, default=str)})
    return {"payloads": items}


def register_section(id: str, title: str, template: str = GENERIC_TEMPLATE,
                     build: Callable[[list[Any], "Results"], Any] = generic_context) -> Section:
    """Register the report section ``id``; returns it. The default template shows each payload as a table."""
    if not id or not isinstance(id, str) or id in BUILT_IN_IDS:
        raise ValueError(f"report section id must be a non-empty string other than {sorted(BUILT_IN_IDS)}, got {id!r}")
    if id in SECTIONS:
        raise ValueError(f"report section {id!r} is already registered")
    SECTIONS[id] = section = Section(id, title, template, build)
    return section


def render_sections(results: "Results", env: "Environment") -> list[dict[str, str]]:
    """The HTML of every section in ``results.sections``, in the order they first appeared: ``{id, title, html}``."""
    out = []
    for key, payloads in results.sections.items():
        section = SECTIONS.get(key) or Section(key, key.replace("-", " ").replace("_", " ").capitalize(),
                                               GENERIC_TEMPLATE, generic_context)
        context = section.build(list(payloads), results)
        if context is None:
            continue
        anchor = f"section-{key}" if key in BUILT_IN_IDS else key
        out.append({"id": anchor, "title": section.title,
                    "html": env.from_string(section.template).render(section=context)})
    return out


def navigation(context: dict[str, Any]) -> list[dict[str, str]]:
    """The nav links of a report page, in page order: the page's own sections it shows, and every rendered
    registered section (``context["extra_sections"]``) after the GAN's."""
    links = []
    for anchor, title, shown in PAGE_SECTIONS:
        if not anchor:
            links += [{"id": s["id"], "title": s["title"]} for s in context.get("extra_sections", [])]
        elif shown(context):
            links.append({"id": anchor, "title": title})
    return links
