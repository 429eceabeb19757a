"""The jobs section of the live panel: the batch jobs of the jugdir, with cancel and scale buttons.

A daemon thread reads the jobs at most every ``JobWatcher.poll_interval`` seconds (one batched ``squeue``)
and only sets traits; button actions run in short-lived threads, as in the progress panel.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..launchers.jobs import JobRow, jobs_html
from ._subshell import route_to_subshell

__all__ = ["JobsPanel"]

log = logging.getLogger(__name__)


class JobsPanel(widgets.VBox):
    """A table of jobs plus "cancel all" and "scale to N" buttons.

    Parameters
    ----------
    read : callable
        Returns the current :class:`~jugnb.launchers.jobs.JobRow` list (may query the batch system).
    on_cancel : callable
        Cancels every unfinished job; returns a line to show.
    on_scale : callable
        ``on_scale(n)`` keeps ``n`` array tasks pending or running; returns a line to show.
    interval : float
        Seconds between two reads by the panel's thread.
    """

    def __init__(
        self,
        read: Callable[[], list[JobRow]],
        *,
        on_cancel: Callable[[], str],
        on_scale: Callable[[int], str],
        interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        self.table = widgets.HTML(jobs_html([]))
        self.cancel_button = widgets.Button(description="cancel jobs", button_style="danger")
        self.scale_to = widgets.BoundedIntText(value=1, min=0, max=10_000, description="array tasks")
        self.scale_button = widgets.Button(description="scale")
        self.message = widgets.HTML("")
        buttons = widgets.HBox([self.cancel_button, self.scale_to, self.scale_button])
        super().__init__(children=[widgets.HTML("<b>jobs</b>"), self.table, buttons, self.message], **kwargs)
        self.add_class("jugnb-jobs-panel")
        self._read, self._interval = read, interval
        self._actions: dict[str, Callable[[], str]] = {
            "cancel": on_cancel,
            "scale": lambda: on_scale(self.scale_to.value),
        }
        self.cancel_button.on_click(lambda _b: self.click("cancel"))
        self.scale_button.on_click(lambda _b: self.click("scale"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        route_to_subshell([self.cancel_button, self.scale_button])

    def refresh(self) -> list[JobRow]:
        """Read the jobs now and show them; a failed read is shown as a message."""
        try:
            rows = self._read()
        except Exception as err:  # the batch system is down: say so, keep the last table
            self.message.value = f"<i>{html.escape(f'reading the jobs failed: {err}')}</i>"
            return []
        self.table.value = jobs_html(rows)
        return rows

    def start(self) -> JobsPanel:
        """Start the reading thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="jugnb-jobs-poller", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the reading thread; whether it ended within ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._interval)

    def click(self, name: str) -> threading.Thread:
        """Run button ``name``'s action (``"cancel"`` or ``"scale"``) in a thread, then refresh the table."""
        thread = threading.Thread(target=self._act, args=(name,), name=f"jugnb-jobs-{name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _act(self, name: str) -> None:
        try:
            text = self._actions[name]()
        except Exception as err:  # a failed action must not kill anything: say so in the panel
            log.warning("jobs %s failed", name, exc_info=True)
            text = f"{name} failed: {err}"
        self.message.value = f"<i>{html.escape(text)}</i>" if text else ""
        self.refresh()

    def close(self) -> None:
        """Stop the thread, then close the widgets."""
        self.stop()
        for child in (*self.children, *self.children[2].children):
            child.close()
        super().close()
