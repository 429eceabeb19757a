"""Reader of file stores (``file_store``, ``file_keepalive_store``): one listing per changed folder.

A result appears in (or leaves) ``<jugdir>/<h[:2]>/`` by a rename or an unlink, both of which change that
folder's mtime, so a folder whose stat (inode, mtime, ctime) did not change since a verified listing is not
listed again. A listing is only trusted once it was taken at least ``RACY_SECONDS`` after the folder's stat
was first seen: a file created in the same timestamp tick as the previous change leaves the mtime as it was
(coarse-grained timestamps, 2 s on FAT), the same "racy" problem git has with its index. On NFS, results can
additionally appear as late as the client's attribute cache allows (``actimeo``), just as they do for jug's
own ``os.path.exists``. The pack is re-read when its stat changes; locks are listed on every read.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import StoreError
from .readers import FAILED, LOCKED, UNLOCKED, BoolArray, LockArray

RACY_SECONDS = 2.0
# jug's file_keepalive_based_lock.is_failed hard-codes this (a lock not touched for 30 minutes is dead);
# tests/test_status.py checks that the two agree.
KEEPALIVE_TIMEOUT = 30 * 60
# file_based_lock.fail() sets a lock's mtime to this (jug issue #55).
_FAILED_MTIME = 1.0


@dataclass
class _Watched:
    """Change detection for one folder or file, by its stat key, with git's racy-timestamp rule."""

    key: tuple[int, ...] | None = None
    first_seen: float = -1.0  # time.monotonic() right after the stat that first returned ``key``
    verified: bool = False  # a listing taken RACY_SECONDS after ``first_seen`` saw no change since

    def must_read(self, path: str, started: float) -> tuple[bool, bool]:
        """Stat ``path``; return (must re-read it, it exists). ``started``: monotonic time before the stat."""
        key = _stat_key(path)
        if key != self.key or self.first_seen < 0:
            self.key, self.first_seen, self.verified = key, time.monotonic(), False
        elif self.verified:
            return False, key is not None
        # Re-read until one read starts RACY_SECONDS after the change was seen; then trust the key.
        self.verified = started - self.first_seen >= RACY_SECONDS
        return True, key is not None


def _stat_key(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


@dataclass
class _Folder:
    """One ``<jugdir>/<h[:2]>`` folder and the uids whose results live there."""

    path: str
    uids: npt.NDArray[np.intp]
    suffixes: list[str]  # h[2:], the result file names
    watch: _Watched = field(default_factory=_Watched)

    def refresh(self, done: BoolArray, started: float) -> None:
        must, exists = self.watch.must_read(self.path, started)
        if not must:
            return
        names = _listdir(self.path) if exists else frozenset()
        done[self.uids] = np.fromiter((s in names for s in self.suffixes), bool, len(self.suffixes))


def _listdir(path: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


class FileReader:
    """Reader for ``file_store`` and ``file_keepalive_store``: one listing per changed folder.

    Parameters
    ----------
    jugdir : str
        The store's ``jugdir`` attribute (as jug uses it for paths).
    hashes : sequence of str
        Hex task hashes by uid.
    uid_of : mapping of str to int
        Uid of each hash whose lock matters.
    keepalive : bool
        Whether locks follow ``file_keepalive`` rules (failed after ``KEEPALIVE_TIMEOUT`` s untouched).
    """

    def __init__(
        self, jugdir: str, hashes: Sequence[str], uid_of: Mapping[str, int], *, keepalive: bool
    ) -> None:
        prefix = "file_keepalive:" if keepalive else ""
        self.description = f"{prefix}{jugdir}"
        # jug resolves a relative jugdir against the working directory, which a kernel's user may change.
        jugdir = os.path.abspath(jugdir)
        self._jugdir = jugdir
        self._keepalive = keepalive
        self._file_done = np.zeros(len(hashes), bool)
        self._pack_done = np.zeros(len(hashes), bool)
        self._folders = _group_by_folder(jugdir, hashes)
        self._pack_watch = _Watched()
        self._hashes = hashes
        self._uid_of = uid_of

    def results(self) -> BoolArray:
        """Whether each uid has a result file or a packed result.

        Raises
        ------
        StoreError
            If a part of the jugdir cannot be read (e.g. permissions).
        """
        started = time.monotonic()
        try:
            for folder in self._folders:
                folder.refresh(self._file_done, started)
            self._refresh_pack(started)
        except OSError as err:
            msg = f"cannot read the jugdir {self._jugdir}: {err}"
            raise StoreError(msg, path=self._jugdir) from None
        return self._file_done | self._pack_done

    def _refresh_pack(self, started: float) -> None:
        packfile = os.path.join(self._jugdir, "packs", "jugpack")
        must, exists = self._pack_watch.must_read(packfile, started)
        if must:
            keys = _pack_keys(packfile) if exists else frozenset()
            self._pack_done[:] = False
            if keys:
                self._pack_done[:] = np.fromiter((h in keys for h in self._hashes), bool, len(self._hashes))

    def locks(self, wanted: BoolArray) -> LockArray:
        """Lock states from one listing of ``<jugdir>/locks`` (locks are few, and re-read every time).

        A lock's failure is in its mtime, which does not change the folder's mtime, so this is not cached.
        """
        out = np.zeros(len(wanted), np.int8)
        try:
            entries = os.scandir(os.path.join(self._jugdir, "locks"))
        except (FileNotFoundError, NotADirectoryError):
            return out
        now = time.time()
        with entries:
            for entry in entries:
                name = entry.name
                uid = self._uid_of.get(name[: -len(".lock")]) if name.endswith(".lock") else None
                if uid is None:
                    continue
                out[uid] = LOCKED
                if wanted[uid]:
                    out[uid] = self._lock_state(entry, now)
        return out

    def _lock_state(self, entry: os.DirEntry[str], now: float) -> int:
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:
            return UNLOCKED  # released since the listing
        if self._keepalive:
            return FAILED if mtime <= now - KEEPALIVE_TIMEOUT else LOCKED
        return FAILED if mtime == _FAILED_MTIME else LOCKED


def _group_by_folder(jugdir: str, hashes: Sequence[str]) -> list[_Folder]:
    groups: dict[str, list[int]] = {}
    for uid, h in enumerate(hashes):
        groups.setdefault(h[:2], []).append(uid)
    return [
        _Folder(os.path.join(jugdir, p), np.array(uids, np.intp), [hashes[u][2:] for u in uids])
        for p, uids in sorted(groups.items())
    ]


class _Opaque:
    """Stands in for a class of a packed value that cannot be imported here: only the keys are wanted."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _KeysUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _Opaque


def _pack_keys(packfile: str) -> frozenset[str]:
    """Read the keys of jug's pack (``file_store.update_pack``): a compressed pickled dict of results."""
    from jug.backends.encode import decompress_stream

    try:
        with open(packfile, "rb") as raw:
            stream = decompress_stream(raw)
            prefix = stream.read(1)
            packed = _KeysUnpickler(stream).load() if prefix == b"P" else {}
    except FileNotFoundError:
        return frozenset()  # replaced or removed since the stat; the next read sees the new key
    # jug packs keys as bytes (Task.hash()); decode them to compare with our str hashes.
    return frozenset(k.decode("ascii") if isinstance(k, bytes) else str(k) for k in packed)
