"""AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML): a cascade of attacks at a fixed eps, each run only on the samples every earlier one
left standing. The per-component results stay visible (each :class:`AttackResult` carries a :class:`CascadeLog`, from
which the evaluation makes a row per component: the robust accuracy after it, as AutoAttack prints it); the
cascade's own result is the per-sample worst case.

Versions, as in the reference implementation (fra31/auto-attack at a392200, ``autoattack.py``):

- ``standard``: APGD-CE, APGD-T (9 target classes), FAB-T (9 target classes), Square (5,000 queries, the
  reference's unrescaled size schedule), each with one restart and 100 iterations;
- ``plus``: APGD-CE and APGD-DLR (5 restarts each), FAB (5 restarts), Square, APGD-T and FAB-T (9 targets, one
  restart each), in that order;
- ``rand`` (randomized defenses): APGD-CE and APGD-DLR, one restart, with EOT over 20 draws per step;
- ``custom``: the components listed in ``attacks``, with the reference's restarts: 5 for APGD-CE, APGD-DLR and
  FAB, 1 for APGD-T, FAB-T and Square.

Every decision is taken in fp32 whatever the attack precision: which samples are correct to begin with (the
evaluation's clean pass), which fall to each component, APGD-T's and FAB-T's target rankings, and every component's
stops. The cascade's row reports its own per-sample decisions: a randomized classifier is judged on the draw that
decided the cascade (one forward pass after each component, as the reference does), not on a second one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor

from ..classifier import Classifier
from ..core.progress import progress_bar
from ..errors import ConfigError
from ..purified import check_adaptive, decision_classifier, detections
from .base import ATTACKS, Attack, AttackResult, Goal, RunContext, check_positive, check_seed, parse_norm
from .engine.descent import fp32_logits
from .engine.precision import full_precision

VERSIONS: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
RESTARTS: dict[str, dict[str, int]] = {  # the reference's n_restarts per version (autoattack.py, set_version)
    "standard": {},
    "plus": {"apgd-ce": 5, "apgd-dlr": 5, "fab": 5},
    "rand": {},
    "custom": {"apgd-ce": 5, "apgd-dlr": 5, "fab": 5},  # the reference's defaults when no version is set
}
COMPONENTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
RAND_EOT_SAMPLES = 20  # AutoAttack's rand version: EOT over 20 draws


@dataclass
class CascadeLog:
    """What one batch of the cascade left, per eps: which component fooled each sample (-1: none), and each
    component's queries, backward passes and seconds (the evaluation's component rows are made from these)."""

    clean_ok: Tensor
    fooled_by: list[Tensor]
    queries: list[list[int]]
    seconds: list[list[float]]
    backward: list[list[int]]


@ATTACKS.register("autoattack")
class AutoAttack(Attack):
    """AutoAttack's cascade on our native attacks: ``version`` ``"standard"``, ``"rand"`` or ``"custom"`` (with
    ``attacks``, names from :data:`COMPONENTS`), ``norm`` ``"inf"`` or ``"2"``. ``steps`` (100), ``targets`` (9) and
    ``queries`` (5,000) are the paper's; ``eot_samples`` is 20 in the rand version and 1 otherwise.

    Only samples the model classifies correctly are attacked (the others count as not robust); each component
    attacks only the samples still robust, and a success counts only when a fresh forward pass confirms it. The
    evaluation reports a row per component besides the cascade's: the robust accuracy after it (cumulative), its
    own queries and seconds.

    ``adaptive`` (a gradient view of a purifying defense: ``bpda``, ``unroll``, ``detector-aware``; see
    :mod:`robustbench_gan.purified`): APGD and FAB differentiate that view, Square queries the defended model, and
    success is always judged on the defended model, an example its detector rejects fooling nobody. The standard
    AutoAttack number (:attr:`is_standard`) is the naive version; an adaptive cascade is reported beside it.
    """

    role = "ensemble"
    transfers_by_default: ClassVar[bool] = False  # stops at the first success: barely adversarial examples

    def __init__(self, *, norm: str = "inf", version: str = "standard", attacks: Sequence[str] | None = None,
                 steps: int = 100, targets: int = 9, queries: int = 5000, eot_samples: int | None = None,
                 seed: int = 0, adaptive: str = "none") -> None:
        super().__init__()
        self.adaptive = check_adaptive(adaptive)
        if version not in (*VERSIONS, "custom"):
            raise ConfigError(f"version must be one of standard, plus, rand, custom, got {version!r}")
        if version == "custom":
            if not attacks or isinstance(attacks, str):
                raise ConfigError("version = 'custom' needs attacks = [...], a list of " + ", ".join(COMPONENTS))
            unknown = [a for a in attacks if a not in COMPONENTS]
            if unknown:
                raise ConfigError(f"unknown autoattack component {unknown[0]!r}; choose from {', '.join(COMPONENTS)}")
        elif attacks is not None:
            raise ConfigError(f"attacks is only for version = 'custom' (version {version!r} fixes its attacks)")
        for key, value in (("steps", steps), ("targets", targets), ("queries", queries)):
            check_positive(key, value, integer=True)
        if eot_samples is not None:
            check_positive("eot_samples", eot_samples, integer=True)
        check_seed(seed)
        self.norm, self.version, self.seed = parse_norm(norm), version, seed
        self.attacks = list(attacks) if version == "custom" and attacks else None
        self.steps, self.targets, self.queries, self.eot_samples = int(steps), int(targets), int(queries), eot_samples

    @property
    def is_standard(self) -> bool:
        """AutoAttack's standard version at its full budget (100 steps, 9 targets, 5,000 queries, no EOT), its
        passes in fp32 as the reference runs them: the only configuration whose number may be reported as
        "AutoAttack"."""
        return self.reference_version == "standard"

    @property
    def reference_version(self) -> str | None:
        """The reference version this cascade is, at its full budget and in fp32: ``"standard"``, ``"plus"`` or
        ``"rand"`` (APGD-CE and APGD-DLR, 100 steps, EOT over 20 draws: the number RobustBench lists for randomized
        defenses); None for anything else (a reduced budget, ``custom``, an adaptive view, low precision)."""
        if self.adaptive != "none" or self.precision != "fp32" or self.steps != 100:
            return None
        full = (self.targets, self.queries) == (9, 5000)
        if self.version in ("standard", "plus") and full and self.eot_samples in (None, 1):
            return self.version
        if self.version == "rand" and self.eot_samples in (None, RAND_EOT_SAMPLES):
            return "rand"
        return None

    def class_count_problem(self, num_classes: int) -> str | None:
        for label, attack in self.components():
            problem = attack.class_count_problem(num_classes)
            if problem:
                return (f"its component {label}: {problem}; or use version = \"custom\" with attacks that fit, "
                        "e.g. [\"apgd-ce\", \"square\"]")
        return None

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(self.attacks) if self.attacks else VERSIONS[self.version]

    def components(self) -> list[tuple[str, Attack]]:
        """The cascade's attacks, in order, built with the version's settings."""
        from .apgd import APGD, APGDT
        from .square import Square

        eot = self.eot_samples or (RAND_EOT_SAMPLES if self.version == "rand" else 1)
        common = {"norm": self.norm, "steps": self.steps, "seed": self.seed}
        restarts = RESTARTS[self.version]
        built: dict[str, Any] = {
            "apgd-ce": lambda: APGD(loss="ce", eot_samples=eot, restarts=restarts.get("apgd-ce", 1), **common),
            "apgd-dlr": lambda: APGD(loss="dlr", eot_samples=eot, restarts=restarts.get("apgd-dlr", 1), **common),
            "apgd-t": lambda: APGDT(targets=self.targets, eot_samples=eot, **common),
            "fab": lambda: ATTACKS.build("fab", restarts=restarts.get("fab", 1), **common),
            "fab-t": lambda: ATTACKS.build("fab-t", targets=self.targets, **common),
            "square": lambda: Square(norm=self.norm, queries=self.queries, seed=self.seed, rescale=False),
        }
        out = [(label, built[label]()) for label in self.component_names]
        for _, attack in out:  # the gradient components differentiate the cascade's view (their rows say so)
            if attack.threat == "white-box":
                attack.adaptive = self.adaptive
        return out

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """The cascade at each eps; every eps starts again from the clean samples. ``clf`` may be a gradient view
        (``adaptive``): the gradient components differentiate it, Square scores the defended model itself, and
        every decision is the defended model's (a rejected example fools nobody). The components' passes take
        ``context.batch_size`` samples at a time (default: the batch given); ``context.clean_pred`` (the row's
        clean pass) decides which samples are correct to begin with."""
        if goal.targeted:
            raise ConfigError("autoattack is untargeted (its APGD-T and FAB-T choose their own target classes)")
        components = self.components()
        for _, attack in components:  # the cascade's precision for the components' own passes
            attack.precision = self.precision
        real = decision_classifier(clf)
        out: list[Tensor] = []
        queries_per_eps: list[int] = []
        decided_pred: list[Tensor] = []
        log = CascadeLog(torch.zeros(0, dtype=torch.bool), [], [], [], [])
        bar = progress_bar(total=len(components) * len(eps_list), desc=context.desc, leave=False) \
            if context.desc is not None else None
        chunk = context.batch_size or max(len(x), 1)
        given = context.clean_pred if context.clean_pred is not None and len(context.clean_pred) == len(x) else None
        for eps in eps_list:
            start = real.queries  # the evaluation's clean pass where there is one: the rows share one clean draw
            clean = given if given is not None else fp32_logits(real, x).argmax(1)
            clean_ok = (clean == goal.labels).cpu()
            adv, fooled_by = x.clone(), torch.full((len(x),), -1, dtype=torch.long)
            decided = clean.clone()  # each sample's label as the cascade last saw it (fp32, one draw per check)
            queries, seconds, backward = [], [], []
            for k, (label, attack) in enumerate(components):
                standing = (clean_ok & (fooled_by < 0)).nonzero().squeeze(1)
                t0, q0, b0 = time.perf_counter(), real.queries, getattr(real, "backward_queries", 0)
                # the samples still standing, in batches of ``chunk`` (as the reference re-batches its robust
                # samples before each attack): few survivors make one short batch, not one per evaluation batch
                for part in standing.split(chunk) if eps > 0 and len(standing) else ():
                    idx = part.to(x.device)
                    victim = real if attack.threat == "black-box" else clf
                    if hasattr(attack, "batch_targets"):  # APGD-T's and FAB-T's later targets side by side, within
                        attack.batch_targets = max(1, chunk // len(part))  # a batch's rows
                    xa = attack.perturb(victim, x[idx], goal.subset(idx), eps=float(eps))  # ids: its draws
                    with full_precision(x.device):  # the decision that counts: fp32
                        pred = real.predict(xa).argmax(1)
                        rejected = detections(real, xa)  # a detector's rejection defends the sample (as in the
                    fooled = (pred != goal.labels[idx]).cpu()  # report): the later components must still try it
                    if rejected is not None:
                        fooled &= ~rejected
                    # what the row reports: the fooling label, or the true one (standing, or rejected by a
                    # detector: the returned example is then the clean input, which the model labels correctly)
                    decided[idx] = torch.where(fooled.to(x.device), pred, goal.labels[idx])
                    adv[idx[fooled.to(x.device)]] = xa[fooled.to(x.device)]
                    fooled_by[part[fooled]] = k
                if x.is_cuda:
                    torch.cuda.synchronize()
                queries.append(real.queries - q0)
                backward.append(getattr(real, "backward_queries", 0) - b0)
                seconds.append(time.perf_counter() - t0)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"eps {eps:g}: {int((clean_ok & (fooled_by < 0)).sum())}/{len(x)} robust "
                                        f"after {label}")
            out.append(adv)
            decided_pred.append(decided)
            queries_per_eps.append(real.queries - start)
            log.clean_ok = clean_ok
            log.fooled_by.append(fooled_by)
            log.queries.append(queries)
            log.seconds.append(seconds)
            log.backward.append(backward)
        if bar is not None:
            bar.close()
        return AttackResult(out, queries=queries_per_eps, decided=decided_pred, log=log)
