"""GAN quality measured with a reference classifier trained on real data (no Inception network, no downloads).

* mode coverage and class balance, as in the mode-collapse tables of VEEGAN (Srivastava et al. 2017,
  "VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational Learning") and Unrolled GANs
  (Metz et al. 2016, "Unrolled Generative Adversarial Networks"): the number of modes (classes) that receive
  high-quality samples, and the KL divergence between the class distribution of the generated samples (as
  labelled by the reference classifier) and that of the real data;
* a Frechet distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
  Nash Equilibrium", the FID) on the reference classifier's penultimate features instead of Inception's;
* conditional accuracy of a class-conditional generator, and :func:`corner_cases`: generated samples that a
  classifier under test gets wrong or is unsure about.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy import linalg
from torch import Tensor, nn

from ..classifier import Classifier, eval_mode
from ..errors import DataError, ModelError

log = logging.getLogger(__name__)

__all__ = [
    "penultimate_features",
    "frechet_distance",
    "class_distribution",
    "kl_divergence",
    "gan_quality",
    "corner_cases",
]


def _last_linear(clf: nn.Module) -> nn.Linear:
    last: nn.Linear | None = None
    for module in clf.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ModelError(
            f"{type(clf).__name__} has no nn.Linear layer, so it has no penultimate features; "
            "use a reference model that ends in a dense layer"
        )
    return last


@torch.no_grad()
def penultimate_features(clf: Classifier, x: Tensor, *, batch_size: int = 512) -> Tensor:
    """The input of ``clf``'s last ``nn.Linear`` layer for ``x``, flattened to ``[N, features]``.

    The last Linear is the last one in ``clf.modules()`` order; a forward hook records its input. Runs in
    eval mode, without gradients, in batches. For a ``logistic`` model these are the flattened pixels.
    Raises :class:`ModelError` if the model has no Linear layer.
    """
    layer = _last_linear(clf)
    captured: list[Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[Any, ...], _output: Any) -> None:
        captured.append(inputs[0].detach())

    device = clf.device if isinstance(clf, Classifier) else torch.device("cpu")
    feats: list[Tensor] = []
    handle = layer.register_forward_hook(hook)
    try:
        with eval_mode(clf):
            for i in range(0, len(x), batch_size):
                captured.clear()
                clf(x[i : i + batch_size].to(device))
                if not captured:
                    raise ModelError("the model's last nn.Linear layer is not used in its forward pass")
                feats.append(captured[-1].flatten(1))
    finally:
        handle.remove()
    if not feats:
        return torch.empty(0, layer.in_features, device=device)
    return torch.cat(feats)


def frechet_distance(a: Tensor, b: Tensor, *, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` and ``b`` (``[N, D]`` each).

    ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``, the FID formula of Heusel et al. 2017, in
    float64 with :func:`scipy.linalg.sqrtm`. As in the reference implementation, if the matrix square root is
    not finite, ``eps * I`` is added to both covariances and it is recomputed; its real part is used.
    Tiny negative values from round-off are clamped to 0.
    """
    fa = a.detach().flatten(1).cpu().double().numpy() if a.ndim > 1 else a.detach().cpu().double().numpy()[:, None]
    fb = b.detach().flatten(1).cpu().double().numpy() if b.ndim > 1 else b.detach().cpu().double().numpy()[:, None]
    if fa.shape[1] != fb.shape[1]:
        raise DataError(f"feature sets differ in dimension: {fa.shape[1]} vs {fb.shape[1]}")
    if len(fa) < 2 or len(fb) < 2:
        raise DataError(f"the Frechet distance needs at least 2 samples per set, got {len(fa)} and {len(fb)}")
    if not (np.isfinite(fa).all() and np.isfinite(fb).all()):
        raise DataError("feature sets contain NaN or infinite values")
    mu_a, mu_b = fa.mean(axis=0), fb.mean(axis=0)
    s_a = np.atleast_2d(np.cov(fa, rowvar=False))
    s_b = np.atleast_2d(np.cov(fb, rowvar=False))
    diff = mu_a - mu_b
    with warnings.catch_warnings():  # singular covariances (fewer samples than features) are common here
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(covmean).all():
            log.warning("frechet_distance: singular product of covariances; adding %g to the diagonals", eps)
            offset = np.eye(s_a.shape[0]) * eps
            covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag))) if covmean.size else 0.0
        if imag > 1e-3:
            log.warning("frechet_distance: matrix square root has an imaginary component %.3g; using its real part", imag)
        covmean = covmean.real
    value = float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def class_distribution(labels: Tensor, num_classes: int) -> Tensor:
    """Class frequencies of integer ``labels`` as a float64 vector of length ``num_classes`` summing to 1."""
    labels = labels.detach().reshape(-1).long().cpu()
    if len(labels) == 0:
        raise DataError("class_distribution needs at least one label")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise DataError(
            f"labels span [{int(labels.min())}, {int(labels.max())}], outside [0, {num_classes - 1}]"
        )
    counts = torch.bincount(labels, minlength=num_classes).double()
    return counts / counts.sum()


