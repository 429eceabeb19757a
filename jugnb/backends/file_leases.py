"""Leases of a file store: ``<jugdir>.jugnb/leases/<worker>.json`` (see :mod:`jugnb.backends.leases`)."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Backend
from .leases import _SLACK, _UNSAFE, Lease, LeaseStore


class FileLeases(LeaseStore):
    """Leases of a file store: ``<jugdir>.jugnb/leases/<worker>.json`` (see the module docstring)."""

    def __init__(self, folder: Path, backend: Backend) -> None:
        self.folder = folder
        self.backend = backend

    def append_cleanup_log(self, line: str) -> None:
        """Append to ``<jugdir>.jugnb/cleanup.log``."""
        path = self.folder.parent / "cleanup.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")

    def _path(self, worker: str, lost: bool = False) -> Path:
        name = _UNSAFE.sub("_", worker) + ".json"
        return self.folder / "lost" / name if lost else self.folder / name

    def write(self, lease: Lease) -> None:
        """Register or renew ``lease``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self._path(lease.worker)
        temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        temporary.write_text(lease.to_json() + "\n", encoding="utf-8")
        os.replace(temporary, final)  # a reader sees the old lease or the new one, never a mix

    def remove(self, worker: str) -> None:
        """Drop the lease of a worker that exits cleanly."""
        self._path(worker).unlink(missing_ok=True)

    def _read(self, folder: Path) -> list[Lease]:
        leases = []
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                try:
                    lease = Lease.from_json(Path(entry.path).read_bytes())
                except FileNotFoundError:
                    continue
                if lease is not None:
                    leases.append(lease)
        return leases

    def read_all(self) -> list[Lease]:
        """Every registered lease, live or expired."""
        return self._read(self.folder)

    def read_lost(self) -> list[Lease]:
        """Leases found expired."""
        return self._read(self.folder / "lost")

    def is_lost(self, worker: str) -> bool:
        """Whether ``worker`` was declared lost."""
        return self._path(worker, lost=True).exists()

    def _claim(self, lease: Lease, force: bool = False) -> bool:
        if not force:
            try:
                current = Lease.from_json(self._path(lease.worker).read_bytes())
            except FileNotFoundError:
                return False
            if current is not None and not current.expired():
                return False  # renewed meanwhile (a renewal racing this rename makes the worker drain)
        (self.folder / "lost").mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self._path(lease.worker), self._path(lease.worker, lost=True))
        except FileNotFoundError:
            return False
        return True

    def _record_lost(self, lease: Lease) -> None:
        path = self._path(lease.worker, lost=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(lease.to_json() + "\n", encoding="utf-8")
        os.replace(temporary, path)

    def release_locks(self, lease: Lease) -> list[str]:
        """Delete the locks the lease's worker held; return their hashes."""
        released: list[str] = []
        # Written while the lost worker lived: a later process of that host reusing the pid is spared.
        newest = lease.renewed + lease.interval + _SLACK
        for lock in self.backend.iter_locks():
            mine = (lock.pid, lock.host) == (lease.pid, lease.host) and not lock.failed
            if mine and lock.mtime is not None and lease.started - _SLACK <= lock.mtime <= newest:
                if self.backend.release_lock(lock.hash):  # never a failed mark
                    released.append(lock.hash)
        return released
