"""The kernel's side of a notebook's jugfile: its fragments, the loaded graph, and reloading it.

A :class:`NotebookSession` holds the ``%%jugfile`` cells run so far (one
:class:`~jugnb.notebook.jugfile.Fragment`
each), assembles them exactly as ``jugnb export`` does, writes the result to an immutable snapshot plus a
pointer file (``.jugnb/<module>.current``) that workers follow, and imports it through jug. A failing cell
changes nothing: fragments, files and the loaded graph stay as they were.

Fragment rules: a cell with a key (its ``--name`` label, else the cell id the frontend sent) replaces the
fragment with the same key in place; a cell without a key is appended, unless a fragment with exactly
the same body exists already (re-running identical code adds nothing).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import Jugdir, select
from ..errors import JugfileImportError, JugnbError
from ..notebook.jugfile import Fragment, Jugfile, assemble, atomic_write
from ..notebook.project import Project
from ..workers.env import read_pointer
from .loader import LoadedGraph, load_jugfile

_FAILED = (
    "{cells} failed the last time {it} ran ({error}), so the loaded jugfile still holds {its} previous "
    "version: workers would run code the notebook does not show. Fix {that} and run {it} again (or `%jug "
    "reset` and run the %%jugfile cells again), then `%jug execute`."
)
_ON_DISK = (
    "The jugfile on disk is not the kernel's: {problem}. Workers would run another task graph than the one "
    "loaded here. Run a %%jugfile cell again (it rewrites the snapshot and the pointer), then `%jug execute`."
)


@dataclass(frozen=True)
class FailedCell:
    """A ``%%jugfile`` cell whose last run failed.

    Attributes
    ----------
    fragment : Fragment
        The cell as it was run.
    where : str
        The cell, for messages (``"%%jugfile cell 2 (id 1a2b)"``).
    error : str
        The first line of the error.
    """

    fragment: Fragment
    where: str
    error: str


def _failed_cells_message(failures: list[FailedCell]) -> str:
    many = len(failures) > 1
    cells = ", ".join(f.where for f in failures)
    error = "; ".join(f.error for f in failures)
    words = (
        {"it": "they", "its": "their", "that": "them"} if many else {"it": "it", "its": "its", "that": "it"}
    )
    return _FAILED.format(cells=cells, error=error, **words)


def _summary(err: JugnbError) -> str:
    """One line of ``err``: the exception of an import error (its third line), else the first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if isinstance(err, JugfileImportError) and len(lines) >= 3:
        return lines[2]
    return lines[0] if lines else type(err).__name__


def _disk_mismatch(pointer: Path, snapshot: Path, text: str) -> str:
    """Say how the pointer file and the snapshot differ from the loaded jugfile (empty when they match)."""
    try:
        named = read_pointer(pointer)
    except FileNotFoundError:
        return f"the pointer file {pointer} is missing"
    if named != str(snapshot):
        return f"{pointer} names {named} (written by another kernel or process), not {snapshot}"
    try:
        on_disk = snapshot.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"the snapshot {snapshot} is missing"
    if on_disk != text:
        return f"the snapshot {snapshot} was changed after the kernel wrote it"
    return ""


