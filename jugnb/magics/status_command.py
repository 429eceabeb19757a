"""``%jug status``: the status table, failures, stale counts and where the jugfile stops."""

from __future__ import annotations

import html
from typing import Any

from IPython.core.magic_arguments import MagicArgumentParser

from ..backends import select
from ..status.render import status_html, status_text
from ..workers.lockowners import lock_notes
from .command import Command, latest_records, status_reader
from .failure_commands import print_failures
from .pools import pool_of
from .stale_commands import current_staleness, stale_note
from .views import Rendered


class StatusCommand(Command):
    """Show how many tasks of each name are failed, waiting, ready, active and complete."""

    name = "status"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("--short", action="store_true", help="One line per state instead of a table.")
        parser.add_argument(
            "--watch",
            action="store_true",
            help="Show the live progress panel instead (it updates while other cells run).",
        )
        parser.add_argument(
            "--jug-states",
            action="store_true",
            help="Count exactly as `jug status` does: a task whose run failed (without --keep-failed) "
            "counts as ready, not failed.",
        )
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Also load every stored result once, to find those that cannot be loaded (truncated, "
            "damaged, or pickling a class the code no longer has); reads every result.",
        )

    def run(self, magics: Any, args: Any) -> Any:
        graph = magics.graph
        if args.watch:
            return magics.show_progress(pool_of(magics))
        snapshot = status_reader(magics, graph).read(jug_states=args.jug_states)
        text, table = status_text(snapshot, short=args.short), status_html(snapshot)
        # One read of the store serves the table, the failures and the stale counts.
        print_failures(magics, snapshot, tracebacks=False)
        notes = [failed_note(snapshot.total.failed)]
        if latest_records(magics, graph):  # without records (plain jug's results) nothing can be stale
            notes.append(stale_note(current_staleness(magics, graph, snapshot)))
        notes += [str(failure) for failure in _unloadable(magics, graph, args.verify)]
        if graph.barrier is not None:
            notes.append(
                f"The jugfile stopped at {graph.barrier.kind} in {graph.barrier.where}: later tasks are "
                "not defined yet."
            )
        if (snapshot.total.active or snapshot.total.lost) and select(graph.jugdir.spec).supports_workers:
            names = {t.hash().decode("ascii"): str(t.name) for t in graph.tasks}
            notes.append("\n".join(lock_notes(graph.jugdir.spec, graph.store, names)))
        for note in filter(None, notes):
            text, table = f"{text}\n{note}", f"{table}<pre>{html.escape(note)}</pre>"
        return Rendered(text, table)


def failed_note(failed: int) -> str:
    """Explain failed tasks in the status output (``""`` when there are none)."""
    if not failed:
        return ""
    which = "1 task is" if failed == 1 else f"{failed} tasks are"
    return (
        f"{which} failed: the last run raised. The next `%jug execute` runs them again; "
        "`%jug failures` shows the tracebacks, `%jug retry` reruns them now."
    )


def _unloadable(magics: Any, graph: Any, verify: bool) -> list[Any]:
    """Results that exist but cannot be loaded: found before, named by workers, or (verify) any."""
    from ..errors import StoreError
    from ..session.unloadable import known_unloadable

    try:
        messages = [r.exc_message or "" for r in latest_records(magics, graph).values() if r.failed]
    except StoreError:
        messages = []
    return known_unloadable(graph.jugdir, graph.tasks, messages, verify=verify)
