"""Text and static HTML of a :class:`~jugnb.widgets.viewmodel.ProgressView`: what shows where widgets cannot.

Terminal IPython shows ``text/plain``; nbviewer-like renderers, GitHub and frontends without the widget
manager show ``text/html``. Both come from the same view as the live panel. The HTML has no script: the
stacked bars are ``<div>`` elements with inline widths and colours (static markup cannot use the widgets'
``bar_style``). Task names, worker names, hosts and tracebacks are escaped.

This module imports neither ipywidgets nor IPython.
"""

from __future__ import annotations

import html
import time

from ..status.labels import JUG_NAMES
from .palette import STATE_COLOURS
from .viewmodel import EventRow, ProgressView, TaskRow, WorkerRow, eta_text, format_bytes, format_duration

__all__ = ["BAR_STATES", "view_html", "view_text"]

#: Stacked-bar segments in drawing order: (state, text character, HTML colour, widget bar_style).
BAR_STATES = (
    ("complete", "#", STATE_COLOURS["complete"], "success"),
    ("active", ">", STATE_COLOURS["active"], "info"),
    ("ready", ".", STATE_COLOURS["ready"], ""),  # ready is expected, not a warning
    ("waiting", " ", STATE_COLOURS["waiting"], ""),
    ("failed", "!", STATE_COLOURS["failed"], "danger"),
)
_COUNTS = ("complete", "active", "ready", "waiting", "failed")
_BAR_WIDTH = 24
_DETAIL_LINES = 12
# Headers and cells aligned alike (browsers centre <th> by default, which put the headers off their columns).
_CELL_STYLE = ' style="text-align:left;padding:0 0.8em 0 0"'


def view_text(view: ProgressView | None, width: int = 100) -> str:
    """Plain-text rendering of ``view`` (``None``: before the first read).

    Parameters
    ----------
    view : ProgressView or None
    width : int
        Characters per line the task-name column may make the table use.

    Returns
    -------
    str
        Lines ending in a newline.
    """
    if view is None:
        return "jug progress: waiting for the first status read.\n"
    name_width = max(9, min(max((len(r.name) for r in view.rows), default=9), width - 80))
    head = f"{'Task name':<{name_width}}  {'':{_BAR_WIDTH + 2}}" + "".join(f"{c.title():>9}" for c in _COUNTS)
    lines = [_header(view), head + f"{'/min':>8}{'ETA':>13}"]
    lines += [_text_row(r, name_width, _eta(r, view)) for r in view.rows]
    lines += ["-" * len(lines[1]), _text_row(view.total, name_width, _eta(view.total, view))]
    if view.barrier:
        lines.append(f"The kernel's jugfile stops at {view.barrier}.")
    lines += _text_workers(view.workers)
    lines += _text_events(view.events)
    if view.done:
        lines.append(view.summary)
    if view.message:
        lines.append(view.message)
    return "\n".join(lines) + "\n"


def _header(view: ProgressView) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(view.taken_at)) if view.taken_at else "–"
    state = "final" if view.done else "live"
    return f"jug progress ({state}) · {view.store} · {stamp}"


def text_bar(row: TaskRow, width: int = _BAR_WIDTH) -> str:
    """``[####>>...   !]``: one character per ``1/width`` of the row's tasks (a nonzero count shows)."""
    cells = _cells(row, width)
    return "[" + "".join(char * n for (_, char, _, _), n in zip(BAR_STATES, cells, strict=True)) + "]"


def _cells(row: TaskRow, width: int) -> list[int]:
    """Cells per state summing to ``width``: proportional, but at least one for each nonzero count."""
    counts = [getattr(row, state) for state, *_ in BAR_STATES]
    total = sum(counts)
    if total == 0:
        return [0, 0, 0, width, 0]
    cells = [max(1, round(c * width / total)) if c else 0 for c in counts]
    while sum(cells) > width:
        cells[cells.index(max(cells))] -= 1
    while sum(cells) < width:
        cells[counts.index(max(counts))] += 1
    return cells


def _eta(row: TaskRow, view: ProgressView) -> str:
    """Give the ETA column as the live panel shows it (none on a final panel or a waiting row)."""
    return eta_text(row, final=view.done, barrier=view.barrier if row.name == "Total" else "")


def _text_row(row: TaskRow, name_width: int, eta: str) -> str:
    counts = "".join(f"{getattr(row, c):>9}" for c in _COUNTS)
    rate = "–" if row.per_minute is None else f"{row.per_minute:.1f}"
    stale = f"  ({row.stale} stale)" if row.stale else ""
    return f"{row.name:<{name_width}}  {text_bar(row)}{counts}{rate:>8}{eta:>13}{stale}"


def _text_workers(workers: tuple[WorkerRow, ...]) -> list[str]:
    if not workers:
        return ["No workers."]
    lines = [f"Workers ({_worker_count(workers)}):"]
    for w in workers:
        task = JUG_NAMES.get(w.task, w.task) if w.task else "–"
        since = format_duration(w.running_for) if w.running_for is not None else ""
        lines.append(
            f"  {w.pid:>7}  {w.host:<16} {_liveness(w):<6} {w.state:<9} {task} {since}".rstrip()
            + (f"  {format_bytes(w.rss)}" if w.rss is not None else "")
        )
    return lines


