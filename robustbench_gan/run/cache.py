"""Finished cells on disk: one checksummed JSON file per cell key, and the finished shards of cells still being
computed (``cells/shards/<cell key>/<start>-<stop>.json``), written by the driver only."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from ..core.io import config_hash, read_checked_json, write_checked_json
from .plan import Cell
from .records import CellOutput

log = logging.getLogger(__name__)

CACHE_VERSION = 5  # 5: random draws keyed by sample id; 4: n is the first n unless subset = "random"; 3: active set
"""Bumped when a cell's output changes shape or meaning (2: transfer cells hold every target; probe rows NaN)."""


def cell_key(cell: Cell, target_keys: list[str], source_keys: list[str] | None, numerics: str = "") -> str:
    """Everything a cell's output depends on: its classifiers' keys, the attack, the run settings and the
    numerics (device and CPU threads, see :func:`~robustbench_gan.core.device.numerics`)."""
    s = cell.settings
    attack: dict[str, Any] = {"kind": cell.attack.kind, "params": cell.attack.params, "eps": cell.attack.eps}
    if cell.attack.instance is not None:
        attack["instance"] = repr(cell.attack.instance)
    names = [s.suite, s.dataset, cell.attack.name, cell.source_name, [[m.name, d.name] for m, d in cell.targets]]
    extra: dict[str, Any] = {"precision": s.precision} if s.precision != "fp32" else {}
    if s.compile:
        extra["compile"] = True
    if s.micro_batch:
        extra["micro_batch"] = s.micro_batch
    return config_hash({**extra, "version": CACHE_VERSION, "targets": target_keys, "source": source_keys,
                        "attack": attack,
                        "names": names,  # the records carry them
                        "eval_n": s.eval_n, "eval_subset": s.eval_subset if s.eval_n else None, "seed": s.seed,
                        "gallery": s.gallery, "batch_size": s.batch_size,
                        "numerics": numerics})


class CellCache:
    """``load(key)`` gives a finished cell's output or None (missing, unreadable, or failing its checksum)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def path(self, key: str) -> Path | None:
        return self.root / "cells" / f"{key}.json" if self.root is not None else None

    def load(self, key: str) -> CellOutput | None:
        doc = read_checked_json(self.path(key))
        if doc is None:
            return None
        try:
            return CellOutput.from_dict(doc)
        except (KeyError, TypeError) as exc:
            log.warning("ignoring malformed cell cache %s (%s); recomputing", key, exc)
            return None

    def save(self, key: str, out: CellOutput, *, same_cell: str | None = None, numerics: str = "") -> None:
        """Store ``out`` under ``key``; ``same_cell`` (the key without numerics) records that this cell exists
        under ``numerics``, so a run under other numerics can say so (:meth:`other_numerics`)."""
        path = self.path(key)
        if path is None:
            return
        write_checked_json(path, out.as_dict())
        if same_cell is not None:
            alias = self._alias(same_cell)
            known = read_checked_json(alias) or {}
            if known.get(numerics) != key:
                write_checked_json(alias, {**known, numerics: key})

    def shard_path(self, key: str, start: int, stop: int) -> Path | None:
        return self.root / "cells" / "shards" / key / f"{start}-{stop}.json" if self.root is not None else None

    def load_shard(self, key: str, start: int, stop: int) -> dict[str, Any] | None:
        """A finished shard of the cell ``key`` (its samples ``[start, stop)``), or None."""
        doc = read_checked_json(self.shard_path(key, start, stop))
        if doc is not None and (doc.get("start"), doc.get("stop")) != (start, stop):
            log.warning("ignoring shard cache %s/%d-%d that holds other samples; recomputing", key, start, stop)
            return None
        return doc

    def save_shard(self, key: str, start: int, stop: int, doc: dict[str, Any]) -> None:
        path = self.shard_path(key, start, stop)
        if path is not None:
            write_checked_json(path, doc)

    def drop_shards(self, key: str) -> None:
        """Forget the shards of cell ``key`` (once the merged cell is stored, it holds all they said)."""
        if self.root is None:
            return
        folder = self.root / "cells" / "shards" / key
        for path in folder.glob("*.json"):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()

    def _alias(self, same_cell: str) -> Path:
        assert self.root is not None
        return self.root / "cells" / "by-cell" / f"{same_cell}.json"

    def other_numerics(self, same_cell: str, numerics: str) -> list[str]:
        """The numerics other than ``numerics`` under which the cell ``same_cell`` is cached."""
        if self.root is None:
            return []
        known = read_checked_json(self._alias(same_cell)) or {}
        return [n for n, key in known.items() if n != numerics and (self.root / "cells" / f"{key}.json").is_file()]
