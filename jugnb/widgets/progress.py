"""The live progress panel: one stacked bar per task name, workers, recent events and control buttons.

:class:`ProgressPanel` composes built-in widgets only (``VBox``/``HBox``, ``IntProgress`` segments with
``bar_style``, ``HTML``, ``Button``, ``Accordion``); no JavaScript. It draws
:class:`~jugnb.widgets.viewmodel.ProgressView` objects and nothing else: :meth:`ProgressPanel.render`
only sets traits, each changed widget's traits going out as one message (``hold_sync``). The
:class:`~jugnb.widgets.poller.StatusPoller` calls it from its thread; the buttons call injected plain
callables, so the panel is testable without workers.

Where widgets cannot render (terminal IPython, nbconvert, a frontend without the widget manager), the
panel's ``text/plain`` and ``text/html`` renderings of the same view are in its mime bundle
(:mod:`jugnb.widgets.static`), never ``VBox(children=...)``.
"""

from __future__ import annotations

import contextlib
import html
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets
from traitlets import observe

from ..status.labels import display_name
from ..status.render import relative_store
from ._subshell import route_to_subshell
from .events import EventList
from .palette import legend_html
from .rows import TaskRowWidget
from .static import view_html, view_text
from .viewmodel import ProgressView, format_duration
from .workers import WorkerPanel

__all__ = ["ProgressPanel"]

