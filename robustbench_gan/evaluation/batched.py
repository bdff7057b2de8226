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
from .outcome import Outcome, clean_predictions, outcome_from_parts
from .parts import SampleParts

BATCH_SIZE = 256
"""The evaluation's default batch size (a suite's ``[evaluation] batch_size`` or the device's choice replaces it)."""


def evaluate_batched(
    attack: Attack, clf: Classifier, x: Tensor, y: Tensor, eps_list: Sequence[float], *,
    batch_size: int = BATCH_SIZE, seed: int = 0, gallery_size: int = 4, desc: str | None = None,
    progress: bool = True, attack_batch: int | None = None, attack_desc: str | None = None,
    on_batch: Callable[[AttackResult], None] | None = None, ids: Tensor | None = None,
) -> list[Outcome]:
    """The evaluation of a fixed-budget attack, in batches of ``batch_size``. ``ids``: each sample's id in the
    evaluated set (default: its position), the key of every random draw made for it (with the run's ``seed``): a
    shard of a larger set passes its samples' ids and gets their per-sample results. ``attack_batch`` (default
    ``batch_size``) is how many samples the attack gets at once, for an attack that batches its own passes
    (AutoAttack re-batches the samples still standing before each component; it is told ``batch_size`` and
    ``attack_desc``, its own bar's label); every other pass here runs in batches of ``batch_size``. ``on_batch``
    receives each batch's :class:`AttackResult` (an evaluator that reads the attack's log). The gallery shows the
    samples whose id is below ``gallery_size``.

    ``queries`` counts the inputs the classifier labelled or scored for the attack (white-box: every forward pass
    of its gradient steps; black-box: as the attack counts them). A minimum-norm attack (role ``minimum-norm``,
    thresholded at each eps) keeps the distances it found: the per-sample ``perturbation`` is that distance in its
    norm (inf where it failed), ``mean_linf``/``mean_l2`` average the examples it found, and the gallery shows them.
    Every row's numbers come from its :class:`~.parts.SampleParts` (kept on the outcome, for merging shards).
    """
    eps_list = [float(e) for e in eps_list]
    ids = torch.arange(len(x)) if ids is None else ids.cpu()
    shown_ids = int((ids < gallery_size).sum())  # the gallery's samples are the first ids of the evaluated set
    minimum_norm = attack.role == "minimum-norm"
    found_x: list[Tensor] = []
    found_ok: list[Tensor] = []
    clean_pred = clean_predictions(clf, x, batch_size=batch_size, seed=seed)  # one clean draw per run
    clean_detected = detections(clf, x, batch_size=batch_size)  # a defense with a detector: its clean rejections
    adv_preds: list[list[Tensor]] = [[] for _ in eps_list]
    success: list[list[Tensor]] = [[] for _ in eps_list]
    norms: list[list[Tensor]] = [[] for _ in eps_list]  # per sample: Linf, L2
    detected: list[list[Tensor]] = [[] for _ in eps_list]
    gallery_x: list[list[Tensor]] = [[] for _ in eps_list]
    seconds = 0.0
    own_queries: list[int] | None = [0 for _ in eps_list]  # an attack that counts its queries per eps says so
    forward = backward = 0  # the classifier's passes over all batches, split across eps at the end
    step = attack_batch or batch_size
    batches = range(0, len(x), step)
    for start in progress_bar(batches, desc=desc or attack.kind, enabled=progress, leave=False):
        xb, yb = x[start : start + step], y[start : start + step]
        goal = attack.make_goal(clf, xb, yb, seed=seed, ids=ids[start : start + step])
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
        if result.clean is not None:  # a smoothed classifier's own clean labels (randomized smoothing)
            clean_pred[start : start + step] = result.clean.to(clean_pred.device)
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
        shown = max(0, min(shown_ids - start, len(xb)))  # this batch's gallery samples
        if minimum_norm:
            found = advs[-1] if result.found is None else result.found
            pred = clf.predict(found, batch_size=batch_size).argmax(1)
            found_x.append(found.detach().cpu())
            found_ok.append(success_of(pred, goal.labels, goal.targeted).cpu())
        for i, xa in enumerate(advs):
            pred = decided[i] if decided is not None else \
                torch.softmax(clf.predict(xa, batch_size=batch_size), 1).argmax(1)
            adv_preds[i].append(pred.cpu())
            success[i].append(success_of(pred, goal.labels, goal.targeted).cpu())
            norms[i].append(sample_norms(xa - xb))
            if clean_detected is not None:  # a smoothed classifier's own decisions: the base's detector has no say
                detected[i].append(detections(clf, xa, batch_size=batch_size).cpu() if result.clean is None
                                   else torch.zeros(len(xb), dtype=torch.bool))
            if shown:
                gallery_x[i].append((found_x[-1] if minimum_norm else xa.detach().cpu())[:shown])
    found_linf = found_l2 = distance = None
    if minimum_norm:
        found_delta = torch.cat(found_x) - x.cpu()
        ok = torch.cat(found_ok)
        found_linf, found_l2 = (torch.where(ok, v, torch.tensor(float("nan"))) for v in sample_norms(found_delta))
        size = {"inf": found_linf, "2": found_l2}.get(attack.norm)
        if size is None:  # L1, L0 (FMN): in float64, as the attack thresholds them
            size = flat_norm(found_delta.double(), attack.norm).float()
        distance = torch.where(ok, size, torch.tensor(float("inf")))
    outcomes = []
    for i, eps in enumerate(eps_list):
        linf, l2 = torch.cat(norms[i], 1) if norms[i] else torch.zeros(2, 0)
        parts = SampleParts(
            y.cpu(), clean_pred.cpu(), torch.cat(adv_preds[i]), torch.cat(success[i]), linf, l2,
            norm=distance if distance is not None else (linf if attack.norm == "inf" else l2),
            detected=torch.cat(detected[i]) if clean_detected is not None else None,
            detected_clean=clean_detected.cpu() if clean_detected is not None else None,
            found_linf=found_linf, found_l2=found_l2, forward=forward, backward=backward,
            queries=own_queries[i] if own_queries is not None else None, seconds=seconds / len(eps_list),
            index=i, count=len(eps_list))
        shown_x = torch.cat(gallery_x[i]) if gallery_x[i] else None
        gallery = gallery_items(clf, x[:shown_ids], y[:shown_ids], shown_x) if shown_x is not None else []
        outcomes.append(outcome_from_parts(eps, parts, gallery=gallery))
    return outcomes


def sample_norms(delta: Tensor) -> Tensor:
    """``[2, n]``: each perturbation's Linf and L2 norm (on the CPU, float32). The L2 norm is summed in float64, so
    a sample's value does not depend on how many others share its batch (a reduction's order can)."""
    flat = delta.detach().flatten(1).cpu()
    return torch.stack([flat.abs().amax(1), flat.double().square().sum(1).sqrt().float()])


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
