"""The :class:`Classifier` wrapper: attacks always work in pixel space, the classifier owns normalization."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from .errors import ModelError


class Classifier(nn.Module):
    """Wrap a model returning logits with pixel ``bounds`` and optional per-channel ``mean``/``std``.

    ``forward`` takes images in pixel space (within ``bounds``) and returns logits ``[batch, num_classes]``.
    ``input_bounds`` is the range the model itself was trained on when it differs from the data's (a model
    trained on 0..255 pixels evaluated on [0, 1] images): inputs are mapped linearly from ``bounds`` to it before
    normalization, so attacks and eps stay in the data's pixel units. ``queries`` counts every input the
    wrapper has labelled or scored (each forward pass, with or without gradients), ``backward_queries`` every input
    a backward pass went through (AttackBench's accounting: forward and backward passes per sample).
    """

    autograd_in_forward: bool = False
    """True when ``forward`` runs autograd itself (an inner optimisation): clean passes then use ``no_grad``."""

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ModelError(f"num_classes must be at least 2, got {num_classes}")
        lo, hi = float(bounds[0]), float(bounds[1])
        if not lo < hi:
            raise ModelError(f"bounds must be (low, high) with low < high, got {tuple(bounds)}")
        if (mean is None) != (std is None):
            raise ModelError("give both mean and std for normalization, or neither")
        self.model = model
        self.num_classes = int(num_classes)
        self.bounds = (lo, hi)
        self.input_bounds = None if input_bounds is None else (float(input_bounds[0]), float(input_bounds[1]))
        if self.input_bounds is not None and not self.input_bounds[0] < self.input_bounds[1]:
            raise ModelError(f"input_bounds must be (low, high) with low < high, got {self.input_bounds}")
        self.queries = 0
        self.backward_queries = 0
        self.normalized = mean is not None
        if mean is not None and std is not None:
            if any(s <= 0 for s in std):
                raise ModelError(f"std must be positive, got {tuple(std)}")
            self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        self.queries += int(x.shape[0]) if x.ndim else 1
        if self.input_bounds is not None and self.input_bounds != self.bounds:
            (lo, hi), (a, b) = self.bounds, self.input_bounds
            x = a + (x - lo) * ((b - a) / (hi - lo))
        if self.normalized:
            x = (x - self.mean) / self.std
        return count_backward(self, self.model(x), x)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def predict(self, x: Tensor, *, batch_size: int = 512) -> Tensor:
        """Logits for ``x`` in batches, in eval mode, without gradients: in ``torch.inference_mode`` (no autograd
        bookkeeping at all), or under ``no_grad`` for classifiers whose forward needs autograd inside
        (``autograd_in_forward``: Defense-GAN optimises its latent code). The logits are ordinary tensors."""
        clean_pass = torch.no_grad() if self.autograd_in_forward else torch.inference_mode()
        with clean_pass, eval_mode(self):
            outs = [self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
            out = torch.cat(outs) if outs else torch.empty(0, self.num_classes, device=x.device)
        return out.clone() if out.is_inference() else out  # usable outside inference mode (as labels, say)

    def check(self, x: Tensor) -> None:
        """Raise :class:`ModelError` unless the model maps ``x`` to finite logits ``[batch, num_classes]``."""
        try:
            with torch.no_grad(), eval_mode(self):
                out = self(x[:4])
        except Exception as exc:  # a user's forward may raise anything; report it in one line
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"the model ({type(self.model).__name__}) fails on inputs of shape {tuple(x.shape[1:])}: "
                f"{type(exc).__name__}: {first}; make its input layer match the data"
            ) from exc
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[1] != self.num_classes:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ModelError(
                f"the model returns {shape} for a batch of {len(x[:4])}, expected [batch, {self.num_classes}] logits; "
                "make its last layer output one logit per class"
            )
        if not torch.isfinite(out).all():
            raise ModelError(
                f"the model ({type(self.model).__name__}) returns NaN or infinite logits on clean inputs; "
                "check its forward and its weights"
            )


def count_backward(owner: Classifier, out: Tensor, x: Tensor) -> Tensor:
    """``out``, with a hook that adds the batch's size to ``owner.backward_queries`` each time a backward pass goes
    through it (nothing when ``out`` needs no gradient)."""
    if isinstance(out, Tensor) and out.requires_grad:
        n = int(x.shape[0]) if x.ndim else 1

        def counted(grad: Tensor) -> None:
            owner.backward_queries = getattr(owner, "backward_queries", 0) + n

        out.register_hook(counted)
    return out


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on parameters: attacks need input gradients only."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        with eval_mode(module):
            yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)
