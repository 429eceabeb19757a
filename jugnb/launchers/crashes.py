"""Why a job died: the task its workers were running is recorded as *crashed*, and their locks are freed.

Every jugnb worker holds a lease in the jugdir (:mod:`jugnb.backends.leases`) with its SLURM job and array
ids, its host, and the task it is running. When an array task ends ``TIMEOUT``, ``OUT_OF_MEMORY``,
``NODE_FAIL`` or ``CANCELLED`` (or ``PREEMPTED``, ``BOOT_FAIL``: the batch system, not the task's code, ended
it), for each lease of that array task:

- the lease is claimed as lost and its locks are released at once, without waiting for ``lease_timeout``
  (``force``: the batch system says the worker is gone; a worker still alive on this host is left alone);
- the task it was running is recorded as a :class:`~jugnb.status.records.TaskRecord` with status
  ``"crashed"``: ``exc_type`` is the job state and ``exc_message`` names the job, the array task and the
  node, so status, the panel and ``%jug why`` tell it apart from a task that raised (``"failed"``).

A lease that a surviving worker already claimed (it expired first) still gets its crashed record, unless
the task has run again since.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterable

from ..backends.leases import Lease, LeaseStore
from ..status.records import RecordLog, TaskRecord
from ..workers.locks import process_alive
from .base import JobState

_WHY = {
    "TIMEOUT": "reached its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "lost its node",
    "CANCELLED": "was cancelled",
    "PREEMPTED": "was preempted",
    "BOOT_FAIL": "could not boot its node",
}


def _matches(lease: Lease, state: JobState) -> bool:
    if state.array_index:
        return lease.slurm_array_job == state.job_id and lease.slurm_array_task == state.array_index
    return lease.slurm_job == state.job_id


def settle_crashes(
    states: Iterable[JobState], leases: LeaseStore, records: RecordLog, remembered: Iterable[Lease] = ()
) -> list[TaskRecord]:
    """Free the locks of the workers of crashed array tasks and record their tasks; return the records.

    Parameters
    ----------
    states : iterable of JobState
        Job states just read; only finished, crashed array tasks are looked at.
    leases : LeaseStore
        The jugdir's leases.
    records : RecordLog
        The jugdir's task records (read to skip tasks already recorded, written with the crashes).
    remembered : iterable of Lease
        Leases seen earlier (:meth:`~jugnb.launchers.jobs.JobBook.remember_workers`): a worker stopped by
        its job's end may have removed its own lease without recording the task it was cut off in.
    """
    crashed = [s for s in states if s.finished and s.crashed]
    if not crashed:
        return []
    latest = records.latest_by_hash()
    written = []
    live = {lease.worker: lease for lease in leases.read_all()}
    current = {**{lease.worker: lease for lease in leases.read_lost()}, **live}
    earlier = [lease for lease in remembered if lease.worker not in current]
    for lease in [*current.values(), *earlier]:
        state = next((s for s in crashed if _matches(lease, s)), None)
        if state is None:
            continue
        if lease.worker in live:
            if _alive_here(lease) or not _claim_ended(leases, lease):
                continue  # still stopping, or another poller settles it
        elif _alive_here(lease):
            continue  # its lease is gone but it is still stopping: it may record the task itself
        if lease.task_hash is None or lease.task_since is None:
            continue
        previous = latest.get(lease.task_hash)
        if previous is not None and previous.start >= lease.task_since:
            continue  # recorded already (crashed by an earlier look, or run again since)
        record = _crash_record(lease, state)
        records.append(record)
        latest[lease.task_hash] = record
        written.append(record)
    written += _interrupted_by_jobs(crashed, latest, records)
    return written


def _interrupted_by_jobs(
    crashed: list[JobState], latest: dict[str, TaskRecord], records: RecordLog
) -> list[TaskRecord]:
    """Crash records for tasks whose worker recorded them interrupted as its job ended (SIGTERM)."""
    labels = {(f"{s.job_id}_{s.array_index}" if s.array_index else s.job_id): s for s in crashed}
    written = []
    for record in list(latest.values()):
        state = labels.get(record.job or "")
        if state is None or record.status not in ("interrupted", "killed"):
            continue
        crash = dataclasses.replace(
            _crash_record(None, state, record), start=record.start, end=max(time.time(), record.end or 0)
        )
        records.append(crash)
        latest[crash.hash] = crash
        written.append(crash)
    return written


def _claim_ended(leases: LeaseStore, lease: Lease) -> bool:
    """Claim the lease of a worker whose job ended and release its locks now; whether this call did."""
    # Forced: the lease has not expired yet, but the batch system says its worker is gone.
    return leases.claim_and_release(lease, force=True) is not None


def _alive_here(lease: Lease) -> bool:
    """Whether the lease's process still runs on this host (a job's processes get KillWait to stop)."""
    return lease.host == socket.gethostname() and process_alive(lease.pid, created_before=lease.started)


def _crash_record(lease: Lease | None, state: JobState, record: TaskRecord | None = None) -> TaskRecord:
    """Return the crashed record of the task that ``lease`` (or the interrupted ``record``) names."""
    now = time.time()
    label = f"{state.job_id}_{state.array_index}" if state.array_index else state.job_id
    if lease is not None:
        name, task_hash, since = str(lease.task or lease.task_hash), str(lease.task_hash), lease.task_since
        worker, host, pid = lease.worker, lease.host, lease.pid
    else:
        assert record is not None  # noqa: S101 - one of the two is given
        name, task_hash, since = record.name, record.hash, record.start
        worker, host, pid = record.worker, record.host, record.pid
    since = float(since or now)
    node = state.node or host
    why = _WHY.get(state.state, f"ended {state.state}")
    return TaskRecord(
        name=name,
        hash=task_hash,
        status="crashed",
        start=since,
        end=now,
        duration=now - since,
        worker=worker,
        host=host,
        pid=pid,
        exc_type=state.state,
        exc_message=f"SLURM job {label} on {node} {why} while running this task ({state.state}).",
        job=label,
    )
