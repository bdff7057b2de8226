"""Progress for long work: a tqdm bar on a terminal or in a notebook; where output goes to a file (no terminal),
the same progress as a log line at most every :data:`LOG_INTERVAL` seconds (with throughput and an ETA), so a
redirected run is never silent for long; nothing when progress is off."""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Iterable

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as plain_tqdm

log = logging.getLogger("robustbench_gan.progress")

LOG_INTERVAL = 20.0
"""Seconds between two log lines of one loop (and before its first one: a loop shorter than this logs nothing)."""


def interactive() -> bool:
    """Bars can be drawn: stderr is a terminal, or tqdm found a notebook (its auto bar is then the notebook's)."""
    notebook = any(c.__module__ == "tqdm.notebook" for c in auto_tqdm.__mro__)
    return notebook or bool(getattr(sys.stderr, "isatty", lambda: False)())


class _LogStream:
    """A file for tqdm that turns its refreshes into log lines, at most one per :data:`LOG_INTERVAL` (the first
    one that long after the loop started): a forced refresh (``set_postfix``) does not add lines."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def write(self, text: str) -> None:
        line = text.strip("\r\n\x1b[A ").strip()
        now = time.monotonic()
        if line and now - self.last >= LOG_INTERVAL:
            self.last = now
            log.info("%s", line)

    def flush(self) -> None:
        pass


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True, desc: str | None = None,
                 total: int | None = None, leave: bool = False, log_lines: bool = True, **kwargs: Any) -> Any:
    """A tqdm-compatible progress object (iterate it, or ``update``/``set_postfix``/``close`` it): a bar where one
    can be drawn, log lines where not (``log_lines=False``: nothing there), nothing when not ``enabled``."""
    if not enabled:
        return plain_tqdm(iterable, total=total, disable=True)
    if interactive():
        return auto_tqdm(iterable, desc=desc, total=total, leave=leave, **kwargs)
    if not log_lines:
        return plain_tqdm(iterable, total=total, disable=True)
    return plain_tqdm(iterable, desc=desc, total=total, file=_LogStream(), mininterval=LOG_INTERVAL,
                      delay=LOG_INTERVAL, ascii=True, leave=False, dynamic_ncols=False, ncols=100, **kwargs)
