"""Stacked MNIST: the 1,000-mode benchmark of mode collapse, and counting the modes a generator captures.

The benchmark of VEEGAN (Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using Implicit
Variational Learning") as PacGAN runs it (Lin et al. 2018, "PacGAN: The power of two samples in generative
adversarial networks", Table 2; code: fjxmlzn/PacGAN, ``stacked_MNIST_experiments/VEEGAN_experiment/model.py``):

* data: 128,000 images, each three MNIST digits drawn uniformly at random with replacement and stacked as the
  R, G, B channels (28x28x3, pixels / 255); the mode of an image is its digit triple ``(d0, d1, d2)``, i.e. the
  id ``100 * d0 + 10 * d1 + d2`` in 0..999;
* evaluation: 26,000 generated samples; each channel is labelled separately by a trained MNIST classifier
  (argmax, no confidence threshold); "modes captured" is the number of distinct triples among the samples and
  "KL" is ``KL(p || uniform)`` with ``p`` the empirical distribution over the 1,000 modes:
  ``sum_{p_i > 0} p_i * log(p_i * 1000)`` (natural log). Published: DCGAN 99 modes / KL 3.40, PacDCGAN2
  1000.0 / 0.06.

Two deliberate differences from PacGAN's script: the digits the stacks are drawn from are split into train and
test (PacGAN draws from all 70,000 MNIST digits), so the mode classifier is measured on digits it never saw and
test stacks use held-out digits only; and without MNIST files the CPU stand-in is scikit-learn's 8x8 digits
upsampled (:func:`digit_source` with ``root=None``). Nothing here downloads anything.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import Classifier, eval_mode
from ..classifier_training import TrainConfig
from ..data.digits import load_digits
from ..data.idx import load_mnist
from ..data.spec import Data, DataSpec, validate
from ..errors import ConfigError, DataError
from ..zoo import build_model

log = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "DIGITS",
    "PACGAN_TRAIN_SIZE",
    "PACGAN_EVAL_SAMPLES",
    "stack_digits",
    "digit_source",
    "stacked_data",
    "mode_statistics",
    "ModeCounter",
]

DIGITS = 10
"""Classes of one channel (the digits 0..9)."""
MODES = DIGITS**3
"""Modes of Stacked MNIST: one per digit triple."""
PACGAN_TRAIN_SIZE = 128_000
"""Stacked training images in PacGAN's VEEGAN experiment (``num_training_sample``)."""
PACGAN_EVAL_SAMPLES = 26_000
"""Generated samples PacGAN counts modes on (``num_test_sample``)."""

_PLACE = torch.tensor([100, 10, 1])


def _positive_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{what} must be a positive integer, got {v!r}")
    return v


def _check_digits(x: Tensor, y: Tensor, source: str) -> None:
    """Raise DataError unless ``x`` is ``[N, 1, H, W]`` single-channel digits with labels ``y`` in 0..9."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise DataError(f"{source}: digits and labels must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"{source}: digits have shape {tuple(x.shape)}, expected single-channel [N, 1, H, W]; "
                        "pass one digit per image (x[:, :1] or x.unsqueeze(1))")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{source}: {len(x)} digits but labels of shape {tuple(y.shape)}; give one label per digit")
    if len(x) == 0:
        raise DataError(f"{source}: no digits to stack; give at least one digit image")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(f"{source}: labels must be integer digits 0..9, got dtype {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= DIGITS:
        raise DataError(f"{source}: labels span [{int(y.min())}, {int(y.max())}], outside 0..9; "
                        "stacking needs digit labels 0..9")


def stack_digits(x: Tensor, y: Tensor, n: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` stacked images ``[n, 3, H, W]`` (channel ``c`` is the ``c``-th digit drawn) and their mode ids ``[n]``
    (``100 * y0 + 10 * y1 + y2``), the digits drawn uniformly with replacement from ``x`` ``[N, 1, H, W]`` with
    labels ``y`` (0..9) by a CPU generator seeded with ``seed``."""
    _check_digits(x, y, "stack_digits")
    n = _positive_int(n, "n")
    idx = torch.randint(0, len(x), (n, 3), generator=torch.Generator().manual_seed(int(seed)))
    images = x[idx.to(x.device)].squeeze(2)  # [n, 3, 1, H, W] -> [n, 3, H, W]
    ids = (y.cpu().to(torch.int64)[idx] * _PLACE).sum(1)
    return images, ids


