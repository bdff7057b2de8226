"""The rows of the probes, which measure something other than robust accuracy on the evaluated inputs: fooling
images from noise (their fooling rate) and natural adversarial examples (success and latent distance of a search in
a generator's latent space). Their ``robust_accuracy`` is empty."""
from __future__ import annotations

import time
from typing import Sequence

import torch
from torch import Tensor

from ..attacks.base import Goal
from ..attacks.natural import NaturalAdversary
from ..attacks.noise import NoiseProbe
from ..attacks.engine.norms import flat_norm
from ..classifier import Classifier
from ..core.progress import progress_bar
from .batched import BATCH_SIZE, gallery_items
from .dispatch import evaluates
from .outcome import Outcome, clean_predictions


@evaluates(NoiseProbe)
def evaluate_noise_probe(
    attack: NoiseProbe, clf: Classifier, x: Tensor, y: Tensor, eps_list: Sequence[float], *, batch_size: int = BATCH_SIZE,
    seed: int = 0, gallery_size: int = 4, desc: str | None = None, progress: bool = True,
) -> list[Outcome]:
    """Rows of the probe: ``attack_success_rate`` is the fraction of (noise image, class) pairs confidently
    assigned that class; ``robust_accuracy`` and its interval are NaN (no input of the data set is attacked)."""
    clean = clean_predictions(clf, x, batch_size=batch_size, seed=seed)  # as in every row of the run
    clean_acc = float((clean == y).float().mean())
    nan = float("nan")
    outcomes = []
    for eps in eps_list:
        t0, forward, backward = time.perf_counter(), clf.queries, getattr(clf, "backward_queries", 0)
        fooled, delta = attack.fooled(clf, x, float(eps))
        n = len(fooled)
        outcomes.append(Outcome(float(eps), {
            "n": n, "clean_accuracy": clean_acc, "robust_accuracy": nan, "robust_accuracy_low": nan,
            "robust_accuracy_high": nan, "attack_success_rate": int(fooled.sum()) / n,
            "mean_linf": float(flat_norm(delta, "inf").mean()), "mean_l2": float(flat_norm(delta, "2").mean()),
            "queries": 0, "forward_passes": clf.queries - forward,
            "backward_passes": getattr(clf, "backward_queries", 0) - backward, "seconds": time.perf_counter() - t0,
        }))
    return outcomes


@evaluates(NaturalAdversary)
def evaluate_natural_probe(
    attack: NaturalAdversary, clf: Classifier, x: Tensor, y: Tensor, eps_list: Sequence[float], *, batch_size: int = BATCH_SIZE,
    seed: int = 0, gallery_size: int = 4, desc: str | None = None, progress: bool = True,
) -> list[Outcome]:
    """Probe rows, one per eps (see the class docstring), from one search (in batches) up to the largest eps.

    The search starts from the inputs the classifier gets right both as given and as reconstructed,
    ``G(I(x))``: where the reconstruction is already wrong, the generator rather than the classifier is at
    fault, and a distance of 0 would say nothing about the classifier."""
    radius = max((float(e) for e in eps_list), default=0.0)
    n = len(y)
    distance = torch.full((n,), float("inf"))
    x_adv, x_rec = x.clone(), x.clone()
    clean_pred = clean_predictions(clf, x, batch_size=batch_size, seed=seed).cpu()  # as in every row
    rec_pred = torch.zeros(n, dtype=torch.long)
    queries, seconds = 0, 0.0
    forward, backward = clf.queries, getattr(clf, "backward_queries", 0)
    for i in progress_bar(range(0, n, batch_size), desc=desc or attack.kind, enabled=progress, leave=False):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        t0 = time.perf_counter()
        start = attack.search(clf, xb, Goal(yb), 0.0)  # reconstructions only
        x_rec[i : i + len(xb)] = start.x_rec
        rec_pred[i : i + len(xb)] = start.pred
        keep = ((start.pred == yb.cpu()) & (clean_pred[i : i + len(xb)] == yb.cpu())).nonzero().squeeze(1)
        found = attack.search(clf, xb[keep.to(x.device)], Goal(yb[keep.to(x.device)]), radius)
        seconds += time.perf_counter() - t0
        queries += start.queries + found.queries
        distance[i + keep] = found.distance
        x_adv[(i + keep).to(x.device)] = found.x_adv
    eligible = (clean_pred == y.cpu()) & (rec_pred == y.cpu())
    n_eligible = int(eligible.sum())
    nan = float("nan")
    outcomes = []
    for eps in eps_list:
        ok = eligible & (distance <= float(eps))
        delta = (x_adv - x).cpu()[ok]
        shown = ok.nonzero().squeeze(1)[:gallery_size]
        gallery = gallery_items(clf, x[shown], y[shown], x_adv[shown].cpu())
        for item, j in zip(gallery, shown.tolist()):
            item.update(x_rec=x_rec[j].cpu().numpy().round(4).tolist(), rec_pred=int(rec_pred[j]),
                        latent_distance=round(float(distance[j]), 4))
        outcomes.append(Outcome(float(eps), {
            "n": n, "clean_accuracy": float((clean_pred == y.cpu()).float().mean()) if n else nan,
            "robust_accuracy": nan, "robust_accuracy_low": nan, "robust_accuracy_high": nan,
            "attack_success_rate": int(ok.sum()) / n_eligible if n_eligible else nan,
            "mean_linf": float(flat_norm(delta, "inf").mean()) if len(delta) else nan,
            "mean_l2": float(flat_norm(delta, "2").mean()) if len(delta) else nan,
            "queries": queries, "forward_passes": (clf.queries - forward) // max(1, len(eps_list)),
            "backward_passes": (getattr(clf, "backward_queries", 0) - backward) // max(1, len(eps_list)),
            "seconds": seconds / max(1, len(eps_list)),
            "mean_latent_distance": float(distance[ok].mean()) if int(ok.sum()) else nan,
            "reconstruction_accuracy": float((rec_pred == y.cpu()).float().mean()) if n else nan,
            "searched": n_eligible,
        }, gallery=gallery))
    return outcomes
