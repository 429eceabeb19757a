"""The task browser: find tasks by name, state and arguments, then look at or act on one.

:class:`TaskBrowser` replaces ``jug shell`` for everyday questions: list a graph's tasks (state, task, one
column per argument, duration; each state in its colour), filter them by the full text of their arguments,
preview one's value with the object's own rich repr,
assign it to a notebook variable, invalidate it and everything downstream (after showing how many results
would go), retry a failed task, show its traceback and output tail, or run it in the kernel.

Clicks are handled on jugnb's kernel subshell where the kernel has one (:mod:`jugnb.widgets._subshell`),
so the browser works while another cell runs; "Run in kernel" is the exception: it stays on the main
thread, where an exception reaches ``%debug``.
"""

from __future__ import annotations

import html
import keyword
import threading
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from traitlets import Int

from ..errors import JugnbError, StoreError
from ..session import tasks as task_ops
from ..session.unloadable import load_by_hash
from ..status.labels import GraphLabels, display_name
from ..status.reader import STATES, StatusReader
from ..status.records import RecordLog
from ..status.tracebacks import plain, traceback_parts
from ._subshell import route_to_subshell
from .browsing import (
    TaskEntry,
    details_html,
    fallback_text,
    list_entries,
    listing_style,
    listing_table,
    nbsp,
    result_size,
    task_names,
)
from .palette import legend_html
from .viewmodel import format_bytes

__all__ = ["TaskBrowser"]

_STATE_ORDER = ("complete", "active", "lost", "ready", "waiting", "failed")


_FALLBACK_ROWS = 12  # tasks listed where the browser cannot be drawn (a summary, not the browser)
_ACTIONS = ("value", "assign", "invalidate", "retry", "traceback", "run")  # need a selected task
_CHANGED = (
    "The graph changed since this question (a %%jugfile cell ran again, or the browser was refreshed): "
    "nothing was done. Select the task again to act on the current graph."
)
_instances = iter(range(1, 1 << 62))


