"""Staleness in the notebook: ``%jug why``, ``invalidate --stale``, ``execute --dry-run``, stale counts.

``%jug status`` adds the stale counts of :func:`stale_note`.

Fingerprints of the current code are computed once per loaded graph; records and results are read fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends import select
from ..session.inkernel import find_task
from ..session.loader import LoadedGraph
from ..staleness.classify import StalenessReport, classify, dry_run_plan, why
from ..staleness.fingerprint import Fingerprint, FingerprintStore, TaskFingerprinter
from ..staleness.plan import plan_text
from ..status.labels import JUG_NAMES, GraphLabels, display_name
from ..status.reader import StatusSnapshot
from ..status.records import TaskRecord
from .command import Command, latest_records, status_snapshot
from .views import Rendered, preformatted


@dataclass(frozen=True)
class Staleness:
    """Everything the staleness commands need about the loaded graph, read at one moment."""

    graph: LoadedGraph
    snapshot: StatusSnapshot
    fingerprints: dict[str, Fingerprint]
    records: dict[str, TaskRecord]
    report: StalenessReport


def current_staleness(
    magics: Any, graph: LoadedGraph | None = None, snapshot: StatusSnapshot | None = None
) -> Staleness:
    """Classify the loaded graph's complete tasks as fresh, stale, depends on stale or unknown.

    ``snapshot`` is a status just read (default: read one now).
    """
    graph = graph if graph is not None else magics.graph
    cached = getattr(magics, "_fingerprints", None)
    if cached is None or cached[0] is not graph:
        fingerprints = TaskFingerprinter(graph.jugfile.text, graph.namespace).for_tasks(graph.tasks)
        cached = magics._fingerprints = (graph, fingerprints)
    snapshot = snapshot if snapshot is not None else status_snapshot(magics, graph)
    records = latest_records(magics, graph)
    report = classify(graph.tasks, snapshot.hashes("complete"), cached[1], records)
    return Staleness(graph, snapshot, cached[1], records, report)


def stale_note(state: Staleness) -> str:
    """One line per task name with stale results, or ``""`` when nothing is stale."""
    rows = [r for r in state.report.rows if r.stale or r.depends_on_stale]
    return "\n".join(
        f"{r.name}: {r.stale} stale (computed by code that changed since), {r.depends_on_stale} depend on "
        "stale results"
        for r in rows
    )


class WhyCommand(Command):
    """Say why a task would or would not run: new, invalidated, code changed (with a diff), waiting."""

    name = "why"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("task", help="A hash prefix, a task name (fn or module.fn), or name[i].")

    def run(self, magics: Any, args: Any) -> Rendered:
        state = current_staleness(magics)
        tasks = _tasks_named(state.graph, args.task)
        graph = state.graph
        store = (
            FingerprintStore.for_jugdir(graph.jugdir.spec, graph.store)
            if select(graph.jugdir.spec).keeps_records
            else None
        )
        # Tasks of one name usually share the reason and the diff: say each distinct explanation once,
        # headed by the task instances it is about (their arguments tell them apart).
        labels = GraphLabels(graph.tasks, magics.session.project.module)
        position = {id(t): i for i, t in enumerate(graph.tasks)}
        explanations: list[str] = []
        for t in tasks[:5]:
            text = str(why(t, state.report, state.fingerprints, state.records, store))
            # The task instance by its arguments ("simulate(1, 0.5) (c7e49dd3c722) will run"), and jug's
            # internal names as the jugfile wrote them.
            label = labels.label(position[id(t)]) if id(t) in position else t.name
            text = text.replace(t.name, label, 1)
            for raw, shown in JUG_NAMES.items():
                text = text.replace(raw, shown)
            explanations.append(text)
        explanations = list(dict.fromkeys(explanations))
        if len(tasks) > 5:
            explanations.append(
                f"... and {len(tasks) - 5} more tasks named {args.task}; name one with "
                f"`{args.task}[i]` or a hash prefix."
            )
        return preformatted("\n\n".join(explanations))


def _tasks_named(graph: LoadedGraph, spec: str) -> list[Any]:
    same = [t for t in graph.tasks if spec in (t.name, t.name.rsplit(".", 1)[-1], display_name(t.name))]
    return same if same else [find_task(graph.tasks, spec)]


def stale_selection(magics: Any, matcher: Any) -> tuple[list[Any], Staleness]:
    """Tasks to invalidate for ``--stale`` (stale ones matching ``matcher``, or all), and the state read."""
    state = current_staleness(magics)
    stale = {h for h in state.report.stale if matcher is None or matcher(state.report.name_of(h))}
    return [t for t in state.graph.tasks if t.hash().decode() in stale], state


def dry_run(magics: Any, matcher: Any = None) -> Rendered:
    """List what ``%jug execute`` would run, by task name and reason, with the expected cost; run nothing.

    ``matcher`` (jug's ``--name``/``--pattern`` matcher) limits the plan to the tasks execute would select.
    """
    state = current_staleness(magics)
    tasks = [t for t in state.graph.tasks if matcher is None or matcher(t.name)]
    if not tasks:
        return preformatted("No task matches the selection: nothing would run.")
    return preformatted(
        plan_text(dry_run_plan(state.graph.tasks, state.snapshot, state.report, state.records))
    )
