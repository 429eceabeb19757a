"""Redis jugdirs (``redis://[:password@]host[:port][/db]``): locks, change signal, jugnb's keys beside jug's.

The store itself is jug's ``redis_store`` opened with the password and database jug drops
(:mod:`jugnb.backends.redis_store`). jugnb keeps its own data in the same database, under keys that
``jug cleanup`` and ``invalidate`` never touch:

- ``jugnb:records``: a stream of task records (one entry per record, field ``r``); readers use ``XRANGE``
  from the last id seen, never ``KEYS``;
- ``jugnb:fingerprints``: a hash of code fingerprints (field: digest, value: JSON ``{"source", "parts"}``);
- ``jugnb:changes``: a counter bumped after each task and lock release, because ``DBSIZE`` alone can miss a
  change (a result added and a lock deleted leave it as it was).

jug's lock ``lock:<hash>`` is ``L`` (running) or ``F`` (failed) and names no owner.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from ..errors import StoreError
from .base import Backend, FingerprintBlobs, LockOwner, RecordLines
from .leases import LeaseStore
from .redis_url import WORKER_RETRY

RECORDS_STREAM = "jugnb:records"
FINGERPRINTS_HASH = "jugnb:fingerprints"
CHANGES_COUNTER = "jugnb:changes"


class RedisBackend(Backend):
    """A jugdir in a redis database."""

    kind: ClassVar[str] = "redis"
    reuse_open_store: ClassVar[bool] = True  # a connection pool worth keeping

    def open(self, *, fatal: bool = False, retry_for: float | None = None) -> Any:
        """Open jug's ``redis_store`` with jugnb's client (password, database, retries).

        Raises
        ------
        StoreError
            Also when the redis package is not installed (with the command that installs it).
        """
        try:
            from .redis_store import open_redis_store
        except ImportError:
            msg = "a redis jugdir needs the redis package: pip install 'jugnb[redis]'."
            raise StoreError(msg) from None

        return open_redis_store(self.spec, retry_for=retry_for, fatal=fatal)

    def open_for_jug(self, retry_for: float | None = None) -> Any:
        """Open the store in fatal mode for jug's subcommands (jug would drop password and database)."""
        return self.open(fatal=True, retry_for=WORKER_RETRY if retry_for is None else retry_for)

    def check_reachable(self) -> None:
        """Ping the server with the password (raises :class:`~jugnb.errors.StoreError` if it fails)."""
        self.open().redis.close()

    @contextlib.contextmanager
    def running_tasks(self, store: Any) -> Iterator[None]:
        """Stop the loop at once (``StoreUnreachable``) when the server stays lost past the retry time."""
        from .redis_store import fatal_errors

        with fatal_errors(store):
            yield

    def lock_owner(self, task_hash: str, store: Any = None) -> LockOwner | None:
        """``lock:<hash>`` names no owner: only whether it is a failed mark."""
        with self._client(store) as client:
            value = client.get(f"lock:{task_hash}")
        if value is None:
            return None
        return LockOwner(task_hash, None, None, None, failed=value == b"F")

    def release_lock(self, task_hash: str, store: Any = None) -> bool:
        """Delete ``lock:<hash>`` unless it is a failed mark, and wake waiting workers."""
        with self._client(store) as client:
            key = f"lock:{task_hash}"
            if client.get(key) == b"F" or not client.delete(key):
                return False
            client.incr(CHANGES_COUNTER)
            return True

    def held_locks(self, store: Any) -> list[str]:
        """Return the locks this process took and did not release (kept when it loses the server)."""
        return sorted(getattr(getattr(store, "redis", None), "held_locks", ()))

    def result_location(self, task_hash: str) -> str:
        """Return the key ``result:<hash>`` and the server (password redacted)."""
        return f"key result:{task_hash} in {self}"

    def stored_result(self, task_hash: str, store: Any) -> bytes | None:
        """Return the key's value, base64-decoded as jug's redis store does."""
        import base64

        with self._client(store) as client:
            raw = client.get(f"result:{task_hash}")
        return base64.b64decode(raw) if raw else None

    def change_token(self, store: Any = None) -> tuple[int, ...]:
        """``DBSIZE`` and the ``jugnb:changes`` counter, in one round trip (``store`` must be open)."""
        if store is None or not hasattr(store, "redis"):
            return (0,)
        size, changes = store.redis.pipeline().dbsize().get(CHANGES_COUNTER).execute()
        return (int(size), int(changes or 0))

    def notify_change(self, store: Any) -> None:
        """``INCR jugnb:changes``."""
        store.redis.incr(CHANGES_COUNTER)

    def leases(self, store: Any = None) -> LeaseStore:
        """TTL keys and lock owners in jug's database (:mod:`jugnb.backends.redis_leases`)."""
        from .redis_leases import RedisLeases
        from .redis_store import client_for

        return RedisLeases(*client_for(self.spec, store))

    def record_lines(self, store: Any = None) -> RecordLines:
        """Open the stream ``jugnb:records``."""
        return RedisRecordLines(self.spec, store)

    def fingerprint_blobs(self, store: Any = None) -> FingerprintBlobs:
        """Open the hash ``jugnb:fingerprints``."""
        return RedisFingerprintBlobs(self.spec, store)

    @contextlib.contextmanager
    def _client(self, store: Any) -> Iterator[Any]:
        from .redis_store import client_for

        client, owned = client_for(self.spec, store)
        try:
            yield client
        finally:
            if owned:
                client.close()


