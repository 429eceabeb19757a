"""Stored results that exist but cannot be loaded: say which task, where it is stored, why, and the fix.

A result can exist (``can_load()`` is true, so the task counts as complete) and still fail to load: the file
was truncated (a full disk, a copy cut short), its compression is damaged, or it pickles a class or function
that the code no longer has (renamed or removed since the result was computed). jug then raises from deep in
its store. :func:`load_result` turns any such failure into :class:`UnloadableResult`, which names the task,
its hash, where the result is stored and the fix (invalidate that task and run it again), and remembers it
per jugdir so that ``%jug status`` can list it. Only the failing task is concerned: other results load as
before.
"""

from __future__ import annotations

import pickle
import re
import threading
import zlib
from typing import Any

from ..backends import select
from ..backends.spec import Jugdir, redact_text
from ..errors import JugnbError

_UNLOADABLE = (
    "The result of task {name} (hash {hash}) cannot be loaded: {why}.\n"
    "  stored at: {location}\n"
    "  error: {error}\n"
    "Fix: remove this result and compute it again: `%jug invalidate --hash {short}` (also removes the "
    "results computed from it), then `%jug execute`. {extra}Other results are not affected."
)
_WHY_PICKLE = "it refers to a class or function that the code no longer has ({missing})"
_EXTRA_PICKLE = "Or put that class or function back under its old name, then load it again. "
_WHY_TRUNCATED = "the stored data is truncated or damaged"
_WHY_OTHER = "reading it failed"
# jug's RuntimeError for a dependency that failed to load inside a worker (jug.task.Task.load).
_JUG_LOAD_FAILED = re.compile(
    r"Failed to load result for task '(?P<name>[^']+)' \(hash: (?P<hash>[0-9a-f]{40})"
)

_known: dict[str, dict[str, UnloadableResult]] = {}
_known_lock = threading.Lock()  # the browser loads on its own thread


class UnloadableResult(JugnbError):
    """A task's stored result exists but cannot be loaded.

    Attributes
    ----------
    task_name : str
    hash : str
        The task's 40-hex hash.
    location : str
        Where the result is stored (a file, a redis key; never a password).
    """

    task_name: str = ""
    hash: str = ""
    location: str = ""


def result_location(jugdir: Jugdir, task_hash: str) -> str:
    """Describe where a task's result is stored (a file path, a pack, a redis key), password redacted."""
    return select(jugdir.spec).result_location(task_hash)


def unloadable(task_name: str, task_hash: str, jugdir: Jugdir, err: BaseException) -> UnloadableResult:
    """Build the :class:`UnloadableResult` for a load of ``task_hash`` that raised ``err``."""
    cause = _root_cause(err)
    error = redact_text(f"{type(cause).__name__}: {cause}", jugdir.spec)
    missing = _missing_name(cause)
    why = _WHY_PICKLE.format(missing=missing) if missing else _why(cause)
    message = _UNLOADABLE.format(
        name=task_name,
        hash=task_hash,
        why=why,
        location=result_location(jugdir, task_hash),
        error=error,
        short=task_hash[:12],
        extra=_EXTRA_PICKLE if missing else "",
    )
    result = UnloadableResult(message, path=str(jugdir))
    result.task_name, result.hash, result.location = task_name, task_hash, result_location(jugdir, task_hash)
    return result


def _root_cause(err: BaseException) -> BaseException:
    # jug wraps the store's error in RuntimeError("Failed to load result ...") from it.
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def _missing_name(err: BaseException) -> str | None:
    """Return the module.name a pickle refers to that cannot be imported any more, if that is the error."""
    text = str(err)
    found = re.search(r"Can't get attribute '([^']+)' on <module '([^']+)'", text)
    if found:
        return f"{found[2]}.{found[1]}"
    if isinstance(err, ModuleNotFoundError) and err.name:
        return f"module {err.name}"
    return None


def _why(err: BaseException) -> str:
    damaged = (zlib.error, EOFError, pickle.UnpicklingError, ValueError, IndexError)
    return _WHY_TRUNCATED if isinstance(err, damaged) else _WHY_OTHER


