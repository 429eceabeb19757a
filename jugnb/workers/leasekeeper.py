"""Inside a worker: keep this worker's lease renewed, and recover the locks of workers that died.

A daemon thread wakes every second (or every ``interval``, if shorter). It renews the lease when
``interval`` seconds have passed or the worker's state changed (a new task, one more done or failed), and
releases the locks of every expired lease in the jugdir (:func:`jugnb.backends.leases.recover_expired`);
releasing a lock changes the store's change token, so waiting workers pick the freed tasks up at their next
tick. When it
finds its own lease declared lost (this process was stopped or cut off for longer than ``timeout``), its
locks may be held by others already: it asks the worker to drain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..backends import leases_of
from ..backends.leases import Lease, LeaseStore, configured_timing, recover_expired
from ..errors import JugnbError
from ..session.tasks import task_hex

log = logging.getLogger("jugnb.workers.loop")


class LeaseKeeper:
    """Renews one worker's lease and recovers expired ones (see the module docstring).

    Parameters
    ----------
    leases : LeaseStore
        The jugdir's leases.
    lease : Lease
        This worker's first lease (:meth:`Lease.new`).
    state : callable
        Returns the fields that change (``state``, ``task``, ``task_hash``, ``task_since``, ``done``,
        ``failed``); called from the keeper's thread.
    on_lost : callable
        Called once (from the keeper's thread) when this worker's own lease was declared lost.
    names : callable, optional
        Task hash -> name, for the messages about lost workers.
    """

    def __init__(
        self,
        leases: LeaseStore,
        lease: Lease,
        state: Callable[[], dict[str, Any]],
        on_lost: Callable[[], None],
        names: Callable[[str], str] | None = None,
    ) -> None:
        self.leases = leases
        self.lease = lease
        self.state = state
        self.on_lost = on_lost
        self.names = names
        self.recovered: list[Lease] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the lease and start renewing it."""
        self.renew()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        """Write the lease with the worker's current state, renewed now."""
        self.lease = replace(self.lease, **self.state(), renewed=time.time())
        self.leases.write(self.lease)

    def _run(self) -> None:
        tick = min(1.0, self.lease.interval)
        while not self._stop.wait(tick):
            try:
                self._tick()
            except BaseException as err:  # a lost store: the worker's own loop reports it, traceback and all
                log.warning("lease upkeep failed: %s", err)

    def _tick(self) -> None:
        if self.leases.is_lost(self.lease.worker):
            log.error("this worker's lease expired and its locks were released: draining")
            self._stop.set()
            self.on_lost()
            return
        due = time.time() - self.lease.renewed >= self.lease.interval
        fields = self.state()
        # Any change: the next task of the same function has the same name but another hash, and the
        # done/failed counts are what `jugnb workers` and the panel show while the run goes.
        if due or any(getattr(self.lease, k) != v for k, v in fields.items()):
            self.renew()
        self.recovered += recover_expired(self.leases, self.names)

    def owned(self, task: Any) -> None:
        """``execute.task-pre-execute``: record this worker as the owner of the task's lock (redis)."""
        self.leases.owned(task_hex(task), self.lease.worker)

    def disowned(self, task: Any) -> None:
        """``execute.task-executed1``: the lock is about to be released."""
        self.leases.disowned(task_hex(task), self.lease.worker)

    def stop(self, remove: bool = True) -> None:
        """Stop renewing; ``remove`` the lease (a clean exit: nothing left to recover)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if remove:
            self.leases.remove(self.lease.worker)


def keeper_for(worker: Any) -> LeaseKeeper | None:
    """Make the keeper of a :class:`~jugnb.workers.loop.Worker`'s lease (``None``: a store without workers).

    The lease's state comes from the worker's heartbeat and recorder; a lost lease drains the worker.

    Raises
    ------
    StoreError
        When jugrc's lease timing is not a number, or the timeout is not longer than the interval.
    """
    try:
        leases = leases_of(worker.args.jugdir, worker.store)
    except JugnbError:
        return None
    interval, timeout = configured_timing(worker.args.lease_interval, worker.args.lease_timeout)
    lease = Lease.new(worker.args.worker_id, interval, timeout)

    def state() -> dict[str, Any]:
        beat = worker.heartbeat.state
        now = "draining" if worker.control.draining is not None else str(beat.get("state", "starting"))
        running = beat.get("state") == "running"
        return {
            "state": now,
            "task": beat.get("task") if running else None,
            "task_hash": beat.get("hash") if running else None,
            "task_since": beat.get("since") if running else None,
            "done": worker.recorder.nr_executed,
            "failed": worker.recorder.nr_failed,
        }

    def lost() -> None:
        worker.control.request_drain("this worker's lease expired; its locks were released")

    return LeaseKeeper(leases, lease, state, lost, task_name)


def task_name(task_hash: str) -> str:
    """Return the name of the task of the imported jugfile with ``task_hash`` (12 digits when unknown)."""
    from jug import task

    for t in list(task.alltasks):
        if t.hash().decode("ascii") == task_hash:
            return str(t.name)
    return task_hash[:12]
