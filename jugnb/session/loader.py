"""Import a jugfile snapshot in the current process through ``jug.init``, keeping the last good state.

jug keeps global state (``jug.task.alltasks``, ``Task.store``, ``sys.modules[<module>]``; see
shared/JUG-NOTES.md): :func:`load_jugfile` resets it before importing so that re-running a cell never doubles
the tasks, and puts the previous state back when the import fails. A ``barrier()``/``bvalue()`` on unfinished
work stops the import (jug's rule); :class:`BarrierStop` says where, mapped back to the cell.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends.spec import Jugdir, redact_text
from ..errors import JugfileImportError
from ..notebook.cellmap import parse_jugfile
from ..notebook.jugfile import Jugfile
from .misuse import construct_checks

_IMPORT_FAILED = "Importing the jugfile failed at {where}:\n    {code}\n{error}\n{frames}{then}"
_KERNEL_THEN = "The previous jugfile and task graph stay loaded; fix the cell and run it again."
_WORKER_THEN = (
    "This worker stops. Fix the cell and run it again (in the notebook), or save the notebook and run "
    "`jugnb execute` again."
)


@dataclass(frozen=True)
class BarrierStop:
    """Where a ``barrier()`` or ``bvalue()`` stopped the import.

    Attributes
    ----------
    kind : str
        ``"barrier"`` or ``"bvalue"``.
    where : str
        The cell and line, e.g. ``"%%jugfile cell 2 (id 1a2b), line 7"``.
    waiting : int
        Tasks defined before the stop whose results are not available yet.
    """

    kind: str
    where: str
    waiting: int


@dataclass(frozen=True)
class LoadedGraph:
    """A jugfile imported in this process.

    Attributes
    ----------
    jugfile : Jugfile
        The assembled source and its cell map.
    snapshot : Path
        The file jug imported.
    jugdir : Jugdir
        Where results live.
    namespace : dict
        The module's globals.
    tasks : tuple of jug.Task
        Every task defined by the import, hashes computed, in definition order.
    store : object
        The jug store (``Task.store``).
    barrier : BarrierStop or None
        Set when a barrier or bvalue stopped the import.
    """

    jugfile: Jugfile
    snapshot: Path
    jugdir: Jugdir
    namespace: dict[str, Any]
    tasks: tuple[Any, ...]
    store: Any
    barrier: BarrierStop | None

    @property
    def module(self) -> str:
        """The module name (``grid_search``)."""
        return str(self.namespace["__name__"])

    def public_names(self) -> dict[str, Any]:
        """Return the module's public names (not starting with ``_``), excluding imported modules."""
        return {
            k: v
            for k, v in self.namespace.items()
            if not k.startswith("_") and not isinstance(v, types.ModuleType)
        }


def load_jugfile(jugfile: Jugfile, snapshot: Path, jugdir: Jugdir, store: Any = None) -> LoadedGraph:
    """Import ``snapshot`` with ``jug.init`` and return the graph it defines.

    Parameters
    ----------
    jugfile : Jugfile
        The assembled jugfile whose text is in ``snapshot`` (used to map lines to cells).
    snapshot : Path
        The file to import; its name without ``.py`` is the module name.
    jugdir : Jugdir
        The store to use.
    store : object, optional
        An open store to reuse (e.g. an in-memory ``dict_store`` kept across reloads).

    Returns
    -------
    LoadedGraph

    Raises
    ------
    JugfileImportError
        When the import raises; the message names the cell and line and quotes the source. jug's global
        state and ``sys.modules`` are as they were before the call.
    StoreError
        When the store cannot be opened.
    """
    from jug import task as jugtask
    from jug.jug import init

    store = store if store is not None else jugdir.open()
    saved = _save_globals(snapshot.stem)
    del jugtask.alltasks[:]
    try:
        with quiet_import_log(), _barrier_locator(snapshot) as stops, construct_checks():
            store, namespace = init(str(snapshot), on_error="propagate", store=store)
    except Exception as err:
        _restore_globals(saved)
        raise import_error(err, jugfile, snapshot, jugdir.spec) from None
    tasks = tuple(jugtask.alltasks)
    for t in tasks:
        t.hash()  # cached on the task: status, invalidate and the panel need every hash
    barrier = _barrier_stop(stops, jugfile, tasks) if namespace.get("__jug__hasbarrier__") else None
    return LoadedGraph(jugfile, snapshot, jugdir, namespace, tasks, store, barrier)


def _save_globals(module: str) -> tuple[Any, ...]:
    from jug import task as jugtask

    return module, sys.modules.get(module), list(jugtask.alltasks), jugtask.Task.store


def _restore_globals(saved: tuple[Any, ...]) -> None:
    from jug import task as jugtask

    module, previous, alltasks, store = saved
    if previous is None:
        sys.modules.pop(module, None)
    else:
        sys.modules[module] = previous
    jugtask.alltasks[:] = alltasks
    jugtask.Task.store = store