def load_result(task: Any, jugdir: Jugdir) -> Any:
    """Load (and cache on the task) the result of a ``jug.Task``, as ``task.result`` does.

    Raises
    ------
    UnloadableResult
        If the stored result cannot be loaded; it is also remembered for ``%jug status``.
    """
    if task.is_loaded():
        return task.result
    try:
        task.load()
        if task.result is None:
            check_not_truncated(task.store, jugdir, task.hash().decode("ascii"))
    except Exception as err:
        task.unload()
        h = task.hash().decode("ascii")
        failure = unloadable(task.name, h, jugdir, err)
        with _known_lock:
            _known.setdefault(jugdir.spec, {})[h] = failure
        raise failure from None
    forget(jugdir, task.hash().decode("ascii"))
    return task.result


def load_by_hash(store: Any, jugdir: Jugdir, task_name: str, task_hash: str) -> Any:
    """Load a result straight from the store (no Task object), like :func:`load_result`.

    Raises
    ------
    UnloadableResult
    """
    try:
        value = store.load(task_hash.encode("ascii"))
        if value is None:
            check_not_truncated(store, jugdir, task_hash)
    except Exception as err:
        failure = unloadable(task_name, task_hash, jugdir, err)
        with _known_lock:
            _known.setdefault(jugdir.spec, {})[task_hash] = failure
        raise failure from None
    forget(jugdir, task_hash)
    return value


def check_not_truncated(store: Any, jugdir: Jugdir, task_hash: str) -> None:
    """Raise ``EOFError`` if the stored bytes of a result that loaded as ``None`` are a cut-off stream.

    jug decodes a zlib stream cut short before any data as an empty stream, which means ``None``: a truncated
    result would load as ``None`` without a word. A real ``None`` is a complete (empty) stream.

    Raises
    ------
    EOFError
        If the stream has no end.
    """
    data = _stored_bytes(store, jugdir, task_hash)
    if data is None:
        return  # in a pack or an in-memory store: decoded once already, nothing to re-check
    decompressor = zlib.decompressobj()
    decompressor.decompress(data)
    if not decompressor.eof:
        msg = f"the compressed data ends early ({len(data)} bytes stored): it was cut short"
        raise EOFError(msg)


def _stored_bytes(store: Any, jugdir: Jugdir, task_hash: str) -> bytes | None:
    return select(jugdir.spec).stored_result(task_hash, store)


def forget(jugdir: Jugdir, task_hash: str) -> None:
    """Drop ``task_hash`` from the known unloadable results (it loaded, or was invalidated)."""
    with _known_lock:
        _known.get(jugdir.spec, {}).pop(task_hash, None)


def known_unloadable(
    jugdir: Jugdir, tasks: Any, failure_messages: Any = (), *, verify: bool = False
) -> list[UnloadableResult]:
    """Results of ``tasks`` known not to load, checked again now (still stored, still failing).

    Parameters
    ----------
    jugdir : Jugdir
    tasks : iterable of jug.Task
        The graph's tasks (only their results are considered).
    failure_messages : iterable of str
        Exception messages of failed task records: jug names a dependency that failed to load in a worker.
    verify : bool
        Try every stored result of ``tasks`` (reads them all), not only the suspects.

    Returns
    -------
    list of UnloadableResult
        One per result, in the order of ``tasks``.
    """
    with _known_lock:
        suspects = set(_known.get(jugdir.spec, {}))
    for message in failure_messages:
        for found in _JUG_LOAD_FAILED.finditer(message or ""):
            suspects.add(found["hash"])
    if not suspects and not verify:
        return []  # the usual case: no pass over the graph
    by_hash = {t.hash().decode("ascii"): t for t in tasks}
    failures = []
    for h in [h for h in by_hash if verify or h in suspects]:
        task = by_hash[h]
        if not task.can_load():
            forget(jugdir, h)  # invalidated since
            continue
        task.unload()
        try:
            load_result(task, jugdir)
        except UnloadableResult as failure:
            failures.append(failure)
        task.unload()  # status must not keep results in memory
    return failures
