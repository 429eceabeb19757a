"""Who holds each task lock of a jugdir, told apart by leases: a live jugnb worker, a lost one, or plain jug.

Used by ``jugnb execute``'s summary, ``status`` and ``cleanup``. File locks name their owner
(``PID p on HOSTNAME h``), matched to the lease of that host and pid; redis locks are matched through the
owner that jugnb workers record beside them (:class:`jugnb.backends.leases.RedisLeases`). A lock no
lease owns is plain jug's: shown with its holder and age, never released automatically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..backends import LockOwner, leases_of, select
from ..backends.leases import Lease, LeaseStore
from ..errors import StoreError

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
    lock : LockOwner or None
        What the lock itself says (pid, host and mtime when the store records them).
    """

    kind: str
    lease: Lease | None
    lock: LockOwner | None


class LockOwners:
    """A snapshot of the jugdir's leases, to name the holder of any lock.

    Parameters
    ----------
    jugdir : str
    leases : LeaseStore or None
        ``None`` for a store without leases.
    """

    def __init__(self, jugdir: str, leases: LeaseStore | None, store: Any = None) -> None:
        self.jugdir = jugdir
        self.backend = select(jugdir)
        self.store = store
        registered = leases.read_all() if leases is not None else []
        self.leases = registered + (leases.read_lost() if leases is not None else [])
        self.redis_owners = leases.lock_owners() if leases is not None else {}

    @property
    def live(self) -> list[Lease]:
        """Leases not expired."""
        return [lease for lease in self.leases if lease.lost_at is None and not lease.expired()]

    def owner(self, task_hash: str) -> Owner:
        """Who holds the lock of ``task_hash`` (the lock is assumed to exist)."""
        lock = self.backend.lock_owner(task_hash, self.store)
        if lock is not None and lock.failed:
            return Owner("failed", None, lock)
        if not self.backend.lock_names_owner:  # the owner is recorded beside the lock (redis)
            worker = self.redis_owners.get(task_hash)
            match = next((lease for lease in self.leases if lease.worker == worker), None)
            return Owner(self._kind(match), match, lock)
        match = None
        if lock is not None and lock.mtime is not None:
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
        return self.describe_owner(self.owner(task_hash))

    @staticmethod
    def describe_owner(owner: Owner) -> str:
        """Describe an :meth:`owner` answer (as :meth:`describe` does), without reading the lock again."""
        lease, lock, now = owner.lease, owner.lock, time.time()
        if owner.kind == "failed":
            return "failed (kept locked by --keep-failed)"
        if owner.kind == "live" and lease is not None:
            return f"running on worker {lease.worker} ({lease.host}, pid {lease.pid})"
        if owner.kind == "lost" and lease is not None:
            return f"lost: worker {lease.worker} on {lease.host} {lease.describe(now)}; {FIX_LOST}"
        if lock is not None and lock.pid is not None and lock.mtime is not None:
            age = _age(now - lock.mtime)
            return f"held by jug, pid {lock.pid} on {lock.host}, no lease (locked {age} ago)"
        return "held by jug (no owner recorded), no lease"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def read_leases(jugdir: str, store: Any = None) -> list[Lease]:
    """Every worker's lease on ``jugdir``, live first, then the lost ones (empty for a ``dict_store``).

    Raises
    ------
    StoreError
        When the store cannot be read.
    """
    try:
        leases = leases_of(jugdir, store)
    except StoreError:
        return []
    try:
        found = leases.read_all() + leases.read_lost()
    finally:
        if store is None:
            leases.close()
    return sorted(found, key=lambda one: (one.lost_at is not None or one.expired(), one.host, one.pid))


def lease_rows(leases: Sequence[Lease], now: float | None = None) -> list[tuple[str, ...]]:
    """Rows ``(worker, host, pid, state, done, failed, slurm job)`` for people, from leases."""
    now = time.time() if now is None else now
    rows: list[tuple[str, ...]] = []
    for lease in leases:
        slurm = lease.slurm_job or ""
        if lease.slurm_array_job and lease.slurm_array_task:
            slurm = f"{lease.slurm_array_job}_{lease.slurm_array_task}"
        counts = (str(lease.done), str(lease.failed))
        rows.append((lease.worker, lease.host, str(lease.pid), lease.describe(now), *counts, slurm))
    return rows


def lost_locks(jugdir: str, store: Any, hashes: Sequence[str]) -> frozenset[str]:
    """Which of the locked tasks ``hashes`` are held under a lost or expired lease (for the status counts).

    Reads the jugdir's leases once; the locks themselves are read only when some lease is lost or expired,
    so a run with only live workers costs one read of the leases.

    Parameters
    ----------
    jugdir : str
    store : jug store or None
        The open store of ``jugdir`` (a redis client is shared); ``None`` opens the leases alone.
    hashes : sequence of str
        Hex hashes of locked tasks.

    Returns
    -------
    frozenset of str
        The hashes whose lock a lost jugnb worker holds (plain jug's locks, without a lease, are not in it).
    """
    if not hashes:
        return frozenset()
    try:
        leases = leases_of(jugdir, store)
    except StoreError:
        return frozenset()
    try:
        owners = LockOwners(jugdir, leases, store)
        if len(owners.live) == len(owners.leases):  # every lease live: no lock is lost
            return frozenset()
        return frozenset(h for h in hashes if owners.owner(h).kind == "lost")
    finally:
        if store is None:
            leases.close()


def lock_notes(jugdir: str, store: Any, names: Mapping[str, str], most: int = 5) -> list[str]:
    """Lines about locks that no live jugnb worker holds: lost workers' (with the fix) and plain jug's.

    The status table counts the lost workers' tasks as *lost* and plain jug's as *active* (jugnb cannot tell
    whether such a process still runs); these lines say who holds them and what releases them.

    Parameters
    ----------
    jugdir : str
    store : jug store
        Its ``listlocks()`` names the locked tasks.
    names : mapping
        Task hash -> task name (hashes of other jugfiles are shown shortened).
    most : int
        Locks listed one by one per kind at most.
    """
    try:
        leases: LeaseStore | None = leases_of(jugdir, store)
    except StoreError:
        return []
    owners = LockOwners(jugdir, leases, store)
    lost: list[str] = []
    plain: list[str] = []
    for raw in store.listlocks():
        key = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        owner = owners.owner(key)
        name = names.get(key, key[:12])
        if owner.kind == "lost":
            lost.append(f"  {name}: {owners.describe_owner(owner)}")
        elif owner.kind == "jug":
            plain.append(f"  {name}: {owners.describe_owner(owner)}")
    lines = []
    if lost:
        which = "1 task is" if len(lost) == 1 else f"{len(lost)} tasks are"
        lines.append(f"{which} lost: locked by jugnb workers that are gone (nothing runs them):")
        lines += lost[:most] + ([f"  ... and {len(lost) - most} more"] if len(lost) > most else [])
    if plain:
        lines.append(f"{len(plain)} active tasks are locked by processes without a lease (plain jug):")
        lines += plain[:most] + ([f"  ... and {len(plain) - most} more"] if len(plain) > most else [])
        lines.append("  jugnb never releases these: if that process is gone, `cleanup --locks-only` does.")
    return lines
