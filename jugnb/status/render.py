"""Text and HTML views of a :class:`~jugnb.status.reader.StatusSnapshot`; no state logic lives here.

:func:`status_text` reproduces ``jug status`` (and ``jug status --short``) character for character, so the
CLI, terminal IPython and plain jug look the same; :func:`status_html` is the notebook's table. A *Lost*
column (tasks locked by jugnb workers that are gone), which jug has not, is added only when some task is lost.
"""

from __future__ import annotations

import html
import os
import shutil
import textwrap

from .labels import JUG_NAMES
from .reader import NameCounts, StatusSnapshot

__all__ = ["relative_store", "status_html", "status_text"]

# jug's column order (jug/subcommands/status.py::_print_status) and its cell width (jug/io.py).
_COLUMNS = (
    ("Failed", "failed"),
    ("Waiting", "waiting"),
    ("Ready", "ready"),
    ("Complete", "complete"),
    ("Active", "active"),
)
_LOST = ("Lost", "lost")
_CELL = 12


def status_text(snapshot: StatusSnapshot, short: bool = False, width: int | None = None) -> str:
    """Format ``snapshot`` as the ``jug status`` table, or as its one-line ``--short`` form.

    Parameters
    ----------
    snapshot : StatusSnapshot
        What to show.
    short : bool
        One summary line, as ``jug status --short``.
    width : int, optional
        Line width in characters; by default the terminal's (``COLUMNS``, else 80), as jug does.

    Returns
    -------
    str
        The lines, each ending in a newline (the table ends with an empty line, like jug's).
    """
    if short:
        return _short_line(snapshot.total) + "\n"
    if width is None:
        width = shutil.get_terminal_size((80, 25)).columns
    columns = _columns(snapshot)
    # The name column keeps jug's width (a Lost column widens the table instead of wrapping the names).
    name_width = width - len(_COLUMNS) * _CELL - 2
    if name_width <= 8:  # jug's own floor for very narrow terminals
        name_width = 12
    rule = len(columns) * _CELL + 2 + name_width
    lines = [_line([title for title, _ in columns], "Task name", name_width), "-" * rule]
    for row in snapshot.rows:
        lines.extend(_name_lines(row, name_width, columns))
    lines += ["." * rule, _line(_cells(snapshot.total, columns), "Total", name_width), ""]
    return "\n".join(lines) + "\n"


def _columns(snapshot: StatusSnapshot) -> tuple[tuple[str, str], ...]:
    """Return jug's columns, and Lost when some task is lost (otherwise the table is exactly jug's)."""
    return (*_COLUMNS, _LOST) if snapshot.total.lost else _COLUMNS


def _cells(row: NameCounts, columns: tuple[tuple[str, str], ...] = _COLUMNS) -> list[str]:
    return [str(getattr(row, attr)) for _, attr in columns]


def _line(cells: list[str], name: str, name_width: int) -> str:
    return "".join(f"{c:>{_CELL}}" for c in cells) + f"  {name:<{name_width}}"


def _name_lines(row: NameCounts, name_width: int, columns: tuple[tuple[str, str], ...]) -> list[str]:
    """Format one task name's row; long names wrap onto indented continuation lines, as in jug."""
    parts = textwrap.wrap(row.name, width=name_width - 4)
    lines = [_line(_cells(row, columns), parts[0] if parts else "", name_width)]
    lines += [_line([""] * len(columns), " " * 4 + part, name_width) for part in parts[1:]]
    return lines


def _short_line(total: NameCounts) -> str:
    if total.complete == total.total:
        return f"All tasks complete ({total.complete} tasks)."
    active = f"{total.active} active" if total.active else "none active"
    if total.lost:
        active += f", {total.lost} lost"
    return (
        f"{total.waiting + total.ready} tasks waiting to be run, {total.failed} failed, "
        f"{total.complete} complete, ({active})."
    )


def status_html(snapshot: StatusSnapshot) -> str:
    """Format ``snapshot`` as a compact HTML ``<table>``: one row per task name and a total row.

    Task names are escaped; the store description is in the caption (it never holds a password).

    Returns
    -------
    str
        The table markup, without any script or style.
    """
    columns = _columns(snapshot)
    head = "".join(f"<th>{title}</th>" for title, _ in columns) + "<th>Task name</th>"
    body = "".join(_html_row(row, "td", columns) for row in snapshot.rows)
    foot = _html_row(snapshot.total, "th", columns)
    caption = html.escape(f"jug status · {relative_store(snapshot.store)}")  # no machine path in a notebook
    return (
        f'<table class="jugnb-status"><caption>{caption}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody><tfoot>{foot}</tfoot></table>"
    )


def _html_row(row: NameCounts, cell: str, columns: tuple[tuple[str, str], ...]) -> str:
    counts = "".join(f"<{cell}>{c}</{cell}>" for c in _cells(row, columns))
    name = html.escape(JUG_NAMES.get(row.name, row.name))
    if row.name in JUG_NAMES:  # jug's internals: their real name on hover
        name = f'<span title="{html.escape(row.name)}">{name}</span>'
    return f'<tr>{counts}<{cell} style="text-align:left">{name}</{cell}></tr>'


def relative_store(store: str) -> str:
    """Make a store description's folder relative to the working directory (outside it: its name only)."""
    # A kind prefix ("kind:/abs/path") stays; URLs ("redis://host") and relative paths are shown as they are.
    prefix, sep, path = store.partition(":") if ":/" in store and "://" not in store else ("", "", store)
    if not os.path.isabs(path):
        return store
    relative = os.path.relpath(path)
    shown = relative if not relative.startswith("..") else os.path.basename(path.rstrip(os.sep))
    return f"{prefix}{sep}{shown}"
