"""jug's ``dict_store`` (in memory) and ``dict_store:FILE`` (in memory, read from and saved to FILE).

Only the process that opened it sees its results, so worker processes cannot share it, and jugnb keeps no
records or fingerprints for it. jugnb saves ``dict_store:FILE`` itself (:func:`save_dict_store`): jug
writes FILE only when the store closes, non-atomically, and at interpreter exit not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..errors import StoreError
from .base import Backend, FingerprintBlobs, RecordLines
from .spec import open_store, save_dict_store

_FAILED = 2  # jug's dict_lock stores 1 (locked) or 2 (failed)


class DictBackend(Backend):
    """``dict_store``: results in this process's memory only."""

    kind: ClassVar[str] = "dict_store"
    persistent: ClassVar[bool] = False
    supports_workers: ClassVar[bool] = False
    keeps_records: ClassVar[bool] = False
    reuse_open_store: ClassVar[bool] = True  # it holds the only copy of the results

    def unshareable_reason(self) -> str:
        """Worker processes cannot see another process's memory."""
        return f"The jugdir {self} is an in-memory dict_store: worker processes cannot see it."

    def open(self, *, fatal: bool = False, retry_for: float | None = None) -> Any:
        """Open a new ``dict_store`` (empty, or read from FILE)."""
        return open_store(self.spec)

    def release_lock(self, task_hash: str, store: Any = None) -> bool:
        """Delete the lock from ``store``'s dict unless it is a failed mark (no store: nothing to do)."""
        data = getattr(store, "store", None)
        key = f"lock:{task_hash}".encode("ascii")
        if data is None or data.get(key) in (None, _FAILED):
            return False
        del data[key]
        return True

    def record_lines(self, store: Any = None) -> RecordLines:
        """Refused: records would have nowhere to be shared."""
        raise StoreError(self._one_process("records"))

    def fingerprint_blobs(self, store: Any = None) -> FingerprintBlobs:
        """Refused, as :meth:`record_lines`."""
        raise StoreError(self._one_process("fingerprints"))

    def _one_process(self, what: str) -> str:
        return f"{what} need a shared store; `dict_store` keeps results in one process only."


class DictFileBackend(DictBackend):
    """``dict_store:FILE``: in memory, read from FILE when opened and saved to it by jugnb."""

    kind: ClassVar[str] = "dict_store_file"
    persistent: ClassVar[bool] = True  # saved to FILE
    reuse_open_store: ClassVar[bool] = True  # it holds the only copy of results not saved yet

    @property
    def folder(self) -> Path | None:
        """None: FILE is a file, not a store folder."""
        return None

    def unshareable_reason(self) -> str:
        """Each process reads FILE once and writes it back at the end: the last one would win."""
        return (
            f"The jugdir {self} cannot be shared by worker processes: jug's dict_store reads FILE once, "
            "when a process opens it, keeps every result and lock in that process's memory, and writes "
            "FILE back only when it closes. Workers would each run every task, and the last one to exit "
            "would overwrite the others' results."
        )

    def open_for_jug(self, retry_for: float | None = None) -> Any:
        """Open it here, so that jugnb can save it (jug's own close would lose it at exit)."""
        return open_store(self.spec)

    def save(self, store: Any) -> bool:
        """Write FILE now, atomically."""
        return save_dict_store(store)
