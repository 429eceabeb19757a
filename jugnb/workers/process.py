"""One worker process as the pool sees it: identity, signals, waiting, and what happens when it ends.

A worker is identified by pid *and* process create time (psutil), so a recycled pid is never mistaken for
it, neither when signalling nor when re-attaching from a new kernel.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..backends import select
from ..errors import WorkerError
from .heartbeat import read_heartbeat
from .locks import process_alive

# How often a re-attached worker (not our child, so no blocking wait) is checked.
REATTACHED_POLL = 0.2


class NotRunning(WorkerError):
    """No worker of the pool is running (state file missing, or every pid gone)."""


@dataclass(frozen=True)
class PoolEvent:
    """Something that happened to the pool's workers.

    Attributes
    ----------
    time : float
        Seconds since the epoch.
    kind : str
        ``"started"``, ``"exited"``, ``"died"``, ``"lock-released"``, ``"task-failed"`` or ``"replaced"``.
    worker : str
        Worker id.
    pid : int
    message : str
        One line for people (``"died"`` and non-zero ``"exited"`` end with the log tail).
    task : str or None
        Task name, when one is concerned.
    hash : str or None
        Task hash, when one is concerned.
    """

    time: float
    kind: str
    worker: str
    pid: int
    message: str
    task: str | None = None
    hash: str | None = None


@dataclass
class WorkerProcess:
    """A worker the pool started (mutable: it ends).

    Attributes
    ----------
    worker_id : str
    pid : int
    create_time : float
        ``psutil.Process(pid).create_time()``.
    log, heartbeat : Path
        Its log and heartbeat files.
    host : str
    started : float
        Seconds since the epoch.
    """

    worker_id: str
    pid: int
    create_time: float
    log: Path
    heartbeat: Path
    host: str
    started: float
    popen: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None
    returncode: int | None = None
    ended: float | None = None
    died: bool = False
    exit_message: str = ""

    @classmethod
    def from_popen(
        cls, worker_id: str, popen: subprocess.Popen[bytes], log: Path, heartbeat: Path, host: str
    ) -> WorkerProcess:
        """Describe a just-started child."""
        try:
            created = psutil.Process(popen.pid).create_time()
        except psutil.Error:  # already gone: it will be reaped by wait()
            created = time.time()
        return cls(worker_id, popen.pid, created, log, heartbeat, host, time.time(), popen=popen)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able identity (for the pool's state file)."""
        return {
            "worker_id": self.worker_id,
            "pid": self.pid,
            "create_time": self.create_time,
            "log": str(self.log),
            "heartbeat": str(self.heartbeat),
            "host": self.host,
            "started": self.started,
            "ended": self.ended,
            "returncode": self.returncode,
            "died": self.died,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerProcess:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["worker_id"],
            int(data["pid"]),
            float(data["create_time"]),
            Path(data["log"]),
            Path(data["heartbeat"]),
            data["host"],
            float(data["started"]),
            ended=data.get("ended"),
            returncode=data.get("returncode"),
            died=bool(data.get("died", False)),
        )

    def is_alive(self) -> bool:
        """Whether the process still runs (and is the same process)."""
        return self.ended is None and process_alive(self.pid, created_at=self.create_time)

    def reattach(self) -> bool:
        """Whether this worker still runs; a gone one is handled at once by its waiter thread."""
        return self.ended is None and self.is_alive()

    @property
    def stop_marker(self) -> Path:
        """File created before the worker is signalled, so that any pool sees its end was asked for."""
        return self.heartbeat.with_suffix(".stop")

    def signal(self, signum: int, *, group: bool = False) -> None:
        """Send ``signum`` to the worker, or to its whole process group (its session's), if it still runs."""
        if not self.is_alive():
            return
        # Another pool object (a re-attached one, another kernel) may be watching this worker: it must
        # not take a requested end for a death and start a replacement.
        self.stop_marker.touch()
        try:
            if group:
                os.killpg(self.pid, signum)  # start_new_session: the group id is the worker's pid
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self) -> int | None:
        """Block until the worker ends; its exit code (``None`` for a re-attached worker, not our child)."""
        if self.popen is not None:
            return self.popen.wait()
        while process_alive(self.pid, created_at=self.create_time):
            time.sleep(REATTACHED_POLL)
        return None


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's state for display.

    Attributes
    ----------
    worker_id : str
    pid : int
    host : str
    state : str
        Heartbeat state (``"starting"``, ``"idle"``, ``"running"``, ``"waiting"``, ``"draining"``,
        ``"reloading"``) while alive; ``"exited"`` or ``"died"`` after.
    task : str or None
        Name of the task being run.
    task_hash : str or None
    running_for : float or None
        Seconds the current task has been running.
    rss : int or None
        Resident memory in bytes (``None`` when not alive).
    alive : bool
    returncode : int or None
        Exit code once ended (``None`` while alive, or when unknown for a re-attached worker).
    executed : int
        Tasks completed by this worker.
    log : str
        Its log file.
    failed : int
        Tasks that raised in this worker (kept after it exited: its lease is gone then).
    """

    worker_id: str
    pid: int
    host: str
    state: str
    task: str | None
    task_hash: str | None
    running_for: float | None
    rss: int | None
    alive: bool
    returncode: int | None
    executed: int
    log: str
    failed: int = 0


def worker_info(proc: WorkerProcess) -> WorkerInfo:
    """Return the current :class:`WorkerInfo` of ``proc`` (reads its heartbeat; asks psutil for memory)."""
    beat = read_heartbeat(proc.heartbeat) or {}
    alive = proc.is_alive()
    rss = None
    if alive:
        try:
            rss = psutil.Process(proc.pid).memory_info().rss
        except psutil.Error:
            alive = False
    if proc.ended is not None or not alive:
        state = "died" if proc.died else "exited"
    else:
        state = str(beat.get("state", "starting"))
    running = state == "running"
    since = beat.get("since")
    return WorkerInfo(
        worker_id=proc.worker_id,
        pid=proc.pid,
        host=proc.host,
        state=state,
        task=beat.get("task") if running else None,
        task_hash=beat.get("hash") if running else None,
        running_for=time.time() - since if running and isinstance(since, (int, float)) else None,
        rss=rss,
        alive=alive,
        returncode=proc.returncode,
        executed=int(beat.get("executed", 0)),
        log=str(proc.log),
        failed=int(beat.get("failed", 0)),
    )


def _check_store(jugdir: str) -> None:
    """Refuse stores that workers cannot share; make sure a redis server answers (and takes the password)."""
    backend = select(jugdir)
    if not backend.supports_workers:
        msg = f"{backend.unshareable_reason()} Use `%jug execute --here`, or a folder or redis jugdir."
        raise WorkerError(msg, path=str(backend))
    backend.check_reachable()


def check_start(n: int, jugdir: str, execute_args: Sequence[str], pointer: Path) -> None:
    """Refuse what workers could not run, before starting any.

    Raises
    ------
    WorkerError
        Bad options, no jugfile yet, or a store that workers cannot share.
    StoreError
        A redis server that does not answer or refuses the password.
    """
    if n < 1:
        raise WorkerError(f"the number of workers must be at least 1, not {n}.")
    if not pointer.exists():
        msg = f"there is no jugfile to run yet ({pointer} is missing): run a %%jugfile cell first."
        raise WorkerError(msg, path=str(pointer))
    _check_store(jugdir)
    if "--pdb" in execute_args:
        raise WorkerError("--pdb needs a terminal; background workers have none. Use `%jug run TASK`.")
    from jug.options import build_parser

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            build_parser().parse_args(["execute", "jugfile.py", *execute_args])
        except SystemExit:
            reason = errors.getvalue().strip().splitlines()[-1:] or ["invalid options"]
            msg = f"bad jug execute options {' '.join(execute_args)}: {reason[0]}"
            raise WorkerError(msg) from None
