"""Worker leases: every jugnb worker on every host registers itself in the jugdir, and renews it.

A lease says who a worker is (id, host, pid, start, SLURM job and array ids), what it does (state, current
task, tasks done and failed) and until when it counts as alive (``renewed + timeout``, seconds since the
epoch). A worker renews its lease every ``interval`` seconds; one that stops renewing for ``timeout``
seconds (its host died, it was killed with ``kill -9``, SLURM cancelled it) is *expired*, and any live
jugnb worker or a kernel's poller then releases the locks it held (:func:`recover_expired`) so that the
survivors run those tasks. Locks that no lease owns (plain ``jug execute``) and failed marks are never
released.

Per store (``jugnb.backends.leases_of(jugdir)`` picks, through the jugdir's :class:`Backend`):

- **file store** (and ``file_keepalive:``): one JSON file per worker in ``<jugdir>.jugnb/leases/``,
  renewed by writing a new file and renaming it over the old one (atomic, and NFS clients see the new
  content on open: close-to-open consistency). Readers trust the content's ``renewed`` field, never the
  file's mtime (NFS caches attributes for up to a minute); hosts' clocks must agree to a few seconds, as NTP
  keeps them. A lock file already names its owner (``PID p on HOSTNAME h``). A claimed lost lease moves to
  ``leases/lost/`` (one ``rename``: only one claimer wins).
- **redis**: ``jugnb:lease:<id>`` holds the lease with a TTL of ``timeout`` seconds, and the hash
  ``jugnb:leases`` keeps the last state of every registered worker, so an expired one is still known. A
  worker records itself as owner of each lock it takes in ``jugnb:owner:<hash>`` (beside jug's
  ``lock:<hash>``) and in the set ``jugnb:held:<id>``. A claimed lost lease moves to ``jugnb:lost``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import StoreError

log = logging.getLogger(__name__)

#: Defaults (seconds); settable as ``WorkerPool.lease_interval`` / ``lease_timeout`` and in jugrc ``[jugnb]``.
LEASE_INTERVAL = 10.0
LEASE_TIMEOUT = 60.0
_SLACK = 1.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")
LEASES_HASH, LOST_HASH = "jugnb:leases", "jugnb:lost"


@dataclass(frozen=True)
class Lease:
    """One worker's registration in the jugdir (see the module docstring).

    Attributes
    ----------
    worker, host : str
        Worker id (unique in the jugdir) and host name.
    pid : int
        Process id on ``host``.
    started, renewed : float
        When the worker started and last renewed its lease (seconds since the epoch).
    interval, timeout : float
        Renewal period and expiry (seconds) the worker promised.
    state : str
        ``"starting"``, ``"idle"``, ``"running"``, ``"waiting"``, ``"draining"``.
    task, task_hash : str or None
        The task being run (name, hash), with ``task_since`` (seconds since the epoch).
    done, failed : int
        Tasks this worker finished and that failed.
    slurm_job, slurm_array_job, slurm_array_task : str or None
        ``SLURM_JOB_ID``, ``SLURM_ARRAY_JOB_ID``, ``SLURM_ARRAY_TASK_ID`` when the worker runs under SLURM.
    lost_at : float or None
        When a survivor found the lease expired (only for lost leases), with the hashes it ``released``
        and their task names (``released_names``, when the survivor knew them).
    """

    worker: str
    host: str
    pid: int
    started: float
    renewed: float
    interval: float = LEASE_INTERVAL
    timeout: float = LEASE_TIMEOUT
    state: str = "starting"
    task: str | None = None
    task_hash: str | None = None
    task_since: float | None = None
    done: int = 0
    failed: int = 0
    slurm_job: str | None = None
    slurm_array_job: str | None = None
    slurm_array_task: str | None = None
    lost_at: float | None = None
    released: tuple[str, ...] = field(default=())
    released_names: tuple[str, ...] = field(default=())

    @classmethod
    def new(cls, worker: str, interval: float, timeout: float) -> Lease:
        """Return a lease for this process (host, pid, SLURM ids from the environment), renewed now."""
        env = os.environ
        now = time.time()
        return cls(
            worker, socket.gethostname(), os.getpid(), now, now, interval, timeout,
            slurm_job=env.get("SLURM_JOB_ID"), slurm_array_job=env.get("SLURM_ARRAY_JOB_ID"),
            slurm_array_task=env.get("SLURM_ARRAY_TASK_ID"),
        )  # fmt: skip

    def expired(self, now: float | None = None) -> bool:
        """Whether the worker missed renewing for longer than its ``timeout``."""
        return (time.time() if now is None else now) > self.renewed + self.timeout

    def describe(self, now: float | None = None) -> str:
        """State for people: ``running NAME for 3 s``, ``idle``, ``lost 12 s ago``."""
        now = time.time() if now is None else now
        if self.lost_at is not None or self.expired(now):
            return f"lost {now - (self.lost_at or self.renewed + self.timeout):.0f} s ago"
        if self.state == "running" and self.task:
            return f"running {self.task} for {now - (self.task_since or now):.0f} s"
        return self.state

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Lease | None:
        """Parse :meth:`to_json`'s output; ``None`` when it is not a lease (half-written, foreign)."""
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            data = {k: v for k, v in data.items() if k in known}
            data["released"] = tuple(data.get("released") or ())
            data["released_names"] = tuple(data.get("released_names") or ())
            return cls(**data)
        except (ValueError, TypeError, AttributeError):
            return None


