"""Operations on a loaded graph's tasks: select, invalidate (recursively), clean up, load values.

Thin over jug: task-name patterns are jug's (``jug.utils.prepare_matcher_from_options``: ``--name`` is
``module.fn``/``fn`` with ``*`` wildcards, ``--pattern`` a substring or ``/regex/``); results are removed with
the store's ``remove_many`` and locks with jug's lock objects, as ``jug invalidate`` and ``jug cleanup`` do.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends import persist
from ..backends.spec import Jugdir
from ..errors import JugnbError
from .misuse import describe
from .unloadable import load_result


def task_hex(task: Any) -> str:
    """Return the hex hash of a ``jug.Task`` (``Task.hash()`` is computed once, then cached on the task)."""
    h = task.hash()
    return h.decode("ascii") if isinstance(h, bytes) else str(h)


def base_task(t: Any) -> Any:
    """Return the Task behind a Tasklet (or ``t`` itself)."""
    from jug.task import Tasklet

    while isinstance(t, Tasklet):
        t = t.base
    return t


def task_matcher(name: str | None = None, pattern: str | None = None) -> Callable[[str], bool]:
    """Jug's task-name matcher for ``--name``/``--pattern``.

    Raises
    ------
    JugnbError
        If neither is given, or the pattern is empty or an invalid regex.
    """
    from jug.utils import prepare_matcher_from_options

    try:
        matcher = prepare_matcher_from_options(name, pattern)
    except (ValueError, re.error) as err:
        raise JugnbError(f"bad task pattern {name or pattern!r}: {err}.") from None
    if matcher is None:
        raise JugnbError("say which tasks: --name NAME (module.fn, fn, fn*) or --pattern TEXT|/REGEX/.")
    return matcher  # type: ignore[no-any-return]


def dependents_closure(tasks: Sequence[Any], seeds: Iterable[Any]) -> list[Any]:
    """``seeds`` and every task that depends on them, directly or not, in definition order."""
    reverse: dict[str, list[Any]] = {}
    for t in tasks:
        for dep in t.dependencies():
            reverse.setdefault(base_task(dep).hash(), []).append(t)
    chosen: dict[str, Any] = {}
    queue = [base_task(s) for s in seeds]
    while queue:
        t = queue.pop()
        if t.hash() in chosen:
            continue
        chosen[t.hash()] = t
        queue.extend(reverse.get(t.hash(), []))
    return [t for t in tasks if t.hash() in chosen]


@dataclass(frozen=True)
class Removal:
    """What an invalidate or cleanup removed (or would remove, for a dry run).

    Attributes
    ----------
    results : Counter
        Results removed per task name.
    locks : int
        Locks removed.
    dry_run : bool
        Whether nothing was actually removed.
    lock_names : Counter
        Locks removed per task name (``(not in this jugfile)`` for others).
    kept : int
        Locks kept because a jugnb worker with a live lease holds them.
    refused : str or None
        For a dry run: why the real cleanup would be refused now (jugnb workers run on the jugdir).
    """

    results: Counter[str]
    locks: int = 0
    dry_run: bool = False
    lock_names: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    refused: str | None = None

    @property
    def total(self) -> int:
        """Results removed, all task names together."""
        return sum(self.results.values())


def invalidate(
    store: Any, tasks: Sequence[Any], selected: Iterable[Any], *, dry_run: bool = False
) -> Removal:
    """Remove the results of ``selected`` and of everything downstream (jug's recursive invalidate).

    Parameters
    ----------
    store : jug store
    tasks : sequence of Task
        The whole graph (to find dependents).
    selected : iterable of Task
    dry_run : bool
        Count only.

    Returns
    -------
    Removal
        Counts per task name of results that existed (and were removed unless ``dry_run``).
    """
    unique = {t.hash(): t for t in dependents_closure(tasks, selected)}  # equal tasks share one result
    doomed = [t for t in unique.values() if store.can_load(t.hash())]
    counts = Counter(t.name for t in doomed)
    if not dry_run and doomed:
        store.remove_many([t.hash() for t in doomed])
        for t in doomed:
            t.unload()
        persist(store)
    return Removal(counts, dry_run=dry_run)


def cleanup(
    store: Any,
    tasks: Sequence[Any],
    *,
    mode: str = "all",
    dry_run: bool = False,
    jugdir: str | None = None,
    force: bool = False,
) -> Removal:
    """Jug's cleanup, safe while jugnb workers run: remove unused results and/or locks.

    Parameters
    ----------
    mode : str
        ``"all"`` (unused results, then every lock), ``"keep-locks"`` (unused results only),
        ``"locks-only"`` or ``"failed-only"`` (locks of failed tasks only).
    dry_run : bool
        Count only.
    jugdir : str, optional
        The store's jugdir spec: its leases protect live workers (locks held under a live lease are kept,
        results are not removed while a lease lives, unless ``force``) and removals are logged beside it.
    force : bool
        Remove results even while jugnb workers run.

    Raises
    ------
    JugnbError
        For an unknown mode, results to remove while workers run (without ``force``; a dry run lists them
        and sets :attr:`Removal.refused`), or a dry run of unused results on a store that cannot list its
        results.
    """
    from ..workers.cleanupguard import CleanupGuard

    if mode not in ("all", "keep-locks", "locks-only", "failed-only"):
        raise JugnbError(f"unknown cleanup mode {mode!r}: use all, keep-locks, locks-only or failed-only.")
    guard = CleanupGuard(jugdir, store) if jugdir is not None else None
    results: Counter[str] = Counter()
    refused = None
    if mode in ("all", "keep-locks"):
        if guard is not None:
            refused = guard.results_refusal(force)
            if refused is not None and not dry_run:  # a dry run removes nothing: it lists, and says so
                raise JugnbError(refused)
        results["(unused results)"] = _unused_results(store, tasks, dry_run)
    names: Counter[str] = Counter()
    kept = 0
    if mode != "keep-locks":
        names, kept = _remove_locks(store, tasks, mode == "failed-only", dry_run, guard)
    if not dry_run:
        persist(store)
        if guard is not None:
            guard.log(results["(unused results)"], names, mode)
    return Removal(results, sum(names.values()), dry_run, names, kept, refused)


def _unused_results(store: Any, tasks: Sequence[Any], dry_run: bool) -> int:
    if not dry_run:
        return int(store.cleanup(tasks, keeplocks=True))
    if not hasattr(store, "list"):
        raise JugnbError("this store cannot list its results, so a cleanup dry run cannot count them.")
    used = {_as_text(t.hash()) for t in tasks}
    return sum(1 for name in store.list() if _as_text(name) not in used)


def _remove_locks(
    store: Any, tasks: Sequence[Any], failed_only: bool, dry_run: bool, guard: Any
) -> tuple[Counter[str], int]:
    """Remove locks (only failed ones with ``failed_only``), keeping those of live workers; count by name."""
    by_hash = {_as_text(t.hash()): str(t.name) for t in tasks}
    names: Counter[str] = Counter()
    kept = 0
    for name in list(store.listlocks()):
        lock = store.getlock(name)
        if failed_only and not lock.is_failed():
            continue
        key = _as_text(name)
        if not failed_only and guard is not None and guard.held_live(key):
            kept += 1
            continue
        names[by_hash.get(key, "(not in this jugfile)")] += 1
        if not dry_run:
            lock.release()
    return names, kept


def _as_text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def value(t: Any, jugdir: Jugdir | None = None) -> Any:
    """Load the result of a task (or of a list/tuple/dict of tasks), like ``value`` in ``jug shell``.

    Parameters
    ----------
    t : Task, Tasklet, or a list/tuple/dict of them
    jugdir : Jugdir, optional
        The store's jugdir: a result that exists but cannot be loaded is then reported with where it is
        stored and how to fix it.

    Raises
    ------
    JugnbError
        If a task in ``t`` has no result yet (naming it), or a Tasklet in ``t`` is not built on a task.
    UnloadableResult
        If a stored result cannot be loaded (with ``jugdir``).
    """
    from jug.task import value as jug_value

    found = list(tasks_in(t))
    for task in found:
        require_task(task)
    missing = next((task for task in found if not task.can_load()), None)
    if missing is not None:
        msg = f"{missing!r} has no result yet: run `%jug execute` (or `jugnb execute`) first."
        raise JugnbError(msg)
    if jugdir is not None:
        for task in found:
            load_result(base_task(task), jugdir)
    return jug_value(t)


def require_task(t: Any) -> Any:
    """Return the Task behind ``t`` (a Task, or a Tasklet built on one).

    Raises
    ------
    JugnbError
        If ``t`` is not a task, or is a Tasklet whose base is not a task, naming what it is instead.
    """
    from jug.task import Task

    base = base_task(t)
    if not isinstance(base, Task):
        what = describe(base)
        inside = " (as the base of a Tasklet)" if base is not t else ""
        msg = (
            f"Got {what}{inside} where a task is expected: give a task of the jugfile (a name its %%jugfile "
            "cells define, or one from `get_tasks()`), or a list or dict of them."
        )
        raise JugnbError(msg)
    return base


def tasks_in(obj: Any) -> Iterator[Any]:
    """Every task or Tasklet inside ``obj`` (nested lists, tuples and dict values)."""
    from jug.task import TaskletMixin

    if isinstance(obj, TaskletMixin):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tasks_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tasks_in(item)


def retry_failed(graph: Any, hashes: Iterable[str] | None = None, pool: Any = None) -> tuple[int, int]:
    """Let failed tasks run again now: mark them for a new run, release failed locks, start workers.

    A task whose latest run failed is *failed* until it runs again (:mod:`jugnb.status.reader`), and the
    workers of the execute it failed in leave it alone (:mod:`jugnb.workers.recorder`). A ``"retry"``
    record lifts both; jug's failed locks (``--keep-failed``) are removed as ``jug cleanup --failed-only``
    does.

    Parameters
    ----------
    graph : LoadedGraph
        Anything with ``tasks``, ``store`` and ``jugdir``.
    hashes : iterable of str, optional
        Hex hashes of the tasks to retry; default: every failed task of the graph.
    pool : WorkerPool, optional
        The kernel's pool: when none of its workers is alive, as many as there are tasks to retry (at
        most as many as it ever had) are started again in it.

    Returns
    -------
    marked, started : int
        Tasks marked for a new run; workers started.
    """
    import os
    import socket
    import time

    from ..errors import StoreError
    from ..status.records import RecordLog, TaskRecord

    try:
        records = RecordLog.for_jugdir(graph.jugdir.spec, graph.store)
    except StoreError:  # dict_store: no records, so only jug's failed locks can mark a failure
        return cleanup(graph.store, graph.tasks, mode="failed-only").locks, 0
    try:
        latest = records.latest_by_hash()
        wanted = set(hashes) if hashes is not None else records.failed_hashes()
        todo = [t for t in graph.tasks if task_hex(t) in wanted and not t.can_load()]
        worker = f"{pool.pool_id}.retry" if pool is not None else "kernel"
        now, host, pid = time.time(), socket.gethostname(), os.getpid()
        for h, name in {task_hex(t): t.name for t in todo if task_hex(t) in latest}.items():
            # Later than the failure even if the failing host's clock runs ahead of ours.
            when = max(now, (latest[h].end or latest[h].start) + 0.001)
            records.append(TaskRecord(name, h, "retry", when, when, 0.0, worker, host, pid))
    finally:
        records.close()
    cleanup(graph.store, graph.tasks, mode="failed-only")
    started = 0
    if todo and pool is not None and not any(w.alive for w in pool.workers()):
        started = len(pool.add(max(1, min(len(todo), len(pool.workers())))))
    return len(todo), started
