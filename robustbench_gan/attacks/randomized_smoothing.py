"""Randomized smoothing in the attack table: the certificate of the smoothed classifier at each L2 radius (Cohen,
Rosenfeld & Kolter 2019) and the empirical robust accuracy of the same smoothed classifier under SmoothAdv's PGD
(Salman et al. 2019), each a row per radius (the row's eps) scored by the smoothed classifier's own decisions.

Both evaluate ``g``, the base classifier smoothed with Gaussian noise of ``sigma`` (train the base classifier with
the ``noise-training`` defense at the same sigma, as Cohen et al. do). Their rows' clean accuracy is ``g``'s, and
they stay out of the base classifier's worst case (roles ``certified`` and ``smoothed``). The check
``certified-above-empirical`` compares the two curves (:mod:`robustbench_gan.checks.row_checks`).
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import torch
from torch import Tensor

from ..classifier import Classifier
from ..errors import ConfigError
from .base import ATTACKS, Attack, AttackResult, Goal, RunContext, check_positive, check_seed
from .engine.draws import SampleDraws, chain
from .engine.precision import full_precision

VOTE_STREAM, CLEAN_STREAM = 0x5EED, 0xC1EA


def _config(sigma: float, n0: int, n: int, alpha: float, batch_size: int):  # noqa: ANN202
    from ..certification import SmoothingConfig

    return SmoothingConfig(sigma=float(sigma), n0=int(n0), n=int(n), alpha=float(alpha), batch_size=int(batch_size))


def vote(clf: Classifier, x: Tensor, sigma: float, n: int, *, draws: SampleDraws, batch_size: int = 1000) -> Tensor:
    """The smoothed classifier's Monte-Carlo decision: the class ``clf`` gives most often to ``n`` noisy copies of
    each sample (no abstention; ties to the lower class), from the samples' own draws."""
    from ..certification.smoothing import PREDICTION, class_counts, row_keys

    counts = class_counts(clf, x, row_keys(draws, x), int(n), sigma=float(sigma), batch_size=int(batch_size),
                          stream=PREDICTION)
    return counts.argmax(1)


@ATTACKS.register("certify")
class Certify(Attack):
    """Cohen et al.'s CERTIFY at ``sigma`` (in pixel units) with ``n0`` selection and ``n`` estimation samples at
    failure probability ``alpha``; each row's eps is an L2 radius and its robust accuracy the certified accuracy
    there (correct, not abstained, radius at least eps). Defaults for the CPU: ``n0`` 64 and ``n`` 1,000 (the
    paper: 100 and 100,000; see :data:`robustbench_gan.certification.CPU_DEFAULTS` for what that costs in radius),
    ``alpha`` 0.001 as in the paper."""

    threat: ClassVar[str] = "certified"
    role: ClassVar[str] = "certified"
    transfers_by_default: ClassVar[bool] = False

    def __init__(self, *, sigma: float = 0.25, n0: int = 64, n: int = 1000, alpha: float = 0.001,
                 batch_size: int = 1000, seed: int = 0) -> None:
        super().__init__()
        _config(sigma, n0, n, alpha, batch_size)  # validates
        check_seed(seed)
        self.sigma, self.n0, self.n, self.alpha, self.batch_size, self.seed = \
            float(sigma), int(n0), int(n), float(alpha), int(batch_size), seed
        self.norm = "2"

    def check_eps(self, eps: Sequence[float]) -> None:
        if any(float(e) < 0 for e in eps):
            raise ConfigError("certify's eps are L2 radii, at least 0 (e.g. eps = [0, 0.25, 0.5, 0.75, 1.0])")

    def certificate(self, clf: Classifier, x: Tensor, goal: Goal):  # noqa: ANN201  (a certification.Certificate)
        """CERTIFY for every sample, from its own draws."""
        from ..certification import certify

        return certify(clf, x, _config(self.sigma, self.n0, self.n, self.alpha, self.batch_size),
                       draws=goal.draws(self.seed, len(x)))

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        from ..certification import ABSTAIN

        if goal.targeted:
            raise ConfigError("certify is untargeted: it certifies the smoothed classifier's own class")
        before = clf.queries
        with full_precision(x.device):  # the certificate's counts are decisions: fp32, whatever the attack precision
            cert = self.certificate(clf, x, goal)
        abstain = torch.full_like(cert.prediction, ABSTAIN)
        decided = [torch.where(cert.radius >= float(r), cert.prediction, abstain).to(x.device) for r in eps_list]
        return AttackResult([x.clone() for _ in eps_list], queries=[clf.queries - before] * len(eps_list),
                            decided=decided, clean=cert.prediction)


@ATTACKS.register("smooth-pgd")
class SmoothAdvPGD(Attack):
    """SmoothAdv's PGD (Salman et al. 2019) on the smoothed classifier at ``sigma``: ``steps`` 20 L2 steps of size
    ``2 eps / steps`` on the cross-entropy of the soft smoothed classifier over ``m`` 8 noise draws per step (their
    settings), then each example is labelled by the smoothed classifier's Monte-Carlo vote over ``n`` noisy copies
    (the clean inputs too): the empirical curve beside :class:`Certify`'s at the same radii."""

    threat: ClassVar[str] = "smoothed"  # white-box, on the smoothed classifier: neither transferred nor summarised
    role: ClassVar[str] = "smoothed"  # with the base classifier's white-box rows
    transfers_by_default: ClassVar[bool] = False

    def __init__(self, *, sigma: float = 0.25, steps: int = 20, m: int = 8, n: int = 1000, batch_size: int = 1000,
                 seed: int = 0) -> None:
        super().__init__()
        check_positive("sigma", sigma)
        for key, value in (("steps", steps), ("m", m), ("n", n), ("batch_size", batch_size)):
            check_positive(key, value, integer=True)
        check_seed(seed)
        self.sigma, self.steps, self.m, self.n, self.batch_size, self.seed = \
            float(sigma), int(steps), int(m), int(n), int(batch_size), seed
        self.norm = "2"

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        from ..certification import smooth_adv_pgd

        if goal.targeted:
            raise ConfigError("smooth-pgd is untargeted")
        decide = dict(sigma=self.sigma, n=self.n, batch_size=self.batch_size)
        with full_precision(x.device):  # the smoothed classifier's decisions in fp32
            clean = vote(clf, x, draws=goal.draws(chain(self.seed, CLEAN_STREAM), len(x)), **decide)
        examples, decided = [], []
        for e in eps_list:
            key = round(float(e) * 1e9)  # each radius its own draws, wherever it sits in the list
            if float(e) == 0:  # no attack: the clean vote itself (a second vote would differ by Monte-Carlo noise)
                examples.append(x.clone())
                decided.append(clean.to(x.device))
                continue
            adv = smooth_adv_pgd(clf, x, goal.labels, sigma=self.sigma, eps=float(e), steps=self.steps, m=self.m,
                                 draws=goal.draws(chain(self.seed, key), len(x)))
            examples.append(adv)
            with full_precision(x.device):
                decided.append(vote(clf, adv, draws=goal.draws(chain(self.seed, VOTE_STREAM, key), len(x)),
                                    **decide).to(x.device))
        return AttackResult(examples, decided=decided, clean=clean)
