"""value() on task objects from an older definition of a %%jugfile cell.

The class: a name the user kept (``old = results``), a Tasklet of it, a list or dict holding it, from before
the cell was edited and run again, or before ``%jug reset``. value() must say it belongs to an older
definition and what to use instead, rather than silently load the old result; a task whose hash the current
jugfile still has is current, whichever object it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

DEFS = """\
%%jugfile --name defs
from jug import TaskGenerator

@TaskGenerator
def scale(x, factor):
    return x * factor
"""
USES = """\
%%jugfile --name uses
results = [scale(i, {factor}) for i in range(3)]
"""
OTHER = """\
%%jugfile --name other
extra = scale(100, 1)
"""


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    shell = notebook_shell("jugfile")
    for source, cell_id in [(DEFS, "d"), (USES.format(factor=2), "u"), (OTHER, "o")]:
        assert shell.run_cell(source, cell_id=cell_id).success
    assert shell.run_cell("%jug execute --here").success
    assert shell.run_cell("old = results; old_first = results[0]; old_item = results[1][0:1]").success
    return shell


def value_error(ip: InteractiveShell, expression: str) -> str:
    with capture_output() as out:
        result = ip.run_cell(f"value({expression})")
    assert isinstance(result.error_in_exec, UsageError), out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    return str(result.error_in_exec)


def value_of(ip: InteractiveShell, expression: str) -> Any:
    result = ip.run_cell(f"value({expression})")
    assert result.success, result.error_in_exec
    return result.result


@pytest.mark.parametrize("expression", ["old", "old_first", "old_item", "{'k': old_first}", "(1, [old])"])
def test_edited_cell_makes_old_tasks_outdated(ip: InteractiveShell, expression: str) -> None:
    assert ip.run_cell(USES.format(factor=10), cell_id="u").success
    assert ip.run_cell("%jug execute --here").success
    message = value_error(ip, expression)
    assert "older definition" in message and "jugfile.scale" in message
    assert "%%jugfile cell 2 (--name uses, id u) was run again" in message, message
    assert "`value(results)`" in message and "It was in `results`" in message
    assert value_of(ip, "results") == [0, 10, 20]  # what to use instead works


def test_unchanged_tasks_stay_current(ip: InteractiveShell) -> None:
    # Another cell re-run (same hashes for these tasks): the old objects give the same, current result.
    assert ip.run_cell(OTHER.replace("100", "200"), cell_id="o").success
    assert value_of(ip, "old") == [0, 2, 4]
    # An edit undone makes the old tasks current again.
    assert ip.run_cell(USES.format(factor=10), cell_id="u").success
    assert ip.run_cell(USES.format(factor=2), cell_id="u").success
    assert value_of(ip, "old_first") == 0


def test_reset_then_a_new_definition(ip: InteractiveShell) -> None:
    assert ip.run_cell("%jug reset").success
    for source, cell_id in [(DEFS, "d"), (USES.format(factor=3), "u")]:
        assert ip.run_cell(source, cell_id=cell_id).success
    message = value_error(ip, "old")
    assert "`%jug reset` ran" in message and "`value(results)`" in message


def test_task_name_gone_says_what_exists(ip: InteractiveShell) -> None:
    assert ip.run_cell(OTHER.replace("scale(100, 1)", "100"), cell_id="o").success
    assert ip.run_cell("old_extra = None").success
    assert ip.run_cell("%jug reset").success
    renamed = DEFS.replace("def scale", "def resize") + "\nsizes = [resize(1, 2)]\n"
    assert ip.run_cell(renamed, cell_id="d").success
    message = value_error(ip, "old")
    assert "no task named jugfile.scale" in message and "get_tasks()" in message


def test_invalidate_of_an_outdated_task_is_refused_too(ip: InteractiveShell) -> None:
    assert ip.run_cell(USES.format(factor=10), cell_id="u").success
    with capture_output() as out:
        result = ip.run_cell("invalidate(old_first)")
    assert isinstance(result.error_in_exec, UsageError), out.stdout
    assert str(result.error_in_exec).startswith("invalidate() was given a task of an older definition")
    assert ip.run_cell("%jug execute --here").success
    assert value_of(ip, "results") == [0, 10, 20]
