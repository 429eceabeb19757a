"""Bulk readers of which results and locks exist in a jug store, one per store type.

:class:`jugnb.status.reader.StatusReader` turns these into task states. Each reader answers, for a fixed list
of
task hashes (the graph's unique hashes, by position: the *uid*), two questions in bulk:

- ``results()``: a bool array, whether a result exists (in a file or in the pack) for each hash;
- ``locks(wanted)``: an int8 array, ``UNLOCKED``, ``LOCKED`` or ``FAILED`` per hash, exactly as
  ``lock.is_locked()``/``lock.is_failed()`` of the store's own lock class would say. Only entries where
  ``wanted`` is true need be right; the others may be left ``UNLOCKED`` or ``LOCKED``.

The file stores' reader is in :mod:`jugnb.backends._file_reader`, redis's in
:mod:`jugnb.backends._redis_reader` (imported only for a redis store); ``dict_store`` and any other store
are read here. :func:`jugnb.backends.make_reader` chooses one for a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

UNLOCKED, LOCKED, FAILED = 0, 1, 2

BoolArray = npt.NDArray[np.bool_]
LockArray = npt.NDArray[np.int8]


class StoreReader(Protocol):
    """What :class:`jugnb.status.reader.StatusReader` needs from a store."""

    description: str

    def results(self) -> BoolArray:
        """Whether a result exists, per uid (the caller does not modify the array)."""

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock state per uid; must be right where ``wanted`` is true."""


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
