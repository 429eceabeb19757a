"""Everything jugnb does differently per store kind, one module per kind of jug store.

- :mod:`.base`: the :class:`Backend` interface; :func:`select` picks the backend of a jugdir string, as
  ``jug.backends.select`` picks a store;
- :mod:`.file` (a folder, ``file_keepalive:``), :mod:`.redis` (with :mod:`.redis_store`, jug's store opened
  with the password and database jug drops), :mod:`.memory` (``dict_store``, ``dict_store:FILE``);
- :mod:`.readers` and ``_*_reader``: results and locks read in bulk (:func:`make_reader`);
- :mod:`.spec`: jugdir strings: kinds, absolute paths, password redaction.

Lives here: opening a store, bulk status reads, lock owners and release, the change signal idle workers
wait on, and where task records and code fingerprints are kept. Does not live here: what those records
and fingerprints mean. Nothing here imports from the rest of jugnb except :mod:`jugnb.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import Backend, FingerprintBlobs, LockOwner, RecordLines
from .leases import Lease, LeaseStore
from .readers import StoreReader
from .spec import Jugdir, kind_of, open_store, redact, redact_text, resolve_jugdir

__all__ = [
    "Backend",
    "FingerprintBlobs",
    "Jugdir",
    "Lease",
    "LeaseStore",
    "leases_of",
    "StoreReader",
    "LockOwner",
    "make_reader",
    "RecordLines",
    "persist",
    "redact",
    "redact_text",
    "resolve_jugdir",
    "select",
    "store_lost_errors",
]


def select(jugdir: str) -> Backend:
    """Return the backend of a jugdir string, choosing as ``jug.backends.select`` does.

    Parameters
    ----------
    jugdir : str
        ``FOLDER``, ``file_keepalive:FOLDER``, ``redis://...``, ``dict_store`` or ``dict_store:FILE`` (folder
        paths should be absolute: :func:`resolve_jugdir`).
    """
    from .file import FileBackend, FileKeepaliveBackend
    from .memory import DictBackend, DictFileBackend
    from .redis import RedisBackend

    kinds: dict[str, type[Backend]] = {
        "file": FileBackend,
        "file_keepalive": FileKeepaliveBackend,
        "redis": RedisBackend,
        "dict_store": DictBackend,
        "dict_store_file": DictFileBackend,
    }
    return kinds[kind_of(jugdir)](jugdir)


def leases_of(jugdir: str, store: Any = None) -> LeaseStore:
    """Return the workers' leases of ``jugdir`` (``store``: jug's open store, whose client is shared).

    Raises
    ------
    StoreError
        For a store whose workers cannot be shared (``dict_store``).
    """
    return select(jugdir).leases(store)


def store_lost_errors() -> tuple[type[BaseException], ...]:
    """Return the exceptions a lost store server raises in fatal mode (none before any such store opened)."""
    import sys

    redis_store = sys.modules.get("jugnb.backends.redis_store")
    return (redis_store.StoreLost,) if redis_store is not None else ()


def make_reader(store: Any, hashes: Sequence[str], uid_of: Mapping[str, int]) -> StoreReader:
    """Choose the fastest reader that gives the same answers as ``store`` itself.

    Parameters
    ----------
    store : jug store
        ``Task.store`` of the loaded graph, or a jugdir string (:func:`jugnb.backends.spec.open_store`). A
        ``memoize_store`` (left behind by an in-process ``jug status``) is unwrapped: it caches answers.
    hashes : sequence of str
        Hex task hashes, indexed by uid.
    uid_of : mapping of str to int
        Uid of each hash whose lock matters (the listed tasks').

    Returns
    -------
    StoreReader
        A bulk reader for jug's own store classes (matched by exact type, since a subclass may answer
        differently), else one asking ``store`` per task.
    """
    from jug.backends import dict_store, file_store, memoize_store, redis_store

    from ._file_reader import FileReader
    from .readers import DictReader, GenericReader

    store = open_store(store) if isinstance(store, str) else store
    while type(store) is memoize_store:
        store = store.base
    kind = type(store)
    if kind is file_store.file_store:
        return FileReader(store.jugdir, hashes, uid_of, keepalive=False)
    if kind is file_store.file_keepalive_store:
        return FileReader(store.jugdir, hashes, uid_of, keepalive=True)
    if kind is dict_store:
        return DictReader(store, hashes)
    if kind is redis_store.redis_store:
        from ._redis_reader import RedisReader

        return RedisReader(store.redis, hashes, uid_of)
    return GenericReader(store, hashes)


def persist(store: Any) -> bool:
    """Save an open store that lives in memory with a backing file (``dict_store:FILE``); else nothing.

    For code that holds a store object but not its jugdir (the task browser, ``invalidate``).
    """
    from .spec import save_dict_store

    return save_dict_store(store)
