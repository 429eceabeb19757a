"""Who holds each task lock of a jugdir, told apart by leases: a live jugnb worker, a lost one, or plain jug.

Used by ``jugnb execute``'s summary, ``status`` and ``cleanup``. File locks name their owner
(``PID p on HOSTNAME h``), matched to the lease of that host and pid; redis locks are matched through the
owner that jugnb workers record beside them (:class:`jugnb.backends.leases.RedisLeases`). A lock no
lease owns is plain jug's: shown with its holder and age, never released automatically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..backends.leases import Lease, LeaseStore
from .locks import LockFile, file_store_folder, read_lock

_SLACK = 1.0
FIX_LOST = (
    "any running jugnb worker (`jugnb execute`, %jug execute) or the notebook's open panel releases it "
    "within a second; or `jugnb cleanup NOTEBOOK.ipynb --locks-only`"
)


@dataclass(frozen=True)
class Owner:
    """The holder of one lock.

    Attributes
    ----------
    kind : str
        ``"live"`` (a jugnb worker with a live lease), ``"lost"`` (its lease expired), ``"jug"`` (no lease:
        plain jug, or a redis lock without a recorded owner), ``"failed"`` (a ``--keep-failed`` mark).
    lease : Lease or None
        The owning lease (live or lost).
    lock : LockFile or None
        The file lock (file stores).
    """

    kind: str
    lease: Lease | None
    lock: LockFile | None


class LockOwners:
    """A snapshot of the jugdir's leases, to name the holder of any lock.

    Parameters
    ----------
    jugdir : str
    leases : LeaseStore or None
        ``None`` for a store without leases.
    """

    def __init__(self, jugdir: str, leases: LeaseStore | None) -> None:
        self.jugdir = jugdir
        self.folder = file_store_folder(jugdir)
        registered = leases.read_all() if leases is not None else []
        self.leases = registered + (leases.read_lost() if leases is not None else [])
        self.redis_owners = leases.lock_owners() if leases is not None else {}

    @property
    def live(self) -> list[Lease]:
        """Leases not expired."""
        return [lease for lease in self.leases if lease.lost_at is None and not lease.expired()]

    def owner(self, task_hash: str) -> Owner:
        """Who holds the lock of ``task_hash`` (the lock is assumed to exist)."""
        if self.folder is None:
            worker = self.redis_owners.get(task_hash)
            match = next((lease for lease in self.leases if lease.worker == worker), None)
            return Owner(self._kind(match), match, None)
        lock = read_lock(self.folder / "locks" / f"{task_hash}.lock")
        if lock is not None and lock.failed:
            return Owner("failed", None, lock)
        match = None
        if lock is not None:
            for lease in self.leases:
                if (lease.host, lease.pid) == (lock.host, lock.pid) and lock.mtime >= lease.started - _SLACK:
                    if match is None or lease.lost_at is None:
                        match = lease
        return Owner(self._kind(match), match, lock)

    @staticmethod
    def _kind(lease: Lease | None) -> str:
        if lease is None:
            return "jug"
        return "lost" if lease.lost_at is not None or lease.expired() else "live"

    def describe(self, task_hash: str) -> str:
        """Describe the holder for people, with the fix for a lost one."""
        owner, now = self.owner(task_hash), time.time()
        lease, lock = owner.lease, owner.lock
        if owner.kind == "failed":
            return "failed (kept locked by --keep-failed)"
        if owner.kind == "live" and lease is not None:
            return f"running on worker {lease.worker} ({lease.host}, pid {lease.pid})"
        if owner.kind == "lost" and lease is not None:
            return f"lost: worker {lease.worker} on {lease.host} {lease.describe(now)}; {FIX_LOST}"
        if lock is not None and lock.pid is not None:
            age = _age(now - lock.mtime)
            return f"held by jug, pid {lock.pid} on {lock.host}, no lease (locked {age} ago)"
        return "held by jug (no owner recorded), no lease"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