class RedisRecordLines(RecordLines):
    """Lines in the stream ``jugnb:records`` (field ``r``).

    Parameters
    ----------
    url : str
        ``redis://[:password@]host[:port][/db]``; kept out of every repr and message.
    store : jug store, optional
        The open store of ``url``, whose client is shared.
    """

    def __init__(self, url: str, store: Any = None) -> None:
        from .redis_store import client_for

        self._redis, self._owned = client_for(url, store)
        self._last_id = "0-0"

    def __repr__(self) -> str:
        return "RedisRecordLines(<redis>)"

    def append(self, writer: str, line: str) -> None:
        """``XADD`` one entry."""
        self._redis.xadd(RECORDS_STREAM, {"r": line})

    def read_new(self) -> list[tuple[bytes, str]]:
        """Entries after the last id seen, 1000 per round trip."""
        lines: list[tuple[bytes, str]] = []
        while True:
            batch: list[tuple[bytes, dict[bytes, bytes]]]
            batch = self._redis.xrange(RECORDS_STREAM, min=f"({self._last_id}", count=1000)  # type: ignore[assignment]
            if not batch:
                return lines
            self._last_id = batch[-1][0].decode("ascii")
            lines.extend((fields[b"r"], RECORDS_STREAM) for _, fields in batch)

    def close(self) -> None:
        """Close the connection (unless it is the store's)."""
        if self._owned:
            self._redis.close()


class RedisFingerprintBlobs(FingerprintBlobs):
    """Fingerprints in the hash ``jugnb:fingerprints`` (parameters as :class:`RedisRecordLines`)."""

    def __init__(self, url: str, store: Any = None) -> None:
        from .redis_store import client_for

        self._redis, self._owned = client_for(url, store)
        self._saved: set[str] = set()

    def __repr__(self) -> str:
        return "RedisFingerprintBlobs(<redis>)"

    def save(self, digest: str, source: str, parts: Sequence[str]) -> None:
        """``HSETNX`` the source and parts as JSON."""
        if digest not in self._saved:
            value = json.dumps({"source": source, "parts": list(parts)})
            self._redis.hsetnx(FINGERPRINTS_HASH, digest, value)
            self._saved.add(digest)

    def load(self, digest: str) -> tuple[str, tuple[str, ...]] | None:
        """``HGET``; ``None`` if missing or damaged."""
        raw: Any = self._redis.hget(FINGERPRINTS_HASH, digest)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return str(data["source"]), tuple(str(p) for p in data["parts"])
        except (ValueError, KeyError, TypeError):
            return None

    def close(self) -> None:
        """Close the connection (unless it is the store's)."""
        if self._owned:
            self._redis.close()
