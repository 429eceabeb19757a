"""jugnb.status.labels: task instances named by their arguments, on jug tasks and the grid search notebook."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jug.mapreduce
import nbformat
from IPython.core.interactiveshell import InteractiveShell
from jug import Task, TaskGenerator, Tasklet, iteratetask
from jug.task import alltasks
from jug.unsafe import NoHash
from jug.utils import CustomHash, identity, timed_path

from jugnb.status.labels import GraphLabels, argument_parts, display_name, task_label, task_text

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def double(x: int) -> int:
    return 2 * x


def add(a: int, b: int) -> int:
    return a + b


@TaskGenerator
def simulate(seed: int, rate: float) -> float:
    return seed * rate


@TaskGenerator
def fit(params: dict[str, Any], fold: int) -> float:
    return 0.0


@TaskGenerator
def pair(x: int) -> tuple[int, int]:
    return x, x + 1


def test_plain_arguments_and_names() -> None:
    assert task_label(simulate(7, 1.5)) == "simulate(7, 1.5)"
    assert display_name("grid.cv_score", "grid") == "cv_score"
    assert display_name("other.cv_score", "grid") == "other.cv_score"
    assert display_name("jug.mapreduce._jug_map") == "mapreduce.map"
    assert display_name("builtins.max", "grid") == "max"
    long = simulate(list(range(1000)), "x" * 200)
    label = task_label(long)
    assert label.startswith("simulate([0, 1, 2, … 1000 items], 'xxxxx") and len(label) < 80
    assert "'" + "x" * 200 + "'" in task_text(long)  # the full text is never abbreviated


def test_long_dicts_keep_the_values_that_tell_tasks_apart() -> None:
    base = {"kernel": "rbf", "tol": 0.001, "cache": 200, "shrinking": True, "verbose": False}
    tasks = [fit({**base, "C": c, "gamma": g}, fold=0) for c in (1.0, 10.0) for g in (0.01, 0.03)]
    labels = GraphLabels(tasks)
    shown = [labels.label(i) for i in range(len(tasks))]
    assert len(set(shown)) == 4, shown  # told apart
    assert shown[1].startswith("fit({'C': 1.0, 'gamma': 0.03,") and shown[1].endswith("… 7 keys}, fold=0)")
    assert ("gamma", "0.03") in argument_parts(tasks[1]) and ("fold", "0") in argument_parts(tasks[1])
    assert "'verbose': False" in labels.text(1)


def test_jug_constructs() -> None:
    alltasks.clear()
    jug.mapreduce.map(double, list(range(10)), map_step=4)
    jug.mapreduce.mapreduce(add, double, list(range(10)), map_step=3, reduce_step=2)
    first = pair(1)[0]
    _, b = iteratetask(pair(3), 2)
    plain = Task(add, first, b)
    then = Tasklet(plain, double)
    wrapped = simulate(CustomHash(3, lambda x: b"h"), NoHash(0.5))
    timed = simulate(timed_path(__file__), 1.0)
    copied = identity(list(range(100)))
    assert task_label(then) == "double(add(pair(1)[0], pair(3)[1]))"  # Tasklet(task, f)
    labels = GraphLabels(list(alltasks))
    shown = [labels.label(i) for i in range(len(alltasks))]
    assert shown[:3] == [f"mapreduce.map(double), block {i} of 3" for i in (1, 2, 3)]
    assert shown[3:7] == [f"mapreduce.mapreduce(add, double), block {i} of 4" for i in (1, 2, 3, 4)]
    assert shown[7:10] == ["mapreduce.reduce(add), block 1 of 2", "mapreduce.reduce(add), block 2 of 2",
                           "mapreduce.reduce(add), block 1 of 1"]  # fmt: skip
    assert labels.columns(1) == [("1", "double"), ("block", "2 of 3")]
    assert task_label(plain) == "add(pair(1)[0], pair(3)[1])"
    assert task_label(wrapped) == "simulate(3, 0.5)"
    assert task_label(timed).startswith("simulate('/") and task_label(timed).endswith("…', 1.0)")
    assert task_label(copied) == "identity([0, 1, 2, … 100 items])"
    alltasks.clear()


def test_grid_search_notebook_filter(
    notebook_shell: Callable[[str], InteractiveShell], project: Path
) -> None:
    """The notebook's own suggestion: `cv_score` with `0.03` finds the 16 tasks with gamma 0.03."""
    notebook = nbformat.read(NOTEBOOKS / "grid_search.ipynb", as_version=4)
    ip = notebook_shell("grid_search")
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.source.startswith("%%jugfile"):
            ip.run_cell(cell.source, cell_id=f"cell-{number}")
    browser = ip.run_line_magic("jug", "browse")
    browser.name_filter.value = "grid_search.cv_score"
    browser.text_filter.value = "0.03"
    assert len(browser.entries) == 16
    assert all(dict(e.columns)["gamma"] == "0.03" for e in browser.entries)
    labels = {e.label for e in browser.entries}
    assert len(labels) == 16  # every task told apart by its label
    assert "cv_score(load_data(), split_data(…), 0, {'C': 0.1, 'gamma': 0.03})" in labels
