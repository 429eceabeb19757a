"""What the task browser lists and does, without widgets: entries, argument summaries, result sizes, retry.

This module imports neither ipywidgets nor IPython; :mod:`jugnb.widgets.browser` draws it.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..backends import persist
from ..session.tasks import task_hex
from ..status.reader import STATES, StatusSnapshot

__all__ = ["TaskEntry", "argument_summary", "list_entries", "result_size", "retry_task"]

_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict = 24, 24, 4, 3


@dataclass(frozen=True)
class TaskEntry:
    """One task as the browser lists it.

    Attributes
    ----------
    index : int
        Position in the graph's task list.
    name : str
        Task name.
    hash : str
        40 hex digits.
    state : str
        One of :data:`jugnb.status.reader.STATES`.
    args : str
        Short summary of the arguments.
    duration : float or None
        Seconds, from the task's latest record.
    worker : str or None
        Worker of the latest record (``worker@host``).
    record_status : str or None
        ``"ok"``, ``"failed"``, ``"interrupted"`` or ``"killed"``; ``None`` without a record.
    """

    index: int
    name: str
    hash: str
    state: str
    args: str
    duration: float | None = None
    worker: str | None = None
    record_status: str | None = None


def argument_summary(task: Any, width: int = 60) -> str:
    """``"3, 'rbf', C=0.1"``: the task's arguments, a dependency shown as ``name[hash7]``.

    Parameters
    ----------
    task : jug.Task
    width : int
        Characters at most (longer summaries end with ``"…"``).
    """
    parts = [_arg(a) for a in getattr(task, "args", ())]
    parts += [f"{k}={_arg(v)}" for k, v in sorted(getattr(task, "kwargs", {}).items())]
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def _arg(value: Any) -> str:
    from jug.task import TaskletMixin

    if isinstance(value, TaskletMixin):
        base = value
        while hasattr(base, "base"):
            base = base.base
        return f"{base.name.rsplit('.', 1)[-1]}[{task_hex(base)[:7]}]"
    if isinstance(value, (list, tuple)) and any(isinstance(v, TaskletMixin) for v in value):
        return f"[{len(value)} tasks]" if isinstance(value, list) else f"({len(value)} tasks)"
    return _repr.repr(value)


def list_entries(
    tasks: Sequence[Any],
    snapshot: StatusSnapshot,
    latest: Mapping[str, Any],
    *,
    name: str | None = None,
    state: str | None = None,
    text: str = "",
    summary: Callable[[int], str] | None = None,
) -> list[TaskEntry]:
    """List the tasks matching the filters, in graph order.

    Parameters
    ----------
    tasks : sequence of jug.Task
        The graph.
    snapshot : StatusSnapshot
        Their states.
    latest : mapping of str to TaskRecord
        Latest record per task hash.
    name, state : str, optional
        Keep only this task name / this state.
    text : str
        Keep only tasks whose argument summary contains it (case-insensitive).
    summary : callable, optional
        ``summary(index)`` returns the argument summary of ``tasks[index]`` (e.g. cached);
        default :func:`argument_summary`.

    Raises
    ------
    ValueError
        For an unknown state.
    """
    if state is not None and state not in STATES:
        raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}.")
    summarize = summary if summary is not None else (lambda i: argument_summary(tasks[i]))
    needle = text.strip().lower()
    in_state = set(snapshot.hashes(state)) if state is not None else None
    found = []
    for i, t in enumerate(tasks):
        if name is not None and t.name != name:
            continue
        h = task_hex(t)
        if in_state is not None and h not in in_state:
            continue
        args = summarize(i)
        if needle and needle not in args.lower():
            continue
        found.append(_entry(i, t.name, h, snapshot.state_of(h), args, latest.get(h)))
    return found


def _entry(index: int, name: str, h: str, state: str, args: str, record: Any) -> TaskEntry:
    if record is None:
        return TaskEntry(index, name, h, state, args)
    return TaskEntry(
        index, name, h, state, args, record.duration, f"{record.worker}@{record.host}", record.status
    )


def result_size(store: Any, task_hash: str) -> int | None:
    """Bytes the task's stored result takes (file store: the file on disk, compressed); ``None`` if unknown.

    A packed result (file store) or a store of unknown kind gives ``None``.
    """
    jugdir = getattr(store, "jugdir", None)
    if isinstance(jugdir, str):
        try:
            return os.stat(os.path.join(jugdir, task_hash[:2], task_hash[2:])).st_size
        except OSError:
            return None
    redis = getattr(store, "redis", None)
    if redis is not None:
        return int(redis.strlen(b"result:" + task_hash.encode("ascii"))) * 3 // 4  # base64 inside
    return None


def retry_task(store: Any, task_hash: str) -> bool:
    """Remove a failed task's lock (jug's lock API) so a worker runs it again; whether one was removed."""
    lock = store.getlock(task_hash)
    if not lock.is_failed():
        return False
    lock.release()
    persist(store)
    return True


def task_names(tasks: Iterable[Any]) -> list[tuple[str, int]]:
    """``(name, count)`` of every task name, sorted by name."""
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.name] = counts.get(t.name, 0) + 1
    return sorted(counts.items())
