"""Recent events of the progress panel: failures (click to expand the traceback), dead workers, reloads.

An ``Accordion`` with one collapsed section per event, most recent last; a section's body is the
traceback, output tail or log tail as preformatted, escaped text. Sections are rebuilt only when the events
change, and an opened section stays open while newer events arrive.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

import ipywidgets as widgets

from .viewmodel import EventRow

__all__ = ["EventList"]

_KIND_MARK = {"failed": "✗", "killed": "✗", "crashed": "☠", "died": "☠", "lost": "☠", "error": "⚠"}


def event_title(event: EventRow) -> str:
    """One line for the accordion header: time, mark, kind and title."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.time))
    mark = _KIND_MARK.get(event.kind, "•")
    return f"{clock} {mark} {event.kind}: {event.title}"


class EventList(widgets.VBox):
    """Events as an ``Accordion`` (collapsed until clicked) under a one-line heading.

    Attributes
    ----------
    accordion : ipywidgets.Accordion
    events : tuple of EventRow
        Events shown now.
    """

    def __init__(self, **kwargs: object) -> None:
        self.heading = widgets.HTML("")
        self.accordion = widgets.Accordion(children=[], selected_index=None)
        self.events: tuple[EventRow, ...] = ()
        super().__init__(children=[self.heading, self.accordion], **kwargs)
        self.layout.display = "none"

    def render(self, events: Sequence[EventRow]) -> None:
        """Show ``events``; does nothing when they did not change."""
        events = tuple(events)
        if events == self.events:
            return
        opened = self._opened()
        self.events = events
        bodies = [widgets.HTML(_body(e)) for e in events]
        self.accordion.children = bodies
        self.accordion.titles = tuple(event_title(e) for e in events)
        self.accordion.selected_index = events.index(opened) if opened in events else None
        self.heading.value = f"<b>Events</b> ({len(events)} most recent, newest last)"
        self.layout.display = "flex" if events else "none"

    def _opened(self) -> EventRow | None:
        index: int | None = self.accordion.selected_index
        if index is None or not 0 <= index < len(self.events):
            return None
        return self.events[index]


def _body(event: EventRow) -> str:
    if not event.detail:
        return f"<i>{html.escape(event.title)}</i>"
    return (
        f'<pre style="white-space:pre-wrap;max-height:24em;overflow:auto">{html.escape(event.detail)}</pre>'
    )
