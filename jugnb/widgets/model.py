"""Builds :class:`~jugnb.widgets.viewmodel.ProgressView` objects from what the poller reads.

:class:`ProgressModel` turns a :class:`~jugnb.status.reader.StatusSnapshot`, the pool's
:class:`~jugnb.workers.pool.WorkerInfo` and :class:`~jugnb.workers.pool.PoolEvent` lists and new
:class:`~jugnb.status.records.TaskRecord` objects into one view, remembering what rates, ETAs and events
need.

This module imports neither ipywidgets nor IPython.

Rates and ETAs
--------------
- *tasks per minute*: completions between the oldest snapshot of the last ``rate_window`` seconds and the
  newest one (invalidations never make it negative);
- *ETA*: the remaining tasks of a name times the mean recorded duration of that name (all names' mean when
  a name has none yet), spread over the workers in use; without any recorded duration, remaining / rate.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..status.reader import StatusSnapshot
from ..status.tracebacks import plain, traceback_parts
from ..workers.locks import HOST, process_alive
from .viewmodel import EventRow, ProgressView, TaskRow, WorkerRow, format_duration

__all__ = ["ProgressModel"]

# Pool event kinds worth a line in the panel ("started" is noise; "task-failed" comes from the records).
_POOL_KINDS = ("died", "exited", "lock-released", "replaced")


@dataclass
class _Durations:
    """Running sums of recorded durations per task name (seconds)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + 1

    def mean(self, name: str) -> float | None:
        n = self.counts.get(name)
        if n:
            return self.sums[name] / n
        total = sum(self.counts.values())
        return sum(self.sums.values()) / total if total else None


