"""The corruption tables of Hendrycks & Dietterich 2019 from a run's per-sample table: accuracy on the corrupted
images per classifier, corruption and severity; their mean (mean corruption accuracy); and the corruption error
relative to a baseline classifier (mCE).

Accuracy here is plain accuracy on the corrupted images, as in their paper (the rows of ``results.csv`` count a
sample robust only if it was also classified correctly clean). Their corruption error of classifier ``f`` on
corruption ``c`` is ``CE_c = sum_s E_{s,c}(f) / sum_s E_{s,c}(baseline)`` (errors summed over the severities, AlexNet
as their baseline); ``mCE`` is its mean over the corruptions. Here the baseline is a classifier of the run: by
default the first model's undefended classifier, named in every table.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .core.stats import wilson_interval

CLASSIFIER = ["model", "defense"]


def corruption_accuracy(samples: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (model, defense, corruption, severity): ``accuracy`` on the corrupted images with its Wilson
    interval (``accuracy_low``/``accuracy_high``), ``clean_accuracy`` and ``n``."""
    cols = CLASSIFIER + ["corruption", "severity", "n", "accuracy", "accuracy_low", "accuracy_high", "clean_accuracy"]
    if samples is None or samples.empty or "attack_role" not in samples.columns:
        return pd.DataFrame(columns=cols)
    df = samples[samples["attack_role"] == "corruption"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (model, defense, attack, eps), g in df.groupby(CLASSIFIER + ["attack", "eps"], sort=False):
        n = len(g)
        right = int((g["adv_pred"] == g["true_label"]).sum())
        lo, hi = wilson_interval(right, n)
        rows.append({"model": model, "defense": defense, "corruption": attack, "severity": int(float(eps)), "n": n,
                     "accuracy": right / n, "accuracy_low": lo, "accuracy_high": hi,
                     "clean_accuracy": float((g["clean_pred"] == g["true_label"]).mean())})
    return pd.DataFrame(rows, columns=cols)


def default_baseline(accuracy: pd.DataFrame) -> tuple[str, str] | None:
    """The first model's undefended classifier (else the first classifier) among those with corruption rows."""
    if accuracy.empty:
        return None
    pairs = list(dict.fromkeys(zip(accuracy["model"], accuracy["defense"])))
    return next((p for p in pairs if p[1] == "none"), pairs[0])


def corruption_summary(samples: pd.DataFrame | None, baseline: tuple[str, str] | None = None) -> pd.DataFrame:
    """One row per classifier: clean accuracy, mean corruption accuracy over every corruption and severity it was
    evaluated on, and mCE against ``baseline`` (model, defense; default :func:`default_baseline`), with the
    baseline named. mCE is NaN where the baseline lacks one of the classifier's (corruption, severity) cells or
    makes no error on a corruption."""
    acc = corruption_accuracy(samples)
    cols = CLASSIFIER + ["clean_accuracy", "mean_corruption_accuracy", "mce", "baseline", "corruptions"]
    if acc.empty:
        return pd.DataFrame(columns=cols)
    baseline = baseline or default_baseline(acc)
    base = acc[(acc["model"] == baseline[0]) & (acc["defense"] == baseline[1])]
    base_err = {(r["corruption"], r["severity"]): 1 - r["accuracy"] for r in base.to_dict("records")}
    rows = []
    for (model, defense), g in acc.groupby(CLASSIFIER, sort=False):
        ratios = []
        for corruption, c in g.groupby("corruption", sort=False):
            keys = [(corruption, s) for s in c["severity"]]
            denom = sum(base_err.get(k, math.nan) for k in keys)
            ratios.append(float((1 - c["accuracy"]).sum()) / denom if denom and math.isfinite(denom) else math.nan)
        rows.append({"model": model, "defense": defense, "clean_accuracy": float(g["clean_accuracy"].iloc[0]),
                     "mean_corruption_accuracy": float(g["accuracy"].mean()),
                     "mce": float(np.mean(ratios)) if ratios and all(map(math.isfinite, ratios)) else math.nan,
                     "baseline": f"{baseline[0]}/{baseline[1]}", "corruptions": int(g["corruption"].nunique())})
    return pd.DataFrame(rows, columns=cols)


def corruption_flags(samples: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Flags for a corruption accuracy above the clean accuracy of the same samples beyond sampling error (the
    Wilson intervals of the two disjoint): a corruption cannot add information, so a classifier that does better
    on corrupted images is being fed differently scaled inputs, or the corruption is broken."""
    from .checks.explanations import make_flag

    acc = corruption_accuracy(samples)
    flags, seen = [], set()
    for r in acc.to_dict("records"):
        lo, hi = wilson_interval(round(r["clean_accuracy"] * r["n"]), r["n"])
        key = (r["model"], r["defense"], r["corruption"])
        if r["accuracy_low"] > hi and key not in seen:
            seen.add(key)
            flags.append(make_flag("corruption-above-clean", *key,
                                   f"{r['corruption']} at severity {r['severity']}: accuracy {r['accuracy']:.1%} on "
                                   f"the corrupted images, above the clean {r['clean_accuracy']:.1%}"))
    return flags
