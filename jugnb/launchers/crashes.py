"""Why a job died: the task its workers were running is recorded as *crashed*, and its locks are freed.

When an array task ends ``TIMEOUT``, ``OUT_OF_MEMORY``, ``NODE_FAIL``, ``CANCELLED`` (or another state in
which the batch system, not the task's code, ended it), its ``jugnb execute`` workers may have been in the
middle of a task. Each such worker's heartbeat (``.jugnb/workers/<module>/cli-<host>-<pid>.hb`` beside the
notebook, with the SLURM ids from its environment) still says ``running`` that task. For each:

- a :class:`~jugnb.workers.records.TaskRecord` with status ``"crashed"`` is written: ``exc_type`` is the
  job state, ``exc_message`` says which job, array task and node, so status, the panel and ``%jug why``
  tell it apart from a task that raised (``"failed"``);
- the task's lock is released if the worker still holds it (a file lock naming its pid and host, not a
  failed mark): a SIGKILLed worker (memory, node failure, the end of a time limit's grace period) leaves it
  behind, and nobody else would ever run the task;
- the heartbeat is marked ``crashed``, so it is settled once.

A redis lock names no owner, so on redis the lock is left to jug (which frees it on SIGTERM) or to
``%jug cleanup --locks-only``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..workers.heartbeat import read_heartbeat
from ..workers.locks import file_store_folder, read_lock
from ..workers.records import RecordLog, TaskRecord
from .base import JobState

_WHY = {
    "TIMEOUT": "reached its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "lost its node",
    "CANCELLED": "was cancelled",
    "PREEMPTED": "was preempted",
    "BOOT_FAIL": "could not boot its node",
}


def slurm_identity(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Return the SLURM ids of this process (job, array job, array task, node), for a worker's heartbeat."""
    env = os.environ if environ is None else environ
    names = {
        "slurm_job": "SLURM_JOB_ID",
        "slurm_array_job": "SLURM_ARRAY_JOB_ID",
        "slurm_array_task": "SLURM_ARRAY_TASK_ID",
        "slurm_node": "SLURMD_NODENAME",
    }
    return {key: env[name] for key, name in names.items() if env.get(name)}


def _matches(beat: dict[str, Any], state: JobState) -> bool:
    if state.array_index:
        return (
            beat.get("slurm_array_job") == state.job_id and beat.get("slurm_array_task") == state.array_index
        )
    return beat.get("slurm_job") == state.job_id


def settle_crashes(
    states: Iterable[JobState], workers_folder: Path, jugdir: str, records: RecordLog
) -> list[TaskRecord]:
    """Record the tasks that crashed with the jobs in ``states`` and free their locks; return the records.

    Parameters
    ----------
    states : iterable of JobState
        Job states just read; only finished, crashed array tasks are looked at.
    workers_folder : Path
        The folder of the notebook's worker heartbeats (``.jugnb/workers/<module>``).
    jugdir : str
        The jugdir the workers used.
    records : RecordLog
        Where the crashed records go.
    """
    crashed = [s for s in states if s.finished and s.crashed]
    if not crashed or not workers_folder.is_dir():
        return []
    written = []
    for path in sorted(workers_folder.glob("cli-*.hb")):
        beat = read_heartbeat(path)
        if not beat or beat.get("state") != "running" or not beat.get("hash"):
            continue
        state = next((s for s in crashed if _matches(beat, s)), None)
        if state is None:
            continue
        record = _crash_record(beat, state)
        records.append(record)
        _release_lock(jugdir, record)
        path.write_text(json.dumps({**beat, "state": "crashed", "updated": time.time()}), encoding="utf-8")
        written.append(record)
    return written


def _crash_record(beat: dict[str, Any], state: JobState) -> TaskRecord:
    now = time.time()
    since = float(beat.get("since") or now)
    label = f"{state.job_id}_{state.array_index}" if state.array_index else state.job_id
    node = state.node or beat.get("slurm_node") or beat.get("host") or "?"
    why = _WHY.get(state.state, f"ended {state.state}")
    return TaskRecord(
        name=str(beat.get("task")),
        hash=str(beat["hash"]),
        status="crashed",
        start=since,
        end=now,
        duration=now - since,
        worker=str(beat.get("worker", "?")),
        host=str(beat.get("host") or node),
        pid=int(beat.get("pid") or 0),
        exc_type=state.state,
        exc_message=f"SLURM job {label} on {node} {why} while running this task ({state.state}).",
        jugfile=beat.get("jugfile"),
    )


def _release_lock(jugdir: str, record: TaskRecord) -> bool:
    """Remove the record's task lock if it still names the crashed worker (file stores only)."""
    folder = file_store_folder(jugdir)
    if folder is None:
        return False
    path = folder / "locks" / f"{record.hash}.lock"
    lock = read_lock(path)
    if lock is None or lock.failed or lock.pid != record.pid or lock.host != record.host:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