def _resize(x: Tensor, size: int) -> Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


def digit_source(root: str | Path | None, *, size: int = 28, seed: int = 0) -> Data:
    """The single digits (``[N, 1, size, size]`` in [0, 1], labels 0..9) that stacks are drawn from, split into
    train/test with ``seed``.

    ``root``: a folder of MNIST IDX files read by :func:`~robustbench_gan.data.idx.load_mnist` (a folder with only
    the t10k pair, the 10,000 test digits, is split 75% / 25%; with both splits present, those are used);
    ``None``: the CPU stand-in, scikit-learn's 8x8 digits bilinearly upsampled. Images not already
    ``size`` x ``size`` are resized bilinearly. Never downloads.
    """
    size = _positive_int(size, "size")
    if size < 4:
        raise ConfigError(f"size must be at least 4 pixels, got {size}; use 28 (MNIST) or 16 for quick runs")
    if root is None:
        base = load_digits(seed=seed)
        name = "digits"
    else:
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise DataError(f"MNIST folder '{folder}' does not exist; point root at a folder holding the IDX files "
                            "(e.g. t10k-images-idx3-ubyte.gz) or pass root=None for the digits stand-in")
        base = load_mnist(root=str(folder), download=False, seed=seed)
        name = "mnist"
    spec = DataSpec(f"{name}-{size}", (1, size, size), DIGITS, bounds=base.spec.bounds)
    data = Data(_resize(base.x_train, size), base.y_train, _resize(base.x_test, size), base.y_test, spec,
                test_ids=base.test_ids)
    log.info("%s: %d train / %d test digits at %dx%d", spec.name, len(data.y_train), len(data.y_test), size, size)
    return data


def _check_digit_data(digits: Data, what: str) -> None:
    if not isinstance(digits, Data):
        raise DataError(f"{what} needs the Data of single digits (see digit_source), got {type(digits).__name__}")
    if digits.spec.shape[0] != 1 or digits.spec.num_classes != DIGITS:
        raise DataError(f"{what} needs single-channel digits with 10 classes, got {digits.spec.name} of shape "
                        f"{digits.spec.shape} with {digits.spec.num_classes} classes; build them with digit_source")


def stacked_data(digits: Data, n_train: int, n_test: int, *, seed: int) -> Data:
    """Stacked MNIST as :class:`Data`: ``n_train`` images stacked from the digits' train split and ``n_test``
    from their test split (drawn with seeds ``seed`` and ``seed + 1``); images ``(3, H, W)`` within the digits'
    bounds, labels the mode ids 0..999 (class names "000".."999")."""
    _check_digit_data(digits, "stacked_data")
    xtr, ytr = stack_digits(digits.x_train, digits.y_train, n_train, seed=seed)
    xte, yte = stack_digits(digits.x_test, digits.y_test, n_test, seed=seed + 1)
    _, h, w = digits.spec.shape
    spec = DataSpec(f"stacked-{digits.spec.name}", (3, h, w), MODES,
                    class_names=tuple(f"{i:03d}" for i in range(MODES)), bounds=digits.spec.bounds)
    data = Data(xtr, ytr, xte, yte, spec)
    validate(data)
    return data


def mode_statistics(mode_ids: Tensor) -> dict[str, Any]:
    """Mode coverage of samples with mode ids ``mode_ids`` (0..999), as PacGAN counts it: ``modes_captured``
    (distinct ids), ``kl_to_uniform`` (``sum_{p_i > 0} p_i * log(p_i * 1000)``, natural log), ``n`` and
    ``histogram`` (a length-1000 LongTensor of counts)."""
    if not isinstance(mode_ids, Tensor):
        raise DataError(f"mode ids must be a tensor, got {type(mode_ids).__name__}")
    if mode_ids.ndim != 1 or len(mode_ids) == 0:
        raise DataError(f"mode ids must be a non-empty 1-D tensor, got shape {tuple(mode_ids.shape)}")
    if mode_ids.is_floating_point() or mode_ids.is_complex() or mode_ids.dtype == torch.bool:
        raise DataError(f"mode ids must be integers 0..{MODES - 1}, got dtype {mode_ids.dtype}")
    ids = mode_ids.detach().cpu().to(torch.int64)
    if int(ids.min()) < 0 or int(ids.max()) >= MODES:
        raise DataError(f"mode ids span [{int(ids.min())}, {int(ids.max())}], outside 0..{MODES - 1}; "
                        "a mode id is 100*d0 + 10*d1 + d2 of three digits")
    hist = torch.bincount(ids, minlength=MODES)
    n = len(ids)
    p = hist[hist > 0].to(torch.float64) / n
    kl = float((p * torch.log(p * MODES)).sum())
    return {"modes_captured": int((hist > 0).sum()), "kl_to_uniform": max(kl, 0.0), "n": n, "histogram": hist}


