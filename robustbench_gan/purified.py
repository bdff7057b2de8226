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
  version of its optimisation).

Decisions that count (the accuracies in the report) always come from the real classifier, never from a view.
"""
from __future__ import annotations

import re
from typing import Callable, ClassVar

from torch import Tensor, nn

from .classifier import Classifier
from .errors import ConfigError

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
    differentiable: ClassVar[bool] = True
    """Whether autograd through ``forward`` gives a useful gradient (False for an inner optimisation whose
    result is detached, as in Defense-GAN): the sanity checks treat naive attacks on it as masked."""

    def view(self, mode: str) -> Callable[[Tensor], Tensor]:
        """The differentiable stand-in of ``forward`` for ``mode`` (one of :attr:`views`)."""
        raise ConfigError(f"{type(self).__name__} has no gradient view {mode!r}")


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
        return self.inner(self.purifier(x))

    def purify(self, x: Tensor) -> Tensor:
        return self.purifier(x)


class _GradientView(Classifier):
    """What an adaptive attack differentiates: same forward values as ``target`` (for ``bpda``) or the
    purifier's stand-in, with gradients through ``transform``. Queries count on ``target``."""

    autograd_in_forward = True

    def __init__(self, target: PurifiedClassifier, transform: Callable[[Tensor], Tensor], mode: str) -> None:
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
        return self.target.inner(self._transform(x))


def bpda(purifier: Purifier) -> Callable[[Tensor], Tensor]:
    """Identity in the backward pass, the purifier's output in the forward pass (Athalye et al. 2018, sec. 4.1)."""
    return lambda x: x + (purifier(x) - x).detach()


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
    offered = ", ".join(("none", "bpda", *clf.purifier.views))
    raise ConfigError(f"adaptive = {mode!r} is not offered by {type(clf.purifier).__name__}; use one of {offered}")


def naive_gradients_masked(clf: Classifier) -> bool:
    """True when naive white-box gradients of ``clf`` cannot be trusted: it purifies its input with a purifier
    whose forward is not usefully differentiable."""
    return isinstance(clf, PurifiedClassifier) and not clf.purifier.differentiable
