"""Per-task records that jugnb workers write beside the results: who ran what, when, and how it failed.

Every task a jugnb worker runs leaves one :class:`TaskRecord` (``status`` ``"ok"``, ``"failed"``,
``"interrupted"`` or, written by the pool for a worker killed mid-task, ``"killed"``). Records live with
the jugdir, so they survive kernel restarts and records of workers on other hosts sharing the jugdir reach
the notebook:

- **file store** (and ``file_keepalive:``): append-only JSON Lines files, one per worker process, in
  ``<jugdir>.jugnb/records/``, *beside* the jugdir rather than inside it. ``jug cleanup`` walks the whole
  jugdir (``file_store.cleanup``) and deletes every file that is not a current result, sparing only the
  files directly inside folders named ``locks``, ``packs`` or ``tempfiles``; anything jugnb put inside the
  jugdir would be deleted (or would have to hide in a folder abusing one of those names). ``jug status``
  also treats every two-letter folder of the jugdir as results. Beside the jugdir, jug never looks.
- **redis** (``redis://...``): one stream, ``jugnb:records``, in the same database as jug's ``result:`` and
  ``lock:`` keys, which ``jug cleanup`` and ``invalidate`` never touch. Readers use ``XRANGE`` from the last
  id seen, never ``KEYS``.

Readers are incremental: :meth:`RecordLog.read_new` returns only what appeared since the previous call
(file offsets, stream ids). The redis URL (which may hold a password) is never written into a record.
"""

from __future__ import annotations

import json
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import StoreError

log = logging.getLogger(__name__)

