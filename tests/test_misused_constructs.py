"""Misused jug constructs are refused at the %%jugfile cell that writes them, naming the cell and line.

jug accepts each of these at import and fails only later (in a worker, or in ``value()``) with a raw
TypeError or AttributeError: the class is "a construct given the wrong kind of argument", so every
construct that takes a function or a task is tried with each wrong kind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

HEAD = """\
%%jugfile --name defs
from jug import Task, Tasklet, TaskGenerator, CompoundTask, mapreduce

def double(x):
    return 2 * x

@TaskGenerator
def triple(x):
    return 3 * x

first = Task(double, 1)
"""

# (case, the misused line, words the message must contain)
MISUSES = [
    (
        "task as Task's function",
        "bad = Task(first, 2)",
        ["task jugfile.double", "where a function is expected"],
    ),
    ("TaskGenerator as Task's function", "bad = Task(triple, 2)", ["TaskGenerator triple", "`triple(x)`"]),
    ("value as Task's function", "bad = Task(3, 2)", ["int 3", "where a function is expected"]),
    ("task as TaskGenerator", "bad = TaskGenerator(first)(2)", ["task jugfile.double", "function"]),
    ("Tasklet with a value as function", "bad = Tasklet(first, 3)", ["Tasklet(base, f)", "int 3"]),
    ("Tasklet with swapped arguments", "bad = Tasklet(double, first)", ["as its base", "swapped"]),
    ("Tasklet on a plain value", "bad = Tasklet([1, 2], double)", ["list [1, 2]", "as its base"]),
    ("Tasklet with a TaskGenerator", "bad = Tasklet(first, triple)", ["TaskGenerator triple", "`triple.f`"]),
    ("task as mapper", "bad = mapreduce.map(first, [1, 2, 3])", ["mapper", "task jugfile.double"]),
    ("task as reducer", "bad = mapreduce.reduce(first, [1, 2, 3])", ["reducer", "task jugfile.double"]),
    ("value as mapper", "bad = mapreduce.mapreduce(double, 'x', [1, 2])", ["mapper", "str 'x'"]),
    ("task as mapped list", "bad = mapreduce.map(double, first)", ["as its sequence", "`bvalue(t)`"]),
    ("value as reduced list", "bad = mapreduce.reduce(double, 7)", ["as its inputs", "int 7"]),
    (
        "task as mapreduce inputs",
        "bad = mapreduce.mapreduce(double, double, inputs=first)",
        ["inputs", "task"],
    ),
    ("Tasklet without a function", "bad = Tasklet(first)", ["takes a task and a function", "task jugfile"]),
    (
        "Tasklet with three arguments",
        "bad = Tasklet(first, double, 1)",
        ["takes a task and a function", "int 1"],
    ),
    ("Task without a function", "bad = Task()", ["Task() was given no function"]),
    (
        "task as currymap mapper",
        "bad = mapreduce.currymap(first, [(1, 2)])",
        ["mapper", "task jugfile.double"],
    ),
]


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    return notebook_shell("jugfile")


def run(ip: InteractiveShell, source: str, cell_id: str) -> tuple[Any, str]:
    with capture_output() as out:
        result = ip.run_cell(source, cell_id=cell_id)
    return result, out.stdout + out.stderr


@pytest.mark.parametrize(("case", "line", "words"), MISUSES, ids=[m[0] for m in MISUSES])
def test_misuse_is_refused_at_its_cell_and_line(
    ip: InteractiveShell, case: str, line: str, words: list[str]
) -> None:
    assert run(ip, HEAD, "defs")[0].success
    result, shown = run(ip, f"%%jugfile --name uses\nok = double(1)\n{line}\n", "uses")
    assert isinstance(result.error_in_exec, UsageError), shown
    message = str(result.error_in_exec)
    assert "cell 2" in message and "line 3" in message and line in message, message
    for word in words:
        assert word in message, message
    assert "Traceback" not in shown and "AttributeError" not in shown, shown
    # The cell was refused: the graph is the previous one, which still works.
    assert "bad" not in ip.user_ns
    assert [t.name for t in ip.user_ns["get_tasks"]()] == ["jugfile.double"]


def test_correct_constructs_still_load(ip: InteractiveShell) -> None:
    assert run(ip, HEAD, "defs")[0].success
    good = (
        "%%jugfile --name good\n"
        "import operator\nfrom functools import partial\n"
        "pairs = Task(double, [1, 2])\n"
        "second = pairs[1]\n"
        "shifted = Tasklet(first, lambda r: r + 1)\n"
        "mapped = mapreduce.map(triple, [1, 2, 3], map_step=2)\n"
        "total = mapreduce.mapreduce(operator.add, double, [1, 2, 3], map_step=1)\n"
        "curried = Task(partial(double), 5)\n"
        "class Scaler:\n"
        "    __hash__ = None  # an unhashable callable object is a fine task function\n"
        "    __name__ = 'Scaler'\n"
        "    def __call__(self, x):\n"
        "        return 5 * x\n"
        "scaled = Task(Scaler(), 2)\n"
        "last = triple(second)\n"
    )
    result, shown = run(ip, good, "good")
    assert result.success, shown
    assert run(ip, "%jug execute --here", "exec")[0].success
    names = ["last", "shifted", "total", "scaled"]
    assert ip.user_ns["value"]([ip.user_ns[n] for n in names]) == [6, 3, 12, 10]


def test_value_of_a_tasklet_on_a_non_task_names_the_mistake(ip: InteractiveShell) -> None:
    # Built in an ordinary cell, outside the jugfile: only value() can tell.
    assert run(ip, HEAD, "defs")[0].success
    result, shown = run(ip, "from jug import Tasklet\nvalue(Tasklet(5, double))", "v")
    assert isinstance(result.error_in_exec, UsageError), shown
    assert "int 5" in str(result.error_in_exec) and "where a task is expected" in str(result.error_in_exec)
    result, shown = run(ip, "invalidate(42)", "i")
    assert isinstance(result.error_in_exec, UsageError), shown
    assert "int 42" in str(result.error_in_exec)


def test_cli_names_the_cell_of_a_misuse(
    make_notebook: Callable[..., Path],
    project: Path,
    jug_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # `jugnb execute` imports the jugfile itself: the same check, by cell and line, before any task runs.
    from jugnb.cli import main

    monkeypatch.chdir(project)
    body = HEAD.replace("%%jugfile --name defs\n", "%%jugfile\n")
    make_notebook([body, "%%jugfile\nbad = mapreduce.map(first, [1, 2])"], name="misused.ipynb")
    assert main(["execute", "misused.ipynb"]) != 0
    err = capfd.readouterr().err
    assert "cell 2 (%%jugfile cell 2, id cell-2), line 2" in err and "(its mapper)" in err, err
    assert "Traceback" not in err
    assert not (project / "misused.jugdata").exists() or not any((project / "misused.jugdata").rglob("*"))
