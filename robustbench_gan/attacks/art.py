"""Run any evasion attack of the Adversarial Robustness Toolbox (ART) by name: ``art:ClassName``.

This adapter is the only place where tensors become NumPy arrays. Attacks with an ``eps`` budget are run once
per eps. Minimum-norm attacks without a budget (DeepFool, Carlini-Wagner, HopSkipJump, ...) run once; at each
eps a sample counts as attacked only when its perturbation's norm is within eps (the example is replaced by the
clean input otherwise), the usual way of reporting minimum-norm attacks at a fixed threat model.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .engine.norms import tolerance
from ..classifier import Classifier, eval_mode
from ..core.validation import check_params
from ..errors import ConfigError
from .base import ATTACKS, Attack, AttackResult, Goal, RunContext, check_target, flat_norm, parse_norm

log = logging.getLogger(__name__)

BLACK_BOX = {"HopSkipJump", "SquareAttack", "BoundaryAttack", "SimBA", "ZooAttack", "GeoDA", "SignOPTAttack",
             "PixelAttack", "ThresholdAttack"}
L2_BY_DEFAULT = {"CarliniL2Method", "DeepFool", "ElasticNet", "BoundaryAttack", "SimBA", "HopSkipJump", "NewtonFool"}
SINGLE_STEP = {"FastGradientMethod"}


def art_attack_class(class_name: str) -> type:
    from art.attacks import evasion

    cls = getattr(evasion, class_name, None)
    if not isinstance(cls, type):
        import difflib

        names = [n for n in dir(evasion) if n[0].isupper()]
        close = difflib.get_close_matches(class_name, names, n=2)
        hint = f"did you mean {' or '.join('art:' + c for c in close)}? " if close else ""
        raise ConfigError(f"ART has no evasion attack {class_name!r}; {hint}see art.attacks.evasion")
    return cls


def art_estimator(clf: Classifier, input_shape: Sequence[int]) -> Any:
    """Wrap ``clf`` as an ART PyTorchClassifier that counts the inputs of every prediction query."""
    from art.estimators.classification import PyTorchClassifier

    class CountingClassifier(PyTorchClassifier):
        queries = 0

        def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kw: Any) -> np.ndarray:
            self.queries += len(x)
            x = np.asarray(x, dtype=np.float32)  # some attacks (HopSkipJump) query in float64
            return super().predict(x, batch_size=batch_size, training_mode=training_mode, **kw)

    return CountingClassifier(
        model=clf,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=clf.num_classes,
        clip_values=clf.bounds,
        device_type="gpu" if clf.device.type == "cuda" else "cpu",
    )


class ArtAttack(Attack):
    """An ART evasion attack; ``params`` go to the ART class as given (see its documentation)."""

    def __init__(
        self,
        class_name: str,
        *,
        norm: str | None = None,
        targeted: bool = False,
        target_mode: str = "random",
        target: int = 0,
        **params: Any,
    ) -> None:
        super().__init__()
        self.cls = art_attack_class(class_name)
        self.class_name = class_name
        self.kind = f"art:{class_name}"  # type: ignore[misc]
        self.threat = "black-box" if class_name in BLACK_BOX else "white-box"  # type: ignore[misc]
        accepted = set(inspect.signature(self.cls).parameters) - {"estimator", "classifier"}
        check_params(f"ART {class_name}", params, sorted(accepted | {"norm", "targeted", "target_mode", "target"}))
        if "eps" in params:
            raise ConfigError("give eps as the attack's eps list, not as an ART parameter")
        check_target(targeted, target_mode, target)
        if targeted and "targeted" not in accepted:
            raise ConfigError(f"ART {class_name} cannot run targeted")
        self.accepted = accepted
        self.has_budget = "eps" in accepted
        self.role = (  # type: ignore[misc]
            "black-box" if class_name in BLACK_BOX else "single-step" if class_name in SINGLE_STEP
            else "iterative" if self.has_budget else "minimum-norm")
        self.norm = parse_norm(norm) if norm is not None else ("2" if class_name in L2_BY_DEFAULT else "inf")
        self.targeted = targeted
        self.target_mode = target_mode if targeted else ""
        self.target = target
        self.art_params = params

    def params(self) -> dict[str, Any]:
        return {"class_name": self.class_name, "norm": self.norm, "targeted": self.targeted,
                "target_mode": self.target_mode, "target": self.target, **self.art_params}

    def _build(self, estimator: Any, eps: float | None, batch: int = 128) -> Any:
        kw = dict(self.art_params)
        if "batch_size" in self.accepted:  # ART's default is often 1: one sample at a time
            kw.setdefault("batch_size", max(1, int(batch)))
        if "norm" in self.accepted:
            kw.setdefault("norm", np.inf if self.norm == "inf" else 2)
        if "targeted" in self.accepted:
            kw["targeted"] = self.targeted
        if "verbose" in self.accepted:
            kw.setdefault("verbose", False)
        if eps is not None:
            kw["eps"] = eps
            if "eps_step" in self.accepted and "eps_step" not in kw and "max_iter" in self.accepted:
                kw["eps_step"] = eps / 4  # iterative attacks: ART's default 0.1 would ignore the budget
        key = "estimator" if "estimator" in inspect.signature(self.cls).parameters else "classifier"
        try:
            return self.cls(**{key: estimator}, **kw)
        except (TypeError, ValueError) as exc:  # ART checks its parameters when the attack is built
            text = str(exc).strip()
            first = text.splitlines()[0][:200] if text else type(exc).__name__
            raise ConfigError(
                f"ART {self.class_name} rejected its parameters {self.art_params!r} ({first}); "
                "fix them (see the ART documentation of that class)"
            ) from exc

    def _generate(self, attack: Any, x: Tensor, goal: Goal) -> Tensor:
        x_np = x.detach().cpu().numpy().astype(np.float32)
        y_np = goal.labels.detach().cpu().numpy()
        y_onehot = np.eye(attack.estimator.nb_classes, dtype=np.float32)[y_np]
        try:
            adv = attack.generate(x=x_np, y=y_onehot)
        except ModuleNotFoundError as exc:  # an optional dependency of that ART attack (AutoAttack: multiprocess)
            package = (exc.name or str(exc)).split(".")[0]
            raise ConfigError(f"ART {self.class_name} needs the Python package {package!r}, which is not installed; "
                              f"run `pip install {package}` or choose another attack") from None
        return torch.as_tensor(adv, dtype=x.dtype, device=x.device)

    def run(self, clf: Classifier, x: Tensor, goal: Goal, eps_list: Sequence[float], *,
            context: RunContext = RunContext()) -> AttackResult:
        """A budgeted attack runs once per eps; a minimum-norm one (no budget) once for every eps, each eps keeping
        the examples within it, and its result carries the examples themselves (``found``)."""
        est = art_estimator(clf, x.shape[1:])
        out: list[Tensor] = []
        queries: list[int] = []
        found = None
        with eval_mode(clf):
            if self.has_budget:
                for e in eps_list:
                    before = est.queries
                    out.append(x.clone() if e == 0 else self._generate(self._build(est, float(e), len(x)), x, goal))
                    queries.append(int(est.queries - before))
            else:
                adv = self._generate(self._build(est, None, len(x)), x, goal)
                found = adv.clamp(*clf.bounds)  # the minimum-norm examples themselves (see evaluate)
                dist = flat_norm(adv - x, self.norm)
                for e in eps_list:
                    keep = (dist <= float(e) + tolerance(float(e), clf.bounds)).view(-1, *([1] * (x.ndim - 1)))
                    out.append(torch.where(keep, adv, x))
                queries = [int(est.queries)] * len(eps_list)  # one run serves every eps
        lo, hi = clf.bounds
        return AttackResult([o.clamp(lo, hi) for o in out], queries=queries, found=found)


def make_art_attack(class_name: str, **params: Any) -> ArtAttack:
    """The ``art:`` prefix of the attack registry: ``make_attack("art:DeepFool", ...)``."""
    return ArtAttack(class_name, **params)


ATTACKS.register_prefix("art:", make_art_attack)