STATUSES = ("ok", "failed", "interrupted", "killed", "crashed")
RECORDS_SUFFIX = ".jugnb"
REDIS_STREAM = "jugnb:records"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


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
        ``"ok"``, ``"failed"`` (the task raised), ``"interrupted"`` (the worker was stopped mid-task) or
        ``"killed"`` (the worker died mid-task; written by the pool that noticed) or ``"crashed"`` (its
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
    job: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the task did not complete (failed, interrupted or killed)."""
        return self.status != "ok"

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


class RecordLog(ABC):
    """Append-only, incrementally readable task records of one jugdir."""

    def __init__(self) -> None:
        self._latest: dict[str, TaskRecord] = {}

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
        if jugdir.startswith("redis:"):
            return RedisRecordLog(jugdir, store)
        return FileRecordLog(companion_folder(jugdir, "records"))

    @abstractmethod
    def append(self, record: TaskRecord) -> None:
        """Store ``record`` (visible to every reader of this jugdir)."""

    @abstractmethod
    def _read_raw(self) -> list[TaskRecord]:
        """Return the records written since the previous call, in no particular order across writers."""

    def read_new(self) -> list[TaskRecord]:
        """Return the records written since the previous call (all on the first call), oldest first."""
        new = sorted(self._read_raw(), key=lambda r: (r.start, r.end or r.start))
        for record in new:
            current = self._latest.get(record.hash)
            if current is None or (record.end or record.start) >= (current.end or current.start):
                self._latest[record.hash] = record
        return new

    def latest_by_hash(self) -> dict[str, TaskRecord]:
        """Return the most recent record of every task seen so far (reads new records first)."""
        self.read_new()
        return dict(self._latest)

    def close(self) -> None:  # noqa: B027 - optional for subclasses
        """Release open files or connections."""


def _keep_out_of_git(folder: Path) -> None:
    # Records, like the jugdir beside them, are data: never committed by accident.
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# jugnb's records and fingerprints of the jugdir beside. Never commit.\n*\n")


def companion_folder(jugdir: str, what: str) -> Path:
    """Return ``<jugdir>.jugnb/<what>``, jugnb's folder of ``what`` for a file or file_keepalive jugdir.

    Raises
    ------
    StoreError
        For an in-memory ``dict_store`` (or ``dict_store:FILE``): only one process sees its results, so
        records and fingerprints have nowhere to be shared.
    """
    if jugdir == "dict_store" or jugdir.startswith("dict_store:"):
        msg = f"{what} need a shared store; `{jugdir.split(':')[0]}` keeps results in one process only."
        raise StoreError(msg)
    if jugdir.startswith("file_keepalive:"):
        jugdir = jugdir[len("file_keepalive:") :]
    return records_folder(jugdir).parent / what


def records_folder(jugdir: str) -> Path:
    """Folder of a file store's records: ``<jugdir>.jugnb/records`` (beside the jugdir, see module doc)."""
    return Path(os.path.abspath(jugdir.rstrip("/") + RECORDS_SUFFIX)) / "records"


class FileRecordLog(RecordLog):
    """Records as JSON Lines files, one per worker process, in ``folder``.

    Parameters
    ----------
    folder : Path
        Created on the first :meth:`append`.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self._offsets: dict[str, int] = {}
        self._fds: dict[tuple[str, str, int], int] = {}

    def __repr__(self) -> str:
        return f"FileRecordLog({str(self.folder)!r})"

    def path_for(self, record: TaskRecord) -> Path:
        """Return the file ``record`` is appended to: one per (worker, host, pid)."""
        return self.folder / _UNSAFE.sub("_", f"{record.worker}@{record.host}-{record.pid}.jsonl")

    def append(self, record: TaskRecord) -> None:
        """Append one line to the writer's own file (a single ``write`` with ``O_APPEND``)."""
        writer = (record.worker, record.host, record.pid)
        fd = self._fds.get(writer)
        if fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            _keep_out_of_git(self.folder.parent)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = self._fds[writer] = os.open(self.path_for(record), flags, 0o666)
        os.write(fd, (record.to_json() + "\n").encode("utf-8"))

    def _read_raw(self) -> list[TaskRecord]:
        if not self.folder.is_dir():
            return []
        records: list[TaskRecord] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.endswith(".jsonl") and entry.stat().st_size > self._offsets.get(entry.path, 0):
                    records.extend(self._read_file(entry.path))
        return records

    def _read_file(self, path: str) -> list[TaskRecord]:
        offset = self._offsets.get(path, 0)
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        # A writer may be half-way through a line: consume complete lines only.
        complete = data[: data.rfind(b"\n") + 1]
        self._offsets[path] = offset + len(complete)
        return list(_parse_lines(complete.splitlines(), path))

    def close(self) -> None:
        """Close the files opened for appending."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class RedisRecordLog(RecordLog):
    """Records in the redis stream ``jugnb:records`` of the jugdir's database.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host[:port][/db]``; kept out of every repr and message.
    store : jug store, optional
        The open store of ``url``, whose client is shared.
    """

    def __init__(self, url: str, store: Any = None) -> None:
        super().__init__()
        from ..backends.redis_store import client_for

        self._redis, self._owned = client_for(url, store)
        self._last_id = "0-0"

    def __repr__(self) -> str:
        return "RedisRecordLog(<redis>)"

    def append(self, record: TaskRecord) -> None:
        """``XADD`` one entry (field ``r``: the record as JSON)."""
        self._redis.xadd(REDIS_STREAM, {"r": record.to_json()})

    def _read_raw(self) -> list[TaskRecord]:
        records: list[TaskRecord] = []
        while True:
            batch: list[tuple[bytes, dict[bytes, bytes]]]
            batch = self._redis.xrange(REDIS_STREAM, min=f"({self._last_id}", count=1000)  # type: ignore[assignment]
            if not batch:
                return records
            self._last_id = batch[-1][0].decode("ascii")
            records.extend(_parse_lines((fields[b"r"] for _, fields in batch), REDIS_STREAM))

    def close(self) -> None:
        """Close the connection (unless it is the store's)."""
        if self._owned:
            self._redis.close()


def _parse_lines(lines: Iterable[bytes], where: str) -> Iterable[TaskRecord]:
    for line in lines:
        if not line.strip():
            continue
        try:
            yield TaskRecord.from_dict(json.loads(line))
        except (ValueError, TypeError) as err:
            log.warning("skipping a damaged record in %s: %s", where, err)
