"""Bulk readers of which results and locks exist in a jug store, one per store type.

:class:`jugnb.status.StatusReader` turns these into task states. Each reader answers, for a fixed list of
task hashes (the graph's unique hashes, by position: the *uid*), two questions in bulk:

- ``results()``: a bool array, whether a result exists (in a file or in the pack) for each hash;
- ``locks(wanted)``: an int8 array, ``UNLOCKED``, ``LOCKED`` or ``FAILED`` per hash, exactly as
  ``lock.is_locked()``/``lock.is_failed()`` of the store's own lock class would say. Only entries where
  ``wanted`` is true need be right; the others may be left ``UNLOCKED`` or ``LOCKED``.

The file store reader is incremental: a result appears in (or leaves) ``<jugdir>/<h[:2]>/`` by a rename or an
unlink, both of which change that folder's mtime, so a folder whose ``(st_ino, st_mtime_ns)`` did not change
since a verified listing is not listed again. A listing is only trusted once it was taken at least
``RACY_SECONDS`` after the folder's mtime was first seen: a file created in the same timestamp tick as the
previous change leaves the mtime as it was (coarse-grained timestamps, 2 s on FAT), the same "racy" problem
git has with its index. On NFS, results can additionally appear as late as the client's attribute cache
allows (``actimeo``), just as they do for jug's own ``os.path.exists``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .errors import StoreError

UNLOCKED, LOCKED, FAILED = 0, 1, 2
RACY_SECONDS = 2.0
# jug's file_keepalive_based_lock.is_failed hard-codes this (a lock not touched for 30 minutes is dead);
# tests/test_status.py checks that the two agree.
KEEPALIVE_TIMEOUT = 30 * 60
# file_based_lock.fail() sets a lock's mtime to this (jug issue #55).
_FAILED_MTIME = 1.0
_REDIS_BATCH = 10_000

BoolArray = npt.NDArray[np.bool_]
LockArray = npt.NDArray[np.int8]


class StoreReader(Protocol):
    """What :class:`jugnb.status.StatusReader` needs from a store."""

    description: str

    def results(self) -> BoolArray:
        """Whether a result exists, per uid (the caller does not modify the array)."""

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock state per uid; must be right where ``wanted`` is true."""


def make_reader(store: Any, hashes: Sequence[str], uid_of: Mapping[str, int]) -> StoreReader:
    """Choose the fastest reader that gives the same answers as ``store`` itself.

    Parameters
    ----------
    store : jug store
        ``Task.store`` of the loaded graph, or a jugdir string for ``jug.backends.select``. A
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
    from jug.backends import dict_store, file_store, memoize_store, redis_store, select

    store = select(store)
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
        return RedisReader(store.redis, hashes, uid_of)
    return GenericReader(store, hashes)


@dataclass
class _Watched:
    """Change detection for one folder or file, by its stat key, with git's racy-timestamp rule."""

    key: tuple[int, ...] | None = None
    first_seen: float = -1.0  # time.monotonic() right after the stat that first returned ``key``
    verified: bool = False  # a listing taken RACY_SECONDS after ``first_seen`` saw no change since

    def must_read(self, path: str, started: float) -> tuple[bool, bool]:
        """Stat ``path``; return (must re-read it, it exists). ``started``: monotonic time before the stat."""
        key = _stat_key(path)
        if key != self.key or self.first_seen < 0:
            self.key, self.first_seen, self.verified = key, time.monotonic(), False
        elif self.verified:
            return False, key is not None
        # Re-read until one read starts RACY_SECONDS after the change was seen; then trust the key.
        self.verified = started - self.first_seen >= RACY_SECONDS
        return True, key is not None


