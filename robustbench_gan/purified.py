"""Classifiers that transform their input before classifying it (input purification: Defense-GAN's projection
onto a generator's range, MagNet's autoencoder reformer), and the gradient views adaptive attacks take of them.

A :class:`Purifier` maps pixel-space inputs to pixel-space inputs. :class:`PurifiedClassifier` is a
:class:`~robustbench_gan.classifier.Classifier` whose forward is ``inner(purifier(x))``: every attack and
evaluation sees the defended model as one classifier. What an attack *differentiates* is a separate choice, the
``adaptive`` mode of the gradient attacks (:func:`gradient_view`):

- ``none``: the naive white-box attack differentiates the forward pass as it is. Against a purifier whose
  output does not depend on ``x`` through autograd (Defense-GAN's projection is an inner optimisation), the
  gradient is zero or meaningless: the defense *looks* robust (gradient masking).
- ``bpda``: Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner 2018, sec. 4.1): the forward
  pass is the real one, the backward pass treats the purifier as the identity (``x + (p(x) - x).detach()``).
- any other mode a purifier lists in :attr:`Purifier.views` (``unroll`` for Defense-GAN: a short, differentiable
  version of its optimisation; ``detector-aware`` for MagNet).

A purifier may also *detect*: :meth:`Purifier.detect` rejects inputs (MagNet's reconstruction-error detector).
A rejected adversarial input counts as defended: a sample is robust when its adversarial input is rejected or
classified correctly, and an attack succeeds only on inputs that are not rejected and misclassified
(:func:`detections` is what the evaluation asks). A view that knows the detector returns :class:`Rejecting`
from its transform; the gradient view then appends one column to its logits, how far the input is over the
detector's threshold, which the attack loop subtracts from its loss and requires to be <= 0 for a success
(the detector as an extra term of the loss, Carlini & Wagner 2017, "Adversarial Examples Are Not Easily
Detected").

Decisions that count (the accuracies in the report) always come from the real classifier, never from a view.
"""
from __future__ import annotations

import logging

import re
from typing import Callable, ClassVar, NamedTuple, Union

import torch
from torch import Tensor, nn

from .classifier import Classifier, count_backward
from .errors import ConfigError

log = logging.getLogger(__name__)

ADAPTIVE = re.compile(r"^[a-z][a-z0-9-]*$")
"""Shape of an ``adaptive`` mode name; which modes exist depends on the purifier (``none``/``bpda``: always)."""


def check_adaptive(value: object) -> str:
    """Validate an attack's ``adaptive`` option (a mode name; whether the defended model offers it is checked
    when the attack runs)."""
    if not isinstance(value, str) or not ADAPTIVE.match(value):
        raise ConfigError(f"adaptive must be a mode name such as 'none', 'bpda' or 'unroll', got {value!r}")
    return value


class Purifier(nn.Module):
    """``forward(x)``: the purified input, same shape and pixel bounds as ``x``.

    ``views`` names the extra gradient views the purifier offers adaptive attacks (beyond ``none`` and
    ``bpda``); :meth:`view` returns the differentiable stand-in for one of them."""

    views: ClassVar[tuple[str, ...]] = ()
    detects: ClassVar[bool] = False
    """Whether :meth:`detect` rejects inputs (then the evaluation reports the ``detected`` columns)."""
    differentiable: ClassVar[bool] = True
    """Whether autograd through ``forward`` gives a useful gradient (False for an inner optimisation whose
    result is detached, as in Defense-GAN): the sanity checks treat naive attacks on it as masked."""

    def view(self, mode: str) -> Transform:
        """The differentiable stand-in of ``forward`` for ``mode`` (one of :attr:`views`)."""
        raise ConfigError(f"{type(self).__name__} has no gradient view {mode!r}")

    def detect(self, x: Tensor) -> Tensor | None:
        """Boolean per sample: True where the purifier rejects ``x``; ``None`` (the default): no detector."""
        return None


class Rejecting(NamedTuple):
    """What a detector-aware view's transform returns: the purified input and, per sample, how far ``x`` is over
    the detector's threshold (differentiable; > 0 where the detector rejects it)."""

    x: Tensor
    over: Tensor


Transform = Callable[[Tensor], Union[Tensor, Rejecting]]


class GenerativePurifier(Purifier):
    """A purifier whose output is a generator's image ``generator(encode(x))`` (Defense-GAN): attacks that search
    the generator's latent space (Athalye et al. 2018, sec. 5.3.1) use :attr:`generator` and :meth:`encode`."""

    generator: nn.Module

    def encode(self, x: Tensor) -> Tensor:
        """The latent codes ``z`` of ``x`` (detached, ``[N, generator.z_dim]``) whose images are the purified ``x``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(self.encode(x)).detach()


class PurifiedClassifier(Classifier):
    """``inner(purifier(x))``: the defended classifier. ``inner`` keeps bounds and normalization; the counter of
    queries is this wrapper's."""

    autograd_in_forward = True  # a purifier may optimise (Defense-GAN): clean passes run under no_grad

    def __init__(self, inner: Classifier, purifier: Purifier) -> None:
        super().__init__(nn.Identity(), num_classes=inner.num_classes, bounds=inner.bounds)
        self.inner = inner
        self.purifier = purifier

    def forward(self, x: Tensor) -> Tensor:
        self.queries += int(x.shape[0]) if x.ndim else 1
        return count_backward(self, self.inner(self.purifier(x)), x)

    def purify(self, x: Tensor) -> Tensor:
        return self.purifier(x)

    def detect(self, x: Tensor) -> Tensor | None:
        """The purifier's rejections of ``x`` (see :meth:`Purifier.detect`)."""
        return self.purifier.detect(x)


