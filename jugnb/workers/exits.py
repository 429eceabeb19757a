"""A worker process that ended, settled: its locks released, a killed task recorded, the exit described.

Used by :class:`jugnb.workers.pool.WorkerPool`'s waiter threads. Locks are released only when they are
provably the dead worker's (:func:`jugnb.workers.locks.release_locks_of`), or, for stores whose locks name
no owner, the one task its heartbeat says it was running.
"""

from __future__ import annotations

import json
import os
import signal as signals
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import select
from ..errors import StoreError
from ..status.records import RecordLog, TaskRecord
from .env import EXIT_STORE_LOST
from .heartbeat import read_heartbeat
from .locks import process_alive, release_locks_of
from .process import WorkerProcess


@dataclass(frozen=True)
class ExitReport:
    """What :func:`handle_exit` found and did.

    Attributes
    ----------
    died : bool
        The worker ended without exiting through its own code (killed by a signal, OOM, crash) and no
        pool had asked it to stop.
    stopped : bool
        A pool had signalled the worker to stop (drain or now).
    events : list of tuple
        ``(kind, worker, pid, message, task, hash)`` for :class:`jugnb.workers.pool.PoolEvent`.
    """

    died: bool
    stopped: bool
    events: list[tuple[Any, ...]]
    returncode: int | None = None
    ended: float = 0.0
    message: str = ""

    def apply(self, proc: WorkerProcess) -> None:
        """Mark ``proc`` as ended (the pool does it under its lock, after any replacement started)."""
        proc.returncode, proc.ended, proc.died, proc.exit_message = (
            self.returncode,
            self.ended,
            self.died,
            self.message,
        )


def handle_exit(
    proc: WorkerProcess, returncode: int | None, jugdir: str, records: RecordLog, tail: int
) -> ExitReport:
    """Settle a worker that ended: release its locks, record a killed task, describe the exit."""
    ended = time.time()
    beat = read_heartbeat(proc.heartbeat) or {}
    if returncode is not None:
        abnormal = returncode < 0  # killed by a signal; any exit code means Python exited
    else:  # not our child: a worker ending through its own code always writes "exited" last
        abnormal = beat.get("state") != "exited"
    stopped = proc.stop_marker.exists()
    died = abnormal and not stopped
    if returncode is None and not abnormal:
        returncode = beat.get("code")
    task, task_hash = beat.get("task"), beat.get("hash")
    events: list[tuple[Any, ...]] = []
    released_locks, kept = _release_locks(proc, jugdir, beat, abnormal, ended)
    for released in released_locks:
        name = task if released == task_hash else None
        message = f"released the lock of {name or released} held by worker {proc.worker_id} (pid {proc.pid})"
        events.append(("lock-released", proc.worker_id, proc.pid, message, name, released))
    running = abnormal and beat.get("state") == "running" and task and task_hash
    if running:
        try:
            records.append(_killed_record(proc, beat, ended))
        except StoreError:
            pass  # the store is unreachable: the exit message says so via the worker's log
    message = _describe_exit(proc, returncode, abnormal) + kept
    if abnormal or returncode not in (0, None):
        message += "; last lines of its log:\n" + log_tail(proc.log, tail)
    kind = "died" if died else "exited"
    events.insert(
        0,
        (kind, proc.worker_id, proc.pid, message, task if running else None, task_hash if running else None),
    )
    return ExitReport(died, stopped, events, returncode, ended, message)


def _release_locks(
    proc: WorkerProcess, jugdir: str, beat: dict[str, Any], died: bool, ended: float
) -> tuple[list[str], str]:
    """Release the locks a dead worker held; also return a note on a lock that could not be released."""
    backend = select(jugdir)
    if not backend.lock_names_owner:
        # Locks that name no owner (redis): only the task the heartbeat says was running is this worker's
        # (the heartbeat leaves "running" before jug releases the lock, never after), or the one that a
        # worker which lost its server says it may have left behind ("held").
        running = died and beat.get("state") == "running" and beat.get("hash")
        held = [beat["hash"]] if running else list(beat.get("held") or [])
        try:
            return [h for h in held if backend.release_lock(h)], ""
        except StoreError:  # the next pool on this jugdir releases them (release_held_locks)
            n = len(held)
            return (
                [],
                f"; {n} task lock{'s' * (n != 1)} it held stay until the next `%jug execute`" if n else "",
            )
    if proc.popen is None and process_alive(proc.pid):
        # Not our child and it ended while nobody watched: its pid now names another process, which
        # may hold locks of its own under that pid. Leave them (jug cleanup --locks-only clears them).
        return [], ""
    return release_locks_of(jugdir, proc.pid, started=proc.create_time, ended=ended), ""


def release_held_locks(folder: Path, jugdir: str) -> list[str]:
    """Release the locks that workers which lost their store server left behind; return their hashes.

    A worker that stops because redis stayed unreachable notes the task it held in its heartbeat
    (``held``); the pool that saw it exit tried to release that lock, but the server was still away. The
    next pool on the same jugdir does it before starting workers, so that nobody waits on a lock that no
    one holds. Heartbeats whose lock is released lose their ``held`` note.
    """
    released: list[str] = []
    backend = select(jugdir)
    if backend.lock_names_owner or not folder.is_dir():
        return released
    for path in folder.glob("*.hb"):
        beat = read_heartbeat(path) or {}
        if beat.get("state") != "exited" or not beat.get("held"):
            continue
        try:
            released += [h for h in beat["held"] if backend.release_lock(h)]
        except StoreError:
            return released  # still away (check_start would have said so): next time
        beat.pop("held")
        path.write_text(json.dumps(beat), encoding="utf-8")
    return released


def _killed_record(proc: WorkerProcess, beat: dict[str, Any], ended: float) -> TaskRecord:
    since = float(beat.get("since", ended))
    return TaskRecord(
        name=str(beat["task"]),
        hash=str(beat["hash"]),
        status="killed",
        start=since,
        end=ended,
        duration=ended - since,
        worker=proc.worker_id,
        host=proc.host,
        pid=proc.pid,
        jugfile=beat.get("jugfile"),
        exc_message="the worker died while running this task",
    )


def _describe_exit(proc: WorkerProcess, returncode: int | None, died: bool) -> str:
    who = f"worker {proc.worker_id} (pid {proc.pid})"
    if returncode is not None and returncode < 0:
        name = signals.Signals(-returncode).name if -returncode in signals.valid_signals() else -returncode
        return f"{who} was killed by {name}"
    if died:
        return f"{who} died" + ("" if returncode is None else f" (exit code {returncode})")
    if returncode == EXIT_STORE_LOST:
        return f"{who} stopped: its store was unreachable (results stored before are kept)"
    return f"{who} exited" + ("" if returncode is None else f" with code {returncode}")


def log_tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of a log file (at most 64 KiB are read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 65536))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
