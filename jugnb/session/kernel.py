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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import Jugdir, select
from ..notebook.jugfile import Fragment, Jugfile, assemble, atomic_write
from ..notebook.project import Project
from .loader import LoadedGraph, load_jugfile


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
    _store: Any = None

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
        return self.load(fragments), ordinal

    def load(self, fragments: list[Fragment] | None = None) -> LoadedGraph:
        """Assemble ``fragments`` (default: the current ones), write the snapshot, import it.

        Raises
        ------
        CellError, JugfileImportError, StoreError
            The session is left unchanged.
        """
        fragments = self.fragments if fragments is None else fragments
        jugfile = assemble(fragments, self.project.source_name)
        snapshot = self.project.snapshot(jugfile.text)
        graph = load_jugfile(jugfile, snapshot, self.jugdir, store=self._reusable_store())
        self.fragments, self.graph, self._store = fragments, graph, graph.store
        atomic_write(self.pointer_path, f"{snapshot}\n")
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
        """Forget every fragment and the loaded graph (``%jug reset``)."""
        self.fragments, self.graph = [], None

    def current_jugfile(self) -> Jugfile | None:
        """Return the assembled jugfile of the loaded graph, if any."""
        return self.graph.jugfile if self.graph is not None else None

    def _reusable_store(self) -> Any:
        # A dict_store holds the only copy of the results (dict_store:FILE: the only copy of those not saved
        # yet; a new store would read FILE without them, and the old one's __del__ would then overwrite FILE).
        # A redis store holds a connection pool worth keeping.
        return self._store if select(self.jugdir.spec).reuse_open_store else None


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