class ProgressModel:
    """Builds :class:`ProgressView` objects, remembering what rates, ETAs and events need.

    Parameters
    ----------
    max_rows : int
        Most task-name rows shown; with more names the smallest ones are folded into one row.
    rate_window : float
        Seconds of snapshots over which tasks per minute are computed.
    max_events : int
        Most recent events kept.
    other_window : float
        Seconds after its latest record that another kernel's or host's worker still counts.
    since : float, optional
        Only failures and pool events from this time on (seconds since the epoch) become events;
        default: now. Older records still feed the durations.
    """

    def __init__(
        self,
        max_rows: int = 12,
        rate_window: float = 60.0,
        max_events: int = 20,
        other_window: float = 300.0,
        since: float | None = None,
    ) -> None:
        self.max_rows = max(2, max_rows)
        self.rate_window = rate_window
        self.other_window = other_window
        self.since = time.time() if since is None else since
        self._history: deque[tuple[float, dict[str, int]]] = deque()
        self._durations = _Durations()
        self._others: dict[tuple[str, str, int], tuple[float, str]] = {}
        self._events: deque[EventRow] = deque(maxlen=max_events)
        self._seen_pool_events: set[tuple[float, str, str, int]] = set()
        self._first: tuple[float, int] | None = None
        self._leases: list[Any] = []
        self.message = ""

    # -- inputs ------------------------------------------------------------------------------------------

    def add_event(self, kind: str, title: str, detail: str = "", when: float | None = None) -> None:
        """Add an event (e.g. ``"reloaded"`` by the poller)."""
        self._events.append(EventRow(time.time() if when is None else when, kind, title, detail))

    def set_leases(self, leases: Sequence[Any], lost: Iterable[Any] = ()) -> None:
        """Take in the jugdir's leases (:class:`~jugnb.backends.leases.Lease`): every worker on every host.

        ``lost`` are leases just found expired (their locks were released): each becomes an event.
        """
        from ..backends.leases import lost_message

        self._leases = list(leases)
        for lease in lost:
            self._events.append(EventRow(lease.lost_at or time.time(), "lost", lost_message(lease)))

    def add_records(self, records: Iterable[Any], our_workers: Sequence[str] = ()) -> None:
        """Take in new :class:`~jugnb.status.records.TaskRecord` objects: durations, others, failures."""
        ours = set(our_workers)
        for record in records:
            if record.status == "retry":  # written by a kernel, not a worker
                continue
            if record.status == "ok" and record.duration is not None:
                self._durations.add(record.name, float(record.duration))
            if record.worker not in ours:
                key = (record.worker, record.host, record.pid)
                self._others[key] = (record.end or record.start, record.name)
            when = record.end or record.start
            if record.status in ("failed", "killed", "crashed") and when >= self.since:
                self._events.append(_failure_event(record))

    def add_pool_events(self, events: Iterable[Any]) -> None:
        """Take in :class:`~jugnb.workers.pool.PoolEvent` objects (already seen ones are skipped)."""
        for event in events:
            key = (event.time, event.kind, event.worker, event.pid)
            if event.time < self.since or key in self._seen_pool_events or event.kind not in _POOL_KINDS:
                continue
            self._seen_pool_events.add(key)
            if event.kind == "exited" and "last lines of its log" not in event.message:
                continue  # a normal exit is not news
            title, _, detail = event.message.partition("\n")
            self._events.append(EventRow(event.time, event.kind, title.rstrip(":; "), detail))

    # -- output -------------------------------------------------------------------------------------------

    def view(
        self,
        snapshot: StatusSnapshot,
        workers: Sequence[Any] = (),
        *,
        done: bool = False,
        barrier: str = "",
        stale: Mapping[str, int] | None = None,
        stopped: str = "",
    ) -> ProgressView:
        """Build the view of ``snapshot`` with this pool's ``workers`` (:class:`~.pool.WorkerInfo`).

        Parameters
        ----------
        snapshot : StatusSnapshot
        workers : sequence of WorkerInfo
        done : bool
            The work is over: the view carries a final summary.
        barrier : str
            Where the kernel's import of the jugfile stops, if it does.
        stale : mapping of str to int, optional
            Stale results per task name (complete, computed by code that changed since).
        stopped : str
            ``"drain"`` or ``"now"`` when the user stopped the workers: the summary says so.
        """
        now = snapshot.taken_at
        counts = {row.name: row.complete for row in snapshot.rows}
        self._remember(now, counts)
        worker_rows = self._worker_rows(workers, now)
        parallel = max(1, sum(1 for w in worker_rows if w.alive is not False))
        rates = self._rates(now, counts)
        stale = stale or {}
        rows = [
            replace(self._row(r, rates.get(r.name), parallel), stale=stale.get(r.name, 0))
            for r in snapshot.rows
        ]
        total = self._total(rows, rates, parallel)
        view = ProgressView(
            rows=_fold(rows, self.max_rows),
            total=total,
            workers=tuple(worker_rows),
            events=tuple(self._events),
            store=snapshot.store,
            taken_at=now,
            message=self.message,
            barrier=barrier,
            elapsed=now - self._first[0] if self._first is not None else None,
        )
        return replace(view, done=True, summary=self._summary(view, stopped)) if done else view

    def _remember(self, now: float, counts: dict[str, int]) -> None:
        if self._first is None:
            self._first = (now, sum(counts.values()))
        self._history.append((now, counts))
        # Keep one snapshot older than the window as the rate's baseline.
        while len(self._history) > 2 and now - self._history[1][0] >= self.rate_window:
            self._history.popleft()

    def _rates(self, now: float, counts: Mapping[str, int]) -> dict[str, float]:
        then, before = self._history[0]
        elapsed = now - then
        if elapsed < 1.0:
            return {}
        rates = {name: max(0, c - before.get(name, 0)) * 60.0 / elapsed for name, c in counts.items()}
        rates["Total"] = max(0, sum(counts.values()) - sum(before.values())) * 60.0 / elapsed
        return rates

    def _row(self, counts: Any, rate: float | None, parallel: int) -> TaskRow:
        # A lost worker's locks count as active in the bars: this kernel's poller releases them within a
        # second, and the workers table shows the worker as lost meanwhile.
        active = counts.active + counts.lost
        row = TaskRow(counts.name, counts.complete, active, counts.ready, counts.waiting, counts.failed)
        return replace(row, per_minute=rate, eta=self._eta(row.remaining, counts.name, rate, parallel))

    def _eta(self, remaining: int, name: str, rate: float | None, parallel: int) -> float | None:
        if remaining == 0:
            return 0.0
        mean = self._durations.mean(name)
        if mean is not None:
            return math.ceil(remaining / parallel) * mean
        return remaining * 60.0 / rate if rate else None

    def _total(self, rows: Sequence[TaskRow], rates: Mapping[str, float], parallel: int) -> TaskRow:
        total = replace(_summed("Total", rows), per_minute=rates.get("Total"))
        means = [self._durations.mean(r.name) for r in rows]
        if any(m is not None for m in means):
            work = sum(r.remaining * (m or 0.0) for r, m in zip(rows, means, strict=True))
            return replace(total, eta=work / parallel)
        rate = rates.get("Total")
        return replace(
            total, eta=0.0 if total.remaining == 0 else (total.remaining * 60.0 / rate if rate else None)
        )

    def _worker_rows(self, workers: Sequence[Any], now: float) -> list[WorkerRow]:
        rows = [
            WorkerRow(w.worker_id, w.pid, w.host, w.state, w.task, w.running_for, w.rss, bool(w.alive))
            for w in workers
        ]
        ours = {w.worker_id for w in workers}
        for lease in self._leases:  # every jugnb worker on every host, as its lease says
            if lease.worker in ours:
                continue
            lost = lease.lost_at is not None or lease.expired(now)
            if lost and now - (lease.lost_at or lease.renewed) > self.other_window:
                continue
            since = now - lease.task_since if lease.task_since and lease.state == "running" else None
            state = lease.describe(now) if lost else lease.state
            rows.append(WorkerRow(lease.worker, lease.pid, lease.host, state, lease.task, since, None,
                                  alive=not lost, ours=False, last_seen=lease.renewed))  # fmt: skip
        ours |= {lease.worker for lease in self._leases}
        for (worker, host, pid), (last, task) in sorted(self._others.items(), key=lambda kv: kv[1][0]):
            if worker in ours or now - last > self.other_window:
                continue
            alive = process_alive(pid) if host == HOST else None
            if alive is False:  # gone from this host (e.g. an earlier pool of this kernel): not news
                continue
            rows.append(WorkerRow(worker, pid, host, "seen", task, alive=alive, ours=False, last_seen=last))
        return rows

    def _summary(self, view: ProgressView, stopped: str = "") -> str:
        total = view.total
        start = self._first or (view.taken_at, total.complete)
        elapsed = format_duration(view.taken_at - start[0])
        ran = max(0, total.complete - start[1])
        if total.complete == total.total and not view.barrier:
            head = f"All {total.total} tasks complete"
        else:
            left = [
                f"{getattr(total, s)} {s}"
                for s in ("failed", "ready", "waiting", "active")
                if getattr(total, s)
            ]
            verb = {"drain": "Drained", "now": "Stopped"}.get(stopped, "Finished")
            head = f"{verb}: {total.complete} of {total.total} tasks complete, " + ", ".join(left)
        return f"{head}; {ran} completed in the {elapsed} watched."


