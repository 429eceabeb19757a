"""Widgets for notebooks: the live progress panel, its poller thread, and the task browser.

``jugnb.widgets`` is the core plus ipywidgets (never the magics). Names are imported on first use, so
``jugnb.widgets.viewmodel`` and ``jugnb.widgets.static`` (which need no ipywidgets) stay importable
without it.

- :class:`ProgressPanel` draws :class:`ProgressView` objects; :class:`StatusPoller` makes them in a thread;
  :func:`progress_panel` builds both for a graph and a worker pool and starts the poller.
- :class:`TaskBrowser` lists a graph's tasks and acts on one (value, invalidate, retry, traceback).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ProgressModel",
    "ProgressPanel",
    "ProgressView",
    "StatusPoller",
    "TaskBrowser",
    "progress_panel",
]

_WHERE = {
    "ProgressModel": "model",
    "ProgressView": "viewmodel",
    "ProgressPanel": "progress",
    "StatusPoller": "poller",
    "TaskBrowser": "browser",
    "progress_panel": "factory",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_WHERE[name]}", __name__)
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(__all__)
