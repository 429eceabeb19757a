"""Inside a worker: turn jug's execute hooks into task records and heartbeats.

jug calls ``execute.task-pre-execute`` once it holds a task's lock, runs the task, then calls
``execute.task-executed1`` on success only: there is no hook for a failed task. The pre-execute hook
therefore wraps that one task's ``run`` (an instance attribute, removed again when the run ends) so the
exception and its traceback are seen where they happen, before jug's own handling (``--keep-going``,
``--keep-failed``, or propagating) goes on unchanged, because the wrapper re-raises. Catching jug's
``logging.critical`` line instead would lose the traceback, and ``--keep-going`` would have to be forced.

A worker stopped or drained mid-task (``SystemExit``, ``KeyboardInterrupt``) writes an ``"interrupted"``
record without any traceback: a stopped task is not a failed one. A failure's record holds its frames,
mapped to ``%%jugfile`` cells (:mod:`jugnb.status.tracebacks`), and the task instance with its arguments.

Within one execute (one pool: worker ids ``<pool_id>.<n>``), a task that failed is not run again by another
worker: :meth:`TaskRecorder.pre_execute` skips it (``skip_failed_in_run``; the worker's ``--rerun-failed``
turns this off). A ``"retry"`` record written since lifts this.

The task's output tail is cut from the worker's log file (its stdout and stderr) between the size the
file had when the task started and its size at the failure.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..session.tasks import task_hex
from ..staleness.fingerprint import FingerprintStore, TaskFingerprinter
from ..status.labels import task_label
from ..status.records import RecordLog, TaskRecord, slurm_job_label
from ..status.tracebacks import extract_frames
from .heartbeat import Heartbeat

log = logging.getLogger(__name__)

TAIL_LINES = 40
TAIL_BYTES = 8192


class TaskRecorder:
    """Hook functions that record every task this worker runs.

    Parameters
    ----------
    records : RecordLog
        Where records go.
    heartbeat : Heartbeat
        This worker's live state.
    worker_id : str
        Written into every record.
    jugfile : str
        The snapshot being run (written into every record).
    log_path : Path, optional
        The worker's log file, which its stdout and stderr append to (output tails are cut from it).
    fingerprints : FingerprintStore, optional
        Where the normalised code of each computed task goes; its digest is written into the task's record
        (issue: code-change staleness). ``None`` records no fingerprint.

    Attributes
    ----------
    skip_failed_in_run : bool
        Skip tasks that a worker of the same pool saw fail (see the module docstring).
    given_up : set of bytes
        Hashes of the tasks skipped that way are added here (the worker passes jug's
        ``ExecutionState.failed``, so that jug's loop and the worker's waiting leave them alone).
    """

    def __init__(
        self,
        records: RecordLog,
        heartbeat: Heartbeat,
        worker_id: str,
        jugfile: str,
        log_path: Path | None = None,
        fingerprints: FingerprintStore | None = None,
    ) -> None:
        self.records = records
        self.fingerprints = fingerprints
        self.fingerprinter: TaskFingerprinter | None = None
        self.log_path = log_path
        self.heartbeat = heartbeat
        self.worker_id = worker_id
        self.jugfile = jugfile
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.job = slurm_job_label()  # so that a crash of the job can be traced to the task it cut off
        # defaultdicts: jug's print_task_summary_table indexes every group by every name
        self.executed: defaultdict[str, int] = defaultdict(int)
        self.loaded: defaultdict[str, int] = defaultdict(int)
        self.nr_failed = 0
        self.skip_failed_in_run = True
        self.given_up: set[bytes] = set()
        self._run_prefix = worker_id.rsplit(".", 1)[0] + "."
        self._failed_in_run: set[str] = set()
        self._skipping: str | None = None
        self.last_failure: BaseException | None = None

    @property
    def nr_executed(self) -> int:
        """Tasks run to completion by this process."""
        return sum(self.executed.values())

    def failed_in_run(self) -> set[str]:
        """Return the hashes of tasks that failed in this pool's run, not retried since (reads records)."""
        for record in self.records.read_new():
            # Only a task that raised: one whose worker died (OOM, SIGKILL) runs again, in a new process.
            if record.status == "failed" and record.worker.startswith(self._run_prefix):
                self._failed_in_run.add(record.hash)
            elif record.status in ("ok", "retry"):
                self._failed_in_run.discard(record.hash)
                self.given_up.discard(record.hash.encode("ascii"))
        return self._failed_in_run

    def pre_execute(self, task: Any) -> None:
        """``execute.task-pre-execute``: note the start, wrap this run to see a failure.

        A task that failed in this run already is not run: its ``run`` returns without storing anything.
        """
        if self.skip_failed_in_run and task_hex(task) in self.failed_in_run():
            self._skip(task)
            return
        start = time.time()
        offset = _output_offset()
        self.heartbeat.beat("running", task=task.name, hash=task_hex(task), since=start)
        original: Callable[..., Any] = task.run

        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                result = original(*args, **kwargs)
            except Exception as err:
                self._finish(task, start, "failed", err, offset)
                raise
            except BaseException as err:  # SystemExit from SIGTERM, KeyboardInterrupt
                self._finish(task, start, "interrupted", err, offset)
                raise
            finally:
                del task.run
            self._finish(task, start, "ok", None, offset)
            return result

        task.run = run

    def _skip(self, task: Any) -> None:
        log.info("not running %s again: it failed in this execute (see --rerun-failed)", task_label(task))
        self._skipping = task_hex(task)
        self.given_up.add(task.hash())

        def skipped(*_args: Any, **_kwargs: Any) -> None:
            del task.run

        task.run = skipped

    def use_jugfile(self, namespace: dict[str, Any]) -> None:
        """Fingerprint tasks with the code of the jugfile just imported (call after every ``jug.init``)."""
        try:
            self.fingerprinter = TaskFingerprinter.for_namespace(namespace)
        except Exception:  # a fingerprint is a diagnosis: it must never stop a worker
            log.warning("cannot fingerprint this jugfile; its results will show as 'unknown'", exc_info=True)
            self.fingerprinter = None

    def _fingerprint(self, task: Any) -> str | None:
        if self.fingerprinter is None or self.fingerprints is None:
            return None
        try:
            fingerprint = self.fingerprinter(task)
            # Saved before the record is written, so readers never see a digest whose source is missing.
            self.fingerprints.save(fingerprint)
        except Exception:
            log.warning("cannot fingerprint %s; its result will show as unknown", task.name, exc_info=True)
            return None
        return fingerprint.digest

    def executed1(self, task: Any) -> None:
        """``execute.task-executed1``: count the task (its record is already written)."""
        if self._skipping is not None and self._skipping == task_hex(task):
            self._skipping = None  # skipped, not executed
            return
        self.executed[task.name] += 1

    def loadable(self, task: Any) -> None:
        """``execute.task-loadable``: count results found already computed (for the summary)."""
        self.loaded[task.name] += 1

    def _finish(
        self, task: Any, start: float, status: str, err: BaseException | None, offset: int | None
    ) -> None:
        end = time.time()
        details: dict[str, Any] = {}
        if err is not None and status == "failed":
            self.nr_failed += 1
            self.last_failure = err
            details = {
                "exc_type": _qualname(type(err)),
                "exc_message": str(err),
                "traceback": "".join(traceback.format_exception(err)),
                "output_tail": _output_tail(self.log_path, offset),
                "frames": extract_frames(err, self.jugfile),
                "label": _label(task),
            }
        elif status == "ok":
            details = {"fingerprint": self._fingerprint(task)}
        record = TaskRecord(
            name=task.name,
            hash=task_hex(task),
            status=status,
            start=start,
            end=end,
            duration=end - start,
            worker=self.worker_id,
            host=self.host,
            pid=self.pid,
            jugfile=self.jugfile,
            job=self.job,
            **details,
        )
        self.records.append(record)
        executed = self.nr_executed + (status == "ok")
        self.heartbeat.beat("idle", last_task=task.name, executed=executed, failed=self.nr_failed)


def _label(task: Any) -> str | None:
    try:
        return task_label(task)
    except Exception:  # a label is a courtesy: an odd argument's repr must never lose the record
        return None


def _qualname(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _output_offset() -> int | None:
    """Size of the log file behind stdout, after flushing (``None`` if stdout is not a regular file)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _output_tail(log_path: Path | None, offset: int | None) -> str | None:
    """Return what the task printed since ``offset`` (last :data:`TAIL_LINES` lines, :data:`TAIL_BYTES`)."""
    end = _output_offset()
    if log_path is None or offset is None or end is None:
        return None
    start = max(offset, end - TAIL_BYTES)
    try:
        with open(log_path, "rb") as handle:
            handle.seek(start)
            data = handle.read(max(end - start, 0))
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-TAIL_LINES:])
