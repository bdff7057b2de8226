"""Sanity checks over the result records of a run (no torch): gradient masking and broken attacks show up as
numbers that contradict each other. Attacks are compared by the ``attack_role`` their classes declare."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Iterable

from .explanations import Flag, make_flag


def _missing(value: Any) -> bool:
    """None or NaN: a probe's robust accuracy, or a record read back from JSON."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _missing_or_empty(value: Any) -> bool:
    return _missing(value) or value == ""


OTHER_MEASURES = ("probe", "corruption", "certified", "smoothed")
"""Roles whose rows are not adversarial accuracy of the evaluated classifier (see attacks.base.ROLES)."""


def _white_box_untargeted(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("threat") == "white-box" and not r.get("targeted")
            and not _missing(r.get("robust_accuracy")) and r.get("attack_role") not in OTHER_MEASURES]


def check_accuracy_rises_with_eps(records: list[dict[str, Any]], *, samples: int = 2) -> list[Flag]:
    """Robust accuracy at a larger eps exceeds that at a smaller eps by more than ``samples`` samples."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if not _missing(r.get("robust_accuracy")) and r.get("attack_role") not in ("probe", "corruption"):
            key = (r["model"], r["defense"], r["attack"], r.get("threat"), r.get("source"), r.get("norm"))
            groups[key].append(r)
    flags = []
    for (model, defense, attack, threat, source, _), rows in groups.items():
        rows = sorted(rows, key=lambda r: r["eps"])
        for lo, hi in zip(rows, rows[1:]):
            n = max(1, int(lo.get("n") or 1))
            if hi["robust_accuracy"] - lo["robust_accuracy"] > samples / n:
                where = f" ({threat} from {source})" if source else ""
                flags.append(make_flag("accuracy-rises-with-eps", model, defense, attack,
                                       f"{attack}{where}: accuracy {lo['robust_accuracy']:.1%} at eps {lo['eps']:g} "
                                       f"rises to {hi['robust_accuracy']:.1%} at eps {hi['eps']:g}"))
                break
    return flags


def check_single_step_vs_iterative(records: list[dict[str, Any]], *, far: float = 0.3) -> list[Flag]:
    """Compare single-step (FGSM) with iterative (PGD/BIM) attacks at the same model, defense, norm and eps.

    Flags a single-step attack that is stronger beyond the intervals (broken iterative attack), and one whose
    accuracy is above the iterative one by at least ``far`` and beyond the intervals (gradient masking).
    """
    rows = _white_box_untargeted(records)
    by_cell: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_cell[(r["model"], r["defense"], r.get("norm"), r["eps"])].append(r)
    flags: list[Flag] = []
    seen: set[tuple] = set()
    for (model, defense, _, eps), cell in by_cell.items():
        singles = [r for r in cell if r.get("attack_role") == "single-step"]
        iters = [r for r in cell if r.get("attack_role") == "iterative"]
        for s in singles:
            for it in iters:
                if s["robust_accuracy_high"] < it["robust_accuracy_low"] and (model, defense, "beats", it["attack"]) not in seen:
                    seen.add((model, defense, "beats", it["attack"]))
                    flags.append(make_flag(
                        "single-step-beats-iterative", model, defense, it["attack"],
                        f"at eps {eps:g}, {s['attack']} leaves {s['robust_accuracy']:.1%} accuracy but the iterative "
                        f"{it['attack']} leaves {it['robust_accuracy']:.1%}"))
                gap = s["robust_accuracy"] - it["robust_accuracy"]
                if gap >= far and s["robust_accuracy_low"] > it["robust_accuracy_high"] and \
                        (model, defense, "far", s["attack"]) not in seen:
                    seen.add((model, defense, "far", s["attack"]))
                    flags.append(make_flag(
                        "single-step-far-above-iterative", model, defense, s["attack"],
                        f"at eps {eps:g}, {s['attack']} leaves {s['robust_accuracy']:.1%} accuracy but "
                        f"{it['attack']} only {it['robust_accuracy']:.1%}"))
    return flags


def _beaten(check: str, pairs: Iterable[tuple[dict[str, Any], dict[str, Any] | None]],
            message: Callable[[dict[str, Any], dict[str, Any]], str]) -> list[Flag]:
    """One flag per (model, defense, attack) whose row lies below its white-box reference row, intervals disjoint:
    an attack of a weaker threat model doing better than the gradients means the gradients mislead."""
    flags, seen = [], set()
    for row, ref in pairs:
        key = (row["model"], row["defense"], row["attack"])
        if ref is not None and ref["robust_accuracy_low"] > row["robust_accuracy_high"] and key not in seen:
            seen.add(key)
            flags.append(make_flag(check, row["model"], row["defense"], row["attack"], message(row, ref)))
    return flags


def check_white_box_above_transfer(records: list[dict[str, Any]]) -> list[Flag]:
    """White-box accuracy above the accuracy under transferred examples of the same attack and eps."""
    wb = {(r["model"], r["defense"], r["attack"], r["eps"]): r for r in records
          if r.get("threat") == "white-box" and not _missing(r.get("robust_accuracy"))}
    pairs = [(t, wb.get((t["model"], t["defense"], t["attack"], t["eps"]))) for t in records
             if t.get("threat") == "transfer" and not _missing(t.get("robust_accuracy"))]
    return _beaten("white-box-above-transfer", pairs, lambda t, w: (
        f"at eps {t['eps']:g}, white-box {t['attack']} leaves {w['robust_accuracy']:.1%} accuracy but "
        f"examples transferred from {t['source']} leave only {t['robust_accuracy']:.1%}"))


def cascade_component(record: dict[str, Any]) -> tuple[str, str] | None:
    """``(cascade, component)`` for a row of one component of an AutoAttack cascade (``<cascade>/<component>``,
    the robust accuracy after that component, cumulative), else None (the cascade's own row included)."""
    attack = str(record.get("attack") or "")
    if record.get("attack_kind") != "autoattack" or record.get("attack_role") == "ensemble" or "/" not in attack:
        return None
    cascade, component = attack.rsplit("/", 1)
    return cascade, component


def check_square_after_gradients(records: list[dict[str, Any]], *, alpha: float = 0.002) -> list[Flag]:
    """In an AutoAttack cascade, the black-box component (Square) fools more than ``alpha * n`` of the samples the
    white-box components before it left standing (AutoAttack's ``check_square_sr``: alpha = 0.002, i.e. robust
    accuracy lowered by more than 0.2 points). Component rows are cumulative and come in cascade order, so what
    Square fooled is the drop from the row before it, counted in samples (``robust_accuracy * n``)."""
    cascades: dict[tuple, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for r in records:
        part = cascade_component(r)
        if part is not None and not _missing(r.get("robust_accuracy")) and _missing_or_empty(r.get("source")) \
                and not _missing(r.get("n")):
            cascades[(r["model"], r["defense"], part[0], r.get("norm"), r["eps"])].append((part[1], r))
    flags = []
    for (model, defense, _, _, eps), rows in cascades.items():
        for k, (label, row) in enumerate(rows):
            before = rows[:k]
            if row.get("attack_role") != "black-box" or not any(b.get("threat") == "white-box" for _, b in before):
                continue
            prev, n = before[-1][1], int(row.get("n") or 0)
            standing = round(prev["robust_accuracy"] * n)
            fooled = standing - round(row["robust_accuracy"] * n)
            if n and fooled > alpha * n:
                flags.append(make_flag(
                    "square-after-gradients", model, defense, row["attack"],
                    f"at eps {eps:g}, {label} fooled {fooled} of the {standing} samples that "
                    f"{', '.join(name for name, _ in before)} left standing (n = {n:,}): robust accuracy "
                    f"{prev['robust_accuracy']:.1%} -> {row['robust_accuracy']:.1%}, more than the {alpha:.1%} of n "
                    "AutoAttack tolerates"))
    return flags


def check_black_box_below_white_box(records: list[dict[str, Any]]) -> list[Flag]:
    """A black-box attack (role ``black-box``) leaves less accuracy than every white-box gradient attack
    (``single-step`` or ``iterative``) at the same model, defense, norm and eps, beyond the intervals. A cascade's
    black-box component is left to :func:`check_square_after_gradients` (its row is cumulative: it includes what
    the white-box components before it fooled)."""
    white: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in _white_box_untargeted(records):
        if r.get("attack_role") in ("single-step", "iterative"):
            white[(r["model"], r["defense"], r.get("norm"), r["eps"])].append(r)

    def strongest(b: dict[str, Any]) -> dict[str, Any] | None:
        rows = white.get((b["model"], b["defense"], b.get("norm"), b["eps"]))
        return min(rows, key=lambda r: r["robust_accuracy"]) if rows else None

    pairs = [(b, strongest(b)) for b in records if b.get("attack_role") == "black-box" and not b.get("targeted")
             and not _missing(b.get("robust_accuracy")) and cascade_component(b) is None]
    return _beaten("black-box-below-white-box", pairs, lambda b, w: (
        f"at eps {b['eps']:g}, the black-box {b['attack']} leaves {b['robust_accuracy']:.1%} accuracy but the "
        f"strongest white-box attack ({w['attack']}) {w['robust_accuracy']:.1%}"))


def is_adaptive(record: dict[str, Any]) -> bool:
    """The row's attack adapts to an input purification: a gradient view other than the naive one (``adaptive``
    set and not ``none``) or the latent-space attack."""
    adaptive = record.get("adaptive")
    return (not _missing(adaptive) and adaptive not in ("", "none")) or record.get("attack_kind") == "latent"


def check_naive_attacks_only_on_purifier(records: list[dict[str, Any]]) -> list[Flag]:
    """A purifying defense (rows marked ``purified``) attacked white-box only by gradient attacks that differentiate
    through the purification naively: no row of that model and defense is adaptive (:func:`is_adaptive`)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("purified") is True and r.get("threat") == "white-box":
            groups[(r["model"], r["defense"])].append(r)
    flags = []
    for (model, defense), rows in groups.items():
        naive = [r for r in rows if r.get("attack_role") in ("single-step", "iterative") and not is_adaptive(r)]
        if naive and not any(is_adaptive(r) for r in rows):
            names = sorted({r["attack"] for r in naive})
            best = min((r for r in naive if not _missing(r.get("robust_accuracy"))),
                       key=lambda r: r["robust_accuracy"], default=None)
            worst = f"; the strongest leaves {best['robust_accuracy']:.1%} at eps {best['eps']:g}" if best else ""
            flags.append(make_flag(
                "naive-attacks-only-on-purifier", model, defense, names[0],
                f"{defense} purifies its input, but only naive gradient attacks ({', '.join(names)}) evaluated it"
                f"{worst}; add adaptive = \"bpda\" or the latent attack"))
    return flags


def _above(check: str, pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]],
           message: Callable[[dict[str, Any], dict[str, Any]], str]) -> list[Flag]:
    """One flag per (model, defense, attack) of a row that lies above its reference row, intervals disjoint (the
    flag names the upper row's attack: the one that overstates robustness)."""
    flags, seen = [], set()
    for row, ref in pairs:
        key = (row["model"], row["defense"], row["attack"])
        if row["robust_accuracy_low"] > ref["robust_accuracy_high"] and key not in seen:
            seen.add(key)
            flags.append(make_flag(check, *key, message(row, ref)))
    return flags


def check_minimum_norm_curve_above_fixed_eps(records: list[dict[str, Any]]) -> list[Flag]:
    """A minimum-norm attack's curve (its row at an eps, read off the same run's distances) above another white-box
    attack's fixed-eps result at the same model, defense, norm and eps, intervals disjoint: that attack missed
    smaller perturbations that exist, so its curve overstates robustness."""
    by_cell: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in _white_box_untargeted(records):
        if r.get("attack_role") in ("iterative", "single-step", "minimum-norm"):
            by_cell[(r["model"], r["defense"], r.get("norm"), r["eps"])].append(r)
    pairs = [(mn, min((r for r in cell if r is not mn), key=lambda r: r["robust_accuracy_high"]))
             for cell in by_cell.values() if len(cell) > 1
             for mn in cell if mn.get("attack_role") == "minimum-norm"]
    return _above("minimum-norm-curve-above-fixed-eps", pairs, lambda m, o: (
        f"at eps {m['eps']:g}, the curve of the minimum-norm {m['attack']} leaves {m['robust_accuracy']:.1%} accuracy "
        f"but {o['attack']} at that eps leaves only {o['robust_accuracy']:.1%}"))


def check_certified_above_empirical(records: list[dict[str, Any]]) -> list[Flag]:
    """Randomized smoothing: the certified accuracy at a radius (role ``certified``) above the empirical robust
    accuracy of the same smoothed classifier (the same sigma) under an attack at that radius (role ``smoothed``),
    intervals disjoint. A certificate is a lower bound on what any attack can leave, so one of the two is wrong."""
    attacked: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("attack_role") == "smoothed" and not _missing(r.get("robust_accuracy")):
            attacked[(r["model"], r["defense"], r.get("sigma"), r["eps"])].append(r)
    pairs = [(c, min(rows, key=lambda r: r["robust_accuracy_high"])) for c in records
             if c.get("attack_role") == "certified" and not _missing(c.get("robust_accuracy"))
             and (rows := attacked.get((c["model"], c["defense"], c.get("sigma"), c["eps"])))]
    return _above("certified-above-empirical", pairs, lambda c, e: (
        f"at L2 radius {c['eps']:g}, {c['attack']} certifies {c['robust_accuracy']:.1%} accuracy but "
        f"{e['attack']} leaves only {e['robust_accuracy']:.1%} on the same smoothed classifier"))


TABLE_CHECKS: list[Callable[[list[dict[str, Any]]], list[Flag]]] = [
    check_accuracy_rises_with_eps, check_single_step_vs_iterative, check_white_box_above_transfer,
    check_black_box_below_white_box, check_square_after_gradients, check_naive_attacks_only_on_purifier,
    check_minimum_norm_curve_above_fixed_eps, check_certified_above_empirical,
]


def table_flags(records: list[dict[str, Any]]) -> list[Flag]:
    """Every table check over the records of a run."""
    return [f for check in TABLE_CHECKS for f in check(records)]
