"""One row of the progress panel: a task name, its stacked state bar, counts, rate and ETA, failed button.

:class:`TaskBar` draws the stacked bar from ``IntProgress`` segments, one per state, in the palette's
colours; :class:`TaskRowWidget` lays a row out in fixed ``em`` columns so that rows line up from 800 to
1600 px. Both only set traits from a :class:`~jugnb.widgets.viewmodel.TaskRow`.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..status.labels import display_name
from .palette import STATE_COLOURS
from .static import BAR_STATES
from .viewmodel import TaskRow, counts_text, eta_text

__all__ = ["TaskBar", "TaskRowWidget"]

# Per-mille resolution of the bar segments; a nonzero count always gets at least 1 % of the bar.
_PER_MILLE, _MIN_SEGMENT = 1000, 10


class TaskBar(widgets.HBox):
    """A stacked bar: one full ``IntProgress`` per state, its width proportional to the state's count.

    Attributes
    ----------
    segments : dict of str to ipywidgets.IntProgress
        By state, each a full bar in its colour of :data:`jugnb.widgets.palette.STATE_COLOURS`.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.segments = {
            state: widgets.IntProgress(
                value=1,
                max=1,
                style={"bar_color": STATE_COLOURS[state]},
                layout=widgets.Layout(width="0%", margin="0", display="none"),
            )
            for state, *_ in BAR_STATES
        }
        layout = kwargs.pop("layout", widgets.Layout(flex="1 1 6em", min_width="5em"))
        super().__init__(children=list(self.segments.values()), layout=layout, **kwargs)

    def render(self, row: TaskRow) -> None:
        """Size the segments for ``row``."""
        for (state, _, _, _), share in zip(BAR_STATES, _shares(row), strict=True):
            bar = self.segments[state]
            with bar.hold_sync(), bar.layout.hold_sync():
                bar.layout.width = f"{share / 10:.1f}%"
                bar.layout.display = None if share else "none"
                bar.tooltip = f"{state}: {getattr(row, state)}"

    def widths(self) -> dict[str, float]:
        """Width of each shown segment in percent of the bar (for tests)."""
        return {
            state: float(bar.layout.width.rstrip("%"))
            for state, bar in self.segments.items()
            if bar.layout.display != "none"
        }


def _shares(row: TaskRow) -> list[int]:
    """Per-mille of the bar per state: proportional, at least ``_MIN_SEGMENT`` for a nonzero count."""
    counts = [getattr(row, state) for state, *_ in BAR_STATES]
    total = sum(counts)
    if total == 0:
        return [0, 0, 0, _PER_MILLE, 0]
    shares = [max(_MIN_SEGMENT, round(c * _PER_MILLE / total)) if c else 0 for c in counts]
    biggest = counts.index(max(counts))
    shares[biggest] += _PER_MILLE - sum(shares)
    return shares


class TaskRowWidget(widgets.HBox):
    """One row: task name, stacked bar, counts, a red "N failed" button, tasks per minute and ETA.

    The columns have flexible widths in ``em``, never percentages, so that nothing overlaps: at 800 px
    the bar and the counts shrink (a long name or count wraps inside its column), wider screens give the
    room to the bar; only a row with failures may wrap its rate and ETA onto a second line at 800 px.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.label = widgets.HTML(layout=widgets.Layout(flex="0 0 9em"))
        self.label.add_class("jugnb-row-name")
        self.bar = TaskBar()
        self.counts = widgets.HTML(layout=widgets.Layout(flex="0 1 16em", min_width="10em"))
        self.failed = widgets.Button(
            button_style="danger", tooltip="Show the traceback",
            layout=widgets.Layout(flex="0 0 6.5em", height="auto", visibility="hidden"),
        )  # fmt: skip
        self.failed.add_class("jugnb-failed-link")
        self.rate = widgets.HTML(layout=widgets.Layout(flex="0 0 5.5em"))
        self.eta = widgets.HTML(layout=widgets.Layout(flex="0 0 8em"))
        children = [self.label, self.bar, self.counts, self.failed, self.rate, self.eta]
        layout = kwargs.pop("layout", widgets.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__(children=children, layout=layout, **kwargs)
        self.row: TaskRow | None = None
        self.key: tuple[Any, ...] | None = None

    def render(
        self, row: TaskRow, module: str | None = None, *, final: bool = False, barrier: str = ""
    ) -> None:
        """Show ``row`` (nothing is sent when it did not change).

        Parameters
        ----------
        row : TaskRow
        module : str, optional
            The jugfile's module, shown once in the panel's header rather than on every row.
        final : bool
            The panel is final (done or stopped): no ETA.
        barrier : str
            Where the jugfile stops: "Total" is not "done" while tasks after it are unknown.
        """
        key = (row, module, final, barrier)
        if key == self.key:
            return
        self.row, self.key = row, key
        name = html.escape(display_name(row.name, module))
        if row.name == "Total":
            name = "<b>Total</b>"
        elif row.folded:
            name = f"<i>{name}</i>"
        # A long name wraps inside its column (anywhere, as names have no spaces) instead of running on.
        wrap = "overflow-wrap:anywhere"
        self.label.value = f'<span title="{html.escape(row.name)}" style="{wrap}">{name}</span>'
        self.bar.render(row)
        self.counts.value = counts_text(row, failed=False)
        self.failed.description = f"{row.failed} failed" if row.failed else ""
        # Hidden, not removed: its column keeps its width, so rates and ETAs line up in every row.
        self.failed.layout.visibility = "visible" if row.failed else "hidden"
        self.rate.value = "" if row.per_minute is None else f"{row.per_minute:.1f}/min"
        self.eta.value = eta_text(row, final=final, barrier=barrier if row.name == "Total" else "")
