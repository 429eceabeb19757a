"""%jug execute / workers / wait / stop / run in an in-process shell, with real worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

GRAPH = """\
%%jugfile
import time
from jug import TaskGenerator, bvalue

@TaskGenerator
def double(x):
    time.sleep(0.05)
    return 2 * x

@TaskGenerator
def add(values):
    return sum(values)

total = add([double(i) for i in range(6)])
n = bvalue(total)
more = [double(100 + i) for i in range(n // 10)]
"""
FAILING = """\
%%jugfile
from jug import TaskGenerator

@TaskGenerator
def explode(x):
    print("about to fail")
    raise ValueError(f"bad input {x}")

boom = explode(1)
"""


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    """An in-process shell as the notebook `work.ipynb` in the project folder, jugnb loaded."""
    return notebook_shell("work")


def jug(ip: InteractiveShell, line: str) -> tuple[object, str]:
    with capture_output() as out:
        result = ip.run_line_magic("jug", line)
    return result, out.stdout


def test_execute_returns_at_once_and_wait_completes_past_bvalue(ip: InteractiveShell) -> None:
    ip.run_cell(GRAPH, cell_id="g")
    started = time.monotonic()
    _, out = jug(ip, "execute -j 2 --quiet")
    assert time.monotonic() - started < 5
    assert "Started 2 workers" in out
    _, out = jug(ip, "execute -j 1 --quiet")
    assert "already running" in out
    status, _ = jug(ip, "wait --timeout 120")
    assert ip.run_line_magic("jug", "check") is True
    assert len(ip.user_ns["more"]) == 3  # n = 30 after the bvalue: the graph extended itself
    assert "Total" in status.text


def test_execute_here_runs_in_kernel(ip: InteractiveShell) -> None:
    ip.run_cell(GRAPH, cell_id="g")
    _, out = jug(ip, "execute --here")
    assert "Executed 10 tasks in the kernel" in out
    assert ip.run_line_magic("jug", "check") is True


def test_failure_traceback_shown_by_wait(ip: InteractiveShell) -> None:
    ip.run_cell(FAILING, cell_id="f")
    jug(ip, "execute -j 1 --quiet")
    _, out = jug(ip, "wait --timeout 60")
    assert "1 task failed with ValueError: bad input 1" in out and "explode(1)" in out
    assert "about to fail" in out
    with capture_output() as captured:
        ip.run_cell("%jug status")  # a new cell: the failure is listed again, as a headline
    assert captured.stdout.count("ValueError: bad input 1") == 1 and "Traceback" not in captured.stdout


def test_workers_table_counts_a_failed_task_after_the_worker_exited(ip: InteractiveShell) -> None:
    ip.run_cell(FAILING, cell_id="f")
    jug(ip, "execute -j 1 --quiet")
    jug(ip, "wait --timeout 60")
    header, row = ip.run_line_magic("jug", "workers").text.splitlines()
    def cell(column: str) -> str:  # the table pads its columns; some cells are empty
        return row[header.index(f"  {column} ") + 2 :].split(" ", 1)[0]

    assert (cell("state"), cell("done"), cell("failed")) == ("exited", "0", "1"), (header, row)


@pytest.mark.parametrize("jobs", ["abc", "0", "-2"])
def test_a_bad_number_of_workers_is_refused_in_the_cli_s_words(ip: InteractiveShell, jobs: str) -> None:
    ip.run_cell(FAILING, cell_id="f")
    expected = f"-j/--jobs takes a number of worker processes (1 or more), not '{jobs}'."
    with pytest.raises(UsageError) as refused:
        ip.run_line_magic("jug", f"execute -j {jobs}" if jobs[0] != "-" else f"execute -j={jobs}")
    assert str(refused.value) == expected
    assert not Path("work.jugdata").exists()


def test_run_task_in_kernel_raises_with_traceback(ip: InteractiveShell) -> None:
    ip.run_cell(FAILING, cell_id="f")
    with pytest.raises(ValueError, match="bad input 1"):
        ip.run_line_magic("jug", "run explode")
    with pytest.raises(UsageError, match="No task matches"):
        ip.run_line_magic("jug", "run nothing_like_this")


def test_dict_store_refuses_workers(ip: InteractiveShell) -> None:
    ip.run_cell("%config JugMagics.jugdir = 'dict_store'")
    ip.run_cell(GRAPH, cell_id="g")
    with pytest.raises(UsageError, match="--here"):
        ip.run_line_magic("jug", "execute -j 1")
    _, out = jug(ip, "execute --here")
    assert "Executed 10 tasks" in out


def test_stop_now_and_workers_table(ip: InteractiveShell) -> None:
    ip.run_cell(GRAPH.replace("time.sleep(0.05)", "time.sleep(30)"), cell_id="g")
    jug(ip, "execute -j 2 --quiet")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "work.double" not in ip.run_line_magic("jug", "workers").text:
        time.sleep(0.2)
    table = ip.run_line_magic("jug", "workers").text
    assert "work.double" in table
    _, out = jug(ip, "stop --now")
    assert "Stopped 2 workers" in out
    locks = Path("work.jugdata/locks")
    assert not locks.exists() or not list(locks.iterdir())
