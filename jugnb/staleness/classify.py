"""Which complete results were computed by code that changed since, why a task would run, and a dry run.

A complete task (its result can be loaded) is exactly one of:

- **fresh**: the fingerprint recorded when a jugnb worker computed it equals the current fingerprint of its
  code (:mod:`jugnb.staleness.fingerprint`);
- **stale**: the recorded fingerprint differs: it was computed by code that has changed since;
- **unknown**: no fingerprint was recorded (computed by plain ``jug execute``, or by a jugnb too old to
  record one), or the latest record is not a success (the result came from elsewhere). Never shown as stale;
- **depends on stale**: fresh or unknown itself, but downstream of a stale task, so computed from a result
  that the current code would compute differently.

Nothing here changes the store: jug keeps serving stale results until they are invalidated, which only
happens when asked (``%jug invalidate --stale`` removes :meth:`StalenessReport.invalidation`).
"""

from __future__ import annotations

import difflib
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..session.tasks import task_hex
from ..status.records import TaskRecord
from .fingerprint import Fingerprint, FingerprintStore
from .plan import PLAN_REASONS, Plan, PlanGroup, dry_run_plan, run_reason
from .report import CATEGORIES, NameStaleness, StalenessReport
from .taskgraph import TaskGraph, TaskRef

__all__ = [
    "CATEGORIES",
    "PLAN_REASONS",
    "Explanation",
    "NameStaleness",
    "Plan",
    "PlanGroup",
    "StalenessReport",
    "TaskRef",
    "classify",
    "dry_run_plan",
    "why",
]


_WILL_RUN = {
    "new": "{task} will run: it was never computed.",
    "invalidated": "{task} will run: it was computed {ago}, but its result is gone (invalidated or cleaned).",
    "failed": "{task} will run again: its last run failed ({error}).",
    "crashed": "{task} will run again: its last run did not fail but crashed with its batch job ({error}).",
}
_KEPT = {
    "fresh": "{task} will not run: its result is complete and its code is unchanged since it was computed.",
    "unknown": (
        "{task} will not run: its result is complete. It has no successful jugnb record with a fingerprint "
        "(it was computed by plain jug or an older jugnb), so whether its code changed since is unknown."
    ),
    "code changed": (
        "{task} will not run: its result is complete, but it was computed by code that has changed since. "
        "`%jug invalidate --stale` recomputes it and everything downstream."
    ),
    "upstream changed": (
        "{task} will not run: its result is complete, but it was computed from results of tasks whose code "
        "has changed since. `%jug invalidate --stale` recomputes them and everything downstream."
    ),
}
_NO_OLD_SOURCE = "(The recorded code {digest} is not in the fingerprint store: no diff can be shown.)"
_STALE_UPSTREAM = "Stale upstream: {refs}."
_WAITING = "It waits on {n} task(s) without a result: {refs}."


def classify(
    tasks: Sequence[Any],
    complete_hashes: Collection[str],
    fingerprints: Mapping[str, Fingerprint],
    records: Mapping[str, TaskRecord],
) -> StalenessReport:
    """Sort a graph's complete tasks into fresh, stale, depends on stale and unknown.

    Parameters
    ----------
    tasks : sequence of jug.Task
        The loaded graph (``LoadedGraph.tasks``), hashes computed.
    complete_hashes : collection of str
        Hex hashes of the tasks with a result (``StatusSnapshot.hashes("complete")``).
    fingerprints : mapping of str to Fingerprint
        Current fingerprints by hex task hash (``TaskFingerprinter.for_tasks``); tasks missing are unknown.
    records : mapping of str to TaskRecord
        The latest record per hex task hash (``RecordLog.latest_by_hash()``).

    Returns
    -------
    StalenessReport
    """
    graph = TaskGraph.build(tasks, complete_hashes)
    own: dict[str, str] = {}
    for h in graph.deps:
        if h in graph.complete:
            own[h] = _own_category(records.get(h), fingerprints.get(h))
    stale = {h for h, c in own.items() if c == "stale"}
    downstream = {h for h in graph.downstream(stale) if h in own and h not in stale}
    for h in downstream:
        own[h] = "depends on stale"
    by_category = {c: frozenset(h for h, o in own.items() if o == c) for c in CATEGORIES}
    return StalenessReport(
        _rows(graph, own),
        by_category["fresh"],
        by_category["stale"],
        by_category["depends on stale"],
        by_category["unknown"],
        graph,
    )


def _own_category(record: TaskRecord | None, current: Fingerprint | None) -> str:
    if record is None or record.fingerprint is None or record.status != "ok" or current is None:
        return "unknown"
    return "fresh" if record.fingerprint == current.digest else "stale"