def _worker_count(workers: tuple[WorkerRow, ...]) -> str:
    ours = sum(1 for w in workers if w.ours and w.alive)
    others = sum(1 for w in workers if not w.ours and w.alive is not False)
    text = f"{ours} running here"
    return text + (f", {others} of other kernels or hosts" if others else "")


def _liveness(w: WorkerRow) -> str:
    if w.alive is None:
        return "?"
    if w.alive:
        return "exiting" if w.state == "exited" else "alive"  # "exited": said goodbye, not reaped yet
    return "ended" if w.state == "exited" else "dead"


def _text_events(events: tuple[EventRow, ...]) -> list[str]:
    if not events:
        return []
    lines = ["Events:"]
    for e in events:
        lines.append(f"  {_clock(e.time)} {e.kind}: {e.title}")
        detail = e.detail.strip("\n").splitlines()
        if len(detail) > _DETAIL_LINES:
            detail = ["..."] + detail[-_DETAIL_LINES:]
        lines += [f"      {line}" for line in detail]
    return lines


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


# -- HTML ------------------------------------------------------------------------------------------------


def view_html(view: ProgressView | None) -> str:
    """Render ``view`` as static HTML (no script; names and tracebacks escaped).

    Returns
    -------
    str
        A ``<div class="jugnb-progress">`` fragment.
    """
    if view is None:
        return '<div class="jugnb-progress"><i>jug progress: waiting for the first status read.</i></div>'
    head = "".join(f"<th>{c.title()}</th>" for c in _COUNTS)
    rows = "".join(_html_row(r, "td", _eta(r, view)) for r in view.rows)
    parts = [
        f"<p><b>{html.escape(_header(view))}</b></p>",
        f'<table class="jugnb-progress-table"><thead><tr><th>Task name</th><th></th>{head}'
        f"<th>/min</th><th>ETA</th></tr></thead><tbody>{rows}</tbody>"
        f"<tfoot>{_html_row(view.total, 'th', _eta(view.total, view))}</tfoot></table>",
    ]
    if view.barrier:
        parts.append(f"<p>The kernel's jugfile stops at {html.escape(view.barrier)}.</p>")
    parts.append(workers_html(view.workers))
    parts += [_html_event(e) for e in view.events]
    if view.done:
        parts.append(f"<p><b>{html.escape(view.summary)}</b></p>")
    if view.message:
        parts.append(f"<p><i>{html.escape(view.message)}</i></p>")
    return '<div class="jugnb-progress">' + "".join(parts) + "</div>"


def _html_bar(row: TaskRow) -> str:
    total = row.total or 1
    segments = "".join(
        f'<div title="{state}" style="width:{100 * getattr(row, state) / total:.2f}%;'
        f'background:{colour}"></div>'
        for state, _, colour, _ in BAR_STATES
        if getattr(row, state)
    )
    return f'<div style="display:flex;width:16em;height:1em;background:#eee">{segments}</div>'


def _html_row(row: TaskRow, cell: str, eta: str) -> str:
    counts = "".join(f"<{cell}>{getattr(row, c)}</{cell}>" for c in _COUNTS)
    rate = "–" if row.per_minute is None else f"{row.per_minute:.1f}"
    stale = f" ({row.stale} stale)" if row.stale else ""
    return (
        f'<tr><{cell} style="text-align:left">{html.escape(row.name)}{stale}</{cell}>'
        f"<{cell}>{_html_bar(row)}</{cell}>"
        f"{counts}<{cell}>{rate}</{cell}><{cell}>{html.escape(eta)}</{cell}></tr>"
    )


def workers_html(workers: tuple[WorkerRow, ...]) -> str:
    """Render the worker table: pid, host, worker, alive, state, current task, running for, memory."""
    if not workers:
        return "<p>No workers.</p>"
    head = "".join(
        f"<th{_CELL_STYLE}>{h}</th>"
        for h in ("pid", "host", "worker", "alive", "state", "task", "running for", "memory")
    )
    body = "".join(_html_worker(w) for w in workers)
    caption = html.escape(f"Workers: {_worker_count(workers)}")
    return (
        f'<table class="jugnb-workers" style="border-collapse:collapse">'
        f'<caption style="text-align:left">{caption}</caption>'
        f"<thead><tr>{head}</tr></thead>{body}</table>"
    )


def _html_worker(w: WorkerRow) -> str:
    running = format_duration(w.running_for) if w.running_for is not None else ""
    if not w.ours and w.last_seen is not None:
        running = f"last record {_clock(w.last_seen)}"
    cells = (
        str(w.pid),
        w.host,
        w.worker,
        _liveness(w),
        w.state,
        JUG_NAMES.get(w.task, w.task) if w.task else "–",
        running,
        format_bytes(w.rss),
    )
    return "<tr>" + "".join(f"<td{_CELL_STYLE}>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _html_event(e: EventRow) -> str:
    title = html.escape(f"{_clock(e.time)} {e.kind}: {e.title}")
    if not e.detail:
        return f"<p>{title}</p>"
    return f"<details><summary>{title}</summary><pre>{html.escape(e.detail)}</pre></details>"
