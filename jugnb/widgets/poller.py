"""The background thread that keeps a progress panel up to date.

A :class:`StatusPoller` is a named daemon thread with a stop ``threading.Event``. Each tick reads a fresh
:class:`~jugnb.status.reader.StatusSnapshot` (incremental: :meth:`StatusReader.read` re-lists only what
changed),
the pool's workers and events and the new task records, builds a
:class:`~jugnb.widgets.viewmodel.ProgressView` and hands it to ``panel.render``, which only sets traits.

It never raises into the kernel: an error is logged (once per distinct message), shown as one line in the
panel, and the next tick tries again. It stops when the work is done (after drawing the final view), when
the panel is closed, at interpreter exit (``atexit``), or on :meth:`StatusPoller.stop`. It never enters
``with output:``.

Configuration (``%config StatusPoller`` in a kernel)::

    c.StatusPoller.interval = 1.0   # seconds between two reads of the store
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from traitlets import Float
from traitlets.config import LoggingConfigurable

from ..backends import leases_of
from ..backends.leases import recover_expired
from ..errors import StoreError
from ..status.reader import StatusReader, StatusSnapshot
from ..status.records import RecordLog
from .model import ProgressModel
from .viewmodel import ProgressView

__all__ = ["StatusPoller"]

GraphSource = Callable[[], Any]
_instances: weakref.WeakSet[StatusPoller] = weakref.WeakSet()


class StatusPoller(LoggingConfigurable):
    """Updates ``panel`` from the store every ``interval`` seconds, in a daemon thread.

    Parameters
    ----------
    panel : ProgressPanel
        Anything with ``render(view)``, ``show_message(text)`` and ``on_close(callback)``.
    graph : callable or graph
        Returns the kernel's current loaded graph (an object with ``tasks`` and ``store``, optionally
        ``barrier`` and ``jugdir``, like :class:`~jugnb.session.loader.LoadedGraph`), or ``None`` before a
        jugfile
        is loaded. It is called from the poller's thread: it must be cheap and must not import a jugfile.
        A graph object instead of a callable stands for itself.
    pool : WorkerPool, optional
        This kernel's workers: their rows, events, and the end of the work (every worker exited).
    records : RecordLog, optional
        Task records of the jugdir; by default opened from ``graph.jugdir`` when it has one.
    model : ProgressModel, optional
        Builds the views; one with default settings if not given.
    reader : callable, optional
        ``reader(graph)`` returns the :class:`~jugnb.status.reader.StatusReader` of ``graph``; default: a new
        one per
        graph. Indexing 100 000 tasks holds the GIL in long C calls (tens of ms), so the kernel should
        pass the reader it already built on its own thread (``read()`` is thread-safe).
    staleness : callable, optional
        ``staleness(graph, snapshot)`` returns the number of stale results per task name (complete, but
        computed by code that changed since), shown beside the counts; called every tick.
    on_barrier_cleared : callable, optional
        Called once per graph (from the poller's thread) when the graph's import stopped at a barrier and
        every task before it is complete, so the kernel can re-import the jugfile on its own thread. While it
        is set, such a graph is not "done".
    parent : traitlets Configurable, optional
        E.g. the magics, so that ``%config StatusPoller`` reaches this poller.
    """

    interval = Float(1.0, help="Seconds between two reads of the store (the panel's refresh period).").tag(
        config=True
    )

    def __init__(
        self,
        panel: Any,
        graph: GraphSource | Any,
        *,
        pool: Any = None,
        records: RecordLog | None = None,
        model: ProgressModel | None = None,
        reader: Callable[[Any], StatusReader] | None = None,
        staleness: Callable[[Any, StatusSnapshot], Mapping[str, int]] | None = None,
        on_barrier_cleared: Callable[[], Any] | None = None,
        parent: Any = None,
        **traits: Any,
    ) -> None:
        super().__init__(parent=parent, **traits)
        self.panel = panel
        self._graph_source: GraphSource = graph if callable(graph) else (lambda: graph)
        self.pool = pool
        self._records = records
        self._records_for: Any = None if records is None else "given"
        self.model = model if model is not None else ProgressModel()
        self.on_barrier_cleared = on_barrier_cleared
        self._new_reader = reader if reader is not None else _new_reader
        self.staleness = staleness
        self._reader: tuple[Any, StatusReader] | None = None
        self._leases: tuple[Any, Any] | None = None
        self._barrier_reported: Any = None
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._at_exit: Callable[[], None] | None = None
        self._last_error = ""
        self.ticks = 0
        self.errors = 0
        panel.on_close(self.stop)
        _instances.add(self)

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> StatusPoller:
        """Start the thread (a no-op while it runs); return ``self``."""
        if self.running:
            return self
        self._stop = threading.Event()
        name = f"jugnb-status-poller-{id(self):x}"
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=name, daemon=True)
        self._at_exit = _stopper(weakref.ref(self))
        atexit.register(self._at_exit)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread (a no-op when stopped) and wait up to ``timeout`` seconds for it.

        Returns
        -------
        bool
            Whether the thread has ended (always ``True`` when called from the thread itself).
        """
        self._stop.set()
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            self._at_exit = None
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @classmethod
    def stop_all(cls, timeout: float = 5.0) -> None:
        """Stop every poller of this process (``%unload_ext jugnb``, tests)."""
        for poller in list(_instances):
            poller.stop(timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            view = self.tick()
            if view is not None and view.done:
                stop.set()
                self._final_display()
                break
            stop.wait(self.interval)

    # -- one update ------------------------------------------------------------------------------------

    def tick(self) -> ProgressView | None:
        """Read the store once and render; ``None`` (and the error shown in the panel) if that failed.

        Safe to call from any thread, also while the poller runs (e.g. the panel's refresh button).
        """
        with self._tick_lock:
            try:
                view = self._build()
            except Exception as err:  # never into the kernel: log it, show it, try again next tick
                self._report(err)
                return None
            try:
                self.panel.render(view)
            except Exception as err:
                self._report(err)
                return None
            self.ticks += 1
            self._last_error = ""
            return view

    def _final_display(self) -> None:
        # Saved notebooks and nbconvert keep the display's text/html: make it the final one.
        update = getattr(self.panel, "update_display", None)
        if update is not None:
            try:
                update()
            except Exception:
                self.log.debug("could not update the panel's display", exc_info=True)

    def refresh(self) -> None:
        """Read the store now (the refresh button); also redraws a frozen panel."""
        view = self.tick()
        if view is not None and getattr(self.panel, "frozen", False):
            self.panel.render(view, force=True)

    def _build(self) -> ProgressView:
        graph = self._graph_source()
        if graph is None:
            raise LookupError("no jugfile is loaded yet: run a %%jugfile cell.")
        # Whether the workers had all ended is taken before the store is read, so that a panel frozen as
        # final shows every result they wrote (taken after, a read from just before they ended could stick).
        pool_ended = self.pool is not None and self.pool.state == "after"
        snapshot = self._reader_for(graph).read()
        workers = self.pool.workers() if self.pool is not None else []
        records = self._record_log(graph)
        if records is not None:
            self.model.add_records(records.read_new(), [w.worker_id for w in workers])
        if self.pool is not None:
            self.model.add_pool_events(list(self.pool.events))
        self._leases_of(graph)
        barrier = _barrier_text(graph)
        done = self._done(snapshot, graph, bool(barrier), pool_ended)
        stale = self.staleness(graph, snapshot) if self.staleness is not None else None
        self.model.message = ""
        stopped = str(getattr(self.pool, "stopped", "") or "")
        return self.model.view(snapshot, workers, done=done, barrier=barrier, stale=stale, stopped=stopped)

    def _reader_for(self, graph: Any) -> StatusReader:
        """Return the reader of ``graph``; a new graph (a reloaded jugfile) gets a new one and an event."""
        if self._reader is not None and self._reader[0] is graph:
            return self._reader[1]
        if self._reader is not None:
            old = self._reader[0]
            self.model.add_event("reloaded", f"jugfile reloaded: {len(graph.tasks)} tasks")
            if getattr(old, "barrier", None) is not None and _barrier_text(graph) != _barrier_text(old):
                self.model.add_event("barrier", f"passed the {old.barrier.kind} in {old.barrier.where}")
        reader = self._new_reader(graph)
        self._reader = (graph, reader)
        return reader

    def _leases_of(self, graph: Any) -> None:
        """Read every worker's lease; release the locks of expired ones (the poller recovers too)."""
        leases = self._lease_store(graph)
        if leases is None:
            return
        try:
            lost = recover_expired(leases, _namer(graph))
            self.model.set_leases(leases.read_all() + leases.read_lost(), lost)
        except (StoreError, OSError) as err:
            self.log.debug("cannot read the workers' leases: %s", err)

    def _lease_store(self, graph: Any) -> Any:
        """Open the leases of ``graph``'s jugdir once per graph (``None``: a store without leases)."""
        if self._leases is not None and self._leases[0] is graph:
            return self._leases[1]
        jugdir = getattr(getattr(graph, "jugdir", None), "spec", None)
        store = None
        if jugdir:
            try:
                store = leases_of(jugdir, getattr(graph, "store", None))
            except StoreError as err:  # an in-memory dict_store shares no workers
                self.log.debug("cannot read the workers' leases: %s", err)
            except OSError as err:  # not remembered: the next tick tries again
                self.log.debug("cannot read the workers' leases: %s", err)
                return None
        self._leases = (graph, store)
        return store

    def _record_log(self, graph: Any) -> RecordLog | None:
        if self._records_for == "given":
            return self._records
        jugdir = getattr(getattr(graph, "jugdir", None), "spec", None)
        if jugdir != self._records_for:
            self._records_for = jugdir
            try:
                self._records = RecordLog.for_jugdir(jugdir) if jugdir else None
            except StoreError:  # an in-memory dict_store keeps no records
                self._records = None
        return self._records

    def _done(self, snapshot: StatusSnapshot, graph: Any, at_barrier: bool, pool_ended: bool) -> bool:
        complete = snapshot.all_complete
        if at_barrier and complete and self.on_barrier_cleared is not None:
            if self._barrier_reported is not graph:
                self._barrier_reported = graph
                self.on_barrier_cleared()
            return False  # the kernel reloads the jugfile: the tasks after the barrier come next
        if pool_ended:
            return True
        return complete and not at_barrier

    def _report(self, err: Exception) -> None:
        self.errors += 1
        line = f"Status update failed: {type(err).__name__}: {err} (retrying every {self.interval:g} s)"
        if line != self._last_error:
            self.log.warning("%s", line, exc_info=not isinstance(err, (LookupError, StoreError)))
            self._last_error = line
        self.model.message = line
        try:
            self.panel.show_message(line)
        except Exception:
            self.log.debug("the panel cannot show the error either", exc_info=True)


def _namer(graph: Any) -> Callable[[str], str]:
    """Task hash -> name for messages; the map is built only when a lost worker's locks are named."""
    names: dict[str, str] = {}

    def name(task_hash: str) -> str:
        if not names:
            names.update((t.hash().decode("ascii"), str(t.name)) for t in graph.tasks)
        return names.get(task_hash, task_hash[:12])

    return name


def _new_reader(graph: Any) -> StatusReader:
    return StatusReader.for_graph(graph)


def _barrier_text(graph: Any) -> str:
    stop = getattr(graph, "barrier", None)
    return "" if stop is None else f"{stop.kind} in {stop.where}"


def _stopper(ref: weakref.ref[StatusPoller]) -> Callable[[], None]:
    def stop_at_exit() -> None:
        poller = ref()
        if poller is not None:
            poller.stop(timeout=1.0)

    return stop_at_exit
