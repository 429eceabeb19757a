"""The worker table of the progress panel: pid, host, current task, running for, memory, alive or dead.

Rows come from :class:`~jugnb.widgets.viewmodel.WorkerRow` objects: this kernel's workers (from
``WorkerPool.workers()``) and workers of other kernels or hosts sharing the jugdir (seen in their task
records; their current task and memory cannot be known from here, so the table shows their last record).
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets

from .static import workers_html
from .viewmodel import WorkerRow

__all__ = ["WorkerPanel"]


class WorkerPanel(widgets.VBox):
    """Worker table (an ``HTML`` widget holding a ``<table>``), redrawn only when a row changes.

    Attributes
    ----------
    table : ipywidgets.HTML
        The table; its ``value`` is what tests read.
    """

    def __init__(self, **kwargs: object) -> None:
        self.table = widgets.HTML(workers_html(()))
        super().__init__(children=[self.table], **kwargs)
        self._rows: tuple[WorkerRow, ...] = ()

    def render(self, rows: Sequence[WorkerRow]) -> None:
        """Show ``rows`` (setting an equal value sends nothing to the frontend)."""
        self._rows = tuple(rows)
        self.table.value = workers_html(self._rows)

    @property
    def rows(self) -> tuple[WorkerRow, ...]:
        """Rows shown now."""
        return self._rows
