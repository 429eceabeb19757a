"""Per-task records that jugnb workers write beside the results: who ran what, when, and how it failed.

Every task a jugnb worker runs leaves one :class:`TaskRecord` (``status`` ``"ok"``, ``"failed"``,
``"interrupted"`` or, written by the pool for a worker killed mid-task, ``"killed"``); the kernel writes
``"retry"`` for a failed task the user asked to run again. A task whose latest record is ``"failed"`` or
``"killed"`` and that has no result is *failed* (:meth:`RecordLog.failed_hashes`); an interrupted task
(stopped or drained) is not. Records live with
the jugdir, so they survive kernel restarts and records of workers on other hosts sharing the jugdir reach
the notebook. Each record is one line of JSON, stored by the jugdir's backend
(:meth:`jugnb.backends.Backend.record_lines`: files beside a folder jugdir, a stream in redis), where
``jug cleanup`` never looks.

Readers are incremental: :meth:`RecordLog.read_new` returns only what appeared since the previous call.
The redis URL (which may hold a password) is never written into a record.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from ..backends import RecordLines, select

log = logging.getLogger(__name__)

STATUSES = ("ok", "failed", "interrupted", "killed", "retry", "crashed")
#: Statuses of a run that raised or died: the task counts as failed until it runs again. A task whose batch
#: job ended under it ("crashed") is not failed: it did not raise, and it runs again as it is.
FAILURES = frozenset({"failed", "killed"})


@dataclass(frozen=True)
class TaskRecord:
    """One execution of one task by a jugnb worker.

    Attributes
    ----------
    name : str
        Task name (``module.function``).
    hash : str
        Task hash (40 hex digits).
    status : str
        ``"ok"``, ``"failed"`` (the task raised), ``"interrupted"`` (the worker was stopped or drained
        mid-task: not a failure), ``"killed"`` (the worker died mid-task; written by the pool that noticed),
        ``"retry"`` (the user asked to run a failed task again; written by the kernel) or ``"crashed"`` (its
        batch job ended mid-task: ``exc_type`` is the job state, e.g. ``TIMEOUT``; see
        :mod:`jugnb.launchers.crashes`).
    start : float
        When the task started (seconds since the epoch).
    end : float or None
        When it ended (seconds since the epoch); ``None`` if unknown.
    duration : float or None
        ``end - start`` in seconds.
    worker : str
        Worker id (unique within its pool), e.g. ``"3f2a9c1b.0"``.
    host : str
        Host name of the worker.
    pid : int
        Process id of the worker.
    exc_type, exc_message, traceback : str or None
        For a failed task: the exception's qualified type name, its message and the full traceback.
    frames : list of list or None
        For a failed task: the traceback's frames as ``[file, line, function, source line, cell]``, where
        ``cell`` names the ``%%jugfile`` cell and its line for frames in the jugfile snapshot
        (``"%%jugfile cell 5 (--name hardest), line 7"``), else ``None``.
    label : str or None
        The task instance with its arguments, e.g. ``simulate(7, 1.5)``.
    output_tail : str or None
        For a failed task: the last lines the task printed (stdout and stderr).
    jugfile : str or None
        Path of the jugfile snapshot the worker ran (content-addressed: it names the code version).
    fingerprint : str or None
        Fingerprint of the task function's code (filled in by code-change tracking; ``None`` if unknown).
    job : str or None
        The SLURM job of the worker: ``<array job>_<array task>``, or the job id; ``None`` outside SLURM.
    """

    name: str
    hash: str
    status: str
    start: float
    end: float | None
    duration: float | None
    worker: str
    host: str
    pid: int
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    output_tail: str | None = None
    jugfile: str | None = None
    fingerprint: str | None = None
    frames: list[list[Any]] | None = None
    label: str | None = None
    job: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the run raised or crashed (``"failed"`` or ``"killed"``; a stopped task is not failed)."""
        return self.status in FAILURES

    def to_json(self) -> str:
        """One line of JSON (no newline)."""
        # Not dataclasses.asdict: it deep-copies every value, which costs more than the write.
        return json.dumps({name: getattr(self, name) for name in _FIELD_NAMES}, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRecord:
        """Build a record from decoded JSON, ignoring keys added by newer versions.

        Raises
        ------
        TypeError
            If a required field is missing.
        """
        return cls(**{k: v for k, v in data.items() if k in _FIELD_NAMES})


_FIELD_NAMES = tuple(f.name for f in fields(TaskRecord))


def slurm_job_label(environ: dict[str, str] | os._Environ[str] | None = None) -> str | None:
    """Return this process's SLURM job as records name it (``1234_3`` in an array, else ``1234``)."""
    env = os.environ if environ is None else environ
    array, index = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array and index:
        return f"{array}_{index}"
    return env.get("SLURM_JOB_ID") or None


class RecordLog:
    """Append-only, incrementally readable task records of one jugdir.

    Parameters
    ----------
    lines : RecordLines
        Where the backend keeps them (:meth:`jugnb.backends.Backend.record_lines`).
    """

    def __init__(self, lines: RecordLines) -> None:
        self.lines = lines
        self._latest: dict[str, TaskRecord] = {}
        self._failed: set[str] = set()

    def __repr__(self) -> str:
        return f"RecordLog({self.lines!r})"

    @staticmethod
    def for_jugdir(jugdir: str, store: Any = None) -> RecordLog:
        """Open the record log of ``jugdir`` (a jug ``--jugdir`` string; folder paths should be absolute).

        Parameters
        ----------
        jugdir : str
        store : jug store, optional
            The open store of ``jugdir``; a redis store's client is shared (same retries and errors).

        Raises
        ------
        StoreError
            For an in-memory ``dict_store``, which has nowhere to keep records, or a bad redis URL.
        """
        return RecordLog(select(jugdir).record_lines(store))

    def append(self, record: TaskRecord) -> None:
        """Store ``record`` (visible to every reader of this jugdir)."""
        self.lines.append(f"{record.worker}@{record.host}-{record.pid}", record.to_json())

    def read_new(self) -> list[TaskRecord]:
        """Return the records written since the previous call (all on the first call), oldest first."""
        new = sorted(_parse_lines(self.lines.read_new()), key=lambda r: (r.start, r.end or r.start))
        for record in new:
            current = self._latest.get(record.hash)
            if current is None or (record.end or record.start) >= (current.end or current.start):
                self._latest[record.hash] = record
                if record.failed:
                    self._failed.add(record.hash)
                else:
                    self._failed.discard(record.hash)
        return new

    def latest_by_hash(self) -> dict[str, TaskRecord]:
        """Return the most recent record of every task seen so far (reads new records first)."""
        self.read_new()
        return dict(self._latest)

    def failed_hashes(self) -> frozenset[str]:
        """Return the hashes of tasks whose latest record is a failure (reads new records first).

        Whether such a task has a result since (computed by plain jug, say) is for the caller to check.
        """
        self.read_new()
        return frozenset(self._failed)

    def close(self) -> None:
        """Release open files or connections."""
        self.lines.close()


def _parse_lines(lines: Iterable[tuple[bytes, str]]) -> Iterable[TaskRecord]:
    for line, where in lines:
        if not line.strip():
            continue
        try:
            yield TaskRecord.from_dict(json.loads(line))
        except (ValueError, TypeError) as err:
            log.warning("skipping a damaged record in %s: %s", where, err)


def typical_durations(records: Iterable[TaskRecord]) -> dict[str, float]:
    """Return the median duration (seconds) of the successful runs of each task name."""
    runs: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.status == "ok" and record.duration is not None:
            runs[record.name].append(record.duration)
    return {name: statistics.median(durations) for name, durations in runs.items()}
