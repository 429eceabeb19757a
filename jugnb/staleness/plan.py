"""``execute --dry-run``: what would run, grouped by task name and reason, with the expected cost.

Costs come from the durations jugnb workers record (:mod:`jugnb.status.records`): the median of the
successful runs
of each task name, times the number of tasks. Nothing is run, locked or written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..session.tasks import task_hex
from ..status.records import TaskRecord, typical_durations
from .report import StalenessReport

__all__ = ["PLAN_REASONS", "Plan", "PlanGroup", "dry_run_plan", "run_reason"]

PLAN_REASONS = (
    "new",
    "invalidated",
    "retry",
    "waiting",
    "running",
    "failed lock",
    "code changed but kept",
    "upstream changed but kept",
)
_PLAN_RUNS = frozenset(PLAN_REASONS[:4])
_READY_REASONS = {"new": "new", "invalidated": "invalidated", "failed": "retry"}
_STATE_REASONS = {"waiting": "waiting", "active": "running", "failed": "failed lock"}
_KEPT_REASONS = {"stale": "code changed but kept", "depends on stale": "upstream changed but kept"}


@dataclass(frozen=True)
class PlanGroup:
    """Tasks of one name that ``execute`` would treat alike.

    Attributes
    ----------
    name : str
        Task name.
    reason : str
        One of :data:`PLAN_REASONS`. These run: ``"new"`` (never computed), ``"invalidated"`` (computed
        before, result gone), ``"retry"`` (last run failed), ``"waiting"`` (runs once its dependencies have
        results). These do not: ``"running"`` (locked by a worker now), ``"failed lock"`` (jug's *failed*
        state: skipped until its lock is removed), ``"code changed but kept"`` (stale) and
        ``"upstream changed but kept"`` (depends on stale).
    hashes : tuple of str
        Hex hashes, in graph order.
    median_seconds : float or None
        Median recorded duration of a successful run of this task name, in seconds; ``None`` if unknown.
    """

    name: str
    reason: str
    hashes: tuple[str, ...]
    median_seconds: float | None

    @property
    def count(self) -> int:
        """Number of tasks."""
        return len(self.hashes)

    @property
    def runs(self) -> bool:
        """Whether ``execute`` would run these tasks."""
        return self.reason in _PLAN_RUNS

    @property
    def seconds(self) -> float | None:
        """Expected cost of running them all, one after the other, in seconds (``None`` if unknown)."""
        return None if self.median_seconds is None else self.median_seconds * self.count


@dataclass(frozen=True)
class Plan:
    """What ``execute`` would do, computed without running anything.

    Attributes
    ----------
    groups : tuple of PlanGroup
        Sorted by reason (in the order of :data:`PLAN_REASONS`), then name.
    """

    groups: tuple[PlanGroup, ...]

    @property
    def to_run(self) -> tuple[PlanGroup, ...]:
        """The groups that would run."""
        return tuple(g for g in self.groups if g.runs)

    @property
    def task_count(self) -> int:
        """Number of tasks that would run."""
        return sum(g.count for g in self.to_run)

    @property
    def seconds(self) -> float:
        """Expected CPU time of the tasks that would run and have recorded durations, in seconds.

        With ``n`` workers the wall time is roughly this divided by ``n``, when enough tasks are ready.
        """
        return sum(g.seconds or 0.0 for g in self.to_run)

    @property
    def untimed(self) -> int:
        """Number of tasks that would run whose task name has no recorded duration."""
        return sum(g.count for g in self.to_run if g.seconds is None)


def dry_run_plan(
    tasks: Sequence[Any], status_snapshot: Any, report: StalenessReport, records: Mapping[str, TaskRecord]
) -> Plan:
    """List what ``execute`` would run, grouped by task name and reason, with its expected cost.

    Parameters
    ----------
    tasks : sequence of jug.Task
        The loaded graph; each task counts once however often it is listed (jug runs it once).
    status_snapshot : StatusSnapshot
        States of the same graph (:meth:`jugnb.status.reader.StatusReader.read`).
    report : StalenessReport
        From :func:`classify`.
    records : mapping of str to TaskRecord
        The latest record per hex task hash; durations are the medians of successful runs per task name.

    Returns
    -------
    Plan
    """
    medians = typical_durations(records.values())
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for h in dict.fromkeys(task_hex(t) for t in tasks):
        reason = _plan_reason(h, status_snapshot, report, records)
        if reason is not None:
            grouped[(report.name_of(h), reason)].append(h)
    groups = [PlanGroup(name, reason, tuple(hs), medians.get(name)) for (name, reason), hs in grouped.items()]
    return Plan(tuple(sorted(groups, key=lambda g: (PLAN_REASONS.index(g.reason), g.name))))


def _plan_reason(
    h: str, snapshot: Any, report: StalenessReport, records: Mapping[str, TaskRecord]
) -> str | None:
    category = report.category(h)
    if category is not None:
        return _KEPT_REASONS.get(category)  # fresh and unknown results are simply kept: not listed
    try:
        state = snapshot.state_of(h)
    except KeyError:  # a snapshot of another graph: judge by the records only
        state = "ready"
    if state == "complete":
        return None  # the result appeared after the report was made
    return _STATE_REASONS.get(state) or _READY_REASONS[run_reason(records.get(h))]




def run_reason(record: TaskRecord | None) -> str:
    """Why a task without a result would run: ``"new"``, ``"invalidated"``, ``"failed"`` or ``"crashed"``.

    ``"crashed"``: its last run ended with its worker's batch job (time limit, memory, node, cancel).
    """
    if record is None:
        return "new"
    if record.status == "crashed":
        return "crashed"
    return "invalidated" if record.status == "ok" else "failed"


def plan_text(plan: Plan) -> str:
    """Return a dry-run plan as a table (reason, task name, tasks, expected seconds) and a summary."""
    rows = [
        (g.reason, g.name, str(g.count), f"{g.seconds:.1f} s" if g.seconds is not None else "unknown")
        for g in plan.groups
    ]
    if not rows:
        return "Nothing to run: every task is complete and none is stale."
    header = ("reason", "task name", "tasks", "expected")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    untimed = f" ({plan.untimed} without a recorded duration)" if plan.untimed else ""
    lines.append(
        f"Would run {plan.task_count} tasks, about {plan.seconds:.1f} s of CPU time{untimed}; "
        "nothing was run."
    )
    return "\n".join(lines)
