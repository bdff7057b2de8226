"""Atomic file writes and checksummed cache entries (one helper for every cache and output file)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes, *, compress: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (a crash never leaves a half file), readable as
    any new file under the umask; ``compress`` gzips it first (deterministically: no name or mtime)."""
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def config_hash(parts: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able description (the keys of caches)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def payload_digest(payload: Any) -> str:
    """sha256 of a payload's canonical JSON."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def write_checked_json(path: Path, payload: Any) -> None:
    """Write ``{"sha256", "payload"}`` atomically: :func:`read_checked_json` refuses an entry that does not match."""
    atomic_write_text(path, json.dumps({"sha256": payload_digest(payload), "payload": payload}))


def read_checked_json(path: Path | None) -> Any:
    """A checked entry's payload, or None when missing, unreadable or failing its checksum (then recomputed)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        payload = doc["payload"]
        if doc.get("sha256") != payload_digest(payload):
            raise ValueError("checksum mismatch")
        return payload
    except (json.JSONDecodeError, OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable cache entry %s (%s); recomputing", path, exc)
        return None


def atomic_save(path: Path, save: Callable[[io.BytesIO], None]) -> None:
    """Serialise with ``save(buffer)`` (``torch.save`` and friends) and write the bytes atomically."""
    buf = io.BytesIO()
    save(buf)
    atomic_write_bytes(path, buf.getvalue())
