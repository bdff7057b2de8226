"""Common corruptions as a threat (Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR): one corruption type per attack, its severities (1-5) as the row's eps.

No adversary: each sample's corrupted image comes from its own seeded draws (:mod:`robustbench_gan.corruptions`),
or from a stored set in the CIFAR-10-C layout (``folder``), whose images are those of the evaluated samples in order.
The rows say how often a sample stays correct (``robust_accuracy``); the report's corruption section gives plain
accuracy on the corrupted images, their mean over types and severities, and the corruption error relative to a
baseline classifier (mCE), computed from the per-sample table (:mod:`robustbench_gan.corruption_tables`).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar, Sequence

import torch
from torch import Tensor

from ..classifier import Classifier
from ..errors import ConfigError
from .base import ATTACKS, Attack, AttackResult, Goal, RunContext, check_seed
from .engine.draws import chain


@functools.lru_cache(maxsize=4)
def _stored(folder: str):  # noqa: ANN202  (a StoredCorruptions, loaded once per folder and process)
    from ..corruptions import load_corruption_folder

    return load_corruption_folder(folder)


@ATTACKS.register("corruption")
class Corruption(Attack):
    """The corruption ``corruption`` (one of :data:`robustbench_gan.corruptions.CORRUPTIONS`) at each severity of
    the row's eps (integers 1 to 5; 0 gives the clean image), seeded per sample by ``seed`` and the run's seed; or, with ``folder``, the
    images of a stored set (``<corruption>.npy`` with the 5 severities stacked and ``labels.npy``: CIFAR-10-C,
    CIFAR-100-C), sample ``i`` of the evaluated set being image ``i`` of each severity block (evaluate the test split
    in order; its labels are checked)."""

    threat: ClassVar[str] = "corruption"
    role: ClassVar[str] = "corruption"
    eps_kind: ClassVar[str] = "severity"
    transfers_by_default: ClassVar[bool] = False

    def __init__(self, *, corruption: str = "gaussian_noise", folder: str | None = None, seed: int = 0) -> None:
        super().__init__()
        from ..corruptions.recipes import check_corruption_name

        check_seed(seed)
        if folder is None:
            check_corruption_name(corruption)
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(f"corruption folder {folder} does not exist; point folder at a CIFAR-10-C-style folder "
                              "of <corruption>.npy files and labels.npy")
        self.corruption, self.folder, self.seed = str(corruption), None if folder is None else str(folder), seed
        self.norm = "corruption"

    def label(self) -> str:
        return self.corruption if self.folder is None else f"stored-{self.corruption}"

    def check_eps(self, eps: Sequence[float]) -> None:
        bad = [e for e in eps if float(e) not in (0, 1, 2, 3, 4, 5)]
        if bad:
            raise ConfigError(f"a corruption's eps are its severities, integers from 1 to 5 (0: the clean image); got "
                              f"{bad[0]!r} (e.g. eps = [1, 2, 3, 4, 5])")

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """The corrupted images at each severity (no classifier pass: no queries)."""
        self.check_eps(eps_list)
        examples = [x.clone() if int(s) == 0 else self._corrupted(clf, x, goal, int(s)) for s in eps_list]
        return AttackResult(examples, queries=[0] * len(eps_list))

    def _corrupted(self, clf: Classifier, x: Tensor, goal: Goal, severity: int) -> Tensor:
        lo, hi = clf.bounds
        if self.folder is None:
            from ..corruptions import corrupt

            draws = goal.draws(chain(self.seed, severity), len(x))
            return corrupt(x, self.corruption, severity, draws=draws, bounds=(lo, hi))
        stored = _stored(self.folder)
        ids = (goal.ids if goal.ids is not None else torch.arange(len(x))).cpu()
        if len(ids) and int(ids.max()) >= stored.n:
            raise ConfigError(f"{self.folder} holds {stored.n} images per severity but sample {int(ids.max())} is "
                              "evaluated; evaluate at most that many test images, in order")
        labels = stored.labels[ids]
        if not torch.equal(labels, goal.labels.cpu().to(labels.dtype)) and not goal.targeted:
            wrong = int((labels != goal.labels.cpu()).sum())
            raise ConfigError(f"{self.folder}: {wrong} of {len(ids)} stored labels differ from the evaluated samples'; "
                              "a stored corruption set holds the test split in order: evaluate that split from its "
                              "first image (no random subset)")
        images = stored.images(self.corruption, severity, ids)
        if tuple(images.shape[1:]) != tuple(x.shape[1:]):
            raise ConfigError(f"{self.folder}/{self.corruption}.npy holds images of shape {tuple(images.shape[1:])} "
                              f"but the evaluated images are {tuple(x.shape[1:])}")
        return (images.to(x.device, x.dtype) * (hi - lo) + lo).clamp(lo, hi)
