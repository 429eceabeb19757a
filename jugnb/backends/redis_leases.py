"""Leases of a redis store: TTL keys and lock owners in jug's database (see :mod:`jugnb.backends.leases`)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from .leases import LEASES_HASH, LOST_HASH, Lease, LeaseStore

_REDIS_CHANGES = "jugnb:changes"  # the counter waiting workers watch (jugnb.workers.locks.REDIS_CHANGES)
# Atomic: the owner and the lock are checked and deleted together, never a failed mark ('F').
_RELEASE_SCRIPT = """
local released = {}
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('GET', 'jugnb:owner:' .. h) == ARGV[1] then
    if redis.call('GET', 'lock:' .. h) == 'L' then
      redis.call('DEL', 'lock:' .. h)
      table.insert(released, h)
    end
    redis.call('DEL', 'jugnb:owner:' .. h)
  end
end
redis.call('DEL', KEYS[1])
return released
"""


class RedisLeases(LeaseStore):
    """Leases of a redis store (keys in jug's database; see the module docstring)."""

    def __init__(self, client: Any, owned: bool = False) -> None:
        self.client = client
        self.owns_client = owned

    def append_cleanup_log(self, line: str) -> None:
        """Append to the list ``jugnb:cleanup-log``."""
        self.client.rpush("jugnb:cleanup-log", line)

    def close(self) -> None:
        """Close the client when this object opened it."""
        if self.owns_client:
            self.client.close()

    def write(self, lease: Lease) -> None:
        """Register or renew ``lease``."""
        text = lease.to_json()
        pipe = self.client.pipeline()
        pipe.set(f"jugnb:lease:{lease.worker}", text, px=max(1, int(lease.timeout * 1000)))
        pipe.hset(LEASES_HASH, lease.worker, text)
        pipe.execute()

    def remove(self, worker: str) -> None:
        """Drop the lease of a worker that exits cleanly."""
        self.client.pipeline().delete(f"jugnb:lease:{worker}").hdel(LEASES_HASH, worker).execute()

    def read_all(self) -> list[Lease]:
        """Every registered lease, live or expired."""
        registered = [Lease.from_json(v) for v in self.client.hgetall(LEASES_HASH).values()]
        leases = [lease for lease in registered if lease is not None]
        if not leases:
            return []
        pipe = self.client.pipeline()
        for lease in leases:
            pipe.get(f"jugnb:lease:{lease.worker}")
        out = []
        for lease, live in zip(leases, pipe.execute(), strict=True):
            current = Lease.from_json(live) if live is not None else None
            # The TTL key is the truth: without it the lease expired, whatever the clocks say.
            if current is None:
                current = replace(lease, renewed=min(lease.renewed, time.time() - lease.timeout - 0.001))
            out.append(current)
        return out

    def read_lost(self) -> list[Lease]:
        """Leases found expired."""
        lost = [Lease.from_json(v) for v in self.client.hgetall(LOST_HASH).values()]
        return [lease for lease in lost if lease is not None]

    def is_lost(self, worker: str) -> bool:
        """Whether ``worker`` was declared lost."""
        return bool(self.client.hexists(LOST_HASH, worker))

    def _claim(self, lease: Lease, force: bool = False) -> bool:
        if force:
            self.client.delete(f"jugnb:lease:{lease.worker}")
        elif self.client.exists(f"jugnb:lease:{lease.worker}"):
            return False  # renewed meanwhile
        return bool(self.client.hdel(LEASES_HASH, lease.worker))

    def _record_lost(self, lease: Lease) -> None:
        self.client.hset(LOST_HASH, lease.worker, lease.to_json())

    def release_locks(self, lease: Lease) -> list[str]:
        """Delete the locks the lease's worker held; return their hashes."""
        released = self.client.eval(_RELEASE_SCRIPT, 1, f"jugnb:held:{lease.worker}", lease.worker)
        hashes = [h.decode("ascii") if isinstance(h, bytes) else str(h) for h in released]
        if hashes:
            self.client.incr(_REDIS_CHANGES)  # wakes waiting workers
        return hashes

    def owned(self, task_hash: str, worker: str) -> None:
        """Record ``worker`` as the owner of the lock on ``task_hash``."""
        self.client.pipeline().set(f"jugnb:owner:{task_hash}", worker).sadd(
            f"jugnb:held:{worker}", task_hash
        ).execute()

    def disowned(self, task_hash: str, worker: str) -> None:
        """Forget the ownership of ``task_hash``."""
        self.client.pipeline().delete(f"jugnb:owner:{task_hash}").srem(
            f"jugnb:held:{worker}", task_hash
        ).execute()

    def lock_owners(self) -> dict[str, str]:
        """Map task hash to the worker id of its recorded owner."""
        owners: dict[str, str] = {}
        for lease in self.read_all():
            members = self.client.smembers(f"jugnb:held:{lease.worker}")
            for h in members:
                owners[h.decode("ascii") if isinstance(h, bytes) else str(h)] = lease.worker
        return owners