def _failure_event(record: Any) -> EventRow:
    who = record.label or record.name  # the task instance with its arguments, when the writer knew it
    if record.status == "crashed":
        return EventRow(record.end or record.start, "crashed", f"{who} crashed", record.exc_message or "")
    if record.status == "killed":
        title = f"{who} was killed with worker {record.worker} (pid {record.pid}, {record.host})"
        return EventRow(record.end or record.start, "killed", title, record.exc_message or "")
    title = f"{who} failed: {record.exc_type}: {record.exc_message}"  # no worker id: saved notebooks
    detail = plain(traceback_parts(record))
    if record.output_tail:
        detail += "\n--- output (last lines) ---\n" + record.output_tail
    return EventRow(record.end or record.start, "failed", title, detail)


def _fold(rows: Sequence[TaskRow], max_rows: int) -> tuple[TaskRow, ...]:
    """``rows``, or the ``max_rows - 1`` largest in name order plus one row for all the others."""
    if len(rows) <= max_rows:
        return tuple(rows)
    by_size = sorted(range(len(rows)), key=lambda i: (-rows[i].total, rows[i].name))
    keep = set(by_size[: max_rows - 1])
    folded = [r for i, r in enumerate(rows) if i not in keep]
    rates = [r.per_minute for r in folded if r.per_minute is not None]
    etas = [r.eta for r in folded if r.eta is not None]
    other = replace(
        _summed(f"{len(folded)} more task names", folded),
        per_minute=sum(rates) if rates else None,
        eta=max(etas) if len(etas) == len(folded) else None,
        folded=len(folded),
    )
    return (*(r for i, r in enumerate(rows) if i in keep), other)


def _summed(name: str, rows: Sequence[TaskRow]) -> TaskRow:
    """Sum the counts of ``rows`` into one row named ``name``."""
    return TaskRow(
        name,
        stale=sum(r.stale for r in rows),
        complete=sum(r.complete for r in rows),
        active=sum(r.active for r in rows),
        ready=sum(r.ready for r in rows),
        waiting=sum(r.waiting for r in rows),
        failed=sum(r.failed for r in rows),
    )
