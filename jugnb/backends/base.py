"""The interface every store kind implements: :class:`Backend`, and the small stores it hands out.

A :class:`Backend` is one jugdir seen through its store kind. The rest of jugnb asks it, and never branches
on the kind itself: open the store, read results and locks in bulk, who holds a lock and how to release it,
the change signal idle workers wait on, and where jugnb keeps its task records and code fingerprints for
that jugdir (:class:`RecordLines`, :class:`FingerprintBlobs`). The record and fingerprint *formats* belong to
:mod:`jugnb.status.records` and :mod:`jugnb.staleness.fingerprint`; a backend only stores them.

Modelled on jug's own ``jug/backends/`` (one module per store, chosen from the jugdir string by ``select``).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import StoreError
from .leases import LeaseStore
from .spec import redact


@dataclass(frozen=True)
class LockOwner:
    """What a task lock says about who holds it.

    Attributes
    ----------
    hash : str
        Task hash (40 hex digits).
    pid : int or None
        Owner pid; ``None`` when the store does not record one (redis) or the content is unreadable.
    host : str or None
        Owner host name, likewise.
    mtime : float or None
        When the lock was written (seconds since the epoch), if the store knows.
    failed : bool
        The lock marks a failed task (jug's ``--keep-failed``), not a running one.
    """

    hash: str
    pid: int | None
    host: str | None
    mtime: float | None
    failed: bool


class RecordLines(ABC):
    """An append-only log of text lines, readable incrementally by any process that shares the jugdir."""

    @abstractmethod
    def append(self, writer: str, line: str) -> None:
        """Append one line (no newline) written by ``writer`` (a short id, unique per writing process)."""

    @abstractmethod
    def read_new(self) -> list[tuple[bytes, str]]:
        """Return ``(line, where)`` for each complete line written since the previous call (all at first)."""

    def close(self) -> None:  # noqa: B027 - optional for subclasses
        """Release open files or connections."""


class FingerprintBlobs(ABC):
    """Code fingerprints by digest: ``(source, parts)``; an entry never changes once written."""

    @abstractmethod
    def save(self, digest: str, source: str, parts: Sequence[str]) -> None:
        """Keep the source and parts of ``digest`` (nothing happens when it is stored already)."""

    @abstractmethod
    def load(self, digest: str) -> tuple[str, tuple[str, ...]] | None:
        """Return the stored ``(source, parts)`` of ``digest``, or ``None``."""

    def close(self) -> None:  # noqa: B027 - optional for subclasses
        """Release connections."""


class Backend(ABC):
    """Everything jugnb does per store kind, for one jugdir.

    Parameters
    ----------
    spec : str
        The jugdir as jug's ``--jugdir`` takes it, folder paths already absolute
        (:func:`jugnb.backends.spec.resolve_jugdir`). May hold a redis password: ``str()`` redacts it.
    """

    #: The kind name, as :attr:`jugnb.backends.spec.Jugdir.kind`.
    kind: ClassVar[str]
    #: Whether several worker processes can share this store.
    supports_workers: ClassVar[bool] = True
    #: Whether jugnb keeps task records and code fingerprints for this store (it must be shared to).
    keeps_records: ClassVar[bool] = True
    #: Whether a lock records its owner (pid and host), so that a dead owner's locks can be found.
    lock_names_owner: ClassVar[bool] = False
    #: Whether results outlive the process that stored them (not so for an in-memory ``dict_store``).
    persistent: ClassVar[bool] = True
    #: Whether a kernel should keep its open store across reloads of the jugfile (state or connections).
    reuse_open_store: ClassVar[bool] = False

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def __str__(self) -> str:
        return redact(self.spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @property
    def folder(self) -> Path | None:
        """The store's folder on disk, if it has one."""
        return None

    def unshareable_reason(self) -> str:
        """Why worker processes cannot use this store, and what to use instead (empty if they can)."""
        return ""

    @abstractmethod
    def open(self, *, fatal: bool = False, retry_for: float | None = None) -> Any:
        """Open jug's store for this jugdir.

        Parameters
        ----------
        fatal : bool
            A server lost later stops the process's task loop (workers, the CLI) instead of failing tasks.
        retry_for : float, optional
            Seconds to retry an unreachable server.

        Raises
        ------
        StoreError
            If the store cannot be opened (message without any password).
        """

    def open_for_jug(self, retry_for: float | None = None) -> Any:
        """Return a store for jug's subcommands where jug's ``select`` would open it wrongly, else ``None``.

        Parameters
        ----------
        retry_for : float, optional
            Seconds to retry an unreachable server (a store with a server opens in fatal mode here).

        Raises
        ------
        StoreError
            If the store cannot be opened.
        """
        return None

    def check_reachable(self) -> None:  # noqa: B027 - nothing to check for most stores
        """Raise :class:`~jugnb.errors.StoreError` now if workers could not reach the store."""

    def save(self, store: Any) -> bool:
        """Write an in-memory store with a backing file now; return whether there was one to write."""
        return False

    @contextlib.contextmanager
    def running_tasks(self, store: Any) -> Iterator[None]:
        """Run jug's execute loop on ``store`` in this process, safely for the store (saved afterwards)."""
        try:
            yield
        finally:
            self.save(store)

    # -- locks ------------------------------------------------------------------------------------------

    def lock_owner(self, task_hash: str, store: Any = None) -> LockOwner | None:
        """Return who holds the lock of ``task_hash``; ``None`` if the task is not locked."""
        return None

    def iter_locks(self) -> Iterable[LockOwner]:
        """Every lock of the store whose owner can be read (nothing for stores without owners)."""
        return ()

    @abstractmethod
    def release_lock(self, task_hash: str, store: Any = None) -> bool:
        """Remove the lock of ``task_hash`` unless it marks a failed task; return whether one was removed.

        Raises
        ------
        StoreError
            If the store cannot be reached.
        """

    def held_locks(self, store: Any) -> list[str]:
        """Hashes of the locks this process may still hold after losing its store (redis), sorted."""
        return []

    def result_location(self, task_hash: str) -> str:
        """Describe where the result of ``task_hash`` is stored, for messages (never with a password)."""
        return f"the {self.kind} {self}"

    def stored_result(self, task_hash: str, store: Any) -> bytes | None:
        """Return the encoded bytes of a stored result as jug wrote them; ``None`` if they cannot be read.

        Used to tell a truncated result from a stored ``None`` (jug decodes both as ``None``).
        """
        return None

    def change_token(self, store: Any = None) -> tuple[int, ...]:
        """Return a cheap value that changes whenever a task is locked or unlocked (hence finished).

        Constant for stores that cannot tell: waiters then fall back to periodic rescans.
        """
        return (0,)

    def notify_change(self, store: Any) -> None:  # noqa: B027 - most stores signal by themselves
        """Wake waiting workers after a change that :meth:`change_token` would not see by itself."""

    # -- jugnb's own data beside the jugdir -------------------------------------------------------------

    def companion_folder(self, what: str) -> Path:
        """Return ``<jugdir>.jugnb/<what>``, jugnb's folder of ``what`` beside a file jugdir.

        Raises
        ------
        StoreError
            If the store has no folder to put it beside.
        """
        msg = f"{what} need a folder jugdir; {self} has none."
        raise StoreError(msg)

    def leases(self, store: Any = None) -> LeaseStore:
        """Open the workers' leases of this jugdir (:mod:`jugnb.backends.leases`).

        Raises
        ------
        StoreError
            For a store whose workers cannot be shared (nothing to lease).
        """
        raise StoreError(f"leases need a store that worker processes share; {self} is not one.")

    @abstractmethod
    def record_lines(self, store: Any = None) -> RecordLines:
        """Open the task-record log of this jugdir (``store``: the open store, whose client is shared).

        Raises
        ------
        StoreError
            For a store that keeps results in one process only (no records to share).
        """

    @abstractmethod
    def fingerprint_blobs(self, store: Any = None) -> FingerprintBlobs:
        """Open the code-fingerprint store of this jugdir.

        Raises
        ------
        StoreError
            As :meth:`record_lines`.
        """
