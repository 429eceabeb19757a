"""One call that builds a progress panel and its poller for a graph and (optionally) a worker pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..session import tasks as task_ops
from .model import ProgressModel
from .poller import GraphSource, StatusPoller
from .progress import ProgressPanel

__all__ = ["progress_panel"]


def progress_panel(
    graph: GraphSource | Any,
    pool: Any = None,
    *,
    parent: Any = None,
    title: str = "jug",
    max_rows: int = 12,
    since: float | None = None,
    on_retry_failed: Callable[[], Any] | None = None,
    on_barrier_cleared: Callable[[], Any] | None = None,
    reader: Callable[[Any], Any] | None = None,
    staleness: Callable[[Any, Any], Any] | None = None,
    start: bool = True,
) -> ProgressPanel:
    """Build a :class:`ProgressPanel` kept up to date by a started :class:`StatusPoller` (``panel.poller``).

    Parameters
    ----------
    graph : callable or LoadedGraph
        The kernel's current graph, or a callable returning it (see :class:`StatusPoller`).
    pool : WorkerPool, optional
        Enables "drain" (``pool.stop()``) and "stop now" (``pool.stop(now=True)``); its workers are listed.
    parent : traitlets Configurable, optional
        Parent of the poller (``%config StatusPoller.interval``).
    title : str
        Heading of the panel (e.g. the module name).
    max_rows : int
        Most task-name rows before the smallest names are folded into one.
    since : float, optional
        Failures and pool events from this time on (seconds since the epoch) are shown; default: now.
    on_retry_failed : callable, optional
        Replaces the default "retry failed" action (remove failed tasks' locks of the current graph).
    on_barrier_cleared, reader, staleness : callable, optional
        See :class:`StatusPoller`.
    start : bool
        Read the store once now, on the calling thread, then start the poller (tests may tick by hand
        instead). The first read creates the row widgets while the cell runs, so frontends that only
        listen to the running cell's messages (nbclient, saving widget state) see them.

    Returns
    -------
    ProgressPanel
    """
    source: GraphSource = graph if callable(graph) else (lambda: graph)

    panel = ProgressPanel(
        on_drain=(lambda: pool.stop()) if pool is not None else None,
        on_stop_now=(lambda: pool.stop(now=True)) if pool is not None else None,
        title=title,
    )
    model = ProgressModel(max_rows=max_rows, since=since)
    poller = StatusPoller(
        panel,
        source,
        pool=pool,
        model=model,
        reader=reader,
        staleness=staleness,
        on_barrier_cleared=on_barrier_cleared,
        parent=parent,
    )

    def default_retry() -> None:
        current = source()
        if current is not None:
            _, started = task_ops.retry_failed(current, pool=pool)
            if started:  # workers run them now: a final panel comes alive again
                panel.frozen = False
                poller.start()
            poller.refresh()

    panel.actions["retry_failed"] = on_retry_failed if on_retry_failed is not None else default_retry
    panel.actions["refresh"] = poller.refresh
    panel.buttons["refresh"].disabled = False
    panel.poller = poller
    if start:
        poller.tick()
        poller.start()
    return panel
