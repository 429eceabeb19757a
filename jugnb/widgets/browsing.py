"""What the task browser lists and does, without widgets: labelled entries, columns, result sizes, retry.

This module imports neither ipywidgets nor IPython; :mod:`jugnb.widgets.browser` draws it.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..session.tasks import task_hex
from ..status.labels import GraphLabels, display_name
from ..status.reader import STATES, StatusSnapshot
from .palette import STATE_TINTS
from .viewmodel import format_duration

__all__ = [
    "TaskEntry", "details_html", "fallback_text", "list_entries", "listing_style", "listing_table", "nbsp",
    "result_size", "task_names",
]  # fmt: skip


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
    duration : float or None
        Seconds, from the task's latest record.
    worker : str or None
        Worker of the latest record (``worker@host``).
    record_status : str or None
        ``"ok"``, ``"failed"``, ``"interrupted"`` or ``"killed"``; ``None`` without a record.
    labels : GraphLabels or None
        The graph's labels, from which :attr:`label` (e.g. ``"score(load(3), C=0.1)"``) and :attr:`columns`
        (``(column, text)`` pairs, :meth:`jugnb.status.labels.GraphLabels.columns`) come.
    """

    index: int
    name: str
    hash: str
    state: str
    duration: float | None = None
    worker: str | None = None
    record_status: str | None = None
    labels: GraphLabels | None = field(default=None, repr=False, compare=False)

    # Labels are made when shown (one page), not for every task a filter keeps: they cost ~30 µs each.
    @property
    def label(self) -> str:
        """The label of the task instance (cached by its :class:`GraphLabels`)."""
        return self.labels.label(self.index) if self.labels is not None else self.name

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """The arguments as ``(column, text)`` pairs."""
        return tuple(self.labels.columns(self.index)) if self.labels is not None else ()


def list_entries(
    labels: GraphLabels,
    snapshot: StatusSnapshot,
    latest: Mapping[str, Any],
    *,
    name: str | None = None,
    state: str | None = None,
    text: str = "",
) -> list[TaskEntry]:
    """List the tasks matching the filters, in graph order.

    Parameters
    ----------
    labels : GraphLabels
        The graph's tasks and their labels.
    snapshot : StatusSnapshot
        Their states.
    latest : mapping of str to TaskRecord
        Latest record per task hash.
    name, state : str, optional
        Keep only this task name / this state.
    text : str
        Keep only tasks whose full argument text (:meth:`GraphLabels.text`, never abbreviated) contains
        it, case-insensitively.

    Raises
    ------
    ValueError
        For an unknown state.
    """
    if state is not None and state not in STATES:
        raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}.")
    needle = text.strip().lower()
    in_state = set(snapshot.hashes(state)) if state is not None else None
    found = []
    for i, t in enumerate(labels.tasks):
        if name is not None and t.name != name:
            continue
        h = task_hex(t)
        if in_state is not None and h not in in_state:
            continue
        if needle and needle not in labels.text(i).lower():
            continue
        found.append(_entry(i, t.name, h, snapshot.state_of(h), labels, latest.get(h)))
    return found


