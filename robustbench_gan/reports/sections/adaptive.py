"""Naive and adaptive attacks side by side, for defenses that purify their input (Athalye, Carlini & Wagner
2018: a large gap means the naive number measures gradient masking)."""
from __future__ import annotations

from typing import Any

from ...checks.row_checks import is_adaptive
from .. import plots
from ..formats import MISSING, as_float, fmt_acc_ci, fmt_eps, fmt_pct, fmt_text, is_missing, truthy
from .base import Run, Section


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


def build(run: Run) -> list[dict[str, str]] | None:
    return build_adaptive(run.rows) or None


SECTION = Section("adaptive", "Naive and adaptive attacks", build, "sections/adaptive.html", nav="Adaptive")