class _GradientView(Classifier):
    """What an adaptive attack differentiates: same forward values as ``target`` (for ``bpda``) or the
    purifier's stand-in, with gradients through ``transform``. Queries count on ``target``. A transform that
    returns :class:`Rejecting` adds a last logit column, the amount over the detector's threshold (see
    :func:`split_rejection`)."""

    autograd_in_forward = True

    def __init__(self, target: PurifiedClassifier, transform: Transform, mode: str) -> None:
        super().__init__(nn.Identity(), num_classes=target.num_classes, bounds=target.bounds)
        self._target = [target]  # not a submodule: the view owns no state of its own
        self._transform = transform
        self.mode = mode

    @property
    def target(self) -> PurifiedClassifier:
        return self._target[0]

    @property
    def device(self):  # type: ignore[override]
        return self.target.device

    def train(self, mode: bool = True) -> _GradientView:  # eval_mode/frozen on the view reach the real modules
        self.target.train(mode)
        self.training = mode
        return self

    def parameters(self, recurse: bool = True):  # type: ignore[override]
        return self.target.parameters(recurse)

    def forward(self, x: Tensor) -> Tensor:
        self.target.queries += int(x.shape[0]) if x.ndim else 1
        out = self._transform(x)
        if isinstance(out, Rejecting):
            logits = torch.cat([self.target.inner(out.x), out.over.to(x.dtype)[:, None]], 1)
        else:
            logits = self.target.inner(out)
        return count_backward(self.target, logits, x)


def split_rejection(clf: Classifier, logits: Tensor) -> tuple[Tensor, Tensor | None]:
    """The class logits and, from a detector-aware view (one column more than ``clf.num_classes``), the amount
    over the detector's threshold per sample (> 0: rejected); ``None`` for any other classifier."""
    if logits.ndim == 2 and logits.shape[1] == clf.num_classes + 1:
        return logits[:, :-1], logits[:, -1]
    return logits, None


@torch.no_grad()
def detections(clf: Classifier, x: Tensor, *, batch_size: int = 512) -> Tensor | None:
    """Boolean per sample on the CPU: True where ``clf``'s detector rejects ``x``; ``None`` when ``clf`` has no
    detector (the evaluation then reports no detection columns)."""
    if not isinstance(clf, PurifiedClassifier) or not clf.purifier.detects:
        return None
    was = clf.training
    clf.eval()
    try:
        parts = [clf.detect(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        clf.train(was)
    return torch.cat([p.cpu() for p in parts]) if parts else torch.zeros(0, dtype=torch.bool)


def bpda(purifier: Purifier) -> Transform:
    """Identity in the backward pass, the purifier's output in the forward pass (Athalye et al. 2018, sec. 4.1)."""
    return lambda x: x + (purifier(x) - x).detach()


def decision_classifier(clf: Classifier) -> Classifier:
    """The classifier whose decisions count: the defended model behind a gradient view, else ``clf`` itself."""
    return clf.target if isinstance(clf, _GradientView) else clf


def gradient_view(clf: Classifier, mode: str) -> Classifier:
    """The classifier an attack with ``adaptive = mode`` differentiates. ``none`` and any mode on a classifier
    without a purifier: ``clf`` itself (there is nothing to adapt to)."""
    check_adaptive(mode)
    if mode == "none" or not isinstance(clf, PurifiedClassifier):
        return clf
    if mode == "bpda":
        return _GradientView(clf, bpda(clf.purifier), mode)
    if mode in clf.purifier.views:
        return _GradientView(clf, clf.purifier.view(mode), mode)
    known = known_views()
    if mode not in known:
        raise ConfigError(f"adaptive = {mode!r} is not a gradient view of any defense; use one of "
                          f"{', '.join(sorted(known))}")
    # one suite attacks every defense with every attack: a view another defense offers falls back to BPDA here
    if (type(clf.purifier), mode) not in _warned:
        _warned.add((type(clf.purifier), mode))
        log.warning("adaptive = %r is not offered by %s (it offers %s): BPDA is used instead", mode,
                    type(clf.purifier).__name__, ", ".join(("bpda", *clf.purifier.views)))
    return _GradientView(clf, bpda(clf.purifier), "bpda")


_warned: set[tuple[type, str]] = set()


def known_views() -> set[str]:
    """Every gradient view some purifier class offers (its class-level ``views``), with ``none`` and ``bpda``."""
    found = {"none", "bpda"}
    stack = list(Purifier.__subclasses__())
    while stack:
        cls = stack.pop()
        found.update(cls.__dict__.get("views", ()))
        stack.extend(cls.__subclasses__())
    return found


def naive_gradients_masked(clf: Classifier) -> bool:
    """True when naive white-box gradients of ``clf`` cannot be trusted: it purifies its input with a purifier
    whose forward is not usefully differentiable."""
    return isinstance(clf, PurifiedClassifier) and not clf.purifier.differentiable
