"""The process around a worker's loop: drain requests, signals, the kernel's death, the pointer file.

Used only inside worker processes (:mod:`jugnb.worker`).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("jugnb.worker")


class Control:
    """Why the worker should stop after its current task, if it should (set by signals and threads)."""

    def __init__(self) -> None:
        self.draining: str | None = None

    def request_drain(self, reason: str) -> None:
        """Finish the current task, then exit (safe from a signal handler or another thread)."""
        if self.draining is None:
            self.draining = reason


def read_pointer(pointer: Path) -> str:
    """Return the snapshot path that the pointer file names.

    Raises
    ------
    FileNotFoundError
        If there is no pointer file (the kernel has not written a jugfile yet).
    """
    return pointer.read_text(encoding="utf-8").strip()


def stat_key(path: Path) -> tuple[int, int, int] | None:
    """Return what changes when ``path`` is replaced or rewritten (inode, mtime, size); ``None`` if absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def watch_parent(control: Control, parent_pid: int, interval: float) -> None:
    """Drain once the kernel that started us is gone (we are re-parented)."""
    while os.getppid() == parent_pid:
        time.sleep(interval)
    log.warning("the kernel (pid %d) is gone: draining", parent_pid)
    control.request_drain("the kernel is gone")


def install_signals(control: Control) -> None:
    """SIGUSR1 drains, SIGTERM exits through ``SystemExit`` (so jug unlocks), SIGINT is ignored."""

    def drain(_signum: int, _frame: Any) -> None:
        control.request_drain("asked to drain")

    def terminate(_signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGUSR1, drain)
    signal.signal(signal.SIGTERM, terminate)
    # Interrupts are for the kernel; only the pool stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
