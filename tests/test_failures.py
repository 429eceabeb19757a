"""Failed tasks: failed in every view, not run twice in one execute, tracebacks mapped to cells, retry,
stopped is not failed (issue 14, items 1-3). In-process shell, real worker processes."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jugnb.records import RecordLog

# Task 0 fails at once; the slow ones keep a second worker busy, so that it is alive when the first fails.
MIXED = """\
%%jugfile --name boom
import os, time
from jug import TaskGenerator

@TaskGenerator
def explode(x, scale=1.5):
    if not os.path.exists("fixed.flag"):
        raise ValueError(f"bad input {x}")
    return x * scale

@TaskGenerator
def slow(i):
    time.sleep(0.4)
    return i

failing = [explode(i) for i in range(5)]
others = [slow(i) for i in range(4)]
"""
LONG = """\
%%jugfile --name long
import time
from jug import TaskGenerator

@TaskGenerator
def nap(i):
    time.sleep(60)
    return i

naps = [nap(i) for i in range(2)]
"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    return notebook_shell("work")


def jug(ip: InteractiveShell, line: str) -> tuple[object, str]:
    with capture_output() as out:
        result = ip.run_line_magic("jug", line)
    return result, ANSI.sub("", out.stdout)


def cell(ip: InteractiveShell, source: str) -> str:
    with capture_output() as out:
        ip.run_cell(source)
    return ANSI.sub("", out.stdout)


def records_by_status(jugdir: str) -> Counter[tuple[str, str]]:
    log = RecordLog.for_jugdir(str(Path(jugdir).resolve()))
    return Counter((r.name.rsplit(".", 1)[-1], r.status) for r in log.read_new())


def test_failed_tasks_are_failed_run_once_and_mapped_to_their_cell(ip: InteractiveShell) -> None:
    ip.run_cell(MIXED, cell_id="m")
    # a comment after the magic's options is a comment (README's quickstart line)
    _, out = jug(ip, "execute -j 2 --quiet --keep-going     # two background workers")
    assert "Started 2 workers" in out
    out = cell(ip, "%jug wait --timeout 120\n%jug status")
    # every failure once in the cell (wait and status both report), grouped, with the instances
    assert out.count("5 tasks failed with ValueError: bad input") == 1
    assert out.count("Traceback of explode(") == 1
    for i in range(5):
        assert f"explode({i})" in out
    # the frame is the cell and line, with the source line; jugnb's and jug's frames are hidden
    assert "%%jugfile cell 1 (--name boom), line 8 in explode" in out
    assert 'raise ValueError(f"bad input {x}")' in out
    assert "recorder.py" not in out and "jug/task.py" not in out and ".jugnb/jugfiles" not in out
    assert "frames of jugnb and jug hidden" in out
    assert "5 tasks are failed: the last run raised. The next `%jug execute` runs them again" in out
    # status counts them as failed; --jug-states is jug's own table (ready)
    snapshot = ip.run_line_magic("jug", "status")
    assert re.search(r"^\s+5\s+0\s+0\s+0\s+0\s+work\.explode", snapshot.text, re.M)
    jug_table = ip.run_line_magic("jug", "status --jug-states").text
    assert re.search(r"^\s+0\s+0\s+5\s+0\s+0\s+work\.explode", jug_table, re.M)
    # each failing task ran once in this execute, although the other worker was free to take it
    assert records_by_status("work.jugdata")[("explode", "failed")] == 5
    # --full shows every frame, with the snapshot path beside the cell
    _, full = jug(ip, "failures --full")
    assert "recorder.py" in full and ".jugnb/jugfiles/" in full and "[%%jugfile cell 1 (--name boom)" in full


def test_retry_runs_failed_tasks_now(ip: InteractiveShell) -> None:
    ip.run_cell(MIXED, cell_id="m")
    jug(ip, "execute -j 1 --quiet --keep-going")
    jug(ip, "wait --timeout 120")
    Path("fixed.flag").write_text("")
    _, out = jug(ip, "retry")
    assert "Marked 5 failed tasks for a new run; started 1 workers." in out
    jug(ip, "wait --timeout 120")
    assert ip.run_line_magic("jug", "check") is True
    assert ip.user_ns["value"](ip.user_ns["failing"]) == [0.0, 1.5, 3.0, 4.5, 6.0]


def test_rerun_failed_lets_another_worker_try_again(ip: InteractiveShell) -> None:
    ip.run_cell(MIXED.replace("range(5)", "range(1)"), cell_id="m")
    jug(ip, "execute -j 2 --quiet --rerun-failed")
    jug(ip, "wait --timeout 120")
    # the first worker stopped at the failure; the second took the task again after its slow ones
    assert records_by_status("work.jugdata")[("explode", "failed")] == 2


def test_stop_now_is_stopped_not_failed(ip: InteractiveShell) -> None:
    ip.run_cell(LONG, cell_id="l")
    jug(ip, "execute -j 2 --quiet")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ip.run_line_magic("jug", "workers").text.count("work.nap") < 2:
        time.sleep(0.2)
    jug(ip, "stop --now")
    out = cell(ip, "%jug wait --timeout 30\n%jug status")
    assert "SystemExit" not in out and "143" not in out and "Traceback" not in out
    assert "failed with" not in out and "are failed" not in out
    snapshot = ip.run_line_magic("jug", "status")
    assert re.search(r"^\s+0\s+0\s+2\s+0\s+0\s+work\.nap", snapshot.text, re.M)
    counts = records_by_status("work.jugdata")
    assert counts == Counter({("nap", "interrupted"): 2})
    log = RecordLog.for_jugdir(str(Path("work.jugdata").resolve()))
    assert all(r.traceback is None and r.exc_type is None for r in log.read_new())
