"""Failed tasks in the notebook: grouped tracebacks in IPython's colours, `%jug failures`, `%jug retry`.

A task is *failed* when its latest run raised (or its worker died) and it has no result
(:meth:`jugnb.status.reader.StatusReader.read`). Failures are grouped by how they failed
(:func:`jugnb.status.tracebacks.group_failures`): one traceback per group, then the group's task instances.
Within one cell each failure is shown once, however many commands of the cell print failures.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic_arguments import MagicArgumentParser

from ..session import tasks as task_ops
from ..status.reader import StatusSnapshot
from ..status.records import TaskRecord
from ..status.tracebacks import FailureGroup, Part, group_failures, plain, traceback_parts
from .command import Command, latest_records, status_snapshot
from .pools import pool_of

MAX_LISTED = 8


def failed_records(magics: Any, snapshot: StatusSnapshot | None = None) -> list[TaskRecord]:
    """Latest failure records of the loaded graph's tasks that are failed now (no result, not running)."""
    graph = magics.graph
    snapshot = snapshot if snapshot is not None else status_snapshot(magics, graph)
    latest = latest_records(magics, graph)
    failed = [latest[h] for h in snapshot.hashes("failed") if h in latest and latest[h].failed]
    return sorted(failed, key=lambda r: r.start)


def _colour(parts: list[Part], theme: str) -> str:
    """Parts in IPython's traceback colours of ``theme`` (the shell's ``colors``); plain for ``nocolor``."""
    try:
        from IPython.utils.PyColorize import theme_table
        from pygments.token import Token
    except ImportError:  # IPython < 9: no themes
        return plain(parts)
    table = theme_table.get(theme.lower()) or theme_table.get("nocolor")
    if table is None:
        return plain(parts)
    kinds = {
        "file": Token.FilenameEm,
        "lineno": Token.LinenoEm,
        "name": Token.TB.NameEm,
        "source": Token.Line,
        "exc_type": Token.ExcName,
        "exc_message": Token,
        "text": Token,
    }
    return str(table.format([(kinds.get(kind, Token), text) for kind, text in parts]))


def _theme(magics: Any) -> str:
    return str(getattr(magics.shell, "colors", "nocolor") or "nocolor")


def _shown(magics: Any) -> set[tuple[str, float]]:
    """Failures already shown in the running cell (reset by the ``pre_run_cell`` event)."""
    cell = getattr(magics, "_cell_serial", 0)
    shown: tuple[int, set[tuple[str, float]]] | None = getattr(magics, "_failures_shown", None)
    if shown is None or shown[0] != cell:
        shown = (cell, set())
        magics._failures_shown = shown
    return shown[1]


def failure_report(
    magics: Any, records: list[TaskRecord], *, full: bool = False, tracebacks: bool = True
) -> str:
    """Text of the failures not yet shown in this cell: per group a headline, the instances, a traceback.

    Parameters
    ----------
    records : list of TaskRecord
        Latest records of failed tasks.
    full : bool
        Show jugnb's and jug's frames, and the snapshot paths.
    tracebacks : bool
        Include the first traceback of each group (else headlines and instances only).
    """
    shown = _shown(magics)
    new = [r for r in records if (r.hash, r.end or r.start) not in shown]
    if not new:
        return ""
    groups = group_failures(new)
    magics._failure_groups = groups
    out = []
    for number, group in enumerate(groups, start=1):
        out.append(_group_text(magics, number, group, full, tracebacks, len(groups)))
        shown.update((r.hash, r.end or r.start) for r in group.records)
    return "\n".join(out)


