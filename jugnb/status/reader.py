"""Task states of a loaded graph, read from its store in bulk and refreshed incrementally.

One :class:`StatusReader` per loaded graph; ``read()`` returns a frozen :class:`StatusSnapshot` that
``%jug status``, the CLI and the progress panel render (:mod:`jugnb.status.render`, :mod:`jugnb.widgets`).

The states are those of ``jug status`` (``jug/subcommands/status.py``), decided per task in this order:

1. **complete**: its result can be loaded (a result file, a packed result, a redis/dict key);
2. **waiting**: some dependency (a Task, or the base Task of a Tasklet argument) has no result;
3. **failed**: it is locked and the lock is marked failed (``file_keepalive``: not kept alive for 30 min);
4. **active**: it is locked; **lost** instead, unless ``jug_states``, when the lock is held under a jugnb
   worker's lease that expired (the worker was killed or its host died: nothing runs the task). Any live
   jugnb worker or a kernel's poller releases such locks; a lock without a lease (plain ``jug``) stays
   active, since jugnb cannot tell whether its process still runs;
5. **failed** too, unless ``jug_states``: jugnb's task records say its latest run raised (or its worker
   died), see :meth:`jugnb.status.records.RecordLog.failed_hashes`. jug itself forgets a failure once the
   failing worker releases the lock (without ``--keep-failed``) and shows such a task as ready; it is
   retried by the next ``execute`` either way;
6. **ready**: otherwise.

So a locked or failed task whose dependencies are missing counts as waiting, as in jug. Dependencies are
judged by their results in the store only (a fresh ``jug status`` has nothing loaded in memory), also when a
dependency is not itself in the task list. A task listed twice (same hash) is counted twice, as in jug.

Every ``read()`` asks the store again (results written or invalidated by other processes are seen at the next
read); how much it asks depends on the store (see :mod:`jugnb.backends.readers`): the file stores re-list only
result folders whose stat changed, redis reads all keys in batches (SCAN), ``dict_store`` is looked up
directly, and any other store is asked per task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..backends import make_reader
from ..backends.readers import FAILED, LOCKED, BoolArray, LockArray
from ..errors import StoreError
from .records import RecordLog

__all__ = ["STATES", "NameCounts", "StatusReader", "StatusSnapshot"]

# Codes of the states, in the column order of NameCounts (jug's counters, failed first; then jugnb's lost).
_FAILED, _WAITING, _READY, _ACTIVE, _COMPLETE, _LOST = range(6)
STATES = ("failed", "waiting", "ready", "active", "complete", "lost")
IntArray = npt.NDArray[np.intp]
# Argument types that never hold a Task (exact types: a subclass could define __jug_dependencies__).
_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None)})


@dataclass(frozen=True)
class NameCounts:
    """Number of tasks in each state for one task name (or ``"Total"``).

    ``lost`` counts tasks locked by a jugnb worker whose lease expired (jug counts them as active).
    """

    name: str
    failed: int
    waiting: int
    ready: int
    active: int
    complete: int
    lost: int = 0

    @property
    def total(self) -> int:
        """Number of tasks with this name."""
        return self.failed + self.waiting + self.ready + self.active + self.complete + self.lost


@dataclass(frozen=True)
class StatusSnapshot:
    """States of a graph's tasks at one moment.

    Attributes
    ----------
    rows : tuple of NameCounts
        One per task name, sorted by name (as ``jug status`` lists them).
    taken_at : float
        ``time.time()`` when the read started, in seconds since the epoch.
    store : str
        Description of the store (jugdir path or ``redis://host:port/db``; never a password).

    Notes
    -----
    Snapshots compare equal when every task is in the same state (``taken_at`` is ignored), so a view
    can skip redrawing an unchanged snapshot.
    """

    rows: tuple[NameCounts, ...]
    taken_at: float = field(compare=False)
    store: str
    _uid_of: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)
    _states: bytes = field(default=b"", repr=False)  # state code per uid

    @property
    def total(self) -> NameCounts:
        """Sums over all task names, named ``"Total"``."""
        sums = [sum(getattr(r, s) for r in self.rows) for s in STATES]
        return NameCounts("Total", *sums)

    @property
    def all_complete(self) -> bool:
        """Whether every task is complete (``jug status`` exits 0); true for an empty graph."""
        total = self.total
        return total.complete == total.total

    def state_of(self, task_hash: str | bytes) -> str:
        """State of the task with hash ``task_hash``.

        Parameters
        ----------
        task_hash : str or bytes
            Hex hash, as ``Task.hash()`` returns it (bytes) or decoded.

        Returns
        -------
        str
            One of ``'complete'``, ``'active'``, ``'ready'``, ``'waiting'``, ``'failed'``, ``'lost'``.

        Raises
        ------
        KeyError
            If no task in the graph has this hash.
        """
        key = task_hash.decode("ascii") if isinstance(task_hash, bytes) else task_hash
        try:
            uid = self._uid_of[key]
        except KeyError:
            msg = f"no task with hash {key!r} in this graph"
            raise KeyError(msg) from None
        return STATES[self._states[uid]]

    def hashes(self, state: str) -> tuple[str, ...]:
        """Hashes of the tasks in ``state`` (each once, in graph order), e.g. to list the failed ones.

        Raises
        ------
        ValueError
            If ``state`` is not one of :data:`STATES`.
        """
        if state not in STATES:
            msg = f"unknown state {state!r}; use one of {', '.join(STATES)}."
            raise ValueError(msg)
        code = STATES.index(state)
        return tuple(h for h, uid in self._uid_of.items() if self._states[uid] == code)


@dataclass(frozen=True)
class _GraphIndex:
    """The graph flattened to arrays, built once per loaded graph.

    A *uid* numbers the unique task hashes: the listed tasks' hashes first (``n_listed`` of them), then those
    of dependencies that are not in the list (their results matter, but they are not counted).
    """

    hashes: tuple[str, ...]
    n_listed: int
    uid_of: Mapping[str, int]  # listed tasks only
    task_uid: IntArray  # per listed task (duplicates share a uid)
    task_name: IntArray  # per listed task, index into names
    names: tuple[str, ...]  # sorted
    dep_owner: IntArray  # one entry per (task uid, dependency uid) edge
    dep_target: IntArray


def _hex(task: Any) -> str:
    """Hex hash of a Task (or, like jug's status, the base Task's hash for a Tasklet)."""
    h = task.hash() if hasattr(task, "hash") else task._base_hash()
    return h.decode("ascii") if isinstance(h, bytes) else str(h)


def _hexes(tasks: Sequence[Any]) -> list[str]:
    try:
        # Task.hash() is cached bytes: the common case, without _hex's checks (100k tasks: 0.1 s less).
        return [t.hash().decode("ascii") for t in tasks]
    except AttributeError:
        return [_hex(t) for t in tasks]


def build_index(tasks: Sequence[Any]) -> _GraphIndex:
    """Flatten ``tasks`` (``jug.task.alltasks`` or a subset) into a :class:`_GraphIndex`."""
    hexes = _hexes(tasks)
    uid_of = dict(zip(hexes, range(len(hexes)), strict=True))
    if len(uid_of) == len(tasks):
        task_uid: IntArray = np.arange(len(tasks), dtype=np.intp)
        first = list(tasks)
    else:
        uid_of, task_uid, first = _unique(tasks, hexes)
    hashes = list(uid_of)
    owner, target = _dependency_edges(first, uid_of, hashes)
    names, task_name = _name_codes(tasks)
    return _GraphIndex(tuple(hashes), len(first), uid_of, task_uid, task_name, names, owner, target)


def _unique(tasks: Sequence[Any], hexes: list[str]) -> tuple[dict[str, int], IntArray, list[Any]]:
    """Give unique hashes uids in order of first appearance; ``first`` holds one task per uid."""
    uid_of: dict[str, int] = {}
    task_uid = np.empty(len(tasks), np.intp)
    first: list[Any] = []  # a task's dependencies stand for those of every task with its hash
    for i, (t, h) in enumerate(zip(tasks, hexes, strict=True)):
        uid = uid_of.get(h)
        if uid is None:
            uid = uid_of[h] = len(first)
            first.append(t)
        task_uid[i] = uid
    return uid_of, task_uid, first


def _dependency_edges(
    first: Sequence[Any], uid_of: Mapping[str, int], hashes: list[str]
) -> tuple[IntArray, IntArray]:
    """Edges uid -> dependency uid; appends unlisted dependencies' hashes to ``hashes``."""
    # Dependencies are mostly the listed Task objects themselves: find them by identity, not by hash.
    uid_by_id = {id(t): uid for uid, t in enumerate(first)}
    unlisted: dict[str, int] = {}
    owner: list[int] = []
    target: list[int] = []
    for uid, t in enumerate(first):
        if not t.kwargs and all(type(a) in _ATOMS for a in t.args):
            continue  # parameters only: jug's dependencies() would find nothing, at 5 times the cost
        for dep in t.dependencies():
            dep_uid = uid_by_id.get(id(dep))
            if dep_uid is None:
                dep_uid = _uid_by_hash(_hex(dep), uid_of, unlisted, hashes)
            owner.append(uid)
            target.append(dep_uid)
    return np.array(owner, np.intp), np.array(target, np.intp)


def _uid_by_hash(h: str, uid_of: Mapping[str, int], unlisted: dict[str, int], hashes: list[str]) -> int:
    """Uid of a dependency that is a different object: listed under its hash, or a new unlisted uid."""
    uid = uid_of.get(h, unlisted.get(h))
    if uid is None:
        uid = unlisted[h] = len(hashes)
        hashes.append(h)
    return uid


def _name_codes(tasks: Sequence[Any]) -> tuple[tuple[str, ...], IntArray]:
    names = sorted({t.name for t in tasks})
    code = {n: i for i, n in enumerate(names)}
    return tuple(names), np.fromiter((code[t.name] for t in tasks), np.intp, len(tasks))


def _blocked(index: _GraphIndex, done: BoolArray) -> BoolArray:
    """Per uid: whether some dependency has no result (so the task is waiting unless complete)."""
    missing = index.dep_owner[~done[index.dep_target]]
    return np.bincount(missing, minlength=len(done)) > 0


def _states(done: BoolArray, blocked: BoolArray, locks: LockArray) -> npt.NDArray[np.uint8]:
    """State code per uid, in ``jug status``'s order of precedence (see the module docstring)."""
    state = np.full(len(done), _READY, np.uint8)
    state[locks == LOCKED] = _ACTIVE
    state[locks == FAILED] = _FAILED
    state[blocked] = _WAITING
    state[done] = _COMPLETE
    return state


def _failed_uids(uid_of: Mapping[str, int], failed: frozenset[str]) -> IntArray:
    return np.fromiter((uid_of[h] for h in failed if h in uid_of), np.intp)


def _rows(index: _GraphIndex, state: npt.NDArray[np.uint8]) -> tuple[NameCounts, ...]:
    n_states = len(STATES)
    flat = index.task_name * n_states + state[index.task_uid]
    table = np.bincount(flat, minlength=len(index.names) * n_states).reshape(-1, n_states)
    return tuple(
        NameCounts(name, *(int(c) for c in counts)) for name, counts in zip(index.names, table, strict=True)
    )


class StatusReader:
    """Reads task states for a loaded graph from its store, in bulk and incrementally.

    Parameters
    ----------
    tasks : sequence of jug.task.Task
        The loaded graph (``jug.task.alltasks`` after ``jug.init``). Hashes are taken once, here
        (``Task.hash()`` caches them, so this is fast when the kernel already computed them).
    store : jug store or str
        ``Task.store`` of the graph, or a jugdir string as ``--jugdir`` takes it.
    records : RecordLog, optional
        jugnb's task records of the jugdir (used by this reader only, under its lock): a ready task whose
        latest run failed is *failed*. ``None``: jug's states only.
    jugdir : str, optional
        The ``--jugdir`` of ``store``, to tell locks of lost workers (*lost*) from others by the jugdir's
        leases. ``None``: every lock is active.

    Notes
    -----
    The graph is fixed at construction: make a new reader when the jugfile is reloaded. ``read()`` may be
    called from several threads (the poller and a cell); calls are serialized.
    """

    def __init__(
        self, tasks: Sequence[Any], store: Any, records: RecordLog | None = None, jugdir: str | None = None
    ) -> None:
        self._index = build_index(tasks)
        self._reader = make_reader(store, self._index.hashes, self._index.uid_of)
        self._records = records
        self._jugdir = jugdir
        self._store = None if isinstance(store, str) else store
        self._lock = threading.Lock()

    @classmethod
    def for_graph(cls, graph: Any) -> StatusReader:
        """Return a reader of a loaded graph that knows failed runs from its jugdir's task records.

        Parameters
        ----------
        graph : LoadedGraph
            Anything with ``tasks`` and ``store``, and ``jugdir`` (a :class:`~jugnb.store.Jugdir`) when its
            records and leases should be read; an in-memory ``dict_store`` has none.
        """
        jugdir = getattr(getattr(graph, "jugdir", None), "spec", None)
        records = None
        if jugdir:
            try:
                records = RecordLog.for_jugdir(jugdir, graph.store)
            except StoreError:  # dict_store: nowhere to keep records
                records = None
        return cls(graph.tasks, graph.store, records=records, jugdir=jugdir if records is not None else None)

    @property
    def store(self) -> str:
        """Description of the store, without any password."""
        return self._reader.description

    def read(self, jug_states: bool = False) -> StatusSnapshot:
        """Read the store and return the states of all tasks.

        The first call lists everything; later calls re-read only what may have changed (file stores), and
        never return a state older than the call.

        Parameters
        ----------
        jug_states : bool
            Exactly ``jug status``'s states: ignore jugnb's records of failed runs and workers' leases.

        Raises
        ------
        StoreError
            If the store cannot be read (jugdir unreadable, redis unreachable).
        """
        with self._lock:
            taken_at = time.time()
            done = self._reader.results()
            blocked = _blocked(self._index, done)
            # Only runnable, unfinished tasks' locks decide a state (jug asks no others).
            wanted = ~(done | blocked)
            wanted[self._index.n_listed :] = False
            state = _states(done, blocked, self._reader.locks(wanted))
            if self._records is not None and not jug_states:
                self._mark_failed_runs(state, self._records)
            if self._jugdir is not None and not jug_states:
                self._mark_lost(state, self._jugdir)
            return StatusSnapshot(
                rows=_rows(self._index, state),
                taken_at=taken_at,
                store=self._reader.description,
                _uid_of=self._index.uid_of,
                _states=state.tobytes(),
            )

    def _mark_failed_runs(self, state: npt.NDArray[np.uint8], records: RecordLog) -> None:
        """Ready tasks whose latest recorded run failed become failed (see the module docstring)."""
        uids = _failed_uids(self._index.uid_of, records.failed_hashes())
        if len(uids):
            ready = uids[state[uids] == _READY]
            state[ready] = _FAILED

    def _mark_lost(self, state: npt.NDArray[np.uint8], jugdir: str) -> None:
        """Count the active tasks whose lock a lost worker holds as lost (leases read once)."""
        from ..workers.lockowners import lost_locks  # the workers package imports this module's package

        active = np.flatnonzero(state[: self._index.n_listed] == _ACTIVE)
        if not len(active):
            return
        lost = lost_locks(jugdir, self._store, [self._index.hashes[u] for u in active])
        if lost:
            state[_failed_uids(self._index.uid_of, lost)] = _LOST
