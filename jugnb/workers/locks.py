"""jug's task locks as seen from outside: who holds them, whether the holder lives, releasing a dead one's.

A file store lock is ``<jugdir>/locks/<hash>.lock`` containing ``PID <pid> on HOSTNAME <host>``; jug marks
a failed task (``--keep-failed``) by setting the lock's mtime to 1 s after the epoch. Redis locks carry no
owner (``lock:<hash>`` is ``L`` or ``F``), so their holder is always "unknown".

Liveness is only knowable on this host: a lock is held by a live process when a process with that pid
exists *and* was created before the lock was written (a pid recycled later cannot own it). Locks of other
hosts are never released here.
"""

from __future__ import annotations

import enum
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HOST = socket.gethostname()
REDIS_CHANGES = "jugnb:changes"
_OWNER = re.compile(rb"^PID (?P<pid>\d+) on HOSTNAME (?P<host>\S+)")
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


@dataclass(frozen=True)
class LockFile:
    """A file store lock.

    Attributes
    ----------
    hash : str
        Task hash.
    pid : int or None
        Owner pid (``None`` if the content cannot be parsed).
    host : str or None
        Owner host name.
    mtime : float
        Modification time (seconds since the epoch); 1.0 marks a failed task.
    """

    hash: str
    pid: int | None
    host: str | None
    mtime: float

    @property
    def failed(self) -> bool:
        """Whether jug marked the task as failed (``--keep-failed``)."""
        return self.mtime <= 1.0


def file_store_folder(jugdir: str) -> Path | None:
    """Folder of a file or ``file_keepalive:`` store, ``None`` for redis and dict stores."""
    if jugdir.startswith(("redis:", "dict_store")):
        return None
    if jugdir.startswith("file_keepalive:"):
        jugdir = jugdir[len("file_keepalive:") :]
    return Path(jugdir)


def read_lock(path: Path) -> LockFile | None:
    """Parse one lock file; ``None`` if it vanished meanwhile."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
            mtime = os.fstat(handle.fileno()).st_mtime
    except (FileNotFoundError, IsADirectoryError):
        return None
    match = _OWNER.match(head)
    pid = int(match["pid"]) if match else None
    host = match["host"].decode("utf-8", "replace") if match else None
    return LockFile(path.name[: -len(".lock")], pid, host, mtime)


def iter_locks(jugdir: str) -> Iterable[LockFile]:
    """Every lock of a file store (nothing for other stores)."""
    folder = file_store_folder(jugdir)
    if folder is None or not (folder / "locks").is_dir():
        return
    with os.scandir(folder / "locks") as entries:
        for entry in entries:
            if entry.name.endswith(".lock"):
                lock = read_lock(Path(entry.path))
                if lock is not None:
                    yield lock


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
    folder = file_store_folder(jugdir)
    if folder is None:
        if not task.is_locked():
            return Holder.FREE
        return Holder.FAILED if task.is_failed() else Holder.UNKNOWN
    lock = read_lock(folder / "locks" / f"{task.hash().decode('ascii')}.lock")
    if lock is None:
        return Holder.FREE
    if lock.failed or task.is_failed():  # is_failed also knows file_keepalive's 30-minute rule
        return Holder.FAILED
    if lock.host != HOST or lock.pid is None:
        return Holder.UNKNOWN
    return Holder.LIVE if process_alive(lock.pid, created_before=lock.mtime) else Holder.DEAD


def release_locks_of(jugdir: str, pid: int, *, started: float, ended: float) -> list[str]:
    """Release the locks that process ``pid`` of this host held when it died; return their hashes.

    Only locks whose content names this pid and this host, that are not failed marks (``--keep-failed``
    keeps those on purpose), and that were written while the process lived (``started`` to ``ended``,
    seconds since the epoch: a later process reusing the pid is spared) are removed.
    """
    folder = file_store_folder(jugdir)
    released: list[str] = []
    if folder is None:
        return released
    for lock in iter_locks(jugdir):
        mine = lock.pid == pid and lock.host == HOST and not lock.failed
        if mine and started - _SLACK <= lock.mtime <= ended + _SLACK:
            try:
                os.unlink(folder / "locks" / f"{lock.hash}.lock")
            except FileNotFoundError:
                continue
            released.append(lock.hash)
    return released


def release_redis_lock(url: str, task_hash: str) -> bool:
    """Delete ``lock:<hash>`` unless it marks a failed task; return whether a lock was removed.

    Raises
    ------
    StoreError
        If the server is unreachable or refuses the login (password never in the message).
    """
    from ..backends.redis_store import redis_client

    client = redis_client(url)
    try:
        key = f"lock:{task_hash}"
        if client.get(key) == b"F" or not client.delete(key):
            return False
        bump_redis_changes(client)
        return True
    finally:
        client.close()


def bump_redis_changes(client: Any) -> None:
    """Tell waiting workers that the store changed (``INCR jugnb:changes``).

    ``DBSIZE`` alone can miss a change: a result added and a lock deleted leave it as it was.
    """
    client.incr(REDIS_CHANGES)


def change_token(jugdir: str, store: Any = None) -> tuple[int, ...]:
    """Return a cheap value that changes whenever a task of the store is locked or unlocked (hence finished).

    File stores: the ``locks`` folder's mtime (one ``stat``). Redis (``store`` is jug's open
    ``redis_store``): ``DBSIZE`` (a task finished by plain jug adds a ``result:`` key) and the counter
    that jugnb workers and pools bump after each task and lock release (:func:`bump_redis_changes`),
    in one round trip. Anything else: constant, and waiters fall back to periodic rescans.
    """
    folder = file_store_folder(jugdir)
    if folder is None and store is not None and hasattr(store, "redis"):
        size, changes = store.redis.pipeline().dbsize().get(REDIS_CHANGES).execute()
        return (int(size), int(changes or 0))
    if folder is not None:
        try:
            st = os.stat(folder / "locks")
        except FileNotFoundError:
            return (0,)
        return (st.st_mtime_ns, st.st_ino)
    return (0,)
