"""Code-change staleness in the notebook: status counts, why, invalidate --stale, execute --dry-run."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

HELPERS = """\
%%jugfile --name helpers
from jug import TaskGenerator

OFFSET = 1


def shift(x):
    return x + OFFSET
"""
TASKS = """\
%%jugfile --name tasks
@TaskGenerator
def score(x):
    return shift(x) * 10


@TaskGenerator
def unrelated(x):
    return -x


@TaskGenerator
def total(values):
    return sum(values)


scores = [score(i) for i in range(3)]
others = [unrelated(i) for i in range(2)]
overall = total(scores)
"""


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    """An in-process shell as the notebook `edits.ipynb` in the project folder, jugnb loaded."""
    return notebook_shell("edits")


def jug(ip: InteractiveShell, line: str) -> str:
    with capture_output() as out:
        result = ip.run_line_magic("jug", line)
    shown = "".join(str(o.data.get("text/plain", "")) for o in out.outputs)
    return out.stdout + shown + (repr(result) if result is not None else "")


def run_workers(ip: InteractiveShell) -> None:
    jug(ip, "execute -j 2 --quiet")
    jug(ip, "wait --timeout 120")


def test_cosmetic_edit_is_fresh_helper_edit_makes_callers_stale(ip: InteractiveShell) -> None:
    ip.run_cell(HELPERS)
    ip.run_cell(TASKS)
    run_workers(ip)
    assert "stale (computed" not in jug(ip, "status")
    ip.run_cell(
        HELPERS.replace("def shift(x):", 'def shift(x):\n    # a comment and a docstring\n    """Doc."""')
    )
    assert "stale (computed" not in jug(ip, "status")
    ip.run_cell(HELPERS.replace("return x + OFFSET", "return x + 2 * OFFSET"))
    status = jug(ip, "status")
    assert "edits.score: 3 stale" in status and "1 depend on stale" in status
    assert "unrelated" not in status.split("Total")[-1]
    why = jug(ip, "why score[0]")
    assert (
        "code that has changed since" in why
        and "-    return x + OFFSET" in why
        and "+    return x + 2 * OFFSET" in why
    )
    plan = jug(ip, "execute --dry-run")
    assert "code changed but kept" in plan and "nothing was run" in plan
    assert "Would invalidate 4 results" in jug(ip, "invalidate --stale --dry-run")
    assert "Would invalidate 4 results" in jug(ip, "invalidate --stale --dry-run")  # dry run removed nothing
    jug(ip, "invalidate --stale")
    assert "new" in jug(ip, "execute --dry-run") or "invalidated" in jug(ip, "execute --dry-run")
    run_workers(ip)
    assert ip.user_ns["value"](ip.user_ns["overall"]) == (2 + 3 + 4) * 10  # shift(x) = x + 2
    assert "stale (computed" not in jug(ip, "status")


def test_changed_constant_makes_readers_stale_and_target_limits(ip: InteractiveShell) -> None:
    ip.run_cell(HELPERS)
    ip.run_cell(TASKS)
    run_workers(ip)
    ip.run_cell(HELPERS.replace("OFFSET = 1", "OFFSET = 5"))
    assert "edits.score: 3 stale" in jug(ip, "status")
    assert "No stale result matches 'unrelated'" in jug(ip, "invalidate --stale --target unrelated")


def test_results_of_plain_jug_are_unknown_never_stale(ip: InteractiveShell, project: Path) -> None:
    ip.run_cell(HELPERS)
    ip.run_cell(TASKS)
    snapshot = (project / ".jugnb" / "edits.current").read_text().strip()
    subprocess.run(
        [str(BIN / "jug"), "execute", snapshot, "--jugdir", "edits.jugdata"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ip.run_cell(HELPERS.replace("return x + OFFSET", "return x - OFFSET"))
    assert "stale (computed" not in jug(ip, "status")
    assert "unknown" in jug(ip, "why score[0]")


def test_auto_invalidate_stale(ip: InteractiveShell) -> None:
    ip.run_cell("%config JugMagics.auto_invalidate_stale = True")
    ip.run_cell(HELPERS)
    ip.run_cell(TASKS)
    run_workers(ip)
    with capture_output() as out:
        ip.run_cell(HELPERS.replace("return x + OFFSET", "return x + 3"))
    assert "Invalidated 4 results" in out.stdout + "".join(str(o.data) for o in out.outputs)
