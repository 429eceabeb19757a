"""Every construct of Jug's documentation, pasted as %%jugfile cells, gives plain jug's hashes and status."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN, read_cells
from IPython.core.interactiveshell import InteractiveShell

SAMPLES = ["constructs", "barrier", "bvalue", "compound", "mapreduce", "tasklets", "jug_execute", "simple"]

PLAIN_JUG = """\
import json, sys, jug, jug.task
jug.init(sys.argv[1], sys.argv[2])
print(json.dumps(sorted(t.hash().decode() for t in jug.task.alltasks)))
"""


def plain_hashes(project: Path, jugfile: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_JUG, str(jugfile), "sample.jugdata"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def kernel_hashes(ip: InteractiveShell) -> list[str]:
    return sorted(t.hash().decode() for t in ip.user_ns["get_tasks"]())


def jug_status_total(project: Path, jugfile: Path) -> list[str]:
    out = subprocess.run(
        [str(BIN / "jug"), "status", str(jugfile), "--jugdir", "sample.jugdata"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1].split()[:5]


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    """An in-process shell as the notebook `sample.ipynb` in the project folder, jugnb loaded."""
    return notebook_shell("sample")


def run_cells(ip: InteractiveShell, sample: str) -> None:
    for number, (kind, source) in enumerate(read_cells(sample), start=1):
        if kind == "code":
            assert ip.run_cell(source, cell_id=f"cell-{number}").success or not source.startswith("%%jugfile")


@pytest.mark.parametrize("sample", SAMPLES)
def test_cells_give_plain_jug_hashes_and_status(sample: str, ip: InteractiveShell, project: Path) -> None:
    run_cells(ip, sample)
    snapshot = Path((project / ".jugnb" / "sample.current").read_text().strip())
    assert kernel_hashes(ip) == plain_hashes(project, snapshot)
    # Run everything with plain jug (past barriers), then compare hashes and status once more. The cells run
    # again because what some constructs define depends on the results (a computed CompoundTask is one
    # task instead of its inner graph), for plain jug's import too.
    subprocess.run(
        [str(BIN / "jug"), "execute", str(snapshot), "--jugdir", "sample.jugdata"],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=120,
    )
    run_cells(ip, sample)
    kernel_total = ip.run_line_magic("jug", "status").text.strip().splitlines()[-1].split()[:5]
    assert kernel_hashes(ip) == plain_hashes(project, snapshot)
    assert kernel_total == jug_status_total(project, snapshot)
    assert ip.run_line_magic("jug", "check") is True
