"""``jugnb status NOTEBOOK.ipynb``: jugnb's status table and notes, in :mod:`jugnb.cli.jugrun`'s process.

The table is ``jug status``'s, with jugnb's states (:mod:`jugnb.status.reader`): a task whose last run raised
is *failed* (jug shows it as ready once the failing worker released its lock), and a task locked by a jugnb
worker that is gone is *lost* (a column shown only then). Below it, as ``%jug status`` shows them: the
failures grouped by how they failed (a headline, the task instances), and who holds locks that no live
worker holds, with what releases them. ``--jug-states`` gives jug's own table instead. Uses only the core
and jug.
"""

from __future__ import annotations

import sys
from typing import Any

from ..backends import select
from ..errors import JugnbError, StoreError
from ..status.reader import StatusReader, StatusSnapshot
from ..status.records import RecordLog, TaskRecord
from ..status.render import status_text
from ..status.tracebacks import group_failures
from .exitcodes import JUG_FAILED, OK

#: jugnb's own option of ``status`` (taken out of the arguments before jug parses them).
JUG_STATES = "--jug-states"
MAX_LISTED = 8


def refuse_cache(options: Any) -> None:
    """Refuse jug's status cache for jugnb's table.

    Raises
    ------
    JugnbError
        For ``--cache`` or ``--clear`` without ``--jug-states``: jug's cache holds jug's states only.
    """
    if getattr(options, "status_cache", False) or getattr(options, "status_cache_clear", False):
        msg = (
            "--cache and --clear use jug's status cache, which knows jug's states only (not failed runs or "
            "lost workers): add --jug-states for jug's own table (jugnb status NOTEBOOK.ipynb --jug-states "
            "--cache), or leave them out for jugnb's."
        )
        raise JugnbError(msg)


def run_status(store: Any, tasks: list[Any], jugdir: str, short: bool, notebook: str) -> int:
    """Print jugnb's status table of ``tasks`` and its notes; return jug's exit code for ``status``.

    Parameters
    ----------
    store : jug store
        The open store of ``jugdir``.
    tasks : list of jug.task.Task
        The jugfile's tasks (``jug.task.alltasks`` after ``jug.init``).
    jugdir : str
        The ``--jugdir`` string, to find jugnb's task records and workers' leases.
    short : bool
        One line, as ``jug status --short``.
    notebook : str
        How the user named the notebook (or jugfile), for the commands the notes suggest.

    Returns
    -------
    int
        0 when every task is complete, else 1 (as ``jug status``).

    Raises
    ------
    StoreError
        If the store cannot be read.
    """
    try:
        records: RecordLog | None = RecordLog.for_jugdir(jugdir, store)
    except StoreError:  # dict_store: no records, no leases
        records = None
    reader = StatusReader(tasks, store, records=records, jugdir=jugdir if records is not None else None)
    snapshot = reader.read()
    print(status_text(snapshot, short=short), end="")
    notes = []
    if records is not None:
        notes.append(failure_lines(failed_records(snapshot, records), notebook))
        notes.append(crash_lines(snapshot, records))
    if (snapshot.total.active or snapshot.total.lost) and select(jugdir).supports_workers:
        from ..workers.lockowners import lock_notes

        names = {t.hash().decode("ascii"): str(t.name) for t in tasks}
        notes.append("\n".join(lock_notes(jugdir, store, names)).replace("NOTEBOOK.ipynb", notebook))
    for note in filter(None, notes):
        print(f"\n{note}")
    sys.stdout.flush()
    return OK if snapshot.all_complete else JUG_FAILED


def failed_records(snapshot: StatusSnapshot, records: RecordLog) -> list[TaskRecord]:
    """Latest failure records of the tasks that ``snapshot`` shows as failed, oldest first."""
    latest = records.latest_by_hash()
    failed = [latest[h] for h in snapshot.hashes("failed") if h in latest and latest[h].failed]
    return sorted(failed, key=lambda r: r.start)


def crash_lines(snapshot: StatusSnapshot, records: RecordLog) -> str:
    """One line per unfinished task whose batch job ended under it (crashed: it runs again as it is)."""
    latest = records.latest_by_hash()
    crashed = []
    for record in sorted(latest.values(), key=lambda r: r.start):
        try:
            state = snapshot.state_of(record.hash)
        except KeyError:  # a task of another version of the jugfile
            continue
        if record.status == "crashed" and state != "complete":
            crashed.append(
                f"Task {record.label or record.name} ({record.hash[:12]}) crashed: {record.exc_message}"
            )
    return "\n".join(crashed)


def failure_lines(records: list[TaskRecord], notebook: str) -> str:
    """Failures grouped by how they failed: per group a headline and its task instances, then what to do.

    Returns
    -------
    str
        ``""`` without failures.
    """
    if not records:
        return ""
    groups = group_failures(records)
    which = "1 task is" if len(records) == 1 else f"{len(records)} tasks are"
    lines = [f"{which} failed: the last run raised."]
    for number, group in enumerate(groups, start=1):
        first = group.records[0]
        head = group.headline if first.exc_type else f"{len(group.records)} tasks: their worker died"
        lines.append((f"[{number}] " if len(groups) > 1 else "") + head)
        lines += [f"    {r.label or r.name}  (task {r.hash[:10]})" for r in group.records[:MAX_LISTED]]
        if len(group.records) > MAX_LISTED:
            lines.append(f"    ... and {len(group.records) - MAX_LISTED} more")
    lines.append(
        f"`jugnb execute {notebook}` runs them again; the notebook's `%jug failures` shows their "
        "tracebacks mapped to the %%jugfile cells."
    )
    return "\n".join(lines)
