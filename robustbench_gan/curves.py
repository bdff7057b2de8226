"""Robustness curves from minimum-norm attacks, their per-sample ensemble and AttackBench's optimality.

A minimum-norm attack reports each sample's smallest adversarial distance (``samples.csv.gz``: ``perturbation``,
inf where it found none), so one run gives robust accuracy at every eps: the share of samples classified correctly
whose distance is larger than eps. The *ensemble* of a classifier's minimum-norm attacks in one norm takes each
sample's smallest distance over them. An attack's **optimality** (Cinà et al. 2024, "AttackBench: Evaluating
Gradient-based Attacks for Adversarial Examples", the ``analysis/plot.py`` of their code) compares the areas under
the curves up to the ensemble's largest finite distance ``D``:

    optimality = 1 - (A_attack - A_best) / (clean_accuracy * D - A_best)

where ``A`` is the area under a curve on ``[0, D]``: the optimality is 1 for an attack as good as the ensemble on
every sample and 0 for one that fools none of the samples within ``D`` (no better than leaving them alone). Curves are step functions, so the areas here
are exact, ``A = mean(min(d_i, D))`` over the samples with ``d_i = 0`` for the misclassified ones (AttackBench
integrates the same steps with the trapezoid rule on the distinct distances).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

ENSEMBLE = "best of all"
"""The label of a classifier's per-sample best over its minimum-norm attacks."""
KEYS = ["model", "defense", "norm"]


def minimum_norm_distances(samples: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (model, defense, norm, attack, sample) of the minimum-norm attacks in ``samples``:
    ``distance`` (0 where the clean prediction is already wrong, inf where the attack found nothing) and
    ``correct`` (the clean prediction)."""
    columns = KEYS + ["attack", "sample_id", "correct", "distance"]
    if samples is None or samples.empty or "attack_role" not in samples.columns:
        return pd.DataFrame(columns=columns)
    df = samples[samples["attack_role"] == "minimum-norm"]
    if "source" in df.columns:  # transferred examples measure the source's distances, not the target's
        df = df[df["source"].isna() | (df["source"].astype(str) == "")]
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df.drop_duplicates(KEYS + ["attack", "sample_id"])  # the same distance at every eps
    correct = (df["clean_pred"] == df["true_label"]).to_numpy()
    dist = pd.to_numeric(df["perturbation"], errors="coerce").fillna(math.inf).to_numpy(dtype=float)
    out = df[KEYS + ["attack", "sample_id"]].copy()
    out["norm"] = out["norm"].astype(str)
    out["correct"] = correct
    out["distance"] = np.where(correct, dist, 0.0)
    return out.reset_index(drop=True)


def with_ensemble(distances: pd.DataFrame) -> pd.DataFrame:
    """``distances`` plus, per (model, defense, norm) with at least two attacks, the per-sample minimum over them
    as the attack :data:`ENSEMBLE`."""
    extra = []
    for key, g in distances.groupby(KEYS, sort=False):
        if g["attack"].nunique() < 2:
            continue
        best = g.groupby("sample_id", sort=True).agg(correct=("correct", "first"), distance=("distance", "min"))
        best = best.reset_index()
        for k, v in zip(KEYS, key):
            best[k] = v
        best["attack"] = ENSEMBLE
        extra.append(best[distances.columns])
    return pd.concat([distances, *extra], ignore_index=True) if extra else distances


def robust_accuracy(distance: Sequence[float] | np.ndarray, eps: float) -> float:
    """The share of samples whose distance (0: misclassified) is larger than ``eps``."""
    d = np.asarray(distance, dtype=float)
    return float((d > eps).mean()) if len(d) else math.nan


def curve(distance: Sequence[float] | np.ndarray, grid: Sequence[float]) -> list[float]:
    """Robust accuracy at each eps of ``grid``."""
    return [robust_accuracy(distance, float(e)) for e in grid]


def optimality(distance: Sequence[float] | np.ndarray, best: Sequence[float] | np.ndarray) -> float:
    """AttackBench's optimality of an attack's per-sample distances against the best ones on the same samples (in
    the same order): see the module docstring. NaN where the best curve has no finite positive distance."""
    d, b = np.asarray(distance, dtype=float), np.asarray(best, dtype=float)
    finite = b[np.isfinite(b)]
    top = float(finite.max()) if len(finite) else 0.0
    clean = float((b > 0).mean()) if len(b) else 0.0
    area_best = float(np.minimum(b, top).mean()) if len(b) else 0.0
    worst = clean * top - area_best
    if not top > 0 or not worst > 0:
        return math.nan
    area = float(np.minimum(d, top).mean())
    return 1.0 - (area - area_best) / worst


def optimality_table(samples: pd.DataFrame | None) -> pd.DataFrame:
    """Per (model, defense, norm, attack) of the minimum-norm attacks: success rate on the correctly classified
    samples, median distance (inf when fewer than half fell) and the optimality against the per-sample best of that
    classifier's attacks in that norm (1.0 for the ensemble itself; NaN for an attack alone in its norm: there is
    nothing to compare it with)."""
    rows = []
    dist = with_ensemble(minimum_norm_distances(samples))
    for key, g in dist.groupby(KEYS, sort=False):
        best = g[g["attack"] == ENSEMBLE] if (g["attack"] == ENSEMBLE).any() else None  # None: one attack
        for attack, a in g.groupby("attack", sort=False):
            a = a.sort_values("sample_id")
            ref = a if best is None else best.sort_values("sample_id")
            correct = a["correct"].to_numpy()
            d = a["distance"].to_numpy(dtype=float)
            rows.append(dict(zip(KEYS, key)) | {
                "attack": attack,
                "samples": len(a),
                "success_rate": float(np.isfinite(d[correct]).mean()) if correct.any() else math.nan,
                "median_distance": float(np.median(d[correct])) if correct.any() else math.nan,
                "optimality": math.nan if best is None else optimality(d, ref["distance"].to_numpy(dtype=float)),
            })
    return pd.DataFrame(rows, columns=KEYS + ["attack", "samples", "success_rate", "median_distance", "optimality"])
