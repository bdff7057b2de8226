"""Natural adversarial examples (Zhao, Dua & Singh 2018): per classifier and latent budget, how often a nearby
latent code the generator turns into a misclassified image was found, and galleries of them."""
from __future__ import annotations

from typing import Any

from ..formats import cell, fmt_eps, fmt_num, fmt_pct, fmt_text
from .base import Run, Section
from .gallery import build_gallery, is_natural


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


def build(run: Run) -> dict[str, Any] | None:
    return build_natural(run.rows, list(run.results.gallery or []))


SECTION = Section("natural", "Natural adversarial examples", build, "sections/natural.html",
                  nav="Natural adversarial")
