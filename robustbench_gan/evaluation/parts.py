"""What a row's numbers are computed from: per-sample data and the counters of the work done, kept with every
:class:`~.outcome.Outcome` of an evaluator that shards. A cell cut into shards of samples gives, after
:func:`~.outcome.merge_outcomes`, the rows of the cell evaluated in one piece: the per-sample data are the same (every random
draw is the sample's own), the counters add up, and the metrics come from the same arithmetic on the same
concatenated tensors (:meth:`SampleParts.metrics`), whatever the cut.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

import torch
from torch import Tensor

from ..attacks.engine.norms import flat_norm
from ..core.stats import wilson_interval

NAN = float("nan")


def split(total: int, i: int, parts: int) -> int:
    """Part ``i`` of ``total`` split into ``parts`` as evenly as integers allow (the first ones one larger)."""
    return total // parts + (i < total % parts)


def _json(t: Tensor | None) -> list[Any] | None:
    return None if t is None else t.detach().cpu().tolist()


def _tensor(v: list[Any] | None, dtype: torch.dtype) -> Tensor | None:
    return None if v is None else torch.tensor(v, dtype=dtype)


def _cat(ts: Sequence[Tensor | None]) -> Tensor | None:
    if any(t is None for t in ts):
        return None
    return torch.cat([t.cpu() for t in ts])  # type: ignore[union-attr]


TENSORS = {"y": torch.long, "clean_pred": torch.long, "adv_pred": torch.long, "success": torch.bool,
           "linf": torch.float32, "l2": torch.float32, "norm": torch.float32, "detected": torch.bool,
           "detected_clean": torch.bool, "found_linf": torch.float32, "found_l2": torch.float32}


@dataclass
class SampleParts:
    """One eps of one evaluation, per sample (in evaluation order) and in total.

    ``linf``/``l2``: the norms of each example's perturbation; ``norm``: the distance the per-sample table shows
    (the attack's norm, or a minimum-norm attack's distance, inf where it failed); ``found_linf``/``found_l2``: a
    minimum-norm attack's distances in both norms (NaN where it found nothing). ``forward``/``backward``: the
    classifier's passes over every eps (split across them once, for the whole set); ``queries``: this eps's own
    count (None: the forward passes' share); ``index`` of ``count``: which eps this is."""

    y: Tensor
    clean_pred: Tensor
    adv_pred: Tensor
    success: Tensor
    linf: Tensor
    l2: Tensor
    norm: Tensor | None = None
    detected: Tensor | None = None
    detected_clean: Tensor | None = None
    found_linf: Tensor | None = None
    found_l2: Tensor | None = None
    forward: int = 0
    backward: int = 0
    queries: int | None = None
    seconds: float = 0.0
    index: int = 0
    count: int = 1

    def metrics(self) -> dict[str, Any]:
        """The row's numbers (see :func:`~.outcome.accuracy_metrics`) and its passes, queries and seconds."""
        m = accuracy_metrics(self.y, self.clean_pred, self.adv_pred, success=self.success, detected=self.detected,
                             detected_clean=self.detected_clean, linf=self.linf, l2=self.l2)
        m["forward_passes"] = split(self.forward, self.index, self.count)
        m["backward_passes"] = split(self.backward, self.index, self.count)
        m["queries"] = self.queries if self.queries is not None else m["forward_passes"]
        m["seconds"] = self.seconds
        if self.found_linf is not None and self.found_l2 is not None:  # a minimum-norm attack: what it found
            ok = torch.isfinite(self.found_linf)
            m["mean_linf"] = float(self.found_linf[ok].mean()) if ok.any() else NAN
            m["mean_l2"] = float(self.found_l2[ok].mean()) if ok.any() else NAN
        return m

    def to_json(self) -> dict[str, Any]:
        return {f.name: _json(getattr(self, f.name)) if f.name in TENSORS else getattr(self, f.name)
                for f in fields(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "SampleParts":
        return cls(**{k: _tensor(v, TENSORS[k]) if k in TENSORS else v for k, v in doc.items()})

    @classmethod
    def concat(cls, parts: Sequence["SampleParts"]) -> "SampleParts":
        """The parts of consecutive shards as one: tensors concatenated, counters added."""
        first = parts[0]
        joined = {k: _cat([getattr(p, k) for p in parts]) for k in TENSORS}
        queries = None if any(p.queries is None for p in parts) else sum(int(p.queries) for p in parts)  # type: ignore[arg-type]
        return replace(first, **joined, forward=sum(p.forward for p in parts), backward=sum(p.backward for p in parts),
                       queries=queries, seconds=sum(p.seconds for p in parts))


@dataclass
class CascadeParts:
    """One component of an ensemble (AutoAttack's cascade) at one eps: which samples were correct to begin with,
    which the cascade had fooled once this component ran, and the component's own queries, backward passes and
    seconds."""

    clean_ok: Tensor
    fooled: Tensor
    queries: int = 0
    backward: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict[str, Any]:
        """The cumulative robust accuracy after this component, as the reference prints it."""
        n, n_correct = len(self.clean_ok), int(self.clean_ok.sum())
        robust = int((self.clean_ok & ~self.fooled).sum())
        lo, hi = wilson_interval(robust, n)
        return {
            "n": n,
            "clean_accuracy": n_correct / n if n else NAN,
            "robust_accuracy": robust / n if n else NAN,
            "robust_accuracy_low": lo,
            "robust_accuracy_high": hi,
            "attack_success_rate": int((self.clean_ok & self.fooled).sum()) / n_correct if n_correct else NAN,
            "mean_linf": NAN,
            "mean_l2": NAN,
            "queries": self.queries,
            "forward_passes": self.queries,
            "backward_passes": self.backward,
            "seconds": self.seconds,
        }

    def to_json(self) -> dict[str, Any]:
        return {"clean_ok": _json(self.clean_ok), "fooled": _json(self.fooled), "queries": self.queries,
                "backward": self.backward, "seconds": self.seconds}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "CascadeParts":
        return cls(_tensor(doc["clean_ok"], torch.bool), _tensor(doc["fooled"], torch.bool),  # type: ignore[arg-type]
                   doc["queries"], doc["backward"], doc["seconds"])

    @classmethod
    def concat(cls, parts: Sequence["CascadeParts"]) -> "CascadeParts":
        return cls(torch.cat([p.clean_ok for p in parts]), torch.cat([p.fooled for p in parts]),
                   sum(p.queries for p in parts), sum(p.backward for p in parts), sum(p.seconds for p in parts))


def accuracy_metrics(
    y: Tensor, clean_pred: Tensor, adv_pred: Tensor, delta: Tensor | None = None, *, success: Tensor,
    detected: Tensor | None = None, detected_clean: Tensor | None = None, linf: Tensor | None = None,
    l2: Tensor | None = None,
) -> dict[str, Any]:
    """Clean/robust accuracy with Wilson interval, success rate over initially correct samples, mean norms.

    With a detector (``detected``: its rejections of the adversarial inputs, ``detected_clean``: of the clean
    ones), a rejected adversarial input counts as defended: robust = correct on clean input and (rejected or
    still correct), and a success needs the input not rejected. ``detected`` and ``detected_clean`` (the
    false-positive rate on the evaluated clean data) are added as fractions of all samples; clean accuracy stays
    the classifier's, whatever the detector says. The mean norms come from ``delta`` or from its per-sample norms
    ``linf`` and ``l2``."""
    n = len(y)
    if delta is not None:
        linf, l2 = flat_norm(delta, "inf"), flat_norm(delta, "2")
    correct = clean_pred == y
    robust = correct & (adv_pred == y)
    if detected is not None:
        robust = robust | (correct & detected)
        success = success & ~detected
    lo, hi = wilson_interval(int(robust.sum()), n)
    n_correct = int(correct.sum())
    return {
        "n": n,
        "clean_accuracy": n_correct / n if n else float("nan"),
        "robust_accuracy": int(robust.sum()) / n if n else float("nan"),
        "robust_accuracy_low": lo,
        "robust_accuracy_high": hi,
        "attack_success_rate": int((success & correct).sum()) / n_correct if n_correct else float("nan"),
        "mean_linf": float(linf.mean()) if n and linf is not None else 0.0,
        "mean_l2": float(l2.mean()) if n and l2 is not None else 0.0,
        **detection_metrics(detected, detected_clean),
    }


def detection_metrics(detected: Tensor | None, detected_clean: Tensor | None) -> dict[str, float]:
    """``detected_clean`` and ``detected``: the fractions of clean and of adversarial inputs a detector rejected
    (nothing without a detector, so results of models without one keep their columns)."""
    out = {}
    for key, mask in (("detected_clean", detected_clean), ("detected", detected)):
        if mask is not None:
            out[key] = int(mask.sum()) / len(mask) if len(mask) else float("nan")  # an exact fraction
    return out
