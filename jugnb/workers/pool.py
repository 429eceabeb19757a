"""Background jug workers for a notebook: start, watch, drain, kill, and re-attach from a new kernel.

A :class:`WorkerPool` starts ``python -m jugnb.workers.loop`` processes (see :mod:`jugnb.workers.loop`), each
in its
own session, with a log file and a heartbeat file in ``<state_dir>/workers/<module>/``, and a named daemon
thread per worker that waits for it to exit. Its state is saved in ``<state_dir>/workers/<module>.json``
so that a new kernel (or ``jugnb workers NB.ipynb``) can :meth:`WorkerPool.reattach`.

Dead workers: a worker that dies without exiting normally (SIGKILL, the OOM killer, a crash) is noticed
at once by its waiter thread (a blocking ``wait``); the locks it held are released (only locks whose
content names its pid and this host and that were written while it lived, never failed marks nor other
hosts' locks); a ``"killed"`` record is written for the task it was running; and, unless the pool is
stopping, a replacement worker is started (at most ``max_replacements`` per pool). The remaining workers
are woken by the lock release and one of them runs the task again; the replacement keeps ``-j`` workers
busy.

Configuration (``%config WorkerPool`` in a kernel)::

    c.WorkerPool.stop_timeout = 5.0        # s from SIGTERM to SIGKILL in stop(now=True)
    c.WorkerPool.poll_interval = 0.1       # s between an idle worker's checks of the store
    c.WorkerPool.idle_timeout = 1800.0     # s an idle worker waits for unverifiable lock holders
    c.WorkerPool.shutdown_timeout = 10.0   # s within which workers stop after a kernel shutdown or restart
    c.WorkerPool.replace_dead = True
    c.WorkerPool.max_replacements = 4
    c.WorkerPool.rerun_failed = False       # another worker may run a task that failed in this execute
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil
from traitlets import Bool, Float, Int

from ..backends.spec import absolute_jugdir
from ..errors import StoreError, WorkerError
from ..status.records import RecordLog
from .exits import ExitReport, handle_exit, release_held_locks
from .launch import claim_worker_id, launch_worker, worker_command
from .locks import process_alive
from .poolstate import PersistentPool
from .process import NotRunning, PoolEvent, WorkerInfo, WorkerProcess, check_start, worker_info
from .stop import SHUTDOWN_SIGNAL

__all__ = ["NotRunning", "PoolEvent", "WorkerInfo", "WorkerPool"]


class WorkerPool(PersistentPool):
    """Worker processes running a notebook's jugfile (the pointer file's current snapshot).

    Parameters
    ----------
    state_dir : Path
        jugnb's state folder; holds ``<module>.current``, logs, heartbeats and the pool's state file.
    module : str
        Module name of the jugfile.
    parent : traitlets Configurable, optional
        E.g. the magics, so that ``%config WorkerPool`` reaches this pool.
    """

    stop_timeout = Float(5.0, help="Seconds to wait after SIGTERM before sending SIGKILL.").tag(config=True)
    poll_interval = Float(
        0.1, help="Seconds between an idle worker's checks for newly runnable tasks (also `wait`'s tick)."
    ).tag(config=True)
    idle_timeout = Float(
        1800.0,
        help="Seconds an idle worker keeps waiting on tasks whose lock holder cannot be checked (another "
        "host, redis) while nothing changes in the store; jug's default wait is 30 min.",
    ).tag(config=True)
    shutdown_timeout = Float(
        10.0,
        help="Seconds within which workers that are not detached stop after their kernel shuts down, "
        "restarts or dies: a task that finishes in that time is kept, others are stopped and their locks "
        "released.",
    ).tag(config=True)
    replace_dead = Bool(True, help="Start a new worker when one dies (SIGKILL, OOM).").tag(config=True)
    store_retry = Float(
        60.0,
        help="Seconds a worker keeps retrying an unreachable redis server (a restart is ridden out) before "
        "it stops, keeping what is stored.",
    ).tag(config=True)
    lease_interval = Float(
        None,
        allow_none=True,
        help="Seconds between a worker's lease renewals in the jugdir (None: jugrc [jugnb] lease_interval, "
        "else 10).",
    ).tag(config=True)
    lease_timeout = Float(
        None,
        allow_none=True,
        help="Seconds after which a worker that stopped renewing its lease counts as lost, and any live "
        "worker releases its locks (None: jugrc [jugnb] lease_timeout, else 60).",
    ).tag(config=True)
    max_replacements = Int(4, help="At most this many replacement workers per pool.").tag(config=True)
    log_tail_lines = Int(20, help="Lines of a worker's log shown when it exits non-zero.").tag(config=True)

    rerun_failed = Bool(
        False,
        help="Let another worker run again a task that failed earlier in this execute (default: a failed "
        "task waits for the next execute or `%jug retry`). `%jug execute --rerun-failed` sets it per run.",
    ).tag(config=True, to_dict=True)
    def __init__(self, state_dir: Path, module: str, parent: Any = None, **traits: Any) -> None:
        super().__init__(state_dir, module, parent=parent, **traits)
        self.events: list[PoolEvent] = []
        self.on_event: Callable[[PoolEvent], None] | None = None
        self._lock = threading.RLock()
        self._stopping = False
        #: ``"drain"`` or ``"now"`` once stop() was asked to end running workers ("" otherwise).
        self.stopped = ""
        self._replacements = 0
        self._records: RecordLog | None = None

    # -- paths -----------------------------------------------------------------------------------------

    def _stop_at_exit(self) -> None:
        atexit.register(_shutdown_at_exit, weakref.ref(self))

    @property
    def pointer(self) -> Path:
        """The pointer file naming the current jugfile snapshot."""
        return self.state_dir / f"{self.module}.current"

    @property
    def records(self) -> RecordLog:
        """Task records of the pool's jugdir."""
        if self._records is None:
            self._records = RecordLog.for_jugdir(self.jugdir)
        return self._records

    # -- starting --------------------------------------------------------------------------------------

    def start(
        self, n: int, *, jugdir: str, cwd: Path, execute_args: Sequence[str] = (), detach: bool = False
    ) -> list[WorkerInfo]:
        """Start ``n`` workers and return at once.

        Parameters
        ----------
        n : int
            Number of workers (at least 1).
        jugdir : str
            jug ``--jugdir`` string; folder paths must be absolute (jug builds lock paths from it).
        cwd : Path
            Working directory of the workers (the kernel's), so relative paths mean the same.
        execute_args : sequence of str
            ``jug execute`` options (``--name``, ``--keep-going``, ``--keep-failed``, ...).
        detach : bool
            Keep running when the kernel exits or dies.

        Raises
        ------
        WorkerError
            Already started, bad options, no jugfile written yet, or a store workers cannot share.
        """
        if self.state != "before":
            msg = f"this pool is {self.state}; use add(n) for more workers, or a new pool."
            raise WorkerError(msg)
        check_start(n, jugdir, execute_args, self.pointer)
        self.cwd, self.detach = str(Path(cwd).resolve()), detach
        self.jugdir = absolute_jugdir(jugdir, Path(self.cwd))
        self.execute_args = list(execute_args)
        self.kernel_pid, self.kernel_started = os.getpid(), psutil.Process().create_time()
        self.records.read_new()  # only failures from now on become events
        for released in release_held_locks(self.state_dir / "workers" / self.module, self.jugdir):
            message = f"released the lock of {released}, left by a worker that lost its redis server"
            self._emit(PoolEvent(time.time(), "lock-released", "", 0, message))
        if not detach:
            self._stop_at_exit()
        return self.add(n)

    def add(self, n: int) -> list[WorkerInfo]:
        """Start ``n`` more workers with the same settings; return their info.

        Raises
        ------
        WorkerError
            If the pool was never started.
        """
        if self.state == "before" and not self.jugdir:
            raise WorkerError("start(n, jugdir=..., cwd=...) the pool before adding workers.")
        with self._lock:
            self._stopping = False
            self.stopped = ""
            started = [self._spawn() for _ in range(n)]
            self.state = "running"
            self._save()
        return [worker_info(p) for p in started]

    def _spawn(self) -> WorkerProcess:
        folder = self.state_dir / "workers" / self.module
        worker_id, log = claim_worker_id(folder, self.pool_id, len(self._procs))
        heartbeat = log.with_suffix(".hb")
        command = worker_command(self._worker_options(worker_id, log, heartbeat), self.execute_args)
        popen = launch_worker(command, cwd=self.cwd, log=log, jugdir=self.jugdir)
        proc = WorkerProcess.from_popen(worker_id, popen, log, heartbeat, self.host)
        self._procs.append(proc)
        self._emit(PoolEvent(time.time(), "started", worker_id, proc.pid, f"worker {worker_id} started"))
        self._watch(proc)
        return proc

    def _worker_options(self, worker_id: str, log: Path, heartbeat: Path) -> list[str]:
        options = [
            f"--state-dir={self.state_dir}",
            f"--module={self.module}",
            f"--worker-id={worker_id}",
            f"--heartbeat={heartbeat}",
            f"--log={log}",
            f"--poll-interval={self.poll_interval}",
            f"--idle-timeout={self.idle_timeout}",
            f"--store-retry={self.store_retry}",
        ]
        if self.rerun_failed:
            options.append("--rerun-failed")
        if self.lease_interval is not None:
            options.append(f"--lease-interval={self.lease_interval}")
        if self.lease_timeout is not None:
            options.append(f"--lease-timeout={self.lease_timeout}")
        if self.detach:
            return options
        return [*options, f"--parent-pid={os.getpid()}", f"--shutdown-timeout={self.shutdown_timeout}"]

    def _watch(self, proc: WorkerProcess) -> None:
        thread = threading.Thread(
            target=self._wait_for, args=(proc,), name=f"wait(pid={proc.pid})", daemon=True
        )
        proc.thread = thread
        thread.start()

    def _wait_for(self, proc: WorkerProcess) -> None:
        returncode = proc.wait()
        report = handle_exit(proc, returncode, self.jugdir, self.records, self.log_tail_lines)
        with self._lock:
            self._record_exit(proc, report)

    def _record_exit(self, proc: WorkerProcess, report: ExitReport) -> None:
        for event in report.events:
            self._emit(PoolEvent(time.time(), *event))
        # Only the pool that started a worker replaces it: other pool objects watching the same
        # workers (re-attached in another kernel) would each start one.
        unexpected = report.died and not self._stopping and proc.popen is not None
        if unexpected and self.replace_dead and self._replacements < self.max_replacements:
            self._replacements += 1
            new = self._spawn()
            self._emit(
                PoolEvent(time.time(), "replaced", proc.worker_id, proc.pid, f"replaced by {new.worker_id}")
            )
        # Only now is the worker marked ended: wait() must not see "all ended" before a replacement exists.
        report.apply(proc)
        if all(p.ended for p in self._procs):
            self.state = "after"
        self._save()

    # -- looking -----------------------------------------------------------------------------------------

    def workers(self) -> list[WorkerInfo]:
        """Every worker this pool started (alive or not), oldest first."""
        with self._lock:
            return [worker_info(p) for p in self._procs]

    def poll(self) -> list[PoolEvent]:
        """Read new task records and turn failures of this pool's workers into events; return those."""
        new = []
        with self._lock:  # the record log's offsets are not thread-safe
            try:
                records = self.records.read_new()
            except StoreError as err:  # redis away: waiting goes on; the workers' exits tell the story
                self.log.debug("cannot read task records: %s", err)
                return []
        for record in records:
            if record.status == "failed" and record.worker.startswith(f"{self.pool_id}."):
                message = f"{record.name} failed on {record.worker}: {record.exc_type}: {record.exc_message}"
                event = PoolEvent(
                    record.end or time.time(),
                    "task-failed",
                    record.worker,
                    record.pid,
                    message,
                    record.name,
                    record.hash,
                )
                self._emit(event)
                new.append(event)
        return new

    def wait(self, timeout: float | None = None, on_tick: Callable[[], Any] | None = None) -> bool:
        """Block until every worker has exited; an interrupt (KeyboardInterrupt) only stops the waiting.

        Parameters
        ----------
        timeout : float, optional
            Seconds; ``None`` waits for as long as it takes.
        on_tick : callable, optional
            Called about every ``2 * poll_interval`` seconds while waiting (e.g. a live progress line).

        Returns
        -------
        bool
            Whether all workers exited (``False`` on timeout or interrupt; they keep running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                self.poll()
                waiters = [p.thread for p in self._procs if not p.ended and p.thread is not None]
                if not waiters:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if on_tick is not None:
                    on_tick()
                waiters[0].join(min(self.poll_interval * 2, left) if left is not None else 0.2)
        except KeyboardInterrupt:
            return False

    # -- stopping ----------------------------------------------------------------------------------------

    def stop(self, now: bool = False) -> None:
        """Stop the workers: drain (each finishes its current task), or ``now``.

        ``now`` sends SIGTERM to each worker's process group, SIGKILL after ``stop_timeout`` seconds to those
        still there, and returns once the locks they held are released.
        """
        with self._lock:
            self._stopping = True
            alive = [p for p in self._procs if not p.ended]
            if alive:
                self.stopped = "now" if now else (self.stopped or "drain")
        for proc in alive:
            proc.signal(signal.SIGTERM if now else signal.SIGUSR1, group=now)
        if now:
            self._join(alive, self.stop_timeout)
            for proc in alive:
                if not proc.ended:
                    proc.signal(signal.SIGKILL, group=True)
            self._join(alive, 5.0)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the workers within ``timeout`` seconds (default ``shutdown_timeout``): the kernel is going.

        Each worker is told (:data:`~jugnb.workers.stop.SHUTDOWN_SIGNAL`) and keeps a task that finishes in
        time; the others stop themselves before the deadline, releasing their locks. Whatever is left at the
        deadline is killed here, and its locks are released by its waiter thread. Workers enforce the same
        deadline themselves, in case Jupyter kills the kernel before this returns.
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        with self._lock:
            self._stopping = True
            alive = [p for p in self._procs if not p.ended]
        for proc in alive:
            proc.signal(SHUTDOWN_SIGNAL)
        self._join(alive, max(0.0, timeout - 0.1))
        for proc in alive:
            if not proc.ended:
                proc.signal(signal.SIGKILL, group=True)
        self._join(alive, 2.0)

    def leftover(self) -> bool:
        """Whether a kernel that is gone started these workers without ``--detach`` (so they are stopping)."""
        if self.detach or self.kernel_pid in (0, os.getpid()):
            return False
        return not process_alive(self.kernel_pid, created_at=self.kernel_started)

    def _join(self, procs: Iterable[WorkerProcess], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in procs:
            if proc.thread is not None:
                proc.thread.join(max(0.0, deadline - time.monotonic()))

    def _emit(self, event: PoolEvent) -> None:
        with self._lock:
            self.events.append(event)
            del self.events[:-1000]
        # Not a warning: the panel, `%jug wait` and `%jug failures` show these to the user (once); a
        # logging line would repeat them on a terminal's stderr.
        self.log.info("%s", event.message)
        if self.on_event is not None:
            self.on_event(event)

def _shutdown_at_exit(ref: weakref.ref[WorkerPool]) -> None:
    pool = ref()
    if pool is not None and not pool.detach and pool.state == "running":
        pool.shutdown()
