"""jug's task locks as seen from outside: who holds them, whether the holder lives, releasing a dead one's.

What a lock says about its owner is the backend's (:meth:`jugnb.backends.Backend.lock_owner`): file store
locks name a pid and a host, redis locks name no one, so their holder is always "unknown".

Liveness is only knowable on this host: a lock is held by a live process when a process with that pid
exists *and* was created before the lock was written (a pid recycled later cannot own it). Locks of other
hosts are never released here.
"""

from __future__ import annotations

import enum
import socket
from typing import Any

import psutil

from ..backends import select

HOST = socket.gethostname()
# Process start times are rounded (clock ticks) and the lock file's mtime is set just after
# its creation: allow a little slack either way.
_SLACK = 1.0


class Holder(enum.Enum):
    """Who holds a task's lock."""

    FREE = "free"
    FAILED = "failed"
    LIVE = "live"
    DEAD = "dead"
    UNKNOWN = "unknown"


def process_alive(pid: int, *, created_before: float | None = None, created_at: float | None = None) -> bool:
    """Whether process ``pid`` exists on this host and is the one meant.

    Parameters
    ----------
    pid : int
    created_before : float, optional
        The process must have been created before this time (seconds since the epoch), e.g. a lock's mtime.
    created_at : float, optional
        The process must have been created at this time (``psutil.Process.create_time()``), to the
        hundredth of a second: a recycled pid is a different process.
    """
    try:
        process = psutil.Process(pid)
        created = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if created_before is not None and created > created_before + _SLACK:
        return False
    return created_at is None or abs(created - created_at) < 0.01


def holder(task: Any, jugdir: str) -> Holder:
    """Who holds the lock of ``task`` (a jug ``Task`` whose store is ``jugdir``)."""
    backend = select(jugdir)
    if not backend.lock_names_owner:
        if not task.is_locked():
            return Holder.FREE
        return Holder.FAILED if task.is_failed() else Holder.UNKNOWN
    lock = backend.lock_owner(task.hash().decode("ascii"))
    if lock is None:
        return Holder.FREE
    if lock.failed or task.is_failed():  # is_failed also knows file_keepalive's 30-minute rule
        return Holder.FAILED
    if lock.host != HOST or lock.pid is None or lock.mtime is None:
        return Holder.UNKNOWN
    return Holder.LIVE if process_alive(lock.pid, created_before=lock.mtime) else Holder.DEAD


def release_locks_of(jugdir: str, pid: int, *, started: float, ended: float) -> list[str]:
    """Release the locks that process ``pid`` of this host held when it died; return their hashes.

    Only locks whose owner is this pid on this host, that are not failed marks (``--keep-failed`` keeps
    those on purpose), and that were written while the process lived (``started`` to ``ended``, seconds
    since the epoch: a later process reusing the pid is spared) are removed. Stores whose locks name no
    owner release nothing here.
    """
    backend = select(jugdir)
    released: list[str] = []
    for lock in backend.iter_locks():
        if lock.pid != pid or lock.host != HOST or lock.failed or lock.mtime is None:
            continue
        if started - _SLACK <= lock.mtime <= ended + _SLACK and backend.release_lock(lock.hash):
            released.append(lock.hash)
    return released
