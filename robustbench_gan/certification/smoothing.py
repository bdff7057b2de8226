"""Certified L2 robustness by randomized smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified Adversarial
Robustness via Randomized Smoothing", ICML).

The smoothed classifier ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``, is robust within the L2 radius
``sigma * Phi^-1(pA)`` around ``x`` whenever the top class has probability ``pA >= 1/2``. :func:`certify` is their
CERTIFY (``n0`` noisy copies select the class, ``n`` fresh copies estimate a one-sided Clopper-Pearson lower bound
on ``pA`` at ``alpha``; below 1/2 it abstains), :func:`predict` their PREDICT (two-sided binomial test of the two top
counts at ``alpha``).

Noise is added in the classifier's input space, the pixel space within ``bounds`` (before its normalization), and
is NOT clipped to ``bounds``, as in Cohen et al.: ``sigma`` and the radius are in the data's pixel units, the units
of an attack's eps. Every noise draw comes from :class:`SampleDraws` keyed by the sample's id, so a sample's
certificate does not depend on the batch it is certified in (the noise does depend on ``batch_size``, which sets
how many copies one draw holds).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks.engine.draws import SampleDraws
from ..classifier import Classifier, count_backward, eval_mode
from ..core.validation import check_positive
from ..errors import ConfigError

log = logging.getLogger(__name__)

ABSTAIN = -1
"""The prediction of a sample :func:`certify` or :func:`predict` abstains on."""

SELECTION, ESTIMATION, PREDICTION = 1, 2, 3  # noise streams: the stages never share a draw


@dataclass(frozen=True)
class SmoothingConfig:
    """Monte-Carlo settings of CERTIFY and PREDICT; the defaults are Cohen et al.'s (sec. 3.2 and 4).

    ``sigma`` is the noise standard deviation in the classifier's pixel units (on [0, 1] data a fraction of the
    pixel range; Cohen et al. certify CIFAR-10 at 0.12, 0.25, 0.5 and 1.0). ``batch_size`` bounds the noisy copies
    in one forward pass.
    """

    sigma: float = 0.25
    n0: int = 100  # selection samples (Cohen et al.)
    n: int = 100_000  # estimation samples (Cohen et al.)
    alpha: float = 0.001  # failure probability (Cohen et al.)
    batch_size: int = 1000

    def __post_init__(self) -> None:
        check_positive("sigma", self.sigma)
        for name in ("n0", "n", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1:
            raise ConfigError(f"alpha must be a probability in (0, 1), got {a!r}")

    @property
    def max_radius(self) -> float:
        """The largest radius ``n`` copies can certify (all of them vote for the class): ``sigma *
        Phi^-1(alpha^(1/n))``."""
        return self.sigma * _norm_ppf(self.alpha ** (1.0 / self.n))


CPU_DEFAULTS = SmoothingConfig(n0=64, n=1000)
"""For CPU runs: 100x fewer estimation samples than the paper. Its bounds are looser: at alpha = 0.001 the
largest certifiable radius falls from 3.81 sigma (n = 100,000) to 2.46 sigma, and a sample with a true pA of 0.9
certifies 1.11 sigma instead of 1.26 sigma (the lower bound of 900 / 1000 is 0.867, of 90,000 / 100,000 0.897)."""


@dataclass
class Certificate:
    """Per-sample results of :func:`certify`, CPU tensors."""

    prediction: Tensor
    """int64, the smoothed classifier's class, :data:`ABSTAIN` (-1) where it abstained."""
    radius: Tensor
    """float64, the certified L2 radius ``sigma * Phi^-1(p_lower)``, 0 where it abstained."""
    p_lower: Tensor
    """float64, the one-sided (1 - alpha) Clopper-Pearson lower bound on the selected class's probability."""
    counts: Tensor
    """int64 ``[n_samples, num_classes]``, the estimation counts (``n`` noisy copies per sample)."""


