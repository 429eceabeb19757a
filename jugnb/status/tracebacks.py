"""Tracebacks of failed tasks that point at ``%%jugfile`` cells, and failures grouped by how they failed.

A worker runs a snapshot of the jugfile (``.jugnb/jugfiles/<sha>/<module>.py``), so Python's traceback
names that file. The snapshot itself says where each cell starts: :func:`jugnb.jugfile.assemble` puts a
``# %%jugfile cell N · name X`` (or ``· id ID``) comment line before every cell's body. So a frame in the
snapshot maps to ``%%jugfile cell N (--name X), line L`` from the snapshot's text alone, wherever it is
read, also after the notebook has changed.

The worker stores the frames in the task's record (:func:`extract_frames`); the kernel formats them
(:func:`traceback_parts`), hiding jugnb's and jug's own frames unless asked for all of them. The parts are
``(kind, text)`` pairs so that the magics can colour them with IPython's theme and the CLI can join them.

This module uses only the standard library.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FailureGroup", "extract_frames", "group_failures", "traceback_parts"]

_MARKER = re.compile(r"^# %%jugfile cell (\d+) · (name|id) (.*)$")
_MARKER_BARE = re.compile(r"^# %%jugfile cell (\d+)$")
# Frames in these packages are jugnb's and jug's machinery, not the user's code.
_INTERNAL = tuple(
    os.path.dirname(os.path.abspath(str(p))) + os.sep
    for p in (os.path.dirname(__file__), __import__("jug").__file__)  # the jugnb and jug packages
)
# (kind, text): kinds are "text", "file", "lineno", "name", "source", "exc_type", "exc_message".
Part = tuple[str, str]


def cell_locator(snapshot_text: str) -> Callable[[int], str | None]:
    """Return a function mapping a snapshot line number to ``"%%jugfile cell N (--name X), line L"``.

    Lines before the first cell (the generated header) and the marker lines themselves map to ``None``.
    """
    markers: list[tuple[int, str]] = []
    for number, line in enumerate(snapshot_text.splitlines(), start=1):
        found = _MARKER.match(line)
        if found:
            label = "--name" if found.group(2) == "name" else "id"
            markers.append((number, f"%%jugfile cell {found.group(1)} ({label} {found.group(3)})"))
        elif _MARKER_BARE.match(line):
            markers.append((number, f"%%jugfile cell {line.rsplit(' ', 1)[1]}"))

    def locate(lineno: int) -> str | None:
        before = [m for m in markers if m[0] < lineno]
        if not before:
            return None
        marker_line, cell = before[-1]
        # The marker stands where the %%jugfile line was: body line 1 of the snapshot is cell line 2.
        return f"{cell}, line {lineno - marker_line + 1}"

    return locate


def extract_frames(err: BaseException, snapshot: str | Path | None) -> list[list[Any]]:
    """Return the frames of ``err``'s traceback as ``[file, line, function, source, cell]`` lists.

    ``cell`` is the ``%%jugfile`` cell and line for frames in ``snapshot`` (else ``None``). JSON-ready.
    """
    snap = os.path.abspath(snapshot) if snapshot else None
    locate: Callable[[int], str | None] = lambda _line: None  # noqa: E731
    if snap is not None:
        try:
            locate = cell_locator(Path(snap).read_text(encoding="utf-8"))
        except OSError:
            pass
    frames = []
    for frame in traceback.extract_tb(err.__traceback__):
        in_snapshot = snap is not None and os.path.abspath(frame.filename) == snap
        cell = locate(frame.lineno) if in_snapshot and frame.lineno else None
        frames.append([frame.filename, frame.lineno, frame.name, frame.line or "", cell])
    return frames


def is_internal(frame: Sequence[Any]) -> bool:
    """Whether a frame is in jugnb's or jug's own code (hidden unless the full traceback is asked for)."""
    return os.path.abspath(str(frame[0])).startswith(_INTERNAL)


def traceback_parts(record: Any, full: bool = False) -> list[Part]:
    """Format a failed task's record as ``(kind, text)`` parts: header, frames, exception line.

    Parameters
    ----------
    record : TaskRecord
        A record with ``frames`` (or only the ``traceback`` text of older workers, shown as is).
    full : bool
        Keep jugnb's and jug's frames, and show snapshot paths beside the cells.
    """
    frames = record.frames
    if not frames:
        text = record.traceback or f"{record.exc_type}: {record.exc_message}\n"
        return [("text", text if text.endswith("\n") else text + "\n")]
    shown = [f for f in frames if full or not is_internal(f)] or frames[-1:]
    parts: list[Part] = [("text", "Traceback (most recent call last):\n")]
    if len(shown) < len(frames):
        hidden = len(frames) - len(shown)
        parts.append(("text", f"  ({hidden} frames of jugnb and jug hidden; --full shows them)\n"))
    for file, line, name, source, cell in shown:
        parts.append(("text", "  "))
        if cell and not full:
            parts.append(("file", cell))
        else:
            parts += [("file", f'File "{file}"'), ("text", ", line "), ("lineno", str(line))]
            if cell:
                parts.append(("text", f" [{cell}]"))
        if name != "<module>":
            parts += [("text", " in "), ("name", str(name))]
        parts.append(("text", "\n"))
        if source:
            parts.append(("source", f"    {source.strip()}\n"))
    parts += [("exc_type", f"{record.exc_type}"), ("exc_message", f": {record.exc_message}\n")]
    return parts


def plain(parts: Iterable[Part]) -> str:
    """Join parts without colours."""
    return "".join(text for _, text in parts)


@dataclass(frozen=True)
class FailureGroup:
    """Failed tasks that raised the same exception type at the same place.

    Attributes
    ----------
    signature : str
        ``"ValueError at %%jugfile cell 2 (--name fit), line 4"``.
    records : tuple of TaskRecord
        One per task, oldest first; ``records[0]`` is shown in full.
    """

    signature: str
    records: tuple[Any, ...]

    @property
    def headline(self) -> str:
        """``"12 tasks failed with ValueError: bad gamma"`` (the first task's message)."""
        first = self.records[0]
        n = len(self.records)
        who = "1 task" if n == 1 else f"{n} tasks"
        return f"{who} failed with {first.exc_type}: {_first_line(first.exc_message)}"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _where(record: Any) -> str:
    user = [f for f in record.frames or [] if not is_internal(f)]
    if not user:
        return ""
    file, line, _name, _source, cell = user[-1]
    return cell or f"{os.path.basename(str(file))}:{line}"


def group_failures(records: Iterable[Any]) -> list[FailureGroup]:
    """Group failure records by exception type and the user frame that raised it, biggest group first."""
    groups: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: r.start):
        where = _where(record)
        key = f"{record.exc_type}" + (f" at {where}" if where else f": {_first_line(record.exc_message)}")
        groups.setdefault(key, []).append(record)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return [FailureGroup(key, tuple(members)) for key, members in ordered]