def kl_divergence(p: Tensor, q: Tensor, eps: float = 1e-10) -> float:
    """``KL(p || q) = sum_i p_i log(p_i / q_i)`` in nats, with both clamped to ``eps`` inside the logarithm.

    Terms with ``p_i = 0`` contribute 0; a ``q_i = 0`` where ``p_i > 0`` gives a large finite value
    (about ``p_i log(p_i / eps)``) instead of infinity. ``p`` and ``q`` are not renormalized.
    """
    p64, q64 = p.detach().double().cpu().reshape(-1), q.detach().double().cpu().reshape(-1)
    if p64.shape != q64.shape:
        raise DataError(f"distributions differ in length: {len(p64)} vs {len(q64)}")
    terms = p64 * (p64.clamp_min(eps).log() - q64.clamp_min(eps).log())
    return float(terms.sum())


def gan_quality(
    samples: Tensor,
    labels: Tensor,
    reference: Classifier,
    *,
    real_x: Tensor,
    real_y: Tensor,
    threshold: float = 0.9,
) -> dict[str, float | int]:
    """Quality of class-conditional GAN ``samples`` (generated for ``labels``) judged by a ``reference``
    classifier trained on real data ``(real_x, real_y)``.

    Returns:
        ``modes_captured``: number of distinct classes the reference predicts among high-quality samples,
        those it classifies with max softmax probability ``>= threshold`` (the mode count of VEEGAN,
        Srivastava et al. 2017, and Unrolled GANs, Metz et al. 2016);
        ``high_quality_fraction``: fraction of high-quality samples;
        ``class_kl``: ``KL(generated || real)`` between the class distribution of the reference's predictions
        on ``samples`` and the class distribution of ``real_y`` (the KL column of the same papers' tables);
        ``fid``: :func:`frechet_distance` (Heusel et al. 2017) between the reference's penultimate features of
        ``samples`` and of ``real_x``;
        ``conditional_accuracy``: fraction of samples the reference assigns to their conditioning label;
        ``n``: number of samples.
    """
    if len(samples) != len(labels):
        raise DataError(f"{len(samples)} samples but {len(labels)} labels; give one conditioning label per sample")
    if len(samples) < 2:
        raise DataError(f"gan_quality needs at least 2 samples, got {len(samples)}")
    if tuple(samples.shape[1:]) != tuple(real_x.shape[1:]):
        raise DataError(f"samples have shape {tuple(samples.shape[1:])} but real images {tuple(real_x.shape[1:])}")
    if not 0.0 < threshold <= 1.0:
        raise DataError(f"threshold must be in (0, 1], got {threshold}")
    lo, hi = reference.bounds
    smin, smax = float(samples.min()), float(samples.max())
    if smin < lo - 1e-4 or smax > hi + 1e-4:
        log.warning("gan_quality: samples span [%.3g, %.3g], outside the reference's bounds [%g, %g]", smin, smax, lo, hi)
    k = reference.num_classes
    probs = torch.softmax(reference.predict(samples.to(reference.device)).double(), dim=1).cpu()
    conf, pred = probs.max(dim=1)
    high = conf >= threshold
    modes = int(torch.unique(pred[high]).numel())
    class_kl = kl_divergence(class_distribution(pred, k), class_distribution(real_y, k))
    fid = frechet_distance(penultimate_features(reference, samples), penultimate_features(reference, real_x))
    cond_acc = float((pred == labels.detach().cpu().long()).double().mean())
    result: dict[str, float | int] = {
        "modes_captured": modes,
        "high_quality_fraction": float(high.double().mean()),
        "class_kl": class_kl,
        "fid": fid,
        "conditional_accuracy": cond_acc,
        "n": int(len(samples)),
    }
    log.debug("gan_quality: %s", result)
    return result


def corner_cases(clf: Classifier, samples: Tensor, labels: Tensor, *, confidence: float = 0.5) -> dict[str, Any]:
    """Generated samples with known (conditioning) ``labels`` that ``clf`` gets wrong or is unsure about.

    A sample is *wrong* if ``clf``'s prediction differs from its label and *unsure* if its max softmax
    probability is below ``confidence``. Returns ``{"wrong": bool[N], "unsure": bool[N], "rate_per_class":
    list[float], "indices": LongTensor}``: ``rate_per_class[c]`` is the fraction of class-``c`` samples that are
    wrong or unsure (NaN for a class without samples); ``indices`` are the wrong-or-unsure samples, sorted by
    ascending probability of their conditioning label (hardest first). Such samples serve as corner cases
    for debugging a classifier.
    """
    if len(samples) != len(labels):
        raise DataError(f"{len(samples)} samples but {len(labels)} labels; give one label per sample")
    k = clf.num_classes
    labels = labels.detach().cpu().long().reshape(-1)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise DataError(f"labels span [{int(labels.min())}, {int(labels.max())}], outside [0, {k - 1}]")
    probs = torch.softmax(clf.predict(samples.to(clf.device)).double(), dim=1).cpu()
    conf, pred = probs.max(dim=1) if len(probs) else (torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.long))
    wrong = pred != labels
    unsure = conf < confidence
    flagged = wrong | unsure
    rates: list[float] = []
    for c in range(k):
        mask = labels == c
        rates.append(float(flagged[mask].double().mean()) if bool(mask.any()) else math.nan)
    idx = torch.nonzero(flagged).reshape(-1)
    label_prob = probs[idx, labels[idx]]
    order = torch.sort(label_prob, stable=True).indices
    indices = idx[order]
    log.debug("corner_cases: %d of %d samples wrong or unsure", len(indices), len(labels))
    return {"wrong": wrong, "unsure": unsure, "rate_per_class": rates, "indices": indices}