def _norm_ppf(p: float | np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(p)


def clopper_pearson_lower(successes: Tensor | np.ndarray | int, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower confidence bound on a binomial proportion, 0 for no success
    (what Cohen et al. compute as ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``)."""
    from scipy.stats import beta

    k = np.asarray(successes.cpu() if isinstance(successes, Tensor) else successes, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = beta.ppf(alpha, np.maximum(k, 1), n - k + 1)
    return np.where(k > 0, lower, 0.0)


def row_keys(draws: SampleDraws, x: Tensor) -> Tensor:
    """One 60-bit key per sample from the caller's draws (one draw of their sequence, so two calls differ): the
    ids of the noise generators below, each with its own counter, so a sample's noise is the same in any batch."""
    if len(draws.ids) != len(x):
        raise ConfigError(f"draws has {len(draws.ids)} sample ids for {len(x)} samples; give one id per sample")
    parts = draws.randint(0, 2**20, (3,))
    return parts[:, 0] | (parts[:, 1] << 20) | (parts[:, 2] << 40)


_row_keys = row_keys  # the name callers used first


def class_counts(clf: Classifier, x: Tensor, keys: Tensor, num: int, *, sigma: float, batch_size: int,
                 stream: int) -> Tensor:
    """How often ``clf`` labels each class over ``num`` noisy copies ``x + N(0, sigma^2)`` of each sample (int64
    ``[len(x), num_classes]`` on the CPU). Each sample's noise comes in draws of ``min(num, batch_size)`` copies
    from a generator keyed by its key and ``stream``; a forward pass takes at most ``batch_size`` copies (several
    samples' when ``num`` is small)."""
    device = clf.device
    chunk = min(num, batch_size)
    rows = max(1, batch_size // chunk)
    counts = torch.zeros(len(x), clf.num_classes, dtype=torch.int64)
    no_grad = torch.no_grad() if clf.autograd_in_forward else torch.inference_mode()  # as Classifier.predict
    with no_grad, eval_mode(clf):
        for r0 in range(0, len(x), rows):
            xs = x[r0 : r0 + rows].to(device)
            noise = SampleDraws(0, keys[r0 : r0 + rows], stream=stream)  # a fresh counter per group: batch-free
            for start in range(0, num, chunk):
                m = min(chunk, num - start)
                eps = noise.randn((m, *x.shape[1:]), device=device, dtype=xs.dtype)
                labels = clf((xs[:, None] + sigma * eps).flatten(0, 1)).argmax(1).view(len(xs), m)
                counts[r0 : r0 + len(xs)] += F.one_hot(labels, clf.num_classes).sum(1).cpu()
    return counts


def predict(clf: Classifier, x: Tensor, config: SmoothingConfig, *, draws: SampleDraws) -> Tensor:
    """Cohen et al.'s PREDICT: the top class of ``n`` noisy copies, or :data:`ABSTAIN` unless a two-sided binomial
    test of the two top counts rejects a tie at ``alpha`` (int64 CPU tensor). The returned class is ``g(x)`` with
    probability at least ``1 - alpha`` (their Theorem 2)."""
    from scipy.stats import binomtest

    keys = row_keys(draws, x)
    counts = class_counts(clf, x, keys, config.n, sigma=config.sigma, batch_size=config.batch_size,
                          stream=PREDICTION)
    top = counts.topk(2, dim=1)
    out = torch.full((len(x),), ABSTAIN, dtype=torch.int64)
    for i, ((n_a, n_b), (c_a, _)) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
        if binomtest(n_a, n_a + n_b, 0.5).pvalue <= config.alpha:
            out[i] = c_a
    return out


def certify(clf: Classifier, x: Tensor, config: SmoothingConfig, *, draws: SampleDraws) -> Certificate:
    """Cohen et al.'s CERTIFY for every sample of ``x``: the class ``cA`` most frequent among ``n0`` noisy copies,
    ``p_lower`` the Clopper-Pearson lower bound on ``P(f(x + e) = cA)`` from ``n`` fresh copies, and radius
    ``sigma * Phi^-1(p_lower)`` if ``p_lower >= 1/2``, else an abstention. With probability at least ``1 - alpha``
    a returned class is ``g``'s and ``g`` is constant within the radius (their Theorem 1)."""
    keys = row_keys(draws, x)
    common = dict(sigma=config.sigma, batch_size=config.batch_size)
    selected = class_counts(clf, x, keys, config.n0, stream=SELECTION, **common).argmax(1)
    counts = class_counts(clf, x, keys, config.n, stream=ESTIMATION, **common)
    n_a = counts.gather(1, selected[:, None]).squeeze(1)
    p_lower = clopper_pearson_lower(n_a, config.n, config.alpha)
    certified = p_lower >= 0.5
    radius = np.where(certified, config.sigma * _norm_ppf(np.where(certified, p_lower, 0.5)), 0.0)
    prediction = torch.where(torch.from_numpy(certified), selected, torch.full_like(selected, ABSTAIN))
    cert = Certificate(prediction, torch.from_numpy(radius.astype(np.float64)), torch.from_numpy(p_lower), counts)
    log.debug("certified %d samples at sigma %g (n0 %d, n %d, alpha %g): %.1f%% abstained", len(x), config.sigma,
              config.n0, config.n, config.alpha, 100 * abstain_rate(cert))
    return cert


def certified_accuracy(cert: Certificate, y: Tensor, radii: Sequence[float]) -> list[float]:
    """Cohen et al.'s approximate certified test accuracy at each radius ``r``: the fraction of samples that
    CERTIFY classifies correctly (an abstention is never correct) with a radius ``R >= r``."""
    if len(cert.prediction) == 0:
        return [math.nan for _ in radii]
    correct = cert.prediction == y.cpu().to(torch.int64)
    return [float((correct & (cert.radius >= float(r))).double().mean()) for r in radii]


def abstain_rate(cert: Certificate) -> float:
    """The fraction of samples CERTIFY abstained on."""
    return float((cert.prediction == ABSTAIN).double().mean()) if len(cert.prediction) else math.nan


def soft_smoothed_log_probs(clf: Classifier, x: Tensor, noise: Tensor) -> Tensor:
    """``log mean_j softmax(clf(x + noise[:, j]))``: the soft smoothed classifier's log-probabilities from the
    noise ``[len(x), m, *x.shape[1:]]`` (already scaled by sigma), differentiable in ``x`` (Salman et al. 2019's
    smoothed soft classifier; the log is clamped at 1e-20 as in their code)."""
    m = noise.shape[1]
    logits = clf((x[:, None] + noise).flatten(0, 1))
    probs = F.softmax(logits.float(), dim=1).view(len(x), m, -1).mean(1)
    return probs.clamp_min(1e-20).log()


class SmoothedClassifier(Classifier):
    """The smoothed classifier as a :class:`Classifier` attacks can use: each forward returns the soft smoothed
    log-probabilities (:func:`soft_smoothed_log_probs`, valid logits) over ``m`` fresh noisy copies drawn from
    torch's global generator, so it is a randomized model: attack it with EOT (``eot_samples``), or with
    :func:`~.smooth_attack.smooth_adv_pgd`. The hard, certified ``g`` is :func:`predict` / :func:`certify` on
    ``base``."""

    def __init__(self, base: Classifier, sigma: float, *, m: int = 8) -> None:
        super().__init__(base, num_classes=base.num_classes, bounds=base.bounds)
        check_positive("sigma", sigma)
        check_positive("m", m, integer=True)
        self.sigma = float(sigma)
        self.m = int(m)

    def forward(self, x: Tensor) -> Tensor:
        self.queries += int(x.shape[0])
        noise = self.sigma * torch.randn((len(x), self.m, *x.shape[1:]), device=x.device, dtype=x.dtype)
        return count_backward(self, soft_smoothed_log_probs(self.model, x, noise), x)
