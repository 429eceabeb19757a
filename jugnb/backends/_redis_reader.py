"""Reader of jug's ``redis_store``: bulk SCAN and MGET, never one round trip per task."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import StoreError
from .readers import FAILED, LOCKED, UNLOCKED, BoolArray, LockArray

_REDIS_BATCH = 10_000


class RedisReader:
    """Reader for jug's ``redis_store``: one SCAN over the database, then MGET of the graph's locks.

    The round trips grow with the number of keys in the database divided by the SCAN batch, never with one
    per task. The same pass finds results and locks (a second SCAN would walk every key again). When the
    database holds far more keys than the graph (other graphs share it), pipelined EXISTS on the graph's
    own result keys and a SCAN for ``lock:*`` cost less and are used instead.

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
        # result:<hash> -> uid; insertion order is uid order
        self._uid_of_key = {b"result:" + h.encode("ascii"): uid for uid, h in enumerate(hashes)}
        self._uid_of = uid_of
        self._lock_keys: list[bytes] | None = None  # found by the SCAN in results(), for locks()

    def results(self) -> BoolArray:
        """Whether each uid has a result.

        Raises
        ------
        StoreError
            If the server cannot be reached or refuses the command (password redacted).
        """
        self._lock_keys = None
        with self._errors():
            n = len(self._uid_of_key)
            if self._client.dbsize() > 4 * n + _REDIS_BATCH:
                return np.fromiter(self._exists(list(self._uid_of_key)), bool, n)
            existing = set(self._scan(None))
        others = existing.difference(self._uid_of_key)  # set operations loop in C, not in Python
        self._lock_keys = [k for k in others if k.startswith(b"lock:")]
        return _members(existing, self._uid_of_key)

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock states: jug's redis locks hold ``L`` (locked) or ``F`` (failed).

        Lock keys come from the SCAN of the :meth:`results` call just before, when there was one.

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
                    out[uids[key]] = _lock_state(value)
        return out

    def _lock_uids(self) -> dict[bytes, int]:
        """Find the graph's ``lock:<hash>`` keys in the database, with their uids."""
        keys, self._lock_keys = self._lock_keys, None
        found = {}
        for key in keys if keys is not None else self._scan(b"lock:*"):
            uid = self._uid_of.get(key[len(b"lock:") :].decode("ascii", "replace"))
            if uid is not None:
                found[key] = uid
        return found

    def _scan(self, pattern: bytes | None) -> Iterable[bytes]:
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


def _lock_state(value: bytes | None) -> int:
    """State of a lock key's value; like ``jug status`` (which lists the keys), any present key is a lock."""
    if value is None:
        return UNLOCKED  # released since the SCAN
    return FAILED if value == b"F" else LOCKED


def _members(existing: set[bytes], uid_of_key: dict[bytes, int]) -> BoolArray:
    """Per uid, whether its key is in ``existing``, looping in Python over the rarer of present/missing."""
    n = len(uid_of_key)
    present = existing.intersection(uid_of_key)
    if len(present) <= n // 2:
        done = np.zeros(n, bool)
        done[np.fromiter((uid_of_key[k] for k in present), np.intp, len(present))] = True
    else:
        missing = uid_of_key.keys() - present
        done = np.ones(n, bool)
        done[np.fromiter((uid_of_key[k] for k in missing), np.intp, len(missing))] = False
    return done


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