def _entry(index: int, name: str, h: str, state: str, labels: GraphLabels, record: Any) -> TaskEntry:
    if record is None:
        return TaskEntry(index, name, h, state, labels=labels)
    return TaskEntry(
        index, name, h, state, record.duration, f"{record.worker}@{record.host}", record.status, labels
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


def task_names(tasks: Iterable[Any], module: str | None = None) -> list[tuple[str, str, int]]:
    """``(name, display name, count)`` of every task name, sorted by display name."""
    counts = Counter(t.name for t in tasks)
    return sorted(((n, display_name(n, module), c) for n, c in counts.items()), key=lambda x: (x[1], x[0]))


_STATE_MARK = {"complete": "✓", "active": "▶", "ready": "·", "waiting": "…", "failed": "✗"}


def listing_table(entries: Iterable[TaskEntry], width: int = 96) -> tuple[str, list[str]]:
    """Lay entries out as fixed-width text columns: state, task, one column per argument, duration.

    Parameters
    ----------
    entries : iterable of TaskEntry
        One page of the listing.
    width : int
        Characters per line at most (the browser shows the lines in a monospace font, so no line makes
        it scroll sideways); the widest columns are narrowed first, values cut with ``"…"``.

    Returns
    -------
    header : str
    rows : list of str
        One line per entry.
    """
    entries = list(entries)
    keys = list(dict.fromkeys(k for e in entries for k, _ in e.columns))
    # Positional columns in their order ("arg1" before "arg2"), wherever they first appear.
    slots = [i for i, k in enumerate(keys) if k.isdigit()]
    for i, k in zip(slots, sorted((keys[i] for i in slots), key=int), strict=True):
        keys[i] = k
    heads = ["state", "task", *(f"arg{k}" if k.isdigit() else k for k in keys), "took"]
    table = [
        [
            f"{_STATE_MARK.get(e.state, ' ')} {e.state}",
            display_name(e.name),
            *(dict(e.columns).get(k, "") for k in keys),
            "" if e.duration is None else _short_duration(e.duration),
        ]
        for e in entries
    ]
    widths = [max([len(h), *(len(row[i]) for row in table)]) for i, h in enumerate(heads)]
    widths = _narrowed(widths, width - 2 * (len(widths) - 1))
    lines = ["  ".join(_cell(c, w) for c, w in zip(row, widths, strict=True)) for row in [heads, *table]]
    fitted = [_cell(line.rstrip(), width).rstrip() for line in lines]  # too many columns: cut the last
    return fitted[0], fitted[1:]


def _narrowed(widths: list[int], room: int) -> list[int]:
    widths = list(widths)
    while sum(widths) > room and max(widths) > 6:
        widths[widths.index(max(widths))] -= 1
    return widths


def _cell(text: str, width: int) -> str:
    return f"{text:<{width}}" if len(text) <= width else text[: width - 1] + "…"


def _short_duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def nbsp(text: str) -> str:
    """Spaces a ``<select>`` keeps: the columns are aligned with them."""
    return text.replace(" ", "\u00a0")


def listing_style(scope: str, states: list[str]) -> str:
    """CSS of one browser: monospace rows (so columns align), each row tinted by its task's state."""
    font = "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px)"
    rules = [
        f".{scope} .jugnb-listing select{{{font};overflow-x:hidden}}",
        f".{scope} .jugnb-listing-head{{{font};font-weight:bold;overflow:hidden;padding-left:6px}}",
        f".{scope} .jugnb-details td{{overflow-wrap:anywhere}}",
    ]
    rules += [
        f".{scope} .jugnb-listing option:nth-child({i}){{background:{STATE_TINTS.get(state, 'none')}}}"
        for i, state in enumerate(states, start=1)
    ]
    return "<style>" + "\n".join(rules) + "</style>"


def details_html(e: TaskEntry) -> str:
    """Show the selected task as a table: label, one row per argument, name, hash, state, last run."""
    last = "–" if e.record_status is None else f"{e.record_status}, {format_duration(e.duration)}, {e.worker}"
    rows = [("task", e.label), *((f"arg{k}" if k.isdigit() else k, v) for k, v in e.columns)]
    rows += [("name", e.name), ("hash", e.hash), ("state", e.state), ("last run", last)]
    cells = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{html.escape(k)}</th>'
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f'<table class="jugnb-details">{cells}</table>'


def fallback_text(entries: list[TaskEntry], rows: int) -> dict[str, str]:
    """``text/plain`` and ``text/html`` of the listing, where no widget manager draws the browser."""
    shown = entries[:rows]
    header = f"Task browser: {len(entries)} tasks (interactive in a notebook with ipywidgets)"
    lines = [f"{e.state:<9} {e.hash[:12]}  {e.label}" for e in shown]
    more = [f"... {len(entries) - len(shown)} more"] if len(entries) > len(shown) else []
    cells = "".join(
        f"<tr><td>{html.escape(e.state)}</td><td><code>{e.hash[:12]}</code></td>"
        f"<td>{html.escape(e.label)}</td></tr>"
        for e in shown
    )
    table = f"<p>{html.escape(header)}</p><table>{cells}</table>"
    return {
        "text/plain": "\n".join([header, *lines, *more]),
        "text/html": table + "".join(f"<p>{html.escape(m)}</p>" for m in more),
    }
