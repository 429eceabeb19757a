"""jug's file store (a folder) and ``file_keepalive:FOLDER``: locks, change signal, jugnb's data beside it.

- **Locks** are ``<jugdir>/locks/<hash>.lock`` containing ``PID <pid> on HOSTNAME <host>``; jug marks a failed
  task (``--keep-failed``) by setting the lock's mtime to 1 s after the epoch.
- **Change signal**: the ``locks`` folder's mtime and inode (one ``stat``): every lock taken or released
  changes it.
- **jugnb's data** (task records, code fingerprints) lives in ``<jugdir>.jugnb/``, *beside* the jugdir
  rather than inside it. ``jug cleanup`` walks the whole jugdir (``file_store.cleanup``) and deletes every
  file that is not a current result, sparing only files directly inside folders named ``locks``, ``packs``
  or ``tempfiles``; ``jug status`` treats every two-letter folder as results. Beside the jugdir, jug never
  looks. Records are JSON Lines files, one per writing process, appended with single ``O_APPEND`` writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .base import Backend, FingerprintBlobs, LockOwner, RecordLines
from .leases import LeaseStore
from .spec import open_store, write_atomically

COMPANION_SUFFIX = ".jugnb"
_OWNER = re.compile(rb"^PID (?P<pid>\d+) on HOSTNAME (?P<host>\S+)")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")
_DIGEST = re.compile(r"[0-9a-f]{40}")
_PARTS = "# parts: "


class FileBackend(Backend):
    """A jugdir that is a folder (jug's ``file_store``)."""

    kind: ClassVar[str] = "file"
    lock_names_owner: ClassVar[bool] = True

    @property
    def folder(self) -> Path:
        """The jugdir folder."""
        return Path(self.spec)

    def open(self, *, fatal: bool = False, retry_for: float | None = None) -> Any:
        """Open jug's file store (nothing to retry: a folder is there or it is not)."""
        return open_store(self.spec)

    def lock_owner(self, task_hash: str, store: Any = None) -> LockOwner | None:
        """Parse ``locks/<hash>.lock``; ``None`` if there is none."""
        return read_lock(self.folder / "locks" / f"{task_hash}.lock")

    def iter_locks(self) -> Iterable[LockOwner]:
        """Every lock file of the store."""
        locks = self.folder / "locks"
        if not locks.is_dir():
            return
        with os.scandir(locks) as entries:
            for entry in entries:
                if entry.name.endswith(".lock"):
                    lock = read_lock(Path(entry.path))
                    if lock is not None:
                        yield lock

    def release_lock(self, task_hash: str, store: Any = None) -> bool:
        """Delete ``locks/<hash>.lock`` unless it is a failed mark."""
        lock = self.lock_owner(task_hash)
        if lock is None or lock.failed:
            return False
        try:
            os.unlink(self.folder / "locks" / f"{task_hash}.lock")
        except FileNotFoundError:
            return False
        return True

    def result_location(self, task_hash: str) -> str:
        """Return the result file (``<jugdir>/<h[:2]>/<h[2:]>``), or jug's pack if it was packed."""
        path = self.folder / task_hash[:2] / task_hash[2:]
        if path.exists() or not (self.folder / "packs").is_dir():
            return str(path)
        return f"a pack in {self.folder / 'packs'} (jug's packed results)"

    def stored_result(self, task_hash: str, store: Any) -> bytes | None:
        """Return the result file's bytes (``None`` for a packed result)."""
        try:
            return (self.folder / task_hash[:2] / task_hash[2:]).read_bytes()
        except FileNotFoundError:
            return None

    def change_token(self, store: Any = None) -> tuple[int, ...]:
        """Return the ``locks`` folder's mtime (ns) and inode; ``(0,)`` before the first lock."""
        try:
            st = os.stat(self.folder / "locks")
        except FileNotFoundError:
            return (0,)
        return (st.st_mtime_ns, st.st_ino)

    def companion_folder(self, what: str) -> Path:
        """Return ``<jugdir>.jugnb/<what>`` (absolute; a trailing slash of the jugdir is ignored)."""
        return Path(os.path.abspath(str(self.folder).rstrip("/") + COMPANION_SUFFIX)) / what

    def leases(self, store: Any = None) -> LeaseStore:
        """One JSON file per worker in ``<jugdir>.jugnb/leases/`` (:mod:`jugnb.backends.file_leases`)."""
        from .file_leases import FileLeases

        return FileLeases(self.companion_folder("leases"), self)

    def record_lines(self, store: Any = None) -> RecordLines:
        """JSON Lines files in ``<jugdir>.jugnb/records/``."""
        return FileRecordLines(self.companion_folder("records"))

    def fingerprint_blobs(self, store: Any = None) -> FingerprintBlobs:
        """``<digest>.py`` files in ``<jugdir>.jugnb/fingerprints/``."""
        return FileFingerprintBlobs(self.companion_folder("fingerprints"))


class FileKeepaliveBackend(FileBackend):
    """``file_keepalive:FOLDER``: a file store whose locks count as failed after 30 min without a touch."""

    kind: ClassVar[str] = "file_keepalive"

    @property
    def folder(self) -> Path:
        """The jugdir folder (after ``file_keepalive:``)."""
        return Path(self.spec[len("file_keepalive:") :])


def read_lock(path: Path) -> LockOwner | None:
    """Parse one lock file; ``None`` if it vanished meanwhile."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
            mtime = os.fstat(handle.fileno()).st_mtime
    except (FileNotFoundError, IsADirectoryError):
        return None
    match = _OWNER.match(head)
    pid = int(match["pid"]) if match else None
    host = match["host"].decode("utf-8", "replace") if match else None
    return LockOwner(path.name[: -len(".lock")], pid, host, mtime, failed=mtime <= 1.0)


def _keep_out_of_git(folder: Path) -> None:
    # jugnb's data, like the jugdir beside it, is data: never committed by accident.
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# jugnb's records and fingerprints of the jugdir beside. Never commit.\n*\n")


class FileRecordLines(RecordLines):
    """Lines in JSON Lines files, one per writer, in ``folder`` (created on the first append).

    Parameters
    ----------
    folder : Path
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._offsets: dict[str, int] = {}
        self._fds: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FileRecordLines({str(self.folder)!r})"

    def path_for(self, writer: str) -> Path:
        """Return the file ``writer`` appends to."""
        return self.folder / _UNSAFE.sub("_", f"{writer}.jsonl")

    def append(self, writer: str, line: str) -> None:
        """Append one line to the writer's own file (a single ``write`` with ``O_APPEND``)."""
        fd = self._fds.get(writer)
        if fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            _keep_out_of_git(self.folder.parent)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = self._fds[writer] = os.open(self.path_for(writer), flags, 0o666)
        os.write(fd, (line + "\n").encode("utf-8"))

    def read_new(self) -> list[tuple[bytes, str]]:
        """Complete lines appended to any file since the previous call."""
        if not self.folder.is_dir():
            return []
        lines: list[tuple[bytes, str]] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.endswith(".jsonl") and entry.stat().st_size > self._offsets.get(entry.path, 0):
                    lines.extend((line, entry.path) for line in self._read_file(entry.path))
        return lines

    def _read_file(self, path: str) -> list[bytes]:
        offset = self._offsets.get(path, 0)
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        # A writer may be half-way through a line: consume complete lines only.
        complete = data[: data.rfind(b"\n") + 1]
        self._offsets[path] = offset + len(complete)
        return complete.splitlines()

    def close(self) -> None:
        """Close the files opened for appending."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class FileFingerprintBlobs(FingerprintBlobs):
    """Fingerprints as ``<digest>.py`` files in ``folder``: the source under a ``# parts: ...`` line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._saved: set[str] = set()  # a worker saves the same few fingerprints for many tasks

    def __repr__(self) -> str:
        return f"FileFingerprintBlobs({str(self.folder)!r})"

    def save(self, digest: str, source: str, parts: Sequence[str]) -> None:
        """Write ``<digest>.py`` atomically unless it exists."""
        if digest in self._saved:
            return
        path = self.folder / f"{digest}.py"
        if not path.exists():
            write_atomically(path, f"{_PARTS}{', '.join(parts)}\n{source}".encode())
        self._saved.add(digest)

    def load(self, digest: str) -> tuple[str, tuple[str, ...]] | None:
        """Read ``<digest>.py``; ``None`` if missing or not in the expected form."""
        if not _DIGEST.fullmatch(digest):
            return None
        try:
            text = (self.folder / f"{digest}.py").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        header, _, source = text.partition("\n")
        if not header.startswith(_PARTS):
            return None
        parts = header[len(_PARTS) :]
        return source, tuple(parts.split(", ")) if parts else ()