class TaskBrowser(widgets.VBox):
    """Browse a graph's tasks and act on one.

    Parameters
    ----------
    graph : LoadedGraph or callable
        The graph (``tasks``, ``store``, optionally ``jugdir``), or a callable returning the current one.
    namespace : dict, optional
        Where "Assign" puts values (the notebook's ``user_ns``); without it the button is disabled.
    run_in_kernel : callable, optional
        ``run_in_kernel(task)`` runs one task in the kernel (e.g. ``%jug run``); without it the button is
        disabled. It is called on the kernel's main thread, inside the browser's output area.
    records : RecordLog, optional
        Task records; by default opened from ``graph.jugdir``.
    max_preview_bytes : int
        Results larger than this (bytes on disk) ask before loading.
    page_size : int
        Tasks listed per page.
    """

    max_preview_bytes = Int(50 * 2**20, help="Bytes above which a result asks before it is loaded.")
    page_size = Int(50, help="Tasks listed per page.")
    row_chars = Int(76, help="Characters per listed row at most (the rows fit an 800 px window).")

    def __init__(
        self,
        graph: Any,
        *,
        namespace: dict[str, Any] | None = None,
        run_in_kernel: Callable[[Any], Any] | None = None,
        records: RecordLog | None = None,
        **kwargs: Any,
    ) -> None:
        self._source: Callable[[], Any] = graph if callable(graph) else (lambda: graph)
        self.namespace, self.run_in_kernel, self._records = namespace, run_in_kernel, records
        self._class = f"jugnb-tb-{next(_instances)}"  # scopes this browser's row colours
        self._build_controls()
        super().__init__(children=self._layout(), **kwargs)
        self.add_class("jugnb-task-browser")  # a handle for browser tests and user CSS
        self.add_class(self._class)
        self._graph: Any = None
        self._reader: StatusReader | None = None
        self._labels: GraphLabels | None = None
        self._asked_graph: Any = None
        self.entries: list[TaskEntry] = []
        self.page = 0
        self.selected: TaskEntry | None = None
        self._confirm: Callable[[], Any] | None = None
        self._lock = threading.RLock()
        self.refresh()
        self._enable(None)
        for control in (self.name_filter, self.state_filter, self.text_filter):
            control.observe(lambda _c: self.show_page(0, relist=True), names="value")
        self.listing.observe(lambda c: self.select(c["new"]), names="value")
        interactive = [
            self.name_filter,
            self.state_filter,
            self.text_filter,
            self.listing,
            self.variable,
            *self.buttons.values(),
            self.yes,
            self.no,
            self.previous,
            self.next,
        ]
        self.routed = route_to_subshell(interactive)  # not "run": its exceptions must reach %debug

    # -- layout ------------------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        narrow = {"description_width": "initial"}
        self.name_filter = widgets.Dropdown(
            description="Task", options=[("All task names", None)], style=narrow,
            layout=widgets.Layout(width="auto", max_width="22em"),
        )  # fmt: skip
        states = [("Any state", None), *((s, s) for s in sorted(STATES, key=_STATE_ORDER.index))]
        self.state_filter = widgets.Dropdown(
            description="State", options=states, style=narrow, layout=widgets.Layout(width="12em")
        )
        self.text_filter = widgets.Text(
            description="Arguments", placeholder="e.g. 0.03 or gamma", continuous_update=False,
            style=narrow, layout=widgets.Layout(width="18em"),
        )  # fmt: skip
        self.style_html = widgets.HTML(layout=widgets.Layout(display="none"))
        self.listing_head = widgets.HTML()
        self.listing_head.add_class("jugnb-listing-head")
        # Full width less the widget margins (2 px each side), or the box would scroll sideways.
        self.listing = widgets.Select(options=[], rows=12, layout=widgets.Layout(width="calc(100% - 4px)"))
        self.listing.add_class("jugnb-listing")
        self.legend = widgets.HTML(legend_html())
        self.previous, self.next = (
            widgets.Button(description="◀", disabled=True),
            widgets.Button(description="▶"),
        )
        self.page_label = widgets.HTML()
        self.details = widgets.HTML("<i>Select a task.</i>")
        self.variable = widgets.Text(placeholder="variable name", layout=widgets.Layout(width="12em"))
        specs = {"refresh": ("Refresh", ""), "value": ("Show value", "info"), "assign": ("Assign", ""),
                 "invalidate": ("Invalidate…", "danger"), "retry": ("Retry", "warning"),
                 "traceback": ("Traceback", ""), "run": ("Run in kernel", "")}  # fmt: skip
        self.buttons = {k: widgets.Button(description=d, button_style=s) for k, (d, s) in specs.items()}
        self.question = widgets.HTML()
        self.yes = widgets.Button(description="Yes", button_style="danger")
        self.no = widgets.Button(description="Cancel")
        self.confirm_box = widgets.HBox(
            [self.question, self.yes, self.no], layout=widgets.Layout(display="none")
        )
        # A large value preview scrolls inside its own box instead of stretching the notebook.
        self.output = widgets.Output(layout=widgets.Layout(max_height="24em", overflow="auto"))
        self.output.add_class("jugnb-preview")
        self.message = widgets.HTML()
        actions = {"refresh": self.refresh, "value": self.show_value, "assign": self.assign,
                   "invalidate": self.invalidate, "retry": self.retry, "traceback": self.show_traceback,
                   "run": self.run}  # fmt: skip
        for name, action in actions.items():
            self.buttons[name].on_click(lambda _b, action=action: self._safely(action))
        self.yes.on_click(lambda _b: self._safely(self._confirmed))
        self.no.on_click(lambda _b: self._ask(None))
        self.previous.on_click(lambda _b: self.show_page(self.page - 1))
        self.next.on_click(lambda _b: self.show_page(self.page + 1))

    def _layout(self) -> list[widgets.Widget]:
        b = self.buttons
        wrap = widgets.Layout(flex_flow="row wrap", align_items="center")  # wraps instead of scrolling
        filters = widgets.HBox(
            [self.name_filter, self.state_filter, self.text_filter, b["refresh"]], layout=wrap
        )
        pager = widgets.HBox([self.previous, self.page_label, self.next, self.legend], layout=wrap)
        actions = widgets.HBox([b["value"], self.variable, b["assign"], b["invalidate"], b["retry"],
                                b["traceback"], b["run"]], layout=wrap)  # fmt: skip
        return [
            self.style_html,
            filters,
            self.listing_head,
            self.listing,
            pager,
            self.details,
            actions,
            self.confirm_box,
            self.message,
            self.output,
        ]

    # -- listing -----------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the states and records again and re-list (the graph may have been reloaded)."""
        with self._lock:
            graph = self._source()
            if graph is None:
                self._say("No jugfile is loaded yet: run a %%jugfile cell.")
                return
            if graph is not self._graph:
                self._graph, self._reader = graph, StatusReader.for_graph(graph)
                module = self._module()  # one pass over the tasks serves the labels and the name filter
                self._labels = GraphLabels(graph.tasks, module)
                names = [(f"{shown} ({c})", n) for n, shown, c in task_names(graph.tasks, module)]
                self.name_filter.options = [("All task names", None), *names]
                if self.selected is not None:  # a task of the old graph: forget it and what was said
                    self.selected = None
                    self._say("")
            self.show_page(self.page, relist=True)

    def _module(self) -> str | None:
        """Name the jugfile's module (its prefix is shown once, not on every row)."""
        names = {t.name.rpartition(".")[0] for t in getattr(self._graph, "tasks", ())}
        modules = [n for n in names if n and not n.startswith("jug.") and n != "builtins"]
        return modules[0] if len(modules) == 1 else None

    def _latest(self) -> dict[str, Any]:
        if self._records is None:
            spec = getattr(getattr(self._graph, "jugdir", None), "spec", None)
            try:
                self._records = RecordLog.for_jugdir(spec) if spec else None
            except StoreError:  # dict_store: no records
                return {}
        return self._records.latest_by_hash() if self._records is not None else {}

    def show_page(self, page: int, *, relist: bool = False) -> None:
        """Show page ``page`` (0-based); ``relist`` re-reads the states and re-applies the filters."""
        with self._lock:
            if self._graph is None or self._reader is None or self._labels is None:
                return
            if relist:
                snapshot = self._reader.read()
                self.entries = list_entries(
                    self._labels, snapshot, self._latest(), name=self.name_filter.value,
                    state=self.state_filter.value, text=self.text_filter.value,
                )  # fmt: skip
            pages = max(1, -(-len(self.entries) // self.page_size))
            self.page = min(max(0, page), pages - 1)
            shown = self.entries[self.page * self.page_size : (self.page + 1) * self.page_size]
            header, rows = listing_table(shown, self.row_chars)
            with self.listing.hold_sync():
                self.listing.options = [(nbsp(r), e.index) for r, e in zip(rows, shown, strict=True)]
                self.listing.value = self._entry().index if self._shows_selected(shown) else None
            self.listing_head.value = f"<div>{html.escape(nbsp(header))}</div>"
            self.style_html.value = listing_style(self._class, [e.state for e in shown])
            first = self.page * self.page_size
            self.page_label.value = (f" {first + 1}–{first + len(shown)} of {len(self.entries)} tasks "
                                     if shown else " no task matches ")  # fmt: skip
            self.previous.disabled, self.next.disabled = self.page == 0, self.page >= pages - 1
            if self.selected is not None:
                self.select(self.selected.index)

    def _shows_selected(self, shown: list[TaskEntry]) -> bool:
        return self.selected is not None and any(e.index == self.selected.index for e in shown)

    def select(self, index: int | None) -> None:
        """Show the details of the task at ``index`` in the graph (``None``: nothing selected)."""
        with self._lock:
            entry = next((e for e in self.entries if e.index == index), None)
            if entry is not None and (self.selected is None or entry.index != self.selected.index):
                self._say("")  # another task chosen: what was said was about the one before
                self.output.outputs = ()
            self.selected = entry
            self._ask(None)
            self.details.value = details_html(entry) if entry is not None else "<i>Select a task.</i>"
            self._enable(entry)

    def _enable(self, entry: TaskEntry | None) -> None:
        b = self.buttons
        if entry is None:
            for name in _ACTIONS:
                b[name].disabled = True
            self.variable.disabled = True
            return
        self.variable.disabled = self.namespace is None
        b["value"].disabled = entry.state != "complete"
        b["assign"].disabled = b["value"].disabled or self.namespace is None
        b["invalidate"].disabled = False
        b["retry"].disabled = entry.state != "failed"
        b["traceback"].disabled = entry.record_status in (None, "ok")
        b["run"].disabled = self.run_in_kernel is None

    # -- actions -----------------------------------------------------------------------------------------

    def _entry(self) -> TaskEntry:
        if self.selected is None:
            raise JugnbError("Select a task first.")
        return self.selected

    def _task(self) -> Any:
        return self._graph.tasks[self._entry().index]

    def show_value(self, force: bool = False) -> None:
        """Display the selected task's value in the output area (asks first when it is large)."""
        if self._too_big(force, lambda: self.show_value(force=True)):
            return
        value = self._load()
        self.output.outputs = ()  # not clear_output(): that enters `with output:`
        self.output.append_display_data(value)
        self._say(f"Value of {self._entry().label} ({type(value).__name__}).")

    def assign(self, force: bool = False) -> None:
        """Load the selected task's value into ``namespace[<variable name>]``.

        Raises
        ------
        JugnbError
            If the variable name is not a Python identifier.
        """
        name = self.variable.value.strip()
        if not name.isidentifier() or keyword.iskeyword(name):
            raise JugnbError(f"`{name}` is not a valid variable name: use letters, digits and underscores.")
        if self.namespace is None or self._too_big(force, lambda: self.assign(force=True)):
            return
        value = self._load()
        self.namespace[name] = value
        self._say(f"Assigned the value of {self._entry().label} to `{name}` ({type(value).__name__}).")

    def _load(self) -> Any:
        # A result that exists but cannot be loaded is named with its hash, location and fix (no traceback).
        entry, graph = self._entry(), self._graph
        return load_by_hash(graph.store, graph.jugdir, entry.name, entry.hash)

    def _too_big(self, force: bool, again: Callable[[], Any]) -> bool:
        self._task()
        size = result_size(self._graph.store, self._entry().hash)
        if force or size is None or size <= self.max_preview_bytes:
            return False
        self._ask(f"The result takes {format_bytes(size)} on disk (compressed); load it?", again)
        return True

    def invalidate(self) -> None:
        """Show how many results an invalidate would remove and ask; on "Yes" remove them."""
        task, graph, label = self._task(), self._graph, self._entry().label
        removal = task_ops.invalidate(graph.store, graph.tasks, [task], dry_run=True)
        if removal.total == 0:
            self._say(f"{label} and the tasks after it have no results: nothing to invalidate.")
            return
        per_name = ", ".join(f"{display_name(n)} ×{c}" for n, c in sorted(removal.results.items()))
        self._ask(f"Invalidate {html.escape(label)}? This removes {removal.total} results "
                  f"(downstream included: {html.escape(per_name)}).", self._invalidate_now)  # fmt: skip

    def _invalidate_now(self) -> None:
        graph = self._graph
        removal = task_ops.invalidate(graph.store, graph.tasks, [self._task()])
        self._say(f"Invalidated {removal.total} results.")
        self.refresh()

    def retry(self) -> None:
        """Remove the selected failed task's lock so that a worker runs it again."""
        self._task()
        label = self._entry().label
        if self._entry().state != "failed":
            self._say(f"{label} is not failed.")
            return
        task_ops.retry_failed(self._graph, [self._entry().hash])
        self._say(f"{label} will run again at the next `%jug execute` (or now, if workers are running).")
        self.refresh()

    def show_traceback(self) -> None:
        """Show the selected task's latest failure: traceback and the tail of its output."""
        self._task()
        record = self._latest().get(self._entry().hash)
        self.output.outputs = ()  # not clear_output(): that enters `with output:`
        if record is not None and record.status == "crashed":  # its batch job ended: no traceback
            self._say(f"crashed on {record.host}: {record.exc_message}")
            return
        if record is None or not record.failed:
            self._say("No failure recorded for this task.")
            return
        text = f"{record.status} on {record.worker}@{record.host} (pid {record.pid})\n"
        text += plain(traceback_parts(record))
        if record.output_tail:
            text += f"\n--- output (last lines) ---\n{record.output_tail}"
        self.output.append_stdout(text.rstrip("\n") + "\n")

    def run(self) -> None:
        """Call ``run_in_kernel(task)``: inside the output area on the main thread (so ``%debug`` works)."""
        task = self._task()
        if self.run_in_kernel is None:
            return
        if threading.current_thread() is threading.main_thread():
            with self.output:  # a main-thread click: shows the traceback here and sets sys.last_traceback
                self.run_in_kernel(task)
        else:
            self.run_in_kernel(task)

    # -- questions and messages --------------------------------------------------------------------------

    def _ask(self, question: str | None, then: Callable[[], Any] | None = None) -> None:
        self._confirm = then
        self._asked_graph = self._graph if question else None
        self.question.value = question or ""
        self.confirm_box.layout.display = None if question else "none"

    def _confirmed(self) -> None:
        then, asked = self._confirm, self._asked_graph
        self._ask(None)
        if then is None:
            return
        if asked is not self._source() or asked is not self._graph:
            self.refresh()
            self._say(_CHANGED, error=True)  # e.g. "Invalidate 4 results" counted on an older graph
            return
        then()

    def _safely(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except JugnbError as err:
            self._say(str(err), error=True)
        except Exception as err:  # a click must never raise into the kernel: say what went wrong
            self._say(f"{type(err).__name__}: {err}", error=True)
            self.output.append_stdout(traceback.format_exc())

    def _say(self, text: str, error: bool = False) -> None:
        self.message.value = (
            f'<span style="color:#c62828">{html.escape(text)}</span>' if error else html.escape(text)
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        # Where no widget manager draws the browser (terminal IPython, nbconvert, a saved notebook), show
        # the listing it holds as text and HTML instead of `TaskBrowser(children=...)`.
        data = dict(super()._repr_mimebundle_(**kwargs) or {})
        if getattr(self.comm, "kernel", None) is None:
            data.pop("application/vnd.jupyter.widget-view+json", None)
        data.update(fallback_text(self.entries, _FALLBACK_ROWS))
        return data
