"""Sanity checks that catch evaluations overstating robustness (gradient masking and broken attacks).

Two kinds: *table checks* (:mod:`.table`) read the result records of a run; *classifier checks*
(:mod:`.probes`, which imports the attacks and torch) probe a trained classifier. Each returns flags
``{"check", "model", "defense", "attack", "message", "explanation", "reference"}``; :mod:`.explanations` says
what each check means. This package imports neither torch nor the attacks: the report reads it.
"""
from .explanations import EXPLANATIONS, Flag, make_flag
from .row_checks import TABLE_CHECKS, table_flags
from .warn import SanityFlagWarning, flag_line, warn_flags

__all__ = ["EXPLANATIONS", "Flag", "SanityFlagWarning", "TABLE_CHECKS", "flag_line", "make_flag", "table_flags",
           "warn_flags"]