def _group_text(magics: Any, number: int, group: FailureGroup, full: bool, tracebacks: bool, n: int) -> str:
    first = group.records[0]
    head = group.headline if first.exc_type else f"{len(group.records)} tasks: their worker died"
    lines = [(f"[{number}] " if n > 1 else "") + head]
    for record in group.records[:MAX_LISTED]:
        lines.append(f"    {record.label or record.name}  (task {record.hash[:10]})")
    if len(group.records) > MAX_LISTED:
        lines.append(f"    … and {len(group.records) - MAX_LISTED} more (`%jug browse`, filter: failed)")
    text = "\n".join(lines) + "\n"
    if tracebacks and first.exc_type:
        text += f"Traceback of {first.label or first.name}:\n"
        text += _colour(traceback_parts(first, full=full), _theme(magics))
        if first.output_tail:
            text += f"Its last output:\n{first.output_tail}\n"
    which = f" {number}" if n > 1 else ""
    text += (
        f"They are run again by the next `%jug execute`, or now by `%jug retry{which}`; "
        f"`%jug run {first.hash[:10]}` runs one in the kernel, then `%debug` inspects it.\n"
    )
    return text


def crashed_records(magics: Any, snapshot: StatusSnapshot | None = None) -> list[TaskRecord]:
    """Latest records of tasks without a result whose batch job ended under them (``"crashed"``)."""
    graph = magics.graph
    snapshot = snapshot if snapshot is not None else status_snapshot(magics, graph)
    latest = latest_records(magics, graph)
    hashes = {t.hash().decode("ascii") for t in graph.tasks}
    crashed = [latest[h] for h in hashes if h in latest and latest[h].status == "crashed"]
    return sorted((r for r in crashed if snapshot.state_of(r.hash) != "complete"), key=lambda r: r.start)


def print_failures(
    magics: Any, snapshot: StatusSnapshot | None = None, *, tracebacks: bool = True, full: bool = False
) -> None:
    """Print the failed tasks not shown yet in this cell, grouped, with one traceback per group.

    Tasks whose batch job ended under them (crashed, not failed: they run again as they are) get one line
    each, with the reason.
    """
    text = failure_report(magics, failed_records(magics, snapshot), full=full, tracebacks=tracebacks)
    if text:
        print(text, end="")
    for record in crashed_records(magics, snapshot):
        print(f"Task {record.label or record.name} ({record.hash[:12]}) crashed: {record.exc_message}")


class FailuresCommand(Command):
    """Show the failed tasks, grouped by how they failed, with one traceback per group."""

    name = "failures"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument(
            "--full", action="store_true", help="Show jugnb's and jug's frames too, and snapshot paths."
        )

    def run(self, magics: Any, args: Any) -> None:
        records = failed_records(magics)
        if not records:
            print("No failed tasks.")
            return
        _shown(magics).clear()  # asked for explicitly: show them even if the cell showed them already
        print(failure_report(magics, records, full=args.full), end="")


class RetryCommand(Command):
    """Run the failed tasks again now (all, or one group of `%jug failures`) with this kernel's workers."""

    name = "retry"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument(
            "group", nargs="?", type=int, default=None, help="Number of a group of `%%jug failures`."
        )

    def run(self, magics: Any, args: Any) -> None:
        records = failed_records(magics)
        if args.group is not None:
            groups = group_failures(records)
            if not 1 <= args.group <= len(groups):
                print(f"There are {len(groups)} groups of failures; `%jug failures` numbers them.")
                return
            records = list(groups[args.group - 1].records)
        if not records:
            print("No failed tasks.")
            return
        started = retry(magics, records)
        print(
            f"Marked {len(records)} failed tasks for a new run"
            + (f"; started {started} workers." if started else "; the running workers take them.")
        )


def retry(magics: Any, records: list[TaskRecord]) -> int:
    """Retry the tasks of ``records``; return the number of workers started.

    See :func:`jugnb.session.tasks.retry_failed`.
    """
    pool = pool_of(magics)
    _, started = task_ops.retry_failed(magics.graph, [r.hash for r in records], pool)
    panel = getattr(magics, "panel", None)
    if started and panel is not None and getattr(panel, "poller", None) is not None:
        panel.frozen = False  # the final panel of the run comes alive again
        panel.poller.start()
    return started