def _stat_key(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


@dataclass
class _Folder:
    """One ``<jugdir>/<h[:2]>`` folder and the uids whose results live there."""

    path: str
    uids: npt.NDArray[np.intp]
    suffixes: list[str]  # h[2:], the result file names
    watch: _Watched = field(default_factory=_Watched)

    def refresh(self, done: BoolArray, started: float) -> None:
        must, exists = self.watch.must_read(self.path, started)
        if not must:
            return
        names = _listdir(self.path) if exists else frozenset()
        done[self.uids] = np.fromiter((s in names for s in self.suffixes), bool, len(self.suffixes))


def _listdir(path: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


class FileReader:
    """Reader for ``file_store`` and ``file_keepalive_store``: one listing per changed folder.

    Parameters
    ----------
    jugdir : str
        The store's ``jugdir`` attribute (as jug uses it for paths).
    hashes : sequence of str
        Hex task hashes by uid.
    uid_of : mapping of str to int
        Uid of each hash whose lock matters.
    keepalive : bool
        Whether locks follow ``file_keepalive`` rules (failed after ``KEEPALIVE_TIMEOUT`` s untouched).
    """

    def __init__(
        self, jugdir: str, hashes: Sequence[str], uid_of: Mapping[str, int], *, keepalive: bool
    ) -> None:
        prefix = "file_keepalive:" if keepalive else ""
        self.description = f"{prefix}{jugdir}"
        # jug resolves a relative jugdir against the working directory, which a kernel's user may change.
        jugdir = os.path.abspath(jugdir)
        self._jugdir = jugdir
        self._keepalive = keepalive
        self._file_done = np.zeros(len(hashes), bool)
        self._pack_done = np.zeros(len(hashes), bool)
        self._folders = _group_by_folder(jugdir, hashes)
        self._pack_watch = _Watched()
        self._hashes = hashes
        self._uid_of = uid_of

    def results(self) -> BoolArray:
        """Whether each uid has a result file or a packed result.

        Raises
        ------
        StoreError
            If a part of the jugdir cannot be read (e.g. permissions).
        """
        started = time.monotonic()
        try:
            for folder in self._folders:
                folder.refresh(self._file_done, started)
            self._refresh_pack(started)
        except OSError as err:
            msg = f"cannot read the jugdir {self._jugdir}: {err}"
            raise StoreError(msg, path=self._jugdir) from None
        return self._file_done | self._pack_done

    def _refresh_pack(self, started: float) -> None:
        packfile = os.path.join(self._jugdir, "packs", "jugpack")
        must, exists = self._pack_watch.must_read(packfile, started)
        if must:
            keys = _pack_keys(packfile) if exists else frozenset()
            self._pack_done[:] = False
            if keys:
                self._pack_done[:] = np.fromiter((h in keys for h in self._hashes), bool, len(self._hashes))

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock states from one listing of ``<jugdir>/locks`` (locks are few, and re-read every time).

        A lock's failure is in its mtime, which does not change the folder's mtime, so this is not cached.
        """
        out = np.zeros(len(wanted), np.int8)
        try:
            entries = os.scandir(os.path.join(self._jugdir, "locks"))
        except (FileNotFoundError, NotADirectoryError):
            return out
        now = time.time()
        with entries:
            for entry in entries:
                name = entry.name
                uid = self._uid_of.get(name[: -len(".lock")]) if name.endswith(".lock") else None
                if uid is None:
                    continue
                out[uid] = LOCKED
                if wanted[uid]:
                    out[uid] = self._lock_state(entry, now)
        return out

    def _lock_state(self, entry: os.DirEntry[str], now: float) -> int:
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:
            return UNLOCKED  # released since the listing
        if self._keepalive:
            return FAILED if mtime <= now - KEEPALIVE_TIMEOUT else LOCKED
        return FAILED if mtime == _FAILED_MTIME else LOCKED


def _group_by_folder(jugdir: str, hashes: Sequence[str]) -> list[_Folder]:
    groups: dict[str, list[int]] = {}
    for uid, h in enumerate(hashes):
        groups.setdefault(h[:2], []).append(uid)
    return [
        _Folder(os.path.join(jugdir, p), np.array(uids, np.intp), [hashes[u][2:] for u in uids])
        for p, uids in sorted(groups.items())
    ]


class _Opaque:
    """Stands in for a class of a packed value that cannot be imported here: only the keys are wanted."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _KeysUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _Opaque


def _pack_keys(packfile: str) -> frozenset[str]:
    """Read the keys of jug's pack (``file_store.update_pack``): a compressed pickled dict of results."""
    from jug.backends.encode import decompress_stream

    try:
        with open(packfile, "rb") as raw:
            stream = decompress_stream(raw)
            prefix = stream.read(1)
            packed = _KeysUnpickler(stream).load() if prefix == b"P" else {}
    except FileNotFoundError:
        return frozenset()  # replaced or removed since the stat; the next read sees the new key
    # jug packs keys as bytes (Task.hash()); decode them to compare with our str hashes.
    return frozenset(k.decode("ascii") if isinstance(k, bytes) else str(k) for k in packed)


class DictReader:
    """Reader for jug's in-memory ``dict_store``: looks keys up in its dict directly."""

    def __init__(self, store: Any, hashes: Sequence[str]) -> None:
        backend = getattr(store, "backend", None)
        self.description = "dict_store" if backend is None else f"dict_store:{backend}"
        self._data: dict[bytes, Any] = store.store
        self._result_keys = [b"result:" + h.encode("ascii") for h in hashes]
        self._lock_keys = [b"lock:" + h.encode("ascii") for h in hashes]

    def results(self) -> BoolArray:
        """Whether each uid has a result."""
        data = self._data
        return np.fromiter((k in data for k in self._result_keys), bool, len(self._result_keys))

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock states; dict_lock stores 1 (locked) or 2 (failed), the same codes as ours."""
        data = self._data
        return np.fromiter((data.get(k, UNLOCKED) for k in self._lock_keys), np.int8, len(self._lock_keys))


class RedisReader:
    """Reader for jug's ``redis_store``: SCAN over ``result:*`` and ``lock:*``, then MGET of the locks.

    The round trips grow with the number of keys in the database divided by the SCAN batch, never with one
    per task. When the database holds far more keys than the graph (other graphs share it), pipelined
    EXISTS on the graph's own keys is cheaper and is used instead.

    Parameters
    ----------
    client : redis.Redis
        The store's client (``store.redis``).
    hashes : sequence of str
        Hex task hashes by uid.
    uid_of : mapping of str to int
        Uid of each hash whose lock matters.
    """

    def __init__(self, client: Any, hashes: Sequence[str], uid_of: Mapping[str, int]) -> None:
        self._client = client
        self.description = _redis_description(client)
        self._result_keys = [b"result:" + h.encode("ascii") for h in hashes]
        self._uid_of = uid_of

    def results(self) -> BoolArray:
        """Whether each uid has a result.

        Raises
        ------
        StoreError
            If the server cannot be reached or refuses the command (password redacted).
        """
        with self._errors():
            n = len(self._result_keys)
            if self._client.dbsize() > 4 * n + _REDIS_BATCH:
                return np.fromiter(self._exists(self._result_keys), bool, n)
            existing = set(self._scan(b"result:*"))
            return np.fromiter((k in existing for k in self._result_keys), bool, n)

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock states: jug's redis locks hold ``L`` (locked) or ``F`` (failed).

        Raises
        ------
        StoreError
            As :meth:`results`.
        """
        out = np.zeros(len(wanted), np.int8)
        with self._errors():
            uids = self._lock_uids()
            keys = list(uids)
            for start in range(0, len(keys), _REDIS_BATCH):
                batch = keys[start : start + _REDIS_BATCH]
                for key, value in zip(batch, self._client.mget(batch), strict=True):
                    out[uids[key]] = {b"L": LOCKED, b"F": FAILED}.get(value, UNLOCKED)
        return out

    def _lock_uids(self) -> dict[bytes, int]:
        """Find the graph's ``lock:<hash>`` keys in the database, with their uids."""
        found = {}
        for key in self._scan(b"lock:*"):
            uid = self._uid_of.get(key[len(b"lock:") :].decode("ascii", "replace"))
            if uid is not None:
                found[key] = uid
        return found

    def _scan(self, pattern: bytes) -> Iterable[bytes]:
        cursor = 0
        while True:
            cursor, keys = self._client.scan(cursor, match=pattern, count=_REDIS_BATCH)
            yield from keys
            if not cursor:
                return

    def _exists(self, keys: Sequence[bytes]) -> Iterable[bool]:
        for start in range(0, len(keys), _REDIS_BATCH):
            pipe = self._client.pipeline(transaction=False)
            for key in keys[start : start + _REDIS_BATCH]:
                pipe.exists(key)
            yield from (bool(n) for n in pipe.execute())

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _redis_errors(self.description)


@contextlib.contextmanager
def _redis_errors(description: str) -> Iterator[None]:
    """Turn redis-py errors into :class:`StoreError` naming the server but never its password."""
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as err:
        # redis-py's messages name host and port, never the password; the type says what went wrong.
        msg = f"cannot read status from {description}: {type(err).__name__}: {err}"
        raise StoreError(msg, path=description) from None


def _redis_description(client: Any) -> str:
    """``redis://host:port/db`` of a client, built from its parameters so no password can slip in."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"redis+unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


class GenericReader:
    """Reader for any other store: asks the store about each task, as ``jug status`` would."""

    def __init__(self, store: Any, hashes: Sequence[str]) -> None:
        self.description = type(store).__name__
        self._store = store
        self._hash_bytes = [h.encode("ascii") for h in hashes]

    def results(self) -> BoolArray:
        """Whether each uid has a result (``store.can_load`` per hash)."""
        can_load = self._store.can_load
        return np.fromiter((bool(can_load(h)) for h in self._hash_bytes), bool, len(self._hash_bytes))

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock states, asked only for the wanted uids (``getlock(h).is_locked()``/``is_failed()``)."""
        out = np.zeros(len(wanted), np.int8)
        for uid in np.flatnonzero(wanted):
            lock = self._store.getlock(self._hash_bytes[uid])
            if lock.is_locked():
                out[uid] = FAILED if lock.is_failed() else LOCKED
        return out