class ModeCounter:
    """Labels each channel of stacked images with a digit classifier and counts the modes (digit triples).

    ``classifier`` maps single-channel digits ``[b, 1, H, W]`` to 10 logits; ``accuracy`` is its held-out digit
    accuracy when known (set by :meth:`train`)."""

    def __init__(self, classifier: nn.Module, *, accuracy: float | None = None, batch_size: int = 1024) -> None:
        if not isinstance(classifier, nn.Module):
            raise ConfigError(f"ModeCounter needs a digit classifier (an nn.Module), got {type(classifier).__name__}")
        self.classifier = classifier
        self.accuracy = accuracy
        self.batch_size = _positive_int(batch_size, "batch_size")

    @classmethod
    def train(
        cls, digits: Data, *, seed: int = 0, epochs: int = 10, device: str = "cpu", progress: bool = False
    ) -> "ModeCounter":
        """Train the zoo's ``cnn`` on the digits' train split with the toolkit's standard training (Adam,
        ``epochs`` epochs) and measure its accuracy on their test split."""
        from ..defenses.base import NoDefense  # the defenses package imports the GAN package: import at call time

        _check_digit_data(digits, "ModeCounter.train")
        clf = NoDefense(name="stacked-mnist-counter").fit(
            lambda: build_model("cnn", digits.spec), digits, train=TrainConfig(epochs=_positive_int(epochs, "epochs")),
            seed=seed, device=device, progress=progress,
        )
        counter = cls(clf)
        counter.accuracy = float((counter.digits(digits.x_test) == digits.y_test.cpu()).float().mean())
        log.info("stacked MNIST mode counter (cnn on %s, %d epochs): held-out digit accuracy %.4f on %d digits",
                 digits.spec.name, epochs, counter.accuracy, len(digits.y_test))
        return counter

    def _device(self) -> torch.device:
        if isinstance(self.classifier, Classifier):
            return self.classifier.device
        for t in self.classifier.parameters():
            return t.device
        return torch.device("cpu")

    def digits(self, x: Tensor) -> Tensor:
        """The classifier's digit (argmax) for each single-channel image ``[b, 1, H, W]``."""
        device = self._device()
        out = []
        with torch.inference_mode(), eval_mode(self.classifier):
            for i in range(0, len(x), self.batch_size):
                out.append(self.classifier(x[i : i + self.batch_size].to(device)).argmax(1).cpu())
        return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)

    def modes(self, images: Tensor) -> Tensor:
        """Mode ids ``[n]`` (``100 * d0 + 10 * d1 + d2``) of stacked images ``[n, 3, H, W]``, each channel
        labelled separately."""
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise DataError(f"stacked images must have shape [n, 3, H, W] (one digit per channel), got {shape}")
        n, _, h, w = images.shape
        labels = self.digits(images.reshape(n * 3, 1, h, w))
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= DIGITS):
            raise DataError("the digit classifier predicts classes outside 0..9; give it exactly 10 outputs")
        return (labels.view(n, 3) * _PLACE).sum(1)

    def count(self, images: Tensor) -> dict[str, Any]:
        """:func:`mode_statistics` of the modes of ``images`` ``[n, 3, H, W]``."""
        stats = mode_statistics(self.modes(images))
        log.info("stacked MNIST: %d modes captured of %d, KL to uniform %.4f (%d samples)",
                 stats["modes_captured"], MODES, stats["kl_to_uniform"], stats["n"])
        return stats
