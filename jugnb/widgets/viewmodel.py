"""What the progress panel shows, as frozen data; :mod:`jugnb.widgets.model` builds it, others draw it.

A :class:`ProgressView` holds everything one frame of the panel shows. The widgets
(:mod:`jugnb.widgets.progress`) and the text/static-HTML fallback (:mod:`jugnb.widgets.static`) only draw
a view, so both show the same thing and tests can feed either side directly.

This module imports neither ipywidgets nor IPython.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "EventRow", "ProgressView", "TaskRow", "WorkerRow", "counts_text", "eta_text", "format_bytes",
    "format_duration",
]  # fmt: skip


@dataclass(frozen=True)
class TaskRow:
    """Counts of one task name (or of several folded names, or of all: the total row).

    Attributes
    ----------
    name : str
        Task name; for a folded row a description such as ``"14 more task names"``.
    complete, active, ready, waiting, failed : int
        Tasks in each state.
    per_minute : float or None
        Completions per minute over the rate window; ``None`` until two snapshots are apart.
    eta : float or None
        Estimated seconds until every task of the row is complete; ``None`` when unknown.
    folded : int
        Number of task names folded into this row (0 for an ordinary row).
    stale : int
        Complete tasks computed by code that changed since (see :mod:`jugnb.staleness.classify`).
    """

    name: str
    complete: int = 0
    active: int = 0
    ready: int = 0
    waiting: int = 0
    failed: int = 0
    per_minute: float | None = None
    eta: float | None = None
    folded: int = 0
    stale: int = 0

    @property
    def total(self) -> int:
        """Tasks in the row."""
        return self.complete + self.active + self.ready + self.waiting + self.failed

    @property
    def remaining(self) -> int:
        """Tasks not complete yet."""
        return self.total - self.complete


@dataclass(frozen=True)
class WorkerRow:
    """One worker, of this kernel's pool or seen in the records of another kernel or host.

    Attributes
    ----------
    worker : str
        Worker id.
    pid : int
    host : str
    state : str
        Heartbeat state for our workers (``"running"``, ``"idle"``, ``"exited"``, ``"died"``, ...);
        ``"seen"`` for other workers (known from their records only).
    task : str or None
        Current task (ours) or the last task recorded (others).
    running_for : float or None
        Seconds the current task has been running (ours only).
    rss : int or None
        Resident memory in bytes (ours, alive only).
    alive : bool or None
        ``None`` when it cannot be known (a worker on another host).
    ours : bool
        Started by this kernel's pool.
    last_seen : float or None
        For other workers: end of their latest record (seconds since the epoch).
    """

    worker: str
    pid: int
    host: str
    state: str
    task: str | None = None
    running_for: float | None = None
    rss: int | None = None
    alive: bool | None = True
    ours: bool = True
    last_seen: float | None = None


@dataclass(frozen=True)
class EventRow:
    """Something worth telling: a failure (with its traceback), a dead worker, a reload, a barrier.

    Attributes
    ----------
    time : float
        Seconds since the epoch.
    kind : str
        ``"failed"``, ``"killed"``, ``"crashed"`` (its batch job ended under it), ``"died"``, ``"lost"`` (a
        worker whose lease expired), ``"exited"``, ``"lock-released"``, ``"replaced"``, ``"reloaded"``,
        ``"barrier"`` or ``"error"``.
    title : str
        One line.
    detail : str
        Traceback, output tail or log tail (may be empty).
    """

    time: float
    kind: str
    title: str
    detail: str = ""


@dataclass(frozen=True)
class ProgressView:
    """Everything the progress panel shows at one moment.

    Attributes
    ----------
    rows : tuple of TaskRow
        One per task name, in name order; at most ``max_rows`` (the smallest names folded into one).
    total : TaskRow
        Sums over all names, named ``"Total"``.
    workers : tuple of WorkerRow
        This kernel's workers, then other kernels' and hosts' workers seen recently.
    events : tuple of EventRow
        Most recent last.
    store : str
        Store description (never a password).
    taken_at : float
        When the snapshot was taken (seconds since the epoch).
    done : bool
        The work is over: the panel freezes and shows ``summary``.
    summary : str
        Final summary (empty until ``done``).
    message : str
        One line about the panel itself (e.g. the poller's last error); empty when all is well.
    barrier : str
        Where the kernel's import of the jugfile stops (``""`` when it does not).
    elapsed : float or None
        Seconds since the panel's first snapshot.
    """

    rows: tuple[TaskRow, ...]
    total: TaskRow
    workers: tuple[WorkerRow, ...] = ()
    events: tuple[EventRow, ...] = ()
    store: str = ""
    taken_at: float = 0.0
    done: bool = False
    summary: str = ""
    message: str = ""
    barrier: str = ""
    elapsed: float | None = None

    @property
    def other_workers(self) -> int:
        """Workers of other kernels or hosts seen recently (not known dead)."""
        return sum(1 for w in self.workers if not w.ours and w.alive is not False)

    @property
    def alive_workers(self) -> int:
        """Workers running now, ours and others (unknown liveness counts as running)."""
        return sum(1 for w in self.workers if w.alive is not False)


def format_duration(seconds: float | None) -> str:
    """``"45 s"``, ``"3 min 05 s"``, ``"2 h 03 min"``, ``"3 d 04 h"``; ``"–"`` for ``None``."""
    if seconds is None or math.isnan(seconds):
        return "–"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def format_bytes(n: int | None) -> str:
    """``"812 KiB"``, ``"1.5 GiB"``; ``"–"`` for ``None``."""
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - unreachable


def eta_text(row: TaskRow, *, final: bool = False, barrier: str = "") -> str:
    """``"ETA 3 min 05 s"`` only where it means something: tasks left that can run, on a live panel.

    ``"done"`` when every task of the row is complete (for Total: and the jugfile has no barrier
    ahead); ``"waiting"`` when what is left only waits for other tasks; nothing on a final panel, or for
    tasks that failed (they wait for a retry).
    """
    if row.total and row.remaining == 0:
        return "more after the barrier" if barrier else "done"
    if final or row.remaining == row.failed:
        return ""
    if row.active == 0 and row.ready == 0:
        return "waiting"
    return "" if row.eta is None else f"ETA {format_duration(row.eta)}"


def counts_text(row: TaskRow, failed: bool = True) -> str:
    """``"45/60 complete · 2 active · 10 ready · 3 waiting"`` (zero counts other than complete omitted).

    ``stale`` (complete results computed by code that changed since) follows ``complete`` when nonzero;
    ``failed`` last unless ``failed=False`` (the panel shows it as a red button of its own).
    """
    parts = [f"{row.complete}/{row.total} complete"]
    states = (
        ("stale", "active", "ready", "waiting", "failed")
        if failed
        else ("stale", "active", "ready", "waiting")
    )
    parts += [f"{getattr(row, s)} {s}" for s in states if getattr(row, s)]
    return " · ".join(parts)