def _rows(graph: TaskGraph, own: Mapping[str, str]) -> tuple[NameStaleness, ...]:
    counts: dict[str, Counter[str]] = {name: Counter() for name in sorted(set(graph.names.values()))}
    for h in graph.listed:
        if h in own:
            counts[graph.names[h]][own[h]] += 1
    return tuple(NameStaleness(name, *(c[k] for k in CATEGORIES)) for name, c in counts.items())


@dataclass(frozen=True)
class Explanation:
    """Why a task would or would not run (``%jug why``).

    Attributes
    ----------
    task : TaskRef
        The task explained.
    reason : str
        ``"new"``, ``"invalidated"``, ``"failed"`` (these three run), ``"fresh"``, ``"unknown"``,
        ``"code changed"`` or ``"upstream changed"`` (these four are complete and kept).
    message : str
        The explanation in words (without the diff).
    diff : str
        For ``"code changed"``: unified diff of the recorded normalised code against the current one; empty
        when the recorded code is not in the fingerprint store.
    stale_upstream : tuple of TaskRef
        The nearest upstream tasks that are stale.
    waiting_on : tuple of TaskRef
        Direct dependencies without a result (the task runs only after them).
    record : TaskRecord or None
        The latest record of the task.
    """

    task: TaskRef
    reason: str
    message: str
    diff: str = ""
    stale_upstream: tuple[TaskRef, ...] = ()
    waiting_on: tuple[TaskRef, ...] = ()
    record: TaskRecord | None = None

    @property
    def runs(self) -> bool:
        """Whether ``execute`` would run the task (now, or once ``waiting_on`` have results)."""
        return self.reason in _WILL_RUN

    def __str__(self) -> str:
        return self.message + (f"\n{self.diff}" if self.diff else "")


def why(
    task: Any,
    report: StalenessReport,
    fingerprints: Mapping[str, Fingerprint],
    records: Mapping[str, TaskRecord],
    store: FingerprintStore | None = None,
    *,
    now: float | None = None,
) -> Explanation:
    """Explain why ``task`` would or would not run.

    Parameters
    ----------
    task : jug.Task
        A task of the graph ``report`` was made from.
    report : StalenessReport
        From :func:`classify`.
    fingerprints : mapping of str to Fingerprint
        Current fingerprints by hex task hash.
    records : mapping of str to TaskRecord
        The latest record per hex task hash.
    store : FingerprintStore, optional
        Where the recorded code is kept; without it a changed task's diff cannot be shown.
    now : float, optional
        Current time in seconds since the epoch, for "computed 3 h ago" (default: ``time.time()``).

    Returns
    -------
    Explanation
    """
    graph = report._graph
    h = task_hex(task)
    ref = TaskRef(task.name, h)
    record = records.get(h)
    deps = graph.deps.get(h) or tuple(dict.fromkeys(task_hex(d) for d in task.dependencies()))
    waiting = graph.refs(d for d in deps if d not in graph.complete)
    upstream = graph.refs(graph.nearest(h, report.stale))
    reason = report.category(h) or run_reason(record)
    if reason == "stale":
        reason = "code changed"
    elif reason == "depends on stale":
        reason = "upstream changed"
    template = _WILL_RUN.get(reason) or _KEPT[reason]
    lines = [template.format(task=ref, ago=_ago(record, now), error=_error(record))]
    lines += [_WAITING.format(n=len(waiting), refs=", ".join(map(str, waiting)))] if waiting else []
    lines += [_STALE_UPSTREAM.format(refs=", ".join(map(str, upstream)))] if upstream else []
    diff = ""
    if reason == "code changed" and record is not None and record.fingerprint is not None:
        diff = _diff(record.fingerprint, fingerprints.get(h), store)
        lines += [] if diff else [_NO_OLD_SOURCE.format(digest=record.fingerprint[:12])]
    return Explanation(ref, reason, " ".join(lines), diff, upstream, waiting, record)


def _diff(old_digest: str, current: Fingerprint | None, store: FingerprintStore | None) -> str:
    old = store.load(old_digest) if store is not None else None
    if old is None or current is None:
        return ""
    lines = difflib.unified_diff(
        old.source.splitlines(keepends=True),
        current.source.splitlines(keepends=True),
        fromfile=f"recorded ({old_digest[:12]})",
        tofile=f"current ({current.digest[:12]})",
    )
    return "".join(lines)


def _ago(record: TaskRecord | None, now: float | None) -> str:
    if record is None or record.end is None:
        return "before"
    seconds = max(0.0, (time.time() if now is None else now) - record.end)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _error(record: TaskRecord | None) -> str:
    if record is None:
        return "unknown error"
    detail = ": ".join(x for x in (record.exc_type, record.exc_message) if x)
    return detail or record.status
