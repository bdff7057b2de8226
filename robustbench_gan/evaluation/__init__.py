"""Evaluation: scoring attacks. :func:`evaluate_attack` is the one entry point (batches, goals, the guard that
keeps every example in its threat model, fp32 decisions, metrics, per-sample data, gallery); attacks with a
protocol of their own (the substitute attack's hold-out set, the probes, AutoAttack's per-component rows) have
evaluators registered with :func:`evaluates`. This package imports the attacks; no attack imports it."""
from .batched import BATCH_SIZE, evaluate_batched, gallery_items, success_of
from .dispatch import EVALUATORS, evaluate_attack, evaluates, evaluator_for, shardable
from .guard import check_examples, tolerance
from .outcome import (ComponentOutcome, Outcome, accuracy_metrics, clean_predictions, merge_outcomes,
                      outcome_from_json, outcome_to_json)
from .parts import CascadeParts, SampleParts
from .transfer import Crafted, craft, evaluate_transfer
from . import cascade, holdout, probe_rows  # noqa: F401  (register their evaluators)

__all__ = [
    "BATCH_SIZE", "CascadeParts", "ComponentOutcome", "Crafted", "EVALUATORS", "Outcome", "SampleParts",
    "accuracy_metrics", "check_examples", "clean_predictions", "craft", "evaluate_attack", "evaluate_batched",
    "evaluate_transfer", "evaluates", "evaluator_for", "gallery_items", "merge_outcomes", "outcome_from_json",
    "outcome_to_json", "shardable", "success_of", "tolerance",
]
