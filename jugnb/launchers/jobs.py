"""Jobs remembered beside the jugdir, and their states read at most once per ``poll_interval``.

A file jugdir keeps one JSON file per submitted job in ``<jugdir>.jugnb/jobs/``; a redis jugdir keeps them
in the hash ``jugnb:jobs`` of its database. So a new kernel, or ``jugnb jobs NB.ipynb`` in a login shell,
finds the jobs that any kernel or shell submitted for that jugdir.

Configuration::

    c.JobWatcher.poll_interval = 30.0   # seconds between two batched squeue calls
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from traitlets import Float, Instance
from traitlets.config import LoggingConfigurable

from ..backends import leases_of, select
from ..backends.leases import Lease, LeaseStore
from ..errors import StoreError
from ..notebook.jugfile import atomic_write
from ..status.records import RecordLog, TaskRecord
from .base import JobState, Launcher
from .crashes import settle_crashes

REDIS_KEY = "jugnb:jobs"
#: Where the last seen lease of each job's worker is kept (a redis hash; a file beside the job files).
SEEN_KEY = "jugnb:jobs:workers"
SEEN_FILE = "workers.seen"


@dataclass(frozen=True)
class JobEntry:
    """A submitted job, as remembered beside the jugdir.

    Attributes
    ----------
    job_id : str
    launcher : str
        The launcher's kind (``"slurm"``).
    notebook : str
        The notebook's absolute path.
    module : str
    tasks : int
        Array tasks submitted.
    folder : str
        Folder of the script and the array tasks' logs (``<job>_<index>.log``).
    submitted : float
        Unix time of submission (seconds).
    """

    job_id: str
    launcher: str
    notebook: str
    module: str
    tasks: int
    folder: str
    submitted: float

    def log_path(self, index: str) -> Path:
        """Return the log path of array task ``index``."""
        return Path(self.folder) / f"{self.job_id}_{index}.log"


class JobBook:
    """The jobs of one jugdir.

    Parameters
    ----------
    jugdir : str
        A shareable jugdir (folder, ``file_keepalive:``, or ``redis://``).
    store : jug store, optional
        Its open store (a redis client is shared).

    Raises
    ------
    StoreError
        For a ``dict_store``, which no job can reach.
    """

    def __init__(self, jugdir: str, store: Any = None) -> None:
        self.jugdir, self.store = jugdir, store
        self._redis: Any = None
        self._folder: Path | None = None
        backend = select(jugdir)
        backend.leases(store)  # raises StoreError for a store that no job can share
        try:
            self._folder = backend.companion_folder("jobs")
        except StoreError:  # a store without a folder: redis, where the jobs are a hash of its database
            from ..backends.redis_store import client_for

            self._redis, _ = client_for(jugdir, store)

    def __repr__(self) -> str:
        return f"JobBook({self._folder if self._folder else '<redis>'})"

    def add(self, entry: JobEntry) -> None:
        """Remember ``entry``."""
        text = json.dumps(asdict(entry), sort_keys=True)
        if self._redis is not None:
            self._redis.hset(REDIS_KEY, entry.job_id, text)
            return
        assert self._folder is not None  # noqa: S101 - set in __init__ when not redis
        self._folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self._folder / f"{entry.job_id}.json", text + "\n")

    def entries(self) -> list[JobEntry]:
        """Every remembered job, oldest first (unreadable entries are skipped)."""
        texts: list[str] = []
        if self._redis is not None:
            raw: dict[bytes, bytes] = self._redis.hgetall(REDIS_KEY)
            texts = [v.decode() for v in raw.values()]
        elif self._folder is not None and self._folder.is_dir():
            texts = [p.read_text(encoding="utf-8") for p in self._folder.glob("*.json")]
        found = []
        for text in texts:
            try:
                found.append(JobEntry(**json.loads(text)))
            except (ValueError, TypeError):
                continue
        return sorted(found, key=lambda e: e.submitted)

    def remember_workers(self, leases: Iterable[Lease]) -> None:
        """Keep the last seen lease of each worker of a job (what it ran), for when its job dies.

        A worker stopped by its job's end may leave nothing behind (its lease removed on exit, no record
        of the task it was cut off in); this is then the only trace of that task.
        """
        texts = {lease.worker: lease.to_json() for lease in leases}
        if not texts:
            return
        if self._redis is not None:
            self._redis.hset(SEEN_KEY, mapping=texts)
            return
        assert self._folder is not None  # noqa: S101 - set in __init__ when not redis
        path = self._folder / SEEN_FILE
        seen = self._read_seen_file(path)
        seen.update(texts)
        self._folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(seen, sort_keys=True) + "\n")

    def remembered_workers(self) -> list[Lease]:
        """Return the last seen lease of every worker of a remembered job."""
        if self._redis is not None:
            texts = [v.decode() for v in self._redis.hgetall(SEEN_KEY).values()]
        else:
            assert self._folder is not None  # noqa: S101 - set in __init__ when not redis
            texts = list(self._read_seen_file(self._folder / SEEN_FILE).values())
        return [lease for lease in map(Lease.from_json, texts) if lease is not None]

    @staticmethod
    def _read_seen_file(path: Path) -> dict[str, str]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def forget(self, job_ids: Sequence[str]) -> None:
        """Forget ``job_ids`` (their logs stay)."""
        for job in job_ids:
            if self._redis is not None:
                self._redis.hdel(REDIS_KEY, job)
            elif self._folder is not None:
                (self._folder / f"{job}.json").unlink(missing_ok=True)


@dataclass(frozen=True)
class JobRow:
    """One array task of a remembered job, with its state and the last line of its log."""

    entry: JobEntry
    state: JobState
    log_tail: str
    workers: tuple[str, ...] = ()  # one line per live lease of this array task (host, pid, what it does)

    @property
    def label(self) -> str:
        """``123_4``, or ``123_[2-5]`` for pending tasks, or ``123``."""
        return (
            f"{self.state.job_id}_{self.state.array_index}" if self.state.array_index else self.state.job_id
        )


def log_tail(path: Path, lines: int = 1, limit: int = 4096) -> str:
    """Return the last ``lines`` lines of ``path`` (reading at most ``limit`` bytes); ``""`` if none."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class JobWatcher(LoggingConfigurable):
    """Read the states of a jugdir's jobs with one batched query per poll, at most every ``poll_interval``."""

    poll_interval = Float(
        30.0, help="Seconds between two queries of the batch system (squeue) for the jobs' states."
    ).tag(config=True)
    launcher = Instance(Launcher)  # type: ignore[type-abstract]

    def __init__(self, book: JobBook, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.book = book
        self._lock = threading.Lock()
        self._last = 0.0
        self._rows: list[JobRow] = []
        self._records: RecordLog | None = None
        self._leases: LeaseStore | None = None
        self._seen: dict[str, str | None] = {}  # worker -> task hash, as last remembered
        #: Crashed task records written by this watcher (see :mod:`jugnb.launchers.crashes`), oldest first.
        self.crashes: list[TaskRecord] = []

    def rows(self, *, refresh: bool = False) -> list[JobRow]:
        """Every array task of every remembered job; queries the batch system if ``poll_interval`` passed.

        Parameters
        ----------
        refresh : bool
            Query now, whatever the interval (an explicit ``%jug jobs``).

        Raises
        ------
        LauncherError
            If the query fails.
        """
        with self._lock:
            if refresh or time.monotonic() - self._last >= self.poll_interval:
                self._rows = self._query()
                self._last = time.monotonic()
            return list(self._rows)

    def _query(self) -> list[JobRow]:
        entries = {e.job_id: e for e in self.book.entries()}
        if not entries:
            return []
        states = self.launcher.poll(list(entries))
        self._settle(entries, states)
        leases = self._lease_store().read_all()
        self._remember(leases, entries)
        rows = []
        for state in states:
            entry = entries[state.job_id]
            tail = log_tail(entry.log_path(state.array_index)) if state.array_index.isdigit() else ""
            workers = tuple(
                f"{lease.host}:{lease.pid} {lease.describe()}"
                for lease in leases
                if (lease.slurm_array_job, lease.slurm_array_task) == (state.job_id, state.array_index)
            )
            rows.append(JobRow(entry, state, tail, workers))
        return sorted(rows, key=lambda r: (r.entry.submitted, _index_key(r.state.array_index)))

    def take_crashes(self) -> list[TaskRecord]:
        """Return the crashed task records written since the last call (and forget them)."""
        with self._lock:
            taken, self.crashes = self.crashes, []
        return taken

    def _remember(self, leases: list[Lease], entries: dict[str, JobEntry]) -> None:
        """Save the leases of the jobs' workers whose task changed since the last look."""
        changed = [
            lease
            for lease in leases
            if lease.slurm_array_job in entries and self._seen.get(lease.worker) != lease.task_hash
        ]
        if changed:
            self.book.remember_workers(changed)
            self._seen.update({lease.worker: lease.task_hash for lease in changed})

    def _settle(self, entries: dict[str, JobEntry], states: list[JobState]) -> None:
        """Record the tasks that crashed with finished jobs, and free their locks."""
        if not any(s.finished and s.crashed for s in states):
            return
        if self._records is None:
            self._records = RecordLog.for_jugdir(self.book.jugdir, self.book.store)
        remembered = self.book.remembered_workers()
        self.crashes += settle_crashes(states, self._lease_store(), self._records, remembered)

    def _lease_store(self) -> LeaseStore:
        if self._leases is None:
            self._leases = leases_of(self.book.jugdir, self.book.store)
        return self._leases


def _index_key(index: str) -> int:
    digits = index.strip("[]").split("-")[0].split(",")[0].split("%")[0]
    return int(digits) if digits.isdigit() else -1


def live_job_ids(rows: Sequence[JobRow]) -> list[str]:
    """Return the job ids with an array task not yet finished."""
    return sorted({r.state.job_id for r in rows if not r.state.finished and r.state.state != "UNKNOWN"})


def crash_lines(crashes: Sequence[TaskRecord]) -> str:
    """Return one line per crashed task: ``Task NAME (hash) crashed: why``."""
    return "\n".join(f"Task {r.name} ({r.hash[:12]}) crashed: {r.exc_message}" for r in crashes)


def jobs_text(rows: Sequence[JobRow]) -> str:
    """Return a plain-text table of ``rows`` (job, state with pending reason, node, elapsed, log tail)."""
    if not rows:
        return "No jobs submitted for this jugdir."
    table = [("job", "state", "node", "elapsed", "workers", "log")]
    for row in rows:
        state = row.state.state + (f" ({row.state.reason})" if row.state.reason else "")
        elapsed = time.strftime("%H:%M:%S", time.gmtime(row.state.elapsed))
        table.append(
            (row.label, state, row.state.node or "-", elapsed, str(len(row.workers)), row.log_tail[:60])
        )
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in table]
    lines += [f"  {row.label}: {worker}" for row in rows for worker in row.workers]
    return "\n".join(line.rstrip() for line in lines)


def jobs_html(rows: Sequence[JobRow]) -> str:
    """Return an HTML table of ``rows`` (the same columns as :func:`jobs_text`; everything escaped)."""
    import html

    if not rows:
        return "<i>No jobs submitted for this jugdir.</i>"
    head = "".join(f"<th>{c}</th>" for c in ("job", "state", "node", "elapsed", "workers", "log"))
    body = []
    for row in rows:
        state = row.state.state + (f" ({row.state.reason})" if row.state.reason else "")
        elapsed = time.strftime("%H:%M:%S", time.gmtime(row.state.elapsed))
        cells = (row.label, state, row.state.node or "-", elapsed, "\n".join(row.workers), row.log_tail[:80])
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table class='jugnb-jobs'><tr>{head}</tr>{''.join(body)}</table>"