@dataclass
class NotebookSession:
    """The jugfile a kernel builds from ``%%jugfile`` cells, and its loaded graph.

    Parameters
    ----------
    project : Project
        Module name and folders.
    jugdir : Jugdir
        Where results live.
    """

    project: Project
    jugdir: Jugdir
    fragments: list[Fragment] = field(default_factory=list)
    graph: LoadedGraph | None = None
    failures: list[FailedCell] = field(default_factory=list)
    _store: Any = None
    #: Hashes of tasks that an earlier graph defined and the current one does not -> (why, the public name
    #: that held it then, if any).
    retired: dict[bytes, tuple[str, str | None]] = field(default_factory=dict)
    _hashes: frozenset[bytes] = frozenset()

    @property
    def pointer_path(self) -> Path:
        """File holding the absolute path of the current snapshot; workers re-read it after each task."""
        return self.project.state_dir / f"{self.project.module}.current"

    def with_fragment(self, fragment: Fragment) -> tuple[list[Fragment], int]:
        """Return the fragment list after running ``fragment``, and its 1-based ordinal."""
        fragments = list(self.fragments)
        for position, existing in enumerate(fragments):
            same_key = fragment.key is not None and existing.key == fragment.key
            same_code = fragment.key is None and existing.key is None and existing.body == fragment.body
            if same_key or same_code:
                fragments[position] = fragment
                return fragments, position + 1
        fragments.append(fragment)
        return fragments, len(fragments)

    def run_fragment(self, fragment: Fragment) -> tuple[LoadedGraph, int]:
        """Add or replace ``fragment``, then rebuild and import the jugfile.

        Returns
        -------
        graph : LoadedGraph
        ordinal : int
            The fragment's 1-based position in the jugfile.

        Raises
        ------
        CellError, JugfileImportError, StoreError
            The session is left unchanged.
        """
        fragments, ordinal = self.with_fragment(fragment)
        try:
            graph = self.load(fragments, why=f"{fragment.describe(ordinal)} was run again")
        except JugnbError as err:
            self._forget_failure(fragment)
            self.failures.append(FailedCell(fragment, fragment.describe(ordinal), _summary(err)))
            raise
        self._forget_failure(fragment)
        return graph, ordinal

    def _forget_failure(self, fragment: Fragment) -> None:
        # A keyless cell edited and run again cannot be told from another keyless cell: any keyless success
        # clears the keyless failures (the warning about appended cells covers the rest).
        self.failures = [f for f in self.failures if f.fragment.key != fragment.key]

    def check_executable(self, *, on_disk: bool = True) -> None:
        """Refuse to run tasks when the loaded jugfile is not what the notebook shows or what workers read.

        Raises
        ------
        JugnbError
            When a ``%%jugfile`` cell failed the last time it ran (the jugfile still holds its previous
            version), naming the cell; or, with ``on_disk`` (workers will import the files), when the
            pointer file or the snapshot on disk no longer match the kernel's graph (another kernel for the
            same notebook, or an edited or deleted state folder).
        """
        if self.failures:
            raise JugnbError(_failed_cells_message(self.failures), cell=self.failures[-1].where)
        if self.graph is None or not on_disk:
            return
        problem = _disk_mismatch(self.pointer_path, self.graph.snapshot, self.graph.jugfile.text)
        if problem:
            raise JugnbError(_ON_DISK.format(problem=problem), path=str(self.pointer_path))

    def load(
        self, fragments: list[Fragment] | None = None, why: str = "the jugfile was reloaded"
    ) -> LoadedGraph:
        """Assemble ``fragments`` (default: the current ones), write the snapshot, import it.

        Tasks of the previous graph whose hashes the new one lacks are remembered as retired, with ``why``.

        Raises
        ------
        CellError, JugfileImportError, StoreError
            The session is left unchanged.
        """
        fragments = self.fragments if fragments is None else fragments
        jugfile = assemble(fragments, self.project.source_name)
        snapshot = self.project.snapshot(jugfile.text)
        graph = load_jugfile(jugfile, snapshot, self.jugdir, store=self._reusable_store())
        previous = self.graph
        self.fragments, self.graph, self._store = fragments, graph, graph.store
        self._retire(previous, frozenset(t.hash() for t in graph.tasks), why)
        # The path's own bytes, not UTF-8 text: a path a C-locale kernel got from the filesystem may hold
        # bytes that are not UTF-8 text in this process (surrogate escapes).
        atomic_write(self.pointer_path, os.fsencode(snapshot) + b"\n")
        return graph

    def redefinitions(self, ordinal: int) -> list[str]:
        """Names that keyless fragment ``ordinal`` (1-based) defines again after an earlier keyless one.

        A cell without a cell id or ``--name`` (terminal IPython, nbclient) is appended when edited and run
        again, so its old version stays in the jugfile; a redefined function or task list is the usual sign.
        """
        fragment = self.fragments[ordinal - 1]
        if fragment.key is not None:
            return []
        earlier = set()
        for other in self.fragments[: ordinal - 1]:
            if other.key is None:
                earlier |= _top_level_names(other.body)
        return sorted(earlier & _top_level_names(fragment.body))

    def reload_if_barrier_cleared(self) -> bool:
        """Re-import when the last import stopped at a barrier whose tasks are now complete.

        Returns
        -------
        bool
            Whether the graph was reloaded (it may stop at a later barrier).
        """
        if self.graph is None or self.graph.barrier is None:
            return False
        if any(not t.can_load() for t in self.graph.tasks):
            return False
        self.load()
        return True

    def reset(self) -> None:
        """Forget every fragment, failure and the loaded graph (``%jug reset``)."""
        self._retire(self.graph, frozenset(), "`%jug reset` ran")
        self.fragments, self.graph, self.failures = [], None, []

    def _retire(self, previous: LoadedGraph | None, current: frozenset[bytes], why: str) -> None:
        gone = self._hashes - current
        if gone and previous is not None:
            holders = _holders(previous, gone)
            for h in gone:
                self.retired[h] = (why, holders.get(h))
        for h in current & self.retired.keys():
            del self.retired[h]  # defined again (e.g. an edit undone): current once more
        self._hashes = current

    def outdated(self, task: Any) -> tuple[str, str | None] | None:
        """Return why ``task`` (a ``jug.Task``) is of an older definition, and the name that held it.

        ``None`` when it is current: a task whose hash the current graph has is current, even if it is
        another object (same hash, same result).
        """
        h = task.hash()
        return None if h in self._hashes else self.retired.get(h)

    def current_jugfile(self) -> Jugfile | None:
        """Return the assembled jugfile of the loaded graph, if any."""
        return self.graph.jugfile if self.graph is not None else None

    def _reusable_store(self) -> Any:
        # A dict_store holds the only copy of the results (dict_store:FILE: the only copy of those not saved
        # yet; a new store would read FILE without them, and the old one's __del__ would then overwrite FILE).
        # A redis store holds a connection pool worth keeping.
        return self._store if select(self.jugdir.spec).reuse_open_store else None


def _holders(graph: LoadedGraph, hashes: frozenset[bytes]) -> dict[bytes, str]:
    """Map each of ``hashes`` to the public name of ``graph`` holding it (directly, or in a list/dict)."""
    from .tasks import base_task, tasks_in

    found: dict[bytes, str] = {}
    for name, obj in graph.public_names().items():
        for t in tasks_in(obj):
            h = base_task(t).hash()
            if h in hashes:
                found.setdefault(h, name)
    return found


def _top_level_names(body: str) -> set[str]:
    """Names a fragment binds at module level (functions, classes, assignments)."""
    names: set[str] = set()
    for node in ast.parse(body).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names
