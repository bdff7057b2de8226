"""The substitute attack's protocol (Papernot et al. 2017): the attacker holds out a seed set of the evaluation data,
trains its substitute from the oracle's labels of it, and the rest is attacked and scored."""
from __future__ import annotations

import time
from typing import Sequence

import torch
from torch import Tensor

from ..attacks.engine.norms import flat_norm
from ..attacks.substitute import Oracle, SubstituteAttack
from ..classifier import Classifier
from ..data import DataSpec
from ..errors import ConfigError
from .batched import BATCH_SIZE, success_of
from .dispatch import evaluates
from .guard import check_examples
from .outcome import Outcome, accuracy_metrics, clean_predictions


@evaluates(SubstituteAttack)
def evaluate_holdout(
    attack: SubstituteAttack, clf: Classifier, x: Tensor, y: Tensor, eps_list: Sequence[float], *,
    batch_size: int = BATCH_SIZE, seed: int = 0, gallery_size: int = 4, desc: str | None = None, progress: bool = True,
) -> list[Outcome]:
    """Hold out ``holdout`` samples as the attacker's initial set, attack the rest through the oracle; every
    outcome carries the substitute's training rounds."""
    n = len(x)
    if n <= attack.holdout:
        raise ConfigError(f"substitute attack: holdout ({attack.holdout}) must be smaller than the evaluation set "
                          f"({n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(x.device)
    x0, x_eval, y_eval = x[perm[: attack.holdout]], x[perm[attack.holdout :]], y[perm[attack.holdout :]]
    oracle = Oracle(clf)
    spec = DataSpec("substitute", tuple(x.shape[1:]), clf.num_classes, bounds=clf.bounds)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    # measurement only (not attack queries): the oracle's labels on the evaluation set, for agreement
    oracle_eval = clean_predictions(clf, x, batch_size=batch_size, seed=seed)[perm[attack.holdout :]]
    training = attack.train_substitute(oracle, x0, spec, x_check=x_eval, y_check=y_eval, oracle_check=oracle_eval,
                                       progress=progress)
    history = training.history
    advs = attack.examples(training.substitute, x_eval, eps_list)
    for xa, eps in zip(advs, eps_list):  # nothing is scored that breaks the threat model
        check_examples(attack, x_eval, xa, float(eps), clf.bounds, where=desc or "")
    seconds = time.perf_counter() - t0
    rounds = [h.as_dict() for h in history]
    outcomes = []
    for eps, xa in zip(eps_list, advs):
        adv_pred = clf.predict(xa).argmax(1)
        delta = (xa - x_eval).cpu()
        m = accuracy_metrics(y_eval.cpu(), oracle_eval.cpu(), adv_pred.cpu(), delta,
                             success=success_of(adv_pred, y_eval, False).cpu())
        m.update(queries=oracle.queries, forward_passes=oracle.queries, backward_passes=0,
                 seconds=seconds / len(eps_list),
                 substitute_accuracy=history[-1].substitute_accuracy, agreement=history[-1].agreement)
        outcomes.append(Outcome(float(eps), m, oracle_eval.cpu(), adv_pred.cpu(), flat_norm(delta, "inf"),
                                ids=perm[attack.holdout :].cpu(), rounds=rounds))
    return outcomes
