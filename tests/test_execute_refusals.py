"""%jug execute refuses to run a graph other than the one the notebook shows or that workers would import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import wait_until, write_notebook
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

GOOD = """\
%%jugfile
from jug import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

results = [double(i) for i in range(3)]
"""


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    return notebook_shell("work")


def _execute(ip: InteractiveShell, line: str = "execute -j 1 --quiet") -> str:
    with capture_output() as out:
        ip.run_line_magic("jug", line)
    return out.stdout


@pytest.mark.parametrize(
    "broken",
    [
        GOOD.replace("return 2 * x", "return 2 *"),  # a syntax error
        GOOD + "undefined_name + 1\n",  # raises while imported
        GOOD.replace("from jug", "!ls\nfrom jug"),  # IPython syntax
    ],
    ids=["syntax", "import-error", "magic"],
)
def test_a_failed_cell_is_named_and_execute_refuses(ip: InteractiveShell, broken: str) -> None:
    ip.run_cell(GOOD, cell_id="first")
    ip.run_cell(broken, cell_id="first")  # fails: the previous version stays loaded
    for line in ("execute -j 1 --quiet", "execute --here"):
        with pytest.raises(UsageError, match=r"%%jugfile cell 1 \(id first\) failed the last time it ran"):
            ip.run_line_magic("jug", line)
    assert not (Path.cwd() / "work.jugdata").exists()  # nothing ran
    ip.run_cell(GOOD.replace("2 * x", "3 * x"), cell_id="first")  # fixed: execute runs again
    assert "Executed 3 tasks" in _execute(ip, "execute --here")


def test_a_new_cell_that_failed_also_refuses_until_reset(ip: InteractiveShell) -> None:
    ip.run_cell(GOOD, cell_id="first")
    ip.run_cell("%%jugfile --name extra\nraise RuntimeError('not yet')\n", cell_id="second")
    with pytest.raises(UsageError, match=r"--name extra.*RuntimeError: not yet.*%jug reset"):
        ip.run_line_magic("jug", "execute --here")
    # Another cell succeeding does not hide the failed one: the workers still would not run it.
    ip.run_cell(GOOD.replace("range(3)", "range(4)"), cell_id="first")
    with pytest.raises(UsageError, match="--name extra"):
        ip.run_line_magic("jug", "execute --here")
    ip.run_line_magic("jug", "reset")
    ip.run_cell(GOOD, cell_id="first")
    assert "Executed 3 tasks" in _execute(ip, "execute --here")


@pytest.mark.parametrize("change", ["other-pointer", "edited-snapshot", "no-snapshot", "no-pointer"])
def test_a_jugfile_on_disk_that_is_not_the_kernels_is_refused(ip: InteractiveShell, change: str) -> None:
    ip.run_cell(GOOD, cell_id="first")
    magics = ip.magics_manager.registry["JugMagics"]
    pointer, snapshot = magics.session.pointer_path, magics.session.graph.snapshot
    if change == "other-pointer":  # e.g. a second kernel on the same notebook ran its cells
        other = snapshot.parent.parent / "0123456789ab" / snapshot.name
        other.parent.mkdir()
        other.write_text(snapshot.read_text().replace("range(3)", "range(9)"))
        pointer.write_text(f"{other}\n")
        expected = ".*work.current names .*0123456789ab.* not "
    elif change == "edited-snapshot":
        snapshot.write_text(snapshot.read_text() + "extra = double(99)\n")
        expected = "the snapshot .* was changed after the kernel wrote it"
    elif change == "no-snapshot":
        snapshot.unlink()
        expected = "the snapshot .* is missing"
    else:
        pointer.unlink()
        expected = "the pointer file .* is missing"
    with pytest.raises(UsageError, match=f"The jugfile on disk is not the kernel's: {expected}"):
        ip.run_line_magic("jug", "execute -j 1 --quiet")
    assert getattr(magics, "_pool", None) is None  # no worker started
    ip.run_cell(GOOD, cell_id="first")  # rewrites the snapshot and the pointer
    assert "Started 1 worker" in _execute(ip)
    ip.run_line_magic("jug", "wait --timeout 60")
    assert ip.run_line_magic("jug", "check") is True


AFTER_BARRIER = """\
%%jugfile
from jug import TaskGenerator, bvalue

@TaskGenerator
def double(x):
    return 2 * x

total = sum(bvalue([double(i) for i in range(3)]))
if total > 0:
    raise ValueError(f"the total is {total}, more than this jugfile handles")
"""


def test_a_worker_names_the_cell_of_an_error_after_a_barrier(ip: InteractiveShell) -> None:
    # The kernel's import stops at the bvalue; the worker's import past it raises.
    ip.run_cell(AFTER_BARRIER, cell_id="late")
    _execute(ip)
    pool = ip.magics_manager.registry["JugMagics"]._pool
    wait_until(lambda: not any(w.alive for w in pool.workers()), 60, "the worker to exit")
    logs = list((Path.cwd() / ".jugnb" / "workers" / "work").glob("*.log"))
    text = "".join(log.read_text() for log in logs)
    assert "Importing the jugfile failed at %%jugfile cell 1 (id late), line 10:" in text, text
    assert "ValueError: the total is 6, more than this jugfile handles" in text
    assert "Traceback" not in text
    # The kernel, reloading past the cleared barrier, says the same.
    with pytest.raises(UsageError, match=r"%%jugfile cell 1 \(id late\), line 10"):
        ip.run_line_magic("jug", "wait --timeout 60")


def test_the_cli_names_the_cell_of_an_error_after_a_barrier(
    project: Path, run: Callable[..., object]
) -> None:
    write_notebook(project / "late.ipynb", [AFTER_BARRIER])
    result = run("jugnb", "execute", "late.ipynb", cwd=project)
    assert result.returncode == 1, result.stderr  # type: ignore[attr-defined]
    assert "cell 1 (%%jugfile cell 1, id cell-1), line 10:" in result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]
