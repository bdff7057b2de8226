"""Killing a run halfway, for the resume tests: start a command, SIGKILL it once ``ready()`` holds."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


def kill_when(command: list[str], ready: Callable[[], bool], *, env: dict[str, str], cwd: Path,
              timeout: float = 300) -> None:
    """Run ``command`` and SIGKILL it as soon as ``ready()`` is true (polled every 20 ms); fails when the command
    ends first or ``ready()`` is not true within ``timeout`` seconds."""
    log = Path(cwd) / "killed-run.log"  # a file, not a pipe: a chatty run never blocks on a full pipe
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the run ended before it could be killed: {log.read_text()[-2000:]!r}"
            assert time.monotonic() < deadline, f"not ready within {timeout} s"
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed; make it slower"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
