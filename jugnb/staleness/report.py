"""What :func:`jugnb.staleness.classify.classify` finds: counts per task name and the hashes per category."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .taskgraph import TaskGraph

CATEGORIES = ("fresh", "stale", "depends on stale", "unknown")
_FIELDS = ("fresh", "stale", "depends_on_stale", "unknown")  # NameStaleness/StalenessReport attributes


@dataclass(frozen=True)
class NameStaleness:
    """Complete tasks of one task name (or ``"Total"``) in each staleness category."""

    name: str
    fresh: int
    stale: int
    depends_on_stale: int
    unknown: int


@dataclass(frozen=True)
class StalenessReport:
    """Staleness of a graph's complete tasks (see the module docstring).

    Attributes
    ----------
    rows : tuple of NameStaleness
        One per task name of the graph (zeros when none is complete), sorted by name; duplicated tasks count
        once per listing, as in ``jug status``.
    fresh, stale, depends_on_stale, unknown : frozenset of str
        Hex hashes of the complete tasks in each category (disjoint).
    """

    rows: tuple[NameStaleness, ...]
    fresh: frozenset[str]
    stale: frozenset[str]
    depends_on_stale: frozenset[str]
    unknown: frozenset[str]
    _graph: TaskGraph = field(repr=False, compare=False)

    def row(self, name: str) -> NameStaleness:
        """Count the complete tasks named ``name`` per category (zeros for a name not in the graph)."""
        return next((r for r in self.rows if r.name == name), NameStaleness(name, 0, 0, 0, 0))

    @property
    def total(self) -> NameStaleness:
        """Sums over all task names, named ``"Total"``."""
        sums = [sum(getattr(r, f) for r in self.rows) for f in _FIELDS]
        return NameStaleness("Total", *sums)

    def name_of(self, task_hash: str) -> str:
        """Task name of a task of the graph.

        Raises
        ------
        KeyError
            If no task of the graph has this hash.
        """
        return self._graph.names[task_hash]

    def category(self, task_hash: str) -> str | None:
        """One of :data:`CATEGORIES` for a complete task, ``None`` for one without a result."""
        for category, attribute in zip(CATEGORIES, _FIELDS, strict=True):
            if task_hash in getattr(self, attribute):
                return category
        return None

    def invalidation(self, names: Callable[[str], bool] | None = None) -> frozenset[str]:
        """Hashes to invalidate to recompute stale results: the stale ones and every complete task downstream.

        Parameters
        ----------
        names : callable, optional
            Keep only stale tasks whose name it accepts (``--target``); downstream tasks are kept whatever
            their name, since they were computed from the results removed.
        """
        chosen = {h for h in self.stale if names is None or names(self._graph.names[h])}
        return frozenset((chosen | self._graph.downstream(chosen)) & self._graph.complete)
