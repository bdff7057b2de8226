"""Per-sample results and the worst-case (per-sample, over every attack) robust accuracy of the leaderboard.

``samples.csv.gz`` is long-format: one row per (evaluated sample, classifier, attack, source, eps) with the true
label, the clean and the adversarial prediction, whether the sample stayed correct, and the size of the
perturbation in the attack's norm. For a defense with a detector (MagNet) a ``detected`` column says whether the
adversarial input was rejected; a rejected input counts as robust (when the clean one was classified correctly). A sample counts as robust at an eps in the *worst case* only if it is
classified correctly and survives every attack of the suite at that eps — white-box, black-box and transfer
alike — as in AutoAttack's cascade (Croce & Hein 2020). Probes (attacks whose role is ``probe``, such as the
``noise`` fooling-images probe) measure something else and are left out.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import pandas as pd

from .core.stats import wilson_interval

log = logging.getLogger(__name__)

SAMPLE_COLUMNS: tuple[str, ...] = (
    "sample_id", "true_label", "model", "defense", "attack", "threat", "source", "eps", "norm",
    "clean_pred", "adv_pred", "robust", "perturbation",
)
EXCLUDED_ROLES = frozenset({"probe", "corruption", "certified", "smoothed"})
"""Attack roles left out of the worst case: a probe (fooling images from noise) attacks no evaluated input; a
corruption is no adversary; a certificate and an attack on the smoothed classifier speak of another classifier
(randomized smoothing's)."""


def _size(value: float, exact: bool) -> float:
    """A perturbation's size as stored: 6 decimals, or (``exact``: a minimum-norm distance, which its curve
    thresholds) the float32 value itself (9 significant digits round-trip it)."""
    return float(f"{value:.9g}") if exact else round(value, 6)


def sample_block(meta: dict[str, Any], outcome: Any) -> dict[str, Any] | None:
    """The per-sample data of one outcome as a JSON-able block (``None`` when the outcome has none)."""
    if outcome.adv_pred is None or outcome.clean_pred is None:
        return None
    exact = meta.get("attack_role") == "minimum-norm"
    ids = getattr(outcome, "ids", None)
    norms = outcome.adv_norm
    detected = getattr(outcome, "detected", None)
    extra = {} if detected is None else {"detected": [bool(d) for d in detected.tolist()]}
    return {**meta, **extra, "eps": float(outcome.eps),
            "ids": None if ids is None else [int(i) for i in ids.tolist()],
            "clean_pred": [int(p) for p in outcome.clean_pred.tolist()],
            "adv_pred": [int(p) for p in outcome.adv_pred.tolist()],
            "perturbation": None if norms is None else [_size(float(v), exact) for v in norms.tolist()]}


def samples_table(blocks: Iterable[dict[str, Any]], labels: list[int],
                  sample_ids: list[int] | None = None) -> pd.DataFrame:
    """Long-format per-sample table (:data:`SAMPLE_COLUMNS`) from blocks (whose ``ids`` are positions among the
    evaluated samples) and the evaluated samples' labels. ``sample_id`` is ``sample_ids[position]``: where the
    sample sits in the user's data set as given (default: the position itself)."""
    frames = []
    for b in blocks:
        n = len(b["adv_pred"])
        ids = b["ids"] if b.get("ids") is not None else list(range(n))
        true = [labels[i] for i in ids]
        frame = pd.DataFrame({
            "sample_id": ids if sample_ids is None else [sample_ids[i] for i in ids], "true_label": true, "clean_pred": b["clean_pred"], "adv_pred": b["adv_pred"],
            "perturbation": b["perturbation"] if b.get("perturbation") is not None else [float("nan")] * n,
        })
        for key in ("model", "defense", "attack", "threat", "source", "eps", "norm", "attack_kind", "attack_role"):
            frame[key] = b.get(key, "")
        if b.get("detected") is not None:
            frame["detected"] = b["detected"]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    kept = df["adv_pred"] == df["true_label"]
    if "detected" in df.columns:  # a rejected adversarial input is defended; no detector: not rejected
        df["detected"] = df["detected"].astype("boolean")
        kept = kept | df["detected"].fillna(False).astype(bool)
    df["robust"] = (df["clean_pred"] == df["true_label"]) & kept
    rest = [c for c in df.columns if c not in SAMPLE_COLUMNS]
    return df[list(SAMPLE_COLUMNS) + rest]


def _per_classifier(samples: pd.DataFrame | None) -> Iterable[tuple[tuple[str, str], pd.DataFrame, pd.DataFrame]]:
    """Per (model, defense): its rows that count for the worst case (:data:`EXCLUDED_ROLES` left out) and one row
    per evaluated sample (for its clean prediction)."""
    if samples is None or samples.empty:
        return
    df = samples
    if "attack_role" in df.columns:
        df = df[~df["attack_role"].isin(EXCLUDED_ROLES)]
    for key, per_clf in df.groupby(["model", "defense"], sort=False):
        yield key, per_clf, per_clf.drop_duplicates("sample_id")


def worst_case(samples: pd.DataFrame, n_eval: int) -> list[dict[str, Any]]:
    """Leaderboard rows, one per (model, defense, norm, eps): clean accuracy and worst-case robust accuracy over the
    ``n_eval`` evaluated samples with a Wilson 95% interval, the attacks counted, and the strongest single one.

    A sample that an attack did not evaluate (the substitute attack's held-out seed images) counts as surviving
    that attack; every other attack still has to be survived.
    """
    rows: list[dict[str, Any]] = []
    for (model, defense), per_clf, clean in _per_classifier(samples):
        correct = set(clean.loc[clean["clean_pred"] == clean["true_label"], "sample_id"].tolist())
        for (norm, eps), at_eps in per_clf.groupby(["norm", "eps"], sort=True):
            label = at_eps["attack"] + at_eps["source"].map(lambda s: f" (from {s})" if s else "")
            fooled_by = {name: set(g.loc[~g["robust"], "sample_id"].tolist())
                         for name, g in at_eps.assign(label=label).groupby("label", sort=True)}
            fooled = set().union(*fooled_by.values())
            robust = len(correct - fooled)
            survivors = {name: len(correct - f) for name, f in fooled_by.items()}
            strongest = min(survivors, key=lambda k: (survivors[k], k))
            lo, hi = wilson_interval(robust, n_eval)
            rows.append({
                "model": model, "defense": defense, "norm": str(norm), "eps": float(eps), "n": n_eval,
                "clean_accuracy": len(correct) / n_eval if n_eval else float("nan"),
                "worst_case_accuracy": robust / n_eval if n_eval else float("nan"),
                "worst_case_low": lo, "worst_case_high": hi,
                "attacks": len(fooled_by), "strongest_attack": strongest,
                "strongest_attack_accuracy": survivors[strongest] / n_eval if n_eval else float("nan"),
            })
    return rows


def per_class(samples: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (model, defense, true class): clean accuracy and, per (norm, eps), the worst-case robust accuracy over
    the attacks of :func:`worst_case` (the same roles left out), as rows ``{"model", "defense", "class", "n",
    "clean_accuracy", "robust": {(norm, eps): accuracy}}``, counted as :func:`worst_case` counts (a sample an
    attack did not evaluate survives it), so the classes' counts add up to its. A generator that drops a class
    shows here: the augmentation cannot protect what it never produced."""
    rows: list[dict[str, Any]] = []
    for (model, defense), per_clf, clean in _per_classifier(samples):
        correct = set(clean.loc[clean["clean_pred"] == clean["true_label"], "sample_id"].tolist())
        fooled = {(str(norm), float(eps)): set(at_eps.loc[~at_eps["robust"], "sample_id"].tolist())
                  for (norm, eps), at_eps in per_clf.groupby(["norm", "eps"], sort=True)}
        for label, in_class in clean.groupby("true_label", sort=True):
            ids = set(in_class["sample_id"].tolist())
            robust = {b: len((ids & correct) - f) / len(ids) for b, f in fooled.items()}
            rows.append({"model": model, "defense": defense, "class": int(label), "n": len(ids),
                         "clean_accuracy": len(ids & correct) / len(ids),
                         "robust": robust})
    return rows
