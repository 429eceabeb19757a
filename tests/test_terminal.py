"""Terminal IPython through a pty (pexpect): `%jug wait` draws a live line, then the final panel once;
no logging lines; failures in IPython's colours; `--quiet` shows no earlier run's workers (issue 14, item 7).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
GRAPH = """\
%%jugfile --name t
import time
from jug import TaskGenerator

@TaskGenerator
def step(x):
    time.sleep(0.4)
    if x == 3:
        raise ValueError(f"bad {x}")
    return x

steps = [step(i) for i in range(14)]
"""


class Terminal:
    """An `ipython` session in a pty, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        ipython = str(Path(sys.executable).with_name("ipython"))
        env = {**os.environ, "TERM": "xterm", "HOME": str(folder), "COLUMNS": "120", "LINES": "40"}
        env.pop("JPY_SESSION_NAME", None)
        self.child = pexpect.spawn(
            ipython,
            ["--no-banner", "--simple-prompt", "--colors=linux"],
            cwd=str(folder),
            env=env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 120),
        )
        self.prompt = 1
        self.expect_prompt()

    def expect_prompt(self, timeout: float = 60) -> str:
        self.child.expect(rf"In \[{self.prompt}\]: ", timeout=timeout)
        self.prompt += 1
        return str(self.child.before)

    def run(self, source: str, timeout: float = 60) -> str:
        """Send a cell and return what it printed.

        A multi-line cell is ended by two empty lines (a cell magic's rule), so blank lines are dropped.
        """
        lines = [line for line in source.rstrip("\n").split("\n") if line.strip()]
        self.child.send("\r".join(lines) + ("\r\r\r" if len(lines) > 1 else "\r"))
        return self.expect_prompt(timeout)

    def close(self) -> None:
        if self.child.isalive():
            self.child.sendline("%jug stop --now")
            self.child.sendline("exit")
            self.child.expect(pexpect.EOF, timeout=30)
        self.child.close(force=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    term.close()


def test_wait_draws_a_live_line_then_the_final_panel_once(terminal: Terminal) -> None:
    terminal.run("%load_ext jugnb")
    terminal.run(GRAPH)
    started = terminal.run("%jug execute -j 2 --keep-going     # two background workers")
    assert "Started 2 workers." in started
    raw = terminal.run("%jug wait --timeout 120", timeout=150)
    out = ANSI.sub("", raw)
    # the live line: rewritten in place with a carriage return, done counts growing, rate and ETA
    lines = re.findall(r"\r(14 tasks: (\d+) done[^\r\n]*)", out)
    done = [int(n) for _, n in lines]
    assert len(done) >= 3 and done == sorted(done) and done[-1] > done[0], lines
    assert any("tasks/s" in text and "ETA" in text for text, _ in lines), lines
    assert any("1 failed" in text for text, _ in lines), lines
    # then the final panel, once, and the failure once, in IPython's colours
    assert out.count("jug progress (final)") == 1 and "jug progress (live)" not in out
    assert out.count("1 task failed with ValueError: bad 3") == 1
    assert out.count('raise ValueError(f"bad {x}")') == 1
    assert "%%jugfile cell 1 (--name t), line 8 in step" in out
    assert re.search(r"\x1b\[[0-9;]*m\s*ValueError\x1b\[", raw)  # the exception name is coloured
    assert "WARNING" not in out and "CRITICAL" not in out
    assert 'File "' not in out  # no raw frames: the snapshot's, jugnb's and jug's are mapped or hidden


def test_quiet_run_shows_no_earlier_workers(terminal: Terminal) -> None:
    terminal.run("%load_ext jugnb")
    terminal.run(GRAPH.replace("range(14)", "range(3)"))
    terminal.run("%jug execute -j 2")
    first = ANSI.sub("", terminal.run("%jug wait --timeout 60", timeout=90))
    pids = set(re.findall(r"^\s+(\d+)\s+\S+\s+ended", first, re.M))
    assert len(pids) == 2, first
    terminal.run(GRAPH.replace("range(14)", "range(5)"))
    terminal.run("%jug execute -j 1 --quiet")
    out = ANSI.sub("", terminal.run("%jug wait --timeout 60", timeout=90))
    assert "jug progress" not in out and not any(pid in out for pid in pids)
    # one worker without --keep-going stops at the failure: step(4) is left ready
    assert re.search(r"^\s+1\s+0\s+1\s+3\s+0\s+jugfile\.step", out, re.M), out
