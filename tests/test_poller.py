"""StatusPoller with a real StatusReader on a real file-store jugdir (results by jug itself).

Every poller is stopped by its test; the autouse fixture fails a test that leaves a poller thread running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jug.task
import pytest
from conftest import wait_until
from jug.backends.encode import encode

from jugnb.status.reader import StatusReader
from jugnb.status.records import RecordLog, TaskRecord
from jugnb.widgets.factory import progress_panel
from jugnb.widgets.model import ProgressModel
from jugnb.widgets.poller import StatusPoller
from jugnb.widgets.progress import ProgressPanel

JUGFILE = """\
from jug import TaskGenerator

@TaskGenerator
def square(x):
    return x * x

@TaskGenerator
def total(xs):
    return sum(xs)

squares = [square(i) for i in range({n})]
result = total(squares)
"""


@pytest.fixture(autouse=True)
def no_poller_left() -> Iterator[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("jugnb-status-poller")]
    StatusPoller.stop_all()
    assert not left, f"poller threads left running: {left}"


@pytest.fixture
def make_graph(tmp_path: Path, load_jugfile: Callable[[Path, Path], dict[str, Any]]) -> Callable[[int], Any]:
    """``make_graph(n)``: load a jugfile of ``n`` squares and their total on a file store in tmp_path."""

    def make(n: int) -> Any:
        folder = tmp_path / f"graph{n}"
        folder.mkdir()
        jugfile = folder / "squares.py"
        jugfile.write_text(JUGFILE.format(n=n), encoding="utf-8")
        jugdir = folder / "squares.jugdata"
        del jug.task.alltasks[:]
        load_jugfile(jugfile, jugdir)
        tasks = tuple(jug.task.alltasks)
        return SimpleNamespace(
            tasks=tasks,
            store=jug.task.Task.store,
            barrier=None,
            folder=folder,
            jugfile=jugfile,
            jugdir=SimpleNamespace(spec=str(jugdir)),
        )

    return make


def counts(panel: ProgressPanel) -> dict[str, str]:
    return {
        row.row.name: panel_counts for row in panel.rows_box.children if (panel_counts := row.counts.value)
    }


def test_start_and_stop_are_idempotent(make_graph: Callable[[int], Any]) -> None:
    graph = make_graph(3)
    panel = ProgressPanel()
    poller = StatusPoller(panel, graph, interval=0.05)
    assert poller.stop() and not poller.running  # never started
    poller.start()
    thread = poller._thread
    poller.start()
    assert poller._thread is thread and thread is not None and thread.is_alive()
    assert thread.daemon and thread.name.startswith("jugnb-status-poller")
    wait_until(lambda: poller.ticks >= 2, 10, "two ticks")
    assert poller.stop(timeout=5) and poller.stop(timeout=5)
    assert not thread.is_alive()
    poller.start()  # and again after a stop
    assert poller.running
    assert poller.stop(timeout=5)


def test_ticks_follow_jug_execute_until_done(
    make_graph: Callable[[int], Any], run: Callable[..., Any]
) -> None:
    graph = make_graph(4)
    for t in graph.tasks[:2]:
        t.run()
    panel = progress_panel(graph, start=False)
    poller = panel.poller
    view = poller.tick()
    assert view is not None and not view.done
    assert counts(panel) == {
        "squares.square": "2/4 complete · 2 ready",
        "squares.total": "0/1 complete · 1 waiting",
    }
    jugdir = graph.jugdir.spec
    done = run("jug", "execute", graph.jugfile, "--jugdir", jugdir, cwd=graph.folder)
    assert done.returncode == 0, done.stderr
    poller.interval = 0.05
    poller.start()
    wait_until(lambda: not poller.running, 10, "the poller to stop by itself when all is complete")
    assert panel.frozen and panel.view is not None and panel.view.done
    assert counts(panel) == {"squares.square": "4/4 complete", "squares.total": "1/1 complete"}
    assert panel.summary.value.startswith("<b>All 5 tasks complete")
    assert panel.buttons["drain"].disabled and not panel.buttons["refresh"].disabled


def test_records_feed_eta_events_and_other_workers(make_graph: Callable[[int], Any]) -> None:
    graph = make_graph(4)
    log = RecordLog.for_jugdir(graph.jugdir.spec)
    now = time.time()
    square = graph.tasks[0]
    ok = TaskRecord(
        "squares.square", square.hash().decode(), "ok", now - 3, now - 1, 2.0, "other.0", "far-host", 7
    )
    failed = TaskRecord(
        "squares.square",
        graph.tasks[1].hash().decode(),
        "failed",
        now,
        now + 0.5,
        0.5,
        "other.0",
        "far-host",
        7,
        exc_type="ZeroDivisionError",
        exc_message="division by zero",
        traceback="Traceback (most recent call last):\nZeroDivisionError: division by zero",
    )
    log.append(ok)
    panel = ProgressPanel()
    poller = StatusPoller(panel, lambda: graph, model=ProgressModel(since=now - 1))
    view = poller.tick()
    assert view is not None
    assert view.rows[0].eta == pytest.approx(4 * 2.0)  # 4 remaining, one worker seen, 2 s each
    assert (
        "far-host" in panel.workers.table.value and "1 of other kernels or hosts" in panel.workers.table.value
    )
    log.append(failed)
    poller.tick()
    assert panel.events.accordion.titles[-1].endswith(
        "failed: squares.square failed on other.0: ZeroDivisionError: division by zero"
    )
    assert "ZeroDivisionError" in panel.events.accordion.children[-1].value
    log.close()


def test_new_graph_is_a_reload_event_and_a_new_reader(make_graph: Callable[[int], Any]) -> None:
    first = make_graph(2)
    second = make_graph(3)
    first.barrier = SimpleNamespace(kind="barrier", where="%%jugfile cell 2, line 4")
    current = [first]
    cleared: list[int] = []
    panel = ProgressPanel()
    poller = StatusPoller(panel, lambda: current[0], on_barrier_cleared=lambda: cleared.append(1))
    poller.tick()
    assert "jugfile stops at barrier in %%jugfile cell 2, line 4" in panel.header.value
    jug.task.Task.store = first.store  # make_graph(3) set it to the second graph's
    for t in first.tasks:
        t.run()
    view = poller.tick()
    assert view is not None and not view.done and cleared == [1]  # waits for the kernel to reload
    poller.tick()
    assert cleared == [1]  # once per graph
    current[0] = second
    view = poller.tick()
    assert view is not None
    assert [e.kind for e in view.events] == ["reloaded", "barrier"]
    assert view.events[1].title == "passed the barrier in %%jugfile cell 2, line 4"
    assert view.total.total == 4


def test_survives_its_own_errors(make_graph: Callable[[int], Any], caplog: pytest.LogCaptureFixture) -> None:
    graph = make_graph(2)
    calls = {"n": 0}

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError("store went away")
        return graph

    panel = ProgressPanel()
    poller = StatusPoller(panel, flaky, interval=0.02).start()
    wait_until(lambda: poller.errors >= 3, 10, "three failed ticks")
    wait_until(lambda: poller.ticks >= 1, 10, "a good tick after the errors")
    assert poller.running
    assert panel.message.value == ""  # cleared by the good tick
    warnings = [r for r in caplog.records if "store went away" in r.getMessage()]
    assert len(warnings) == 1  # the same error is logged once
    original = panel.render

    def broken_render(view: Any, **kwargs: Any) -> None:
        raise ValueError("render broke")

    panel.render = broken_render  # type: ignore[method-assign]
    errors = poller.errors
    wait_until(lambda: poller.errors > errors, 10, "a failing render")
    assert "Status update failed: ValueError: render broke" in panel.message.value
    assert poller.running
    panel.render = original  # type: ignore[method-assign]
    assert poller.stop()


def test_no_graph_yet_is_a_message_not_a_crash() -> None:
    panel = ProgressPanel()
    poller = StatusPoller(panel, lambda: None)
    assert poller.tick() is None
    assert "no jugfile is loaded yet" in panel.message.value


def test_closing_the_panel_stops_the_poller(make_graph: Callable[[int], Any]) -> None:
    panel = progress_panel(make_graph(2))
    poller = panel.poller
    panel.poller.interval = 0.02
    wait_until(lambda: poller.ticks >= 1, 10, "a tick")
    panel.close()
    wait_until(lambda: not poller.running, 5, "the poller to stop")


def test_refresh_and_retry_buttons(make_graph: Callable[[int], Any]) -> None:
    graph = make_graph(2)
    square = graph.tasks[0]
    assert square.lock()
    square.fail()  # jug --keep-failed leaves a failed lock behind
    panel = progress_panel(graph, start=False)
    panel.poller.tick()
    assert panel.total_row.row is not None and panel.total_row.row.failed == 1
    assert not panel.buttons["retry_failed"].disabled
    panel.buttons["retry_failed"].click()
    assert panel.wait_for_actions(timeout=10)
    assert panel.total_row.row.failed == 0 and not square.is_locked()
    square.run()
    panel.buttons["refresh"].click()
    assert panel.wait_for_actions(timeout=10)
    assert panel.rows_box.children[0].counts.value == "1/2 complete · 1 ready"


def write_results(graph: Any, n: int) -> None:
    """The first ``n`` tasks' results where ``file_store.dump`` puts them, in jug's encoding (no fsync)."""
    jugdir = Path(graph.jugdir.spec)
    for t in graph.tasks[:n]:
        h = t.hash().decode()
        (jugdir / h[:2]).mkdir(parents=True, exist_ok=True)
        (jugdir / h[:2] / h[2:]).write_bytes(encode(0))


def busy_loop_max_gap(seconds: float, until: Callable[[], bool] = lambda: False) -> float:
    """Run a pure-Python loop in this thread for ``seconds`` (or until ``until()``, checked every 0.1 s).

    Returns the longest pause between two iterations, in seconds.
    """
    gap, last = 0.0, time.perf_counter()
    end, check = last + seconds, last + 0.1
    while last < end:
        now = time.perf_counter()
        gap = max(gap, now - last)
        last = now
        if now > check:
            if until():
                break
            check = now + 0.1
    return gap


def test_main_thread_is_never_delayed_more_than_50_ms(make_graph: Callable[[int], Any]) -> None:
    graph = make_graph(20_000)
    write_results(graph, 19_990)  # not all: a complete graph would stop the poller after one tick
    reader = StatusReader(graph.tasks, graph.store)  # as the kernel builds it, on its own thread
    panel = ProgressPanel()
    poller = StatusPoller(panel, graph, reader=lambda g: reader, interval=0.0)
    poller.tick()
    baseline = busy_loop_max_gap(0.5)
    poller.start()
    try:
        # Watch until the poller has ticked several times while we hog the main thread (at most 30 s: a
        # loaded machine slows its ticks, it must not shorten the observation).
        gap = busy_loop_max_gap(30.0, until=lambda: poller.ticks >= 5)
    finally:
        assert poller.stop()
    print(
        f"max main-thread gap {gap * 1000:.1f} ms (baseline {baseline * 1000:.1f} ms), {poller.ticks} ticks"
    )
    assert poller.ticks >= 4 and poller.errors == 0
    assert gap < 0.05, f"the main thread waited {gap * 1000:.1f} ms (baseline {baseline * 1000:.1f} ms)"
