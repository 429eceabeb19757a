"""Progress panel, view model and static fallback without a browser: feed views, assert on trait values.

As in distributed's ``test_progress_widgets.py``: build the data, call ``render``, then read the widgets'
traits (``bar_style``, layout widths, HTML values, accordion titles, button states).
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest

from jugnb.status.reader import NameCounts, StatusSnapshot
from jugnb.status.records import TaskRecord
from jugnb.widgets.model import ProgressModel
from jugnb.widgets.palette import STATE_COLOURS
from jugnb.widgets.progress import ProgressPanel
from jugnb.widgets.static import text_bar, view_html, view_text
from jugnb.widgets.viewmodel import (
    EventRow,
    ProgressView,
    TaskRow,
    WorkerRow,
    counts_text,
    eta_text,
    format_bytes,
    format_duration,
)

T0 = 1_700_000_000.0


def snap(*rows: NameCounts, at: float = T0, store: str = "/data/grid.jugdata") -> StatusSnapshot:
    return StatusSnapshot(rows=rows, taken_at=at, store=store)


def record(
    name: str,
    status: str = "ok",
    *,
    start: float = T0,
    duration: float = 2.0,
    worker: str = "pool.0",
    host: str = "here",
    pid: int = 100,
    **extra: Any,
) -> TaskRecord:
    return TaskRecord(
        name=name,
        hash="ab" * 20,
        status=status,
        start=start,
        end=start + duration,
        duration=duration,
        worker=worker,
        host=host,
        pid=pid,
        **extra,
    )


def info(worker_id: str, *, state: str = "running", task: str | None = "g.score", alive: bool = True) -> Any:
    return SimpleNamespace(
        worker_id=worker_id,
        pid=4242,
        host="here",
        state=state,
        task=task,
        running_for=12.0 if task else None,
        rss=50 * 2**20 if alive else None,
        alive=alive,
    )


MIXED = snap(
    NameCounts("g.load", failed=0, waiting=0, ready=0, active=0, complete=12),
    NameCounts("g.score", failed=2, waiting=3, ready=40, active=2, complete=13),
    NameCounts("g.<summary>", failed=0, waiting=1, ready=0, active=0, complete=0),
)


def test_model_rows_total_and_rate() -> None:
    model = ProgressModel(since=0)
    first = model.view(snap(NameCounts("g.f", 0, 0, 10, 0, 0), at=T0))
    assert first.total == TaskRow("Total", complete=0, ready=10, per_minute=None, eta=None)
    later = model.view(snap(NameCounts("g.f", 0, 0, 4, 0, 6), at=T0 + 30))
    row = later.rows[0]
    assert row.per_minute == pytest.approx(12.0)  # 6 in 30 s
    assert row.eta == pytest.approx(4 * 60 / 12.0)  # no durations recorded: remaining / rate
    assert later.total.per_minute == pytest.approx(12.0)


def test_eta_from_recorded_durations_and_workers() -> None:
    model = ProgressModel(since=0)
    model.add_records([record("g.f", duration=10.0), record("g.f", duration=20.0)], our_workers=["pool.0"])
    workers = [info("pool.0"), info("pool.1")]
    view = model.view(snap(NameCounts("g.f", 0, 1, 4, 0, 5), NameCounts("g.h", 0, 1, 0, 0, 0)), workers)
    f, h = view.rows
    assert f.eta == pytest.approx(3 * 15.0)  # ceil(5 remaining / 2 workers) x mean 15 s
    assert h.eta == pytest.approx(15.0)  # no record of g.h: the mean of all names
    assert view.total.eta == pytest.approx((5 * 15.0 + 15.0) / 2)
    done = model.view(snap(NameCounts("g.f", 0, 0, 0, 0, 10)))
    assert done.rows[0].eta == 0.0


def test_rate_never_negative_after_invalidate() -> None:
    model = ProgressModel(since=0)
    model.view(snap(NameCounts("g.f", 0, 0, 0, 0, 10), at=T0))
    view = model.view(snap(NameCounts("g.f", 0, 0, 10, 0, 0), at=T0 + 10))
    assert view.rows[0].per_minute == 0.0


def test_rate_window_drops_old_snapshots() -> None:
    model = ProgressModel(rate_window=60, since=0)
    for i in range(10):
        model.view(snap(NameCounts("g.f", 0, 0, 100 - i, 0, i), at=T0 + 30 * i))
    # Only the last 60 s (plus one baseline snapshot) count: 2 completions per 30 s.
    assert model.view(snap(NameCounts("g.f", 0, 0, 90, 0, 10), at=T0 + 300)).rows[
        0
    ].per_minute == pytest.approx(2.0)


def test_stale_counts_are_shown_beside_complete() -> None:
    model = ProgressModel(since=0)
    view = model.view(
        snap(NameCounts("g.f", 0, 0, 0, 0, 5), NameCounts("g.h", 0, 0, 2, 0, 0)), stale={"g.f": 3}
    )
    assert [r.stale for r in view.rows] == [3, 0] and view.total.stale == 3
    assert counts_text(view.rows[0]) == "5/5 complete · 3 stale"
    assert "(3 stale)" in view_text(view) and "(3 stale)" in view_html(view)


def test_compact_row_folds_the_smallest_names() -> None:
    rows = [NameCounts(f"g.f{i:02d}", 0, 0, 0, 0, i + 1) for i in range(20)]
    view = ProgressModel(max_rows=12, since=0).view(snap(*rows))
    assert len(view.rows) == 12
    kept = [r.name for r in view.rows[:-1]]
    assert kept == [f"g.f{i:02d}" for i in range(9, 20)]  # the 11 largest, in name order
    other = view.rows[-1]
    assert other.folded == 9 and other.name == "9 more task names"
    assert other.complete == sum(range(1, 10))
    assert view.total.complete == sum(range(1, 21))


def test_failures_and_pool_events_become_events() -> None:
    model = ProgressModel(since=T0)
    old = record(
        "g.f", "failed", start=T0 - 100, exc_type="ValueError", exc_message="old", traceback="TB old"
    )
    new = record(
        "g.f",
        "failed",
        start=T0 + 1,
        exc_type="ValueError",
        exc_message="bad x",
        traceback="Traceback (most recent call last):\nValueError: bad x",
        output_tail="printed",
    )
    killed = record("g.h", "killed", start=T0 + 2, exc_message="the worker died while running this task")
    model.add_records([old, new, killed], our_workers=["pool.0"])
    died = SimpleNamespace(
        time=T0 + 3,
        kind="died",
        worker="pool.1",
        pid=7,
        message="worker pool.1 (pid 7) was killed by SIGKILL; last lines of its log:\nlog line",
    )
    normal = SimpleNamespace(
        time=T0 + 4, kind="exited", worker="pool.0", pid=6, message="worker exited with code 0"
    )
    started = SimpleNamespace(time=T0 + 5, kind="started", worker="pool.2", pid=8, message="worker started")
    model.add_pool_events([died, normal, started])
    model.add_pool_events([died])  # seen already
    events = model.view(snap(NameCounts("g.f", 0, 0, 1, 0, 0))).events
    assert [e.kind for e in events] == ["failed", "killed", "died"]
    assert events[0].title == "g.f failed: ValueError: bad x"
    assert "ValueError: bad x" in events[0].detail and "printed" in events[0].detail
    assert events[2].title == "worker pool.1 (pid 7) was killed by SIGKILL; last lines of its log"
    assert events[2].detail == "log line"


def test_workers_of_other_kernels_and_hosts_are_counted() -> None:
    model = ProgressModel(since=0)
    now = time.time()
    model.add_records(
        [
            record("g.f", worker="pool.0", start=now - 5),
            record("g.f", worker="xyz.0", host="elsewhere", pid=11, start=now - 10),
            record("g.f", worker="xyz.1", host="elsewhere", pid=12, start=now - 1000),  # too long ago
        ],
        our_workers=["pool.0"],
    )
    view = model.view(snap(NameCounts("g.f", 0, 1, 0, 0, 3), at=now), [info("pool.0")])
    assert [(w.worker, w.ours, w.alive) for w in view.workers] == [
        ("pool.0", True, True),
        ("xyz.0", False, None),
    ]
    assert view.other_workers == 1 and view.alive_workers == 2


def test_done_view_has_a_summary() -> None:
    model = ProgressModel(since=0)
    model.view(snap(NameCounts("g.f", 0, 0, 10, 0, 0), at=T0))
    final = model.view(snap(NameCounts("g.f", 0, 0, 0, 0, 10), at=T0 + 65), done=True)
    assert final.done
    assert final.summary == "All 10 tasks complete; 10 completed in the 1 min 05 s watched."
    partial = model.view(snap(NameCounts("g.f", 2, 0, 1, 0, 7), at=T0 + 70), done=True)
    assert partial.summary.startswith("Finished: 7 of 10 tasks complete, 2 failed, 1 ready;")


def test_formatting_helpers() -> None:
    assert [format_duration(s) for s in (None, 4.4, 65, 7380, 2 * 86400 + 3600)] == [
        "–",
        "4 s",
        "1 min 05 s",
        "2 h 03 min",
        "2 d 01 h",
    ]
    assert [format_bytes(n) for n in (None, 500, 2048, 3 * 2**20, 5 * 2**30)] == [
        "–",
        "500 B",
        "2 KiB",
        "3.0 MiB",
        "5.0 GiB",
    ]


# -- the widgets --------------------------------------------------------------------------------------------


def view_of(snapshot: StatusSnapshot, **kwargs: Any) -> ProgressView:
    return ProgressModel(since=0).view(snapshot, **kwargs)


def test_panel_rows_bars_and_counts() -> None:
    panel = ProgressPanel(title="grid")
    panel.render(view_of(MIXED))
    assert len(panel.rows_box.children) == 3
    score = panel.rows_box.children[1]
    assert visible(score.label.value) == "g.score"
    assert score.counts.value == "13/60 complete · 2 active · 40 ready · 3 waiting"
    assert score.failed.description == "2 failed" and score.failed.button_style == "danger"
    assert score.failed.layout.visibility == "visible"
    assert panel.rows_box.children[0].failed.layout.visibility == "hidden"
    colours = {state: bar.style.bar_color for state, bar in score.bar.segments.items()}
    assert colours == STATE_COLOURS  # Okabe-Ito: ready is sky blue, not the warning orange
    widths = score.bar.widths()
    assert sum(widths.values()) == pytest.approx(100.0)
    assert widths["ready"] == pytest.approx(100 * 40 / 60, abs=1.5)
    assert widths["active"] >= 1.0  # small counts stay visible
    load = panel.rows_box.children[0]
    assert load.bar.widths() == {"complete": 100.0}
    assert load.eta.value == "done"
    assert visible(panel.rows_box.children[2].label.value) == "g.&lt;summary&gt;"  # escaped
    assert panel.total_row.counts.value.startswith("25/73 complete")
    assert panel.header.value.startswith("<b>grid</b> (live)")


def visible(markup: str) -> str:
    return re.sub(r"<[^>]+>", "", markup)


def test_panel_module_once_eta_and_failure_link() -> None:
    panel = ProgressPanel(title="g")  # the module: shown in the header, not on each row
    panel.render(view_of(MIXED, barrier="barrier() in cell 3"))
    load, score, _ = panel.rows_box.children
    assert visible(load.label.value) == "load" and visible(score.label.value) == "score"
    assert "(live)" in panel.header.value and "elapsed 0 s" in panel.header.value
    assert all(s in panel.legend.value and c in panel.legend.value for s, c in STATE_COLOURS.items())
    assert load.eta.value == "done"
    assert panel.total_row.eta.value != "done"  # tasks after the barrier are not known yet
    assert eta_text(TaskRow("w", waiting=3)) == "waiting"  # never "ETA 0 s" on a waiting row
    assert eta_text(TaskRow("f", complete=1, failed=2)) == ""  # failed tasks wait for a retry
    assert eta_text(TaskRow("r", ready=2, eta=30.0)) == "ETA 30 s"
    assert eta_text(TaskRow("r", ready=2, eta=30.0), final=True) == ""  # no ETA on a final panel
    panel.events.render([EventRow(1.0, "failed", "g.score failed on pool.0: ValueError: bad", "Traceback")])
    score.failed.click()
    assert panel.events.accordion.selected_index == 0  # the click opened the traceback


def test_render_reuses_row_widgets_and_sends_nothing_when_unchanged() -> None:
    panel = ProgressPanel()
    model = ProgressModel(since=0)
    panel.render(model.view(MIXED))
    first = panel.rows_box.children[0]
    sent: list[Any] = []
    first.counts.comm.send = lambda *a, **k: sent.append((a, k))  # the DummyComm outside a kernel
    panel.render(model.view(MIXED))
    assert panel.rows_box.children[0] is first
    assert sent == []
    panel.render(model.view(snap(NameCounts("g.load", 0, 0, 0, 0, 12))))
    assert len(panel.rows_box.children) == 1 and panel.rows_box.children[0] is first


def test_render_batches_each_widget_into_one_message() -> None:
    panel = ProgressPanel()
    panel.render(view_of(MIXED))
    row = panel.rows_box.children[1]
    sent: list[Any] = []
    row.counts.comm.send = lambda *a, **k: sent.append(k["data"]["state"])
    segment = row.bar.segments["complete"]
    segment_sent: list[Any] = []
    segment.comm.send = lambda *a, **k: segment_sent.append(k["data"]["state"])
    panel.render(
        view_of(
            snap(
                NameCounts("g.load", 0, 0, 0, 0, 12),
                NameCounts("g.score", 0, 0, 10, 1, 49),
                NameCounts("g.<summary>", 0, 1, 0, 0, 0),
            )
        )
    )
    assert len(sent) == 1 and set(sent[0]) == {"value"}
    assert len(segment_sent) == 1 and set(segment_sent[0]) == {"tooltip"}


def test_worker_table_and_events() -> None:
    panel = ProgressPanel()
    view = ProgressView(
        rows=(TaskRow("g.f", complete=1, ready=1),),
        total=TaskRow("Total", complete=1, ready=1),
        workers=(
            WorkerRow("pool.0", 4242, "here", "running", "g.f", 75.0, 3 * 2**20),
            WorkerRow("pool.1", 4243, "here", "died", None, None, None, alive=False),
            WorkerRow("x.0", 99, "far<host>", "seen", "g.f", alive=None, ours=False, last_seen=T0),
        ),
        events=(
            EventRow(T0, "failed", "g.f failed on pool.0: KeyError: 'k'", "Traceback...\nKeyError: 'k'"),
            EventRow(T0 + 1, "died", "worker pool.1 (pid 4243) was killed by SIGKILL"),
        ),
    )
    panel.render(view)
    table = panel.workers.table.value
    shown = ("4242", "g.f", "1 min 15 s", "3.0 MiB", "dead", "far&lt;host&gt;", "1 running here, 1 of other")
    for text in shown:
        assert text in table
    accordion = panel.events.accordion
    assert len(accordion.children) == 2 and accordion.selected_index is None
    assert accordion.titles[0].endswith("failed: g.f failed on pool.0: KeyError: 'k'")
    assert "KeyError: &#x27;k&#x27;" in accordion.children[0].value
    accordion.selected_index = 0  # the user opens the traceback; a newer event keeps it open
    newer = (*view.events, EventRow(T0 + 2, "reloaded", "x"))
    panel.render(ProgressView(**{**view.__dict__, "events": newer}))
    assert len(accordion.children) == 3 and accordion.selected_index == 0


def test_buttons_call_injected_callables_in_a_thread() -> None:
    calls: list[str] = []

    def failing() -> None:
        raise RuntimeError("no workers")

    panel = ProgressPanel(
        on_drain=lambda: calls.append("drain"),
        on_stop_now=failing,
        on_refresh=lambda: calls.append("refresh"),
    )
    assert panel.buttons["retry_failed"].disabled  # no callback
    panel.render(view_of(MIXED))
    panel.buttons["drain"].click()
    panel.buttons["refresh"].click()
    panel.buttons["stop_now"].click()
    assert panel.wait_for_actions(timeout=5)
    assert sorted(calls) == ["drain", "refresh"]
    assert "Stop now failed: RuntimeError: no workers" in panel.message.value
    assert not panel.buttons["stop_now"].disabled


def test_done_freezes_the_panel() -> None:
    panel = ProgressPanel(
        on_drain=lambda: None, on_stop_now=lambda: None, on_retry_failed=lambda: None, on_refresh=lambda: None
    )
    model = ProgressModel(since=0)
    panel.render(model.view(snap(NameCounts("g.f", 1, 0, 0, 0, 9)), done=True))
    assert panel.frozen
    assert panel.summary.value.startswith("<b>Finished: 9 of 10 tasks complete, 1 failed")
    assert [panel.buttons[n].disabled for n in ("drain", "stop_now", "retry_failed", "refresh")] == [
        True,
        True,
        False,
        False,
    ]
    panel.render(model.view(snap(NameCounts("g.f", 0, 0, 0, 0, 10))))
    assert panel.rows_box.children[0].counts.value.startswith("9/10")  # frozen: ignored
    panel.render(model.view(snap(NameCounts("g.f", 0, 0, 0, 0, 10))), force=True)
    assert panel.rows_box.children[0].counts.value == "10/10 complete"


def test_close_runs_callbacks_once_and_closes_children() -> None:
    panel = ProgressPanel()
    closed: list[int] = []
    panel.on_close(lambda: closed.append(1))
    child = panel.rows_box
    panel.close()
    panel.close()
    assert closed == [1]
    assert child.comm is None and panel.comm is None


def test_frontend_closing_the_comm_runs_the_callbacks() -> None:
    from comm.base_comm import BaseComm

    class Comm(BaseComm):
        def publish_msg(self, *args: Any, **kwargs: Any) -> None:
            pass

    panel = ProgressPanel()
    panel.comm = Comm(target_name="jupyter.widget")  # as a kernel's comm
    closed: list[int] = []
    panel.on_close(lambda: closed.append(1))
    panel.comm.handle_close({"content": {"data": {}}})
    assert closed == [1]


# -- text / static HTML fallback --------------------------------------------------------------------------


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def test_mimebundle_has_text_and_static_html_of_the_same_view() -> None:
    panel = ProgressPanel()
    before = panel._repr_mimebundle_()
    assert "waiting for the first status read" in before["text/plain"]
    panel.render(view_of(MIXED))
    bundle = panel._repr_mimebundle_()
    # No kernel here (a DummyComm): no widget manager could draw the view, so it is left out.
    assert set(bundle) == {"text/plain", "text/html"}
    assert "VBox" not in bundle["text/plain"] and "VBox" not in bundle["text/html"]
    text = bundle["text/plain"]
    # saved outputs hold no machine path (a folder outside the working directory shows by its name)
    assert "g.score" in text and "grid.jugdata" in text and "/data/" not in text and "Total" in text
    parser = _Text()
    parser.feed(bundle["text/html"])
    assert "script" not in parser.tags
    assert "g.<summary>" in "".join(parser.parts)  # escaped in the markup, shown as is


def test_mimebundle_keeps_the_widget_view_in_a_kernel() -> None:
    panel = ProgressPanel()
    panel.comm.kernel = object()  # what ipykernel's comms have
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()


def test_text_rendering() -> None:
    row = TaskRow("g.f", complete=12, active=4, ready=4, waiting=4, failed=0)
    assert text_bar(row) == "[############>>>>....    ]"
    assert text_bar(TaskRow("g.f", complete=999, failed=1)) == "[#######################!]"
    view = ProgressModel(since=0).view(MIXED, done=True)
    text = view_text(view)
    lines = text.splitlines()
    assert lines[0].startswith("jug progress (final) · /data/grid.jugdata")
    assert any(line.startswith("g.score") and "13" in line and "40" in line for line in lines)
    assert "No workers." in text and view.summary in text
    html_text = view_html(view)
    assert html_text.count("<tr>") == 5  # header, 3 names, total
    assert counts_text(TaskRow("x", complete=3)) == "3/3 complete"


def test_view_model_modules_import_no_ipywidgets() -> None:
    import subprocess
    import sys

    modules = "jugnb.widgets.viewmodel, jugnb.widgets.model, jugnb.widgets.static, jugnb.widgets.browsing"
    code = (
        f"import {modules}, sys\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('IPython', 'ipywidgets'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