class _DropImportFailure(logging.Filter):
    # jug logs "Could not import file ..." at CRITICAL before re-raising; jugnb shows a better message.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Could not import file")


@contextlib.contextmanager
def quiet_import_log() -> Iterator[None]:
    """Drop jug's "Could not import file" log line while the block runs (jugnb reports the error itself)."""
    root = logging.getLogger()
    log_filter = _DropImportFailure()
    root.addFilter(log_filter)
    try:
        yield
    finally:
        root.removeFilter(log_filter)


@contextlib.contextmanager
def _barrier_locator(snapshot: Path) -> Iterator[list[tuple[str, int]]]:
    """Record ``(function, line)`` in ``snapshot`` where a BarrierError is raised during the import.

    jug's ``init`` swallows the BarrierError (and its traceback), so its raising site is recorded when the
    error is created: ``jug.barrier`` raises its module-level ``BarrierError`` class, swapped here for a
    subclass for the duration of the import only (``except BarrierError`` in jug still catches it).
    """
    # `jug.barrier` is the function (re-exported by jug/__init__.py), so fetch the module itself.
    barrier_module: Any = importlib.import_module("jug.barrier")
    stops: list[tuple[str, int]] = []
    original = barrier_module.BarrierError
    filename = str(snapshot)

    class LocatedBarrierError(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            frame = sys._getframe(1)
            raiser = frame.f_code.co_name
            while frame is not None and frame.f_code.co_filename != filename:
                frame = frame.f_back  # type: ignore[assignment]
            if frame is not None:
                stops.append((raiser, frame.f_lineno))

    barrier_module.BarrierError = LocatedBarrierError
    try:
        yield stops
    finally:
        barrier_module.BarrierError = original


def _barrier_stop(stops: list[tuple[str, int]], jugfile: Jugfile, tasks: tuple[Any, ...]) -> BarrierStop:
    kind, line = stops[-1] if stops else ("barrier", 0)
    where = jugfile.describe_line(line) if line else "an unknown line"
    waiting = sum(1 for t in tasks if not t.can_load())
    return BarrierStop("bvalue" if kind == "bvalue" else "barrier", where, waiting)


def import_error(
    err: BaseException, jugfile: Jugfile, snapshot: Path, jugdir: str, then: str = _KERNEL_THEN
) -> JugfileImportError:
    """Describe an exception raised while importing ``snapshot``, by the cells and lines of ``jugfile``.

    Parameters
    ----------
    err : BaseException
        The exception, with its traceback.
    jugfile, snapshot
        The assembled jugfile and the file jug imported (its frames are mapped back to cells).
    jugdir : str
        The jugdir spec (its redis password is taken out of the message).
    then : str
        The closing sentence: what happens now and what to do.
    """
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == str(snapshot)]
    if isinstance(err, SyntaxError) and err.filename == str(snapshot):
        frames.append(traceback.FrameSummary(str(snapshot), err.lineno or 0, "<module>", line=err.text))
    error = redact_text("".join(traceback.format_exception_only(type(err), err)).rstrip(), jugdir)
    if not frames:
        return JugfileImportError(f"Importing the jugfile failed: {error}\n{then}")
    last = frames[-1]
    where = jugfile.describe_line(last.lineno or 0)
    calls = "".join(
        f"  called from {jugfile.describe_line(f.lineno or 0)}: {(f.line or '').strip()}\n"
        for f in frames[:-1]
    )
    code = (last.line or "").strip()
    message = _IMPORT_FAILED.format(where=where, code=code, error=error, frames=calls, then=then)
    found = jugfile.locate(last.lineno or 0)
    return JugfileImportError(message, cell=where, line=found[1] if found else None)


def raised_importing(err: BaseException, snapshot: str) -> bool:
    """Whether ``err`` was raised by the module-level code of ``snapshot`` (its import), not by a task."""
    frames = traceback.extract_tb(err.__traceback__)
    at_import = any(f.filename == snapshot and f.name == "<module>" for f in frames)
    return at_import or (isinstance(err, SyntaxError) and err.filename == snapshot)


def snapshot_import_error(err: BaseException, snapshot: str, then: str = _WORKER_THEN) -> BaseException:
    """Describe an exception raised while a process imports a jugfile snapshot, by cell and line.

    For a worker that re-imports the jugfile (at start, or after a barrier), which has only the snapshot's
    text: the cells are recovered from its comment lines (:func:`~jugnb.jugfile.parse_jugfile`).

    Parameters
    ----------
    err : BaseException
        The exception, with its traceback.
    snapshot : str
        The file jug imported.
    then : str
        The closing sentence of the message.

    Returns
    -------
    BaseException
        A :class:`~jugnb.errors.JugfileImportError`, or ``err`` itself when it was not raised by the
        import or the file was not generated by jugnb.
    """
    if not raised_importing(err, snapshot):
        return err
    try:
        jugfile = parse_jugfile(Path(snapshot).read_text(encoding="utf-8"))
    except OSError:
        jugfile = None
    if jugfile is None:
        return err
    return import_error(err, jugfile, Path(snapshot), "", then=then)
