"""Sanity flags raised as Python warnings, so a user of the Python API sees them without setting up logging."""
from __future__ import annotations

import warnings
from typing import Any, Iterable


class SanityFlagWarning(UserWarning):
    """A sanity check flagged a result: a robustness number there may be overstated (gradient masking, a broken
    evaluation, wrong input scaling). ``Results.flags`` holds every flag with its explanation; the HTML report
    shows them. Silence with ``warnings.simplefilter("ignore", SanityFlagWarning)``."""


def flag_line(flag: dict[str, Any]) -> str:
    """One flag in one line: check, where, and what was measured."""
    where = "/".join(str(flag.get(k) or "") for k in ("model", "defense"))
    attack = f" [{flag['attack']}]" if flag.get("attack") else ""
    return f"{flag.get('check')}: {where}{attack}: {flag.get('message')}"


def warn_flags(flags: Iterable[dict[str, Any]], *, stacklevel: int = 3) -> None:
    """A :class:`SanityFlagWarning` per flag, naming the check and what it measured, and what to do."""
    for flag in flags:
        explanation = str(flag.get("explanation") or "")
        warnings.warn(f"sanity flag {flag_line(flag)}. {explanation}".rstrip(), SanityFlagWarning,
                      stacklevel=stacklevel)
