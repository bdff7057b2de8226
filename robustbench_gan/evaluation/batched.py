"""The batched evaluation loop every perturbation attack shares: goals per batch, the attack's
:class:`~robustbench_gan.attacks.base.AttackResult` for every eps, the guard, predictions, metrics, per-sample data
and a few gallery examples."""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..attacks.base import Attack, AttackResult, RunContext
from ..attacks.engine.norms import flat_norm
from ..attacks.engine.precision import attack_precision
from ..core.progress import progress_bar
from ..classifier import Classifier, frozen
from ..purified import detections, gradient_view
from .guard import check_examples
from .outcome import Outcome, accuracy_metrics, clean_predictions

BATCH_SIZE = 256
"""The evaluation's default batch size (a suite's ``[evaluation] batch_size`` or the device's choice replaces it)."""


def split(total: int, i: int, parts: int) -> int:
    """Part ``i`` of ``total`` split into ``parts`` as evenly as integers allow (the first ones one larger)."""
    return total // parts + (i < total % parts)


def evaluate_batched(
    attack: Attack, clf: Classifier, x: Tensor, y: Tensor, eps_list: Sequence[float], *,
    batch_size: int = BATCH_SIZE, seed: int = 0, gallery_size: int = 4, desc: str | None = None,
    progress: bool = True, attack_batch: int | None = None, attack_desc: str | None = None,
    on_batch: Callable[[AttackResult], None] | None = None,
) -> list[Outcome]:
    """The evaluation of a fixed-budget attack: batches of ``batch_size``, goal per batch seeded ``seed + batch``.
    ``attack_batch`` (default ``batch_size``) is how many samples the attack gets at once, for an attack that
    batches its own passes (AutoAttack re-batches the samples still standing before each component; it is told
    ``batch_size`` and ``attack_desc``, its own bar's label); every other pass here runs in batches of
    ``batch_size``. ``on_batch`` receives each batch's :class:`AttackResult` (an evaluator that reads the
    attack's log).

    ``queries`` counts the inputs the classifier labelled or scored for the attack (white-box: every forward pass
    of its gradient steps; black-box: as the attack counts them). A minimum-norm attack (role ``minimum-norm``,
    thresholded at each eps) keeps the distances it found: the per-sample ``perturbation`` is that distance in its
    norm (inf where it failed), ``mean_linf``/``mean_l2`` average the examples it found, and the gallery shows them.
    """
    eps_list = [float(e) for e in eps_list]
    minimum_norm = attack.role == "minimum-norm"
    found_x: list[Tensor] = []
    found_ok: list[Tensor] = []
    clean_pred = clean_predictions(clf, x, batch_size=batch_size, seed=seed)  # one clean draw per run
    clean_detected = detections(clf, x, batch_size=batch_size)  # a defense with a detector: its clean rejections
    adv_preds: list[list[Tensor]] = [[] for _ in eps_list]
    success: list[list[Tensor]] = [[] for _ in eps_list]
    deltas: list[list[Tensor]] = [[] for _ in eps_list]
    detected: list[list[Tensor]] = [[] for _ in eps_list]
    gallery_x: list[Tensor | None] = [None for _ in eps_list]
    seconds = 0.0
    own_queries: list[int] | None = [0 for _ in eps_list]  # an attack that counts its queries per eps says so
    forward = backward = 0  # the classifier's passes over all batches, split across eps at the end
    step = attack_batch or batch_size
    batches = range(0, len(x), step)
    for bi, start in enumerate(progress_bar(batches, desc=desc or attack.kind, enabled=progress, leave=False)):
        xb, yb = x[start : start + step], y[start : start + step]
        goal = attack.make_goal(clf, xb, yb, seed=seed + bi)
        # the row's clean labels (AutoAttack skips the samples they get wrong)
        context = RunContext(clean_pred=clean_pred[start : start + step], batch_size=batch_size, desc=attack_desc)
        scored, back = clf.queries, getattr(clf, "backward_queries", 0)
        t0 = time.perf_counter()
        # an adaptive attack differentiates a view of a purifying defense; decisions use the real classifier.
        # Parameters are frozen: the attack needs input gradients only. Decisions below are taken in fp32.
        view = gradient_view(clf, getattr(attack, "adaptive", "none"))
        with frozen(view), attack_precision(xb.device, getattr(attack, "precision", "fp32")):
            result = attack.run(view, xb, goal, eps_list, context=context)
        advs = result.examples
        if on_batch is not None:
            on_batch(result)
        if xb.is_cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        scored, back = clf.queries - scored, getattr(clf, "backward_queries", 0) - back
        for i, (xa, eps) in enumerate(zip(advs, eps_list)):  # nothing is scored that breaks the threat model
            check_examples(attack, xb, xa, eps, clf.bounds, where=desc or "")
        per_eps = result.queries
        decided = result.decided  # a self-deciding attack's own per-sample decisions (AutoAttack's cascade)
        forward, backward = forward + scored, backward + back
        if own_queries is not None and per_eps is not None and len(per_eps) == len(eps_list):
            own_queries = [q + n for q, n in zip(own_queries, per_eps)]
        else:  # white-box: every forward pass counts
            own_queries = None
        if minimum_norm:
            found = advs[-1] if result.found is None else result.found
            pred = clf.predict(found, batch_size=batch_size).argmax(1)
            found_x.append(found.detach().cpu())
            found_ok.append(success_of(pred, goal.labels, goal.targeted).cpu())
        for i, xa in enumerate(advs):
            pred = decided[i] if decided is not None else \
                torch.softmax(clf.predict(xa, batch_size=batch_size), 1).argmax(1)
            adv_preds[i].append(pred)
            success[i].append(success_of(pred, goal.labels, goal.targeted))
            deltas[i].append((xa - xb).cpu())
            if clean_detected is not None:
                detected[i].append(detections(clf, xa, batch_size=batch_size))
            if bi == 0:
                gallery_x[i] = xa[:gallery_size].detach().cpu()
    distance = found_delta = None
    if minimum_norm:
        found_delta = torch.cat(found_x) - x.cpu()
        ok = torch.cat(found_ok)
        distance = torch.where(ok, flat_norm(found_delta, attack.norm), torch.tensor(float("inf")))
        found_delta = found_delta[ok]
    outcomes = []
    for i, eps in enumerate(eps_list):
        adv_pred = torch.cat(adv_preds[i])
        delta = torch.cat(deltas[i])
        adv_detected = torch.cat(detected[i]) if clean_detected is not None else None
        m = accuracy_metrics(y.cpu(), clean_pred.cpu(), adv_pred.cpu(), delta, success=torch.cat(success[i]).cpu(),
                             detected=adv_detected, detected_clean=clean_detected)
        # passes shared across eps (FGSM's one gradient) split evenly, once for the whole set: the same split
        # whatever the batches
        m["forward_passes"], m["backward_passes"] = split(forward, i, len(eps_list)), split(backward, i, len(eps_list))
        m["queries"] = own_queries[i] if own_queries is not None else m["forward_passes"]
        m["seconds"] = seconds / len(eps_list)
        shown = gallery_x[i]
        norms = flat_norm(delta, attack.norm)
        if found_delta is not None and distance is not None:
            nan = float("nan")
            m["mean_linf"] = float(flat_norm(found_delta, "inf").mean()) if len(found_delta) else nan
            m["mean_l2"] = float(flat_norm(found_delta, "2").mean()) if len(found_delta) else nan
            norms, shown = distance, found_x[0][:gallery_size]
        gallery = gallery_items(clf, x[:gallery_size], y[:gallery_size], shown) if shown is not None else []
        outcomes.append(Outcome(eps, m, clean_pred.cpu(), adv_pred.cpu(), norms, gallery, detected=adv_detected))
    return outcomes


def gallery_items(clf: Classifier, x: Tensor, y: Tensor, x_adv: Tensor) -> list[dict[str, Any]]:
    """A few (original, adversarial) pairs with predicted labels and confidences, as nested lists."""
    p_clean = torch.softmax(clf.predict(x), 1).cpu()
    p_adv = torch.softmax(clf.predict(x_adv.to(x.device)), 1).cpu()
    items = []
    for i in range(len(x)):
        items.append({
            "label": int(y[i]),
            "clean_pred": int(p_clean[i].argmax()),
            "clean_conf": round(float(p_clean[i].max()), 4),
            "adv_pred": int(p_adv[i].argmax()),
            "adv_conf": round(float(p_adv[i].max()), 4),
            "x": x[i].cpu().numpy().round(4).tolist(),
            "x_adv": x_adv[i].numpy().round(4).tolist(),
        })
    return items


def success_of(pred: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """Per sample: the prediction is the target (targeted) or differs from the true label (untargeted); the one
    success test of every evaluation (:func:`~robustbench_gan.attacks.base.is_success` on labels)."""
    return pred == labels if targeted else pred != labels