log = logging.getLogger(__name__)
Action = Callable[[], Any]
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class ProgressPanel(widgets.VBox):
    """Live progress of a jug graph: rows per task name, total, workers, events, buttons.

    Parameters
    ----------
    on_drain, on_stop_now, on_retry_failed, on_refresh : callable, optional
        Called without arguments when the button is clicked, in a short-lived thread (so a slow
        ``stop(now=True)`` never blocks the kernel); a button without a callback is disabled.
    title : str
        Heading, e.g. the notebook's module name.

    Notes
    -----
    ``render`` may be called from any thread. After a view with ``done`` set, the panel is frozen: later
    views are ignored (``render(view, force=True)`` overrides) and only "retry failed" and "refresh"
    stay enabled.
    """

    def __init__(
        self,
        *,
        on_drain: Action | None = None,
        on_stop_now: Action | None = None,
        on_retry_failed: Action | None = None,
        on_refresh: Action | None = None,
        title: str = "jug",
        **kwargs: Any,
    ) -> None:
        self.title = title
        self.header = widgets.HTML(f"<b>{html.escape(title)}</b>: waiting for the first status read…")
        self.legend = widgets.HTML(legend_html())
        self.rows_box = widgets.VBox()
        self.total_row = TaskRowWidget()
        self.workers = WorkerPanel()
        self.events = EventList()
        self.summary = widgets.HTML("")
        self.message = widgets.HTML("")
        self.actions = {
            "drain": on_drain,
            "stop_now": on_stop_now,
            "retry_failed": on_retry_failed,
            "refresh": on_refresh,
        }
        self.buttons = _buttons(self.actions)
        for name, button in self.buttons.items():
            button.on_click(lambda _b, name=name: self.click(name))
        self.total_row.failed.on_click(lambda _b: self.show_failure(None))
        children = [
            self.header,
            self.legend,
            self.rows_box,
            self.total_row,
            self.workers,
            self.events,
            widgets.HBox(list(self.buttons.values())),
            self.summary,
            self.message,
        ]
        super().__init__(children=children, **kwargs)
        self.add_class("jugnb-progress-panel")  # a handle for browser tests and user CSS
        self.view: ProgressView | None = None
        self.frozen = False
        self._render_lock = threading.RLock()
        self._close_callbacks: list[Callable[[], Any]] = []
        self._action_threads: list[threading.Thread] = []
        self.routed = route_to_subshell([*self.buttons.values(), self.events.accordion])

    # -- drawing ---------------------------------------------------------------------------------------

    def render(self, view: ProgressView, *, force: bool = False) -> None:
        """Show ``view``: only sets traits, one message per changed widget.

        Parameters
        ----------
        view : ProgressView
        force : bool
            Draw even though the panel is frozen.
        """
        with self._render_lock:
            if self.frozen and not force:
                return
            self._ensure_rows(len(view.rows))
            drawn = [self.header, self.summary, self.message, self.events, *self.buttons.values()]
            final = view.done or bool(self.frozen)
            with _held(drawn):
                self.header.value = _header(self.title, view)
                for widget, row in zip(self.rows_box.children, view.rows, strict=True):
                    widget.render(row, self.title, final=final)
                self.total_row.render(view.total, self.title, final=final, barrier=view.barrier)
                self.workers.render(view.workers)
                self.events.render(view.events)
                self.summary.value = f"<b>{html.escape(view.summary)}</b>" if view.done else ""
                self.message.value = f"<i>{html.escape(view.message)}</i>" if view.message else ""
                self._enable_buttons(view)
            self.view = view
            self.frozen = view.done

    def _ensure_rows(self, n: int) -> None:
        rows = list(self.rows_box.children)
        if len(rows) != n:
            new = [TaskRowWidget() for _ in range(n - len(rows))]
            for widget in new:
                widget.failed.on_click(lambda _b, w=widget: self.show_failure(w.row.name if w.row else None))
            self.rows_box.children = (rows + new)[:n]

    def show_failure(self, name: str | None) -> bool:
        """Open the latest failure event of task name ``name`` (any name: ``None``): its traceback.

        Returns
        -------
        bool
            Whether there was one to open.
        """
        events = self.events.events
        names = () if name is None else (name, display_name(name, self.title), display_name(name))
        for i in range(len(events) - 1, -1, -1):
            e = events[i]
            if e.kind in ("failed", "killed") and (not names or any(n in e.title for n in names)):
                self.events.accordion.selected_index = i
                return True
        self.show_message("No traceback of that failure in this panel: see `%jug status` or the browser.")
        return False

    def _enable_buttons(self, view: ProgressView) -> None:
        for name, button in self.buttons.items():
            usable = self.actions[name] is not None
            if name in ("drain", "stop_now"):
                usable = usable and not view.done
            elif name == "retry_failed":
                usable = usable and view.total.failed > 0
            button.disabled = not usable

    def show_message(self, text: str) -> None:
        """Show one line under the panel (e.g. the poller's last error); ``""`` clears it."""
        with self._render_lock:
            self.message.value = f"<i>{html.escape(text)}</i>" if text else ""

    # -- buttons -----------------------------------------------------------------------------------------

    def click(self, name: str) -> threading.Thread | None:
        """Run the action of button ``name`` in a thread (what a click does); return the thread.

        Raises
        ------
        KeyError
            For an unknown button name.
        """
        action = self.actions[name]
        if action is None:
            return None
        button = self.buttons[name]
        button.disabled = True
        thread = threading.Thread(
            target=self._run_action, args=(name, action), name=f"jugnb-{name}", daemon=True
        )
        self._action_threads = [t for t in self._action_threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _run_action(self, name: str, action: Action) -> None:
        label = self.buttons[name].description
        try:
            action()
        except Exception as err:  # a failed action must not kill anything: say so in the panel
            log.warning("%s failed", label, exc_info=True)
            self.show_message(f"{label} failed: {type(err).__name__}: {err}")
        finally:
            with self._render_lock:
                if self.view is not None:
                    self._enable_buttons(self.view)
                else:
                    self.buttons[name].disabled = False

    def wait_for_actions(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` seconds for clicked actions to finish; whether they all did."""
        for thread in list(self._action_threads):
            thread.join(timeout)
        return not any(t.is_alive() for t in self._action_threads)

    # -- closing and display -----------------------------------------------------------------------------

    def on_close(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` once when the panel is closed (``close()``, or by the frontend)."""
        self._close_callbacks.append(callback)

    def close(self) -> None:
        """Close the panel and its children; the close callbacks (e.g. the poller's stop) run first."""
        self._closed()
        for child in _descendants(self):
            child.close()
        super().close()

    def _closed(self, *_: Any) -> None:
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.warning("a close callback of the progress panel failed", exc_info=True)

    @observe("comm")
    def _watch_comm(self, change: dict[str, Any]) -> None:
        comm = change["new"]
        if comm is not None and hasattr(comm, "on_close"):
            comm.on_close(self._closed)  # the frontend closed the model

    def display(self) -> ProgressPanel:
        """Display the panel in the kernel with a display id, so :meth:`update_display` can refresh it."""
        from IPython.display import display  # only ever called in a kernel

        self.display_handle = display(self, display_id=True)
        if getattr(self.comm, "kernel", None) is not None:
            self.fallback_handle = display(self._fallback(), raw=True, display_id=True)
        return self

    def update_display(self) -> None:
        """Re-send the panel's display (its text/html fallback changes; the widget view stays the same)."""
        handle = getattr(self, "display_handle", None)
        # Without a kernel (terminal IPython) an update would print the whole panel again, from any thread.
        if handle is not None and getattr(self.comm, "kernel", None) is not None:
            handle.update(self)
            fallback = getattr(self, "fallback_handle", None)
            if fallback is not None:
                fallback.update(self._fallback(), raw=True)

    def _fallback(self) -> dict[str, str]:
        """Return the static panel as an output of its own, hidden by CSS where the widget rendered.

        A frontend that has widget state for the panel (JupyterLab, ``nbconvert --execute --to html``)
        shows the widget view and ignores the panel's own ``text/html``; where the widget cannot render
        after all (an exported HTML file opened offline, without the widget manager's script), this output
        shows instead. It has no ``text/plain``, so terminals do not print it.
        """
        return {
            "text/html": _FALLBACK_STYLE
            + f'<div class="jugnb-static-fallback">{view_html(self.view, saved=True)}</div>'
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        data = dict(super()._repr_mimebundle_(**kwargs) or {})
        if getattr(self.comm, "kernel", None) is None:
            data.pop(_WIDGET_VIEW, None)  # no widget manager can draw it: terminal IPython, plain Python
        # What notebooks save and terminals print: nothing that changes between runs (see widgets.static).
        data["text/plain"] = view_text(self.view, saved=True)
        data["text/html"] = view_html(self.view, saved=True)
        return data


# Hide the fallback in a cell (JupyterLab, classic notebook, nbconvert's lab and classic templates) whose
# panel widget rendered: the widget's DOM carries the class "jugnb-progress-panel".
_FALLBACK_STYLE = (
    "<style>:is(.jp-Cell, .cell):has(.jugnb-progress-panel) .jugnb-static-fallback{display:none}</style>"
)


def _header(title: str, view: ProgressView) -> str:
    state = "final" if view.done else "live"
    bits = [f"<b>{html.escape(title)}</b> ({state})", html.escape(relative_store(view.store))]
    if view.elapsed is not None:
        bits.append(f"elapsed {format_duration(view.elapsed)}")
    if view.barrier:
        bits.append(f"jugfile stops at {html.escape(view.barrier)}")
    return " · ".join(bits)


def _buttons(actions: dict[str, Action | None]) -> dict[str, widgets.Button]:
    specs = {
        "drain": ("Drain", "pause", "", "Each worker finishes its current task, then exits."),
        "stop_now": ("Stop now", "stop", "danger", "Terminate the workers now; their locks are released."),
        "retry_failed": (
            "Retry failed",
            "redo",
            "warning",
            "Remove the failed tasks' locks so they run again.",
        ),
        "refresh": ("Refresh", "refresh", "", "Read the store now."),
    }
    return {
        name: widgets.Button(
            description=label, icon=icon, button_style=style, tooltip=tip, disabled=actions[name] is None
        )
        for name, (label, icon, style, tip) in specs.items()
    }


@contextlib.contextmanager
def _held(items: list[widgets.Widget]) -> Iterator[None]:
    """Hold the sync of several widgets: each sends its changed traits as one message at the end."""
    with contextlib.ExitStack() as stack:
        for item in items:
            stack.enter_context(item.hold_sync())
        yield


def _descendants(widget: widgets.Widget) -> list[widgets.Widget]:
    found: list[widgets.Widget] = []
    for child in getattr(widget, "children", ()):
        found += [child, *_descendants(child)]
    return found
