"""A live one-line progress display for ``%jug wait`` in terminal IPython (notebooks have the panel).

While the workers run, one line is rewritten in place (carriage return): tasks done, failed, active,
the rate since the wait began and an ETA, as ipyparallel's ``AsyncResult.wait_interactive`` does. It is
used only when the shell has no kernel and stdout is a terminal, so saved notebooks and logs never hold it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..status.reader import StatusSnapshot


def wants_live_line(shell: Any, stream: TextIO | None = None) -> bool:
    """Whether ``shell`` is terminal IPython writing to a terminal (no kernel, stdout a tty)."""
    stream = stream if stream is not None else sys.stdout
    if getattr(shell, "kernel", None) is not None:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_line(snapshot: StatusSnapshot, done_before: int, elapsed: float) -> str:
    """``"57 tasks: 12 done · 1 failed · 2 active · 3.1 tasks/s · ETA 14 s"``.

    Parameters
    ----------
    snapshot : StatusSnapshot
        The current states.
    done_before : int
        Tasks complete when the wait began (the rate counts only what completed since).
    elapsed : float
        Seconds since the wait began.
    """
    from ..widgets.viewmodel import format_duration  # the widgets are imported lazily; this needs none

    total = snapshot.total
    parts = [f"{total.total} tasks: {total.complete} done"]
    if total.failed:
        parts.append(f"{total.failed} failed")
    if total.active:
        parts.append(f"{total.active} active")
    rate = (total.complete - done_before) / elapsed if elapsed >= 1.0 else 0.0
    left = total.total - total.complete - total.failed
    if rate > 0:
        parts.append(f"{rate:.1f} tasks/s" if rate >= 0.1 else f"{rate * 60:.1f} tasks/min")
        if left:
            parts.append(f"ETA {format_duration(left / rate)}")
    return " · ".join(parts)


class LiveLine:
    """Rewrites one terminal line with the progress of a graph (see the module docstring).

    Parameters
    ----------
    read : callable
        Returns a fresh :class:`~jugnb.status.reader.StatusSnapshot`.
    stream : file, optional
        Default: ``sys.stdout``.
    interval : float
        Seconds between two redraws.
    """

    def __init__(self, read: Any, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.read = read
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.started = time.monotonic()
        self._next = 0.0
        self._width = 0
        self._done_before: int | None = None

    def tick(self) -> None:
        """Redraw the line if ``interval`` seconds have passed since the last redraw."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        snapshot = self.read()
        if self._done_before is None:
            self._done_before = snapshot.total.complete
        line = progress_line(snapshot, self._done_before, now - self.started)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def finish(self) -> None:
        """Clear the line (what follows is the final panel)."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