class LeaseStore(ABC):
    """Where the leases of one jugdir live (the API that workers, pools and SLURM support share)."""

    @abstractmethod
    def write(self, lease: Lease) -> None:
        """Register or renew ``lease``."""

    @abstractmethod
    def remove(self, worker: str) -> None:
        """Drop the lease of a worker that exits cleanly."""

    @abstractmethod
    def read_all(self) -> list[Lease]:
        """Every registered lease, live or expired (not those already claimed as lost)."""

    @abstractmethod
    def read_lost(self) -> list[Lease]:
        """Leases found expired, with ``lost_at`` and the hashes of the locks ``released``."""

    @abstractmethod
    def is_lost(self, worker: str) -> bool:
        """Whether a survivor declared ``worker`` lost (then its locks were released)."""

    @abstractmethod
    def _claim(self, lease: Lease, force: bool = False) -> bool:
        """Move an expired lease to the lost ones; ``True`` for exactly one claimer."""

    @abstractmethod
    def release_locks(self, lease: Lease) -> list[str]:
        """Delete the task locks ``lease``'s worker held (never failed marks); return their hashes."""

    @abstractmethod
    def _record_lost(self, lease: Lease) -> None:
        """Store a claimed lease (with ``lost_at`` and ``released``) among the lost ones."""

    def owned(self, task_hash: str, worker: str) -> None:  # noqa: B027 - file locks name their owner
        """Record ``worker`` as the owner of the lock it just took on ``task_hash``."""

    def disowned(self, task_hash: str, worker: str) -> None:  # noqa: B027
        """Forget ``worker``'s ownership of ``task_hash`` (its lock was released)."""

    def lock_owners(self) -> dict[str, str]:
        """Redis: task hash -> worker id of every recorded owner (file stores: empty, locks name it)."""
        return {}

    def claim_and_release(
        self, lease: Lease, names: Callable[[str], str] | None = None, *, force: bool = False
    ) -> Lease | None:
        """Claim an expired ``lease``, release its locks; return it as lost (``None``: someone else did).

        ``names`` maps a task hash to its name, recorded with the lost lease for every later reader.
        ``force`` claims a lease that has not expired yet: for a caller that knows the worker is gone (SLURM
        says its job was cancelled), so its tasks need not wait for ``timeout``.
        """
        if not self._claim(lease, force):
            return None
        released = tuple(self.release_locks(lease))
        named = tuple(names(h) for h in released) if names is not None else ()
        lost = replace(lease, lost_at=time.time(), released=released, released_names=named)
        self._record_lost(lost)
        return lost

    @abstractmethod
    def append_cleanup_log(self, line: str) -> None:
        """Append one line to the jugdir's log of cleanups (what was removed, when, by whom)."""

    def close(self) -> None:  # noqa: B027 - nothing to close for files
        """Release connections this object opened."""


def recover_expired(
    leases: LeaseStore, names: Callable[[str], str] | None = None, now: float | None = None
) -> list[Lease]:
    """Release the locks of every expired lease; return the leases this call claimed (now lost).

    Safe to call from every worker and poller at once: each expired lease is claimed by one caller only.
    Logs ``worker W on HOST lost at T; released N locks: names`` for each.

    Parameters
    ----------
    leases : LeaseStore
    names : callable, optional
        Task hash -> task name, for the message (default: the hash's first 12 digits).
    now : float, optional
        Seconds since the epoch (default: now).
    """
    lost = []
    for lease in leases.read_all():
        if lease.expired(now) and not _alive_here(lease):
            claimed = leases.claim_and_release(lease, names)
            if claimed is not None:
                log.warning("%s", lost_message(claimed))
                lost.append(claimed)
    return lost


def _alive_here(lease: Lease) -> bool:
    """Whether the lease's process lives on this host: then it is late (stopped, slow disk), not lost."""
    if lease.host != socket.gethostname():
        return False
    import psutil

    try:
        process = psutil.Process(lease.pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return bool(alive and created <= lease.started + _SLACK)  # a recycled pid is a later process


def lost_message(lease: Lease, names: Callable[[str], str] | None = None) -> str:
    """``worker W on HOST lost at HH:MM:SS; released N locks: a, b``."""
    named = list(lease.released_names) or [names(h) if names else h[:12] for h in lease.released]
    when = time.strftime("%H:%M:%S", time.localtime(lease.lost_at or time.time()))
    listed = f": {', '.join(named)}" if named else ""
    return f"worker {lease.worker} on {lease.host} lost at {when}; released {len(named)} locks{listed}"


def configured_timing(interval: float | None = None, timeout: float | None = None) -> tuple[float, float]:
    """Lease interval and timeout (seconds): the arguments, else jugrc's ``[jugnb]`` section, else defaults.

    Raises
    ------
    StoreError
        When a jugrc value is not a number or the timeout is not longer than the interval.
    """
    from jug.options import default_options, read_configuration_file

    rc = read_configuration_file(default_options=default_options)
    values = []
    for given, key, fallback in (
        (interval, "jugnb_lease_interval", LEASE_INTERVAL),
        (timeout, "jugnb_lease_timeout", LEASE_TIMEOUT),
    ):
        raw = given if given is not None else getattr(rc, key, None)
        try:
            values.append(float(raw) if raw is not None else fallback)
        except ValueError:
            name = key.replace("jugnb_", "")
            raise StoreError(f"jugrc [jugnb] {name} = {raw!r} is not a number of seconds.") from None
    if values[1] <= values[0]:
        msg = f"lease_timeout ({values[1]} s) must be longer than lease_interval ({values[0]} s)."
        raise StoreError(msg)
    return values[0], values[1]
