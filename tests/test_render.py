"""Text and HTML views of status snapshots; the text must be exactly what jug's own printer writes."""

from __future__ import annotations

from collections import defaultdict
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from jug.subcommands.status import TaskStatus, _print_status

from jugnb.status.reader import NameCounts, StatusSnapshot
from jugnb.status.render import status_html, status_text


def snapshot(*rows: NameCounts) -> StatusSnapshot:
    return StatusSnapshot(rows=rows, taken_at=0.0, store="/data/grid.jugdata")


MIXED = snapshot(
    NameCounts("grid.load", failed=0, waiting=0, ready=0, active=0, complete=12),
    NameCounts("grid.score", failed=2, waiting=3, ready=40, active=2, complete=13),
    NameCounts("grid.summary", failed=0, waiting=1, ready=0, active=0, complete=0),
)
LONG_NAME = snapshot(NameCounts("module." + "very_long_function_name_" * 4, 1, 2, 3, 4, 5))
DONE = snapshot(NameCounts("a.f", 0, 0, 0, 0, 7), NameCounts("a.g", 0, 0, 0, 0, 3))
NONE_ACTIVE = snapshot(NameCounts("a.f", 1, 2, 3, 0, 4))


def jug_printed(snap: StatusSnapshot, *, short: bool, monkeypatch: pytest.MonkeyPatch, width: int) -> str:
    """What ``jug status`` prints for these counts (jug's own ``_print_status``)."""
    ts = TaskStatus()
    for row in snap.rows:
        for attr, counter in (
            ("failed", ts.failed),
            ("waiting", ts.waiting),
            ("ready", ts.ready),
            ("active", ts.running),
            ("complete", ts.finished),
        ):
            counter[row.name] += getattr(row, attr)
    lines: list[str] = []
    options = SimpleNamespace(short=short, print_out=lambda *args: lines.append(" ".join(map(str, args))))
    monkeypatch.setenv("COLUMNS", str(width))
    _print_status(options, ts)
    return "".join(line + "\n" for line in lines)


@pytest.mark.parametrize("snap", [MIXED, LONG_NAME, DONE, NONE_ACTIVE, snapshot()])
@pytest.mark.parametrize("width", [80, 132, 40])
def test_text_is_jugs_table(snap: StatusSnapshot, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = jug_printed(snap, short=False, monkeypatch=monkeypatch, width=width)
    assert status_text(snap, width=width) == expected
    assert status_text(snap) == expected  # the width jug would use (COLUMNS here)


@pytest.mark.parametrize("snap", [MIXED, DONE, NONE_ACTIVE, snapshot()])
def test_short_is_jugs_line(snap: StatusSnapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    assert status_text(snap, short=True) == jug_printed(snap, short=True, monkeypatch=monkeypatch, width=80)


def test_short_lines() -> None:
    assert status_text(DONE, short=True) == "All tasks complete (10 tasks).\n"
    assert (
        status_text(MIXED, short=True) == "44 tasks waiting to be run, 2 failed, 25 complete, (2 active).\n"
    )
    assert status_text(NONE_ACTIVE, short=True).endswith("(none active).\n")


def test_long_names_wrap_like_jug() -> None:
    text = status_text(LONG_NAME, width=90)
    name_lines = text.splitlines()[2:-3]
    assert len(name_lines) > 1 and all(line.startswith(" " * 60 + "      ") for line in name_lines[1:])


class _Table(HTMLParser):
    """Collects the text of each table row, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: defaultdict[str, int] = defaultdict(int)
        self.caption = ""
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag == "tr":
            self.rows.append([])
        self._in_caption = tag == "caption"

    def handle_endtag(self, tag: str) -> None:
        self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.caption += data
        elif self.rows:
            self.rows[-1].append(data)


def parse(markup: str) -> _Table:
    table = _Table()
    table.feed(markup)
    table.close()
    return table


def test_html_table_rows_and_total() -> None:
    table = parse(status_html(MIXED))
    assert table.rows[0] == ["Failed", "Waiting", "Ready", "Complete", "Active", "Task name"]
    assert table.rows[2] == ["2", "3", "40", "13", "2", "grid.score"]
    assert table.rows[-1] == ["2", "4", "40", "25", "2", "Total"]
    assert len(table.rows) == 1 + 3 + 1
    assert table.tags["table"] == 1 and "script" not in table.tags and "style" not in table.tags
    assert table.caption == "jug status · /data/grid.jugdata"


def test_html_escapes_task_names() -> None:
    evil = snapshot(NameCounts("<img src=x onerror=alert(1)>.f&g", 0, 0, 1, 0, 0))
    markup = status_html(evil)
    assert "<img" not in markup and "&lt;img src=x onerror=alert(1)&gt;.f&amp;g" in markup
    assert parse(markup).rows[1][-1] == "<img src=x onerror=alert(1)>.f&g"


def test_html_of_empty_snapshot() -> None:
    assert parse(status_html(snapshot())).rows == [
        ["Failed", "Waiting", "Ready", "Complete", "Active", "Task name"],
        ["0", "0", "0", "0", "0", "Total"],
    ]
