"""Every construct of Jug's documentation in every view: the browser, status, why, the panel and the graph.

Each sample of tests/jugfiles (mapreduce blocks, Tasklets, CompoundTask, NoHash/CustomHash, block_access,
iteratetask, barriers, bvalue, jug_execute) is run as %%jugfile cells in an in-process shell; every view
must draw it, and no view may name a task by jug's internals or by an object's address.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from conftest import read_cells
from IPython.core.interactiveshell import InteractiveShell
from test_constructs import SAMPLES, run_cells

from jugnb.magics.commands import status_snapshot
from jugnb.status.labels import GraphLabels, task_label
from jugnb.widgets.model import ProgressModel
from jugnb.widgets.progress import ProgressPanel

# What a label must never show: jug's internal function names, object reprs with addresses.
UNREADABLE = re.compile(
    r"_jug_map|_jug_reduce|compound_task_execute|jug\.utils\._identity|object at 0x|<function"
)
BLOCK_ACCESS = """%%jugfile --name uses_blocks
from jug import Task as _Task
biggest = _Task(max, doubled)            # a block_access (what map returns) as an argument
some = _Task(sum, doubled[2:7])         # a slice of it
"""


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    return notebook_shell("sample")


def _views(ip: InteractiveShell) -> dict[str, str]:
    graph = ip.run_line_magic("jug", "graph --dot")
    browser = ip.run_line_magic("jug", "browse")
    browser.refresh()
    status = ip.run_line_magic("jug", "status")
    hashes = [e.hash for e in browser.entries]
    unique = [h for h in hashes if hashes.count(h) == 1]  # CompoundTask's inner graph repeats a task
    first = unique[0][:10] if unique else None
    why = ip.run_line_magic("jug", f"why {first}") if first else None
    magics = ip.magics_manager.registry["JugMagics"]
    snapshot = status_snapshot(magics, magics.graph)
    panel = ProgressPanel(title="sample")
    panel.render(ProgressModel(since=time.time()).view(snapshot))
    return {
        "browser": "\n".join(e.label for e in browser.entries),
        "listing": "\n".join(label for label, _ in browser.listing.options),
        "details": browser.details.value,
        "status": status._repr_html_() if hasattr(status, "_repr_html_") else str(status),
        "why": str(why.text if why is not None else ""),
        "panel": re.sub(r"<[^>]+>", "", " ".join(str(getattr(w, "value", "")) for w in _leaves(panel))),
        "graph": "\n".join(re.findall(r'label="([^"]*)"', str(graph.text))),  # what the picture shows
    }


def _leaves(widget: object) -> list[object]:
    children = getattr(widget, "children", ())
    return [widget] if not children else [leaf for c in children for leaf in _leaves(c)]


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_construct_in_every_view(sample: str, ip: InteractiveShell) -> None:
    run_cells(ip, sample)
    views = _views(ip)
    for view in ("browser", "listing", "why", "graph", "panel"):
        assert not UNREADABLE.search(views[view]), (view, UNREADABLE.search(views[view]), views[view])
    magics = ip.magics_manager.registry["JugMagics"]
    labels = GraphLabels(magics.graph.tasks, magics.session.project.module)
    shown = [labels.label(i) for i in range(len(magics.graph.tasks))]
    assert all(s and not UNREADABLE.search(s) for s in shown), shown
    assert views["browser"].splitlines() == shown
    if sample == "mapreduce":
        assert "mapreduce.map(double), block 2 of 3" in shown
        assert "mapreduce.reduce(add), block 3 of 3" in shown
        assert "mapreduce.mapreduce(add, double), block 4 of 4" in shown
        assert "mapreduce.map" in views["graph"] and "mapreduce.map" in views["status"]
        assert views["why"].startswith("mapreduce.map(double), block 1 of 3 (")  # the instance, then its hash
    if sample == "constructs":
        assert "scaled('abc', 2, True)" in shown  # CustomHash and NoHash show their values
        assert "add(pair(1)[0], pair(3)[1])" in shown  # a Tasklet by indexing; iteratetask
        assert "file_length('inputs/a.txt')" in shown  # timed_path
    if sample == "compound":
        assert any(s == "CompoundTask of (double(4), double(double(…)))" for s in shown), shown
    if sample == "tasklets":
        assert any(s.startswith("add(plus1(add(") for s in shown), shown  # Tasklet(task, f)


def test_block_access_arguments(ip: InteractiveShell) -> None:
    """`%jug browse` on a task that takes what jug.mapreduce.map returned (it raised before)."""
    _, first_cell = read_cells("mapreduce")[0]  # before its barrier
    assert ip.run_cell(first_cell, cell_id="cell-1").success
    assert ip.run_cell(BLOCK_ACCESS, cell_id="cell-blocks").success
    magics = ip.magics_manager.registry["JugMagics"]
    browser = ip.run_line_magic("jug", "browse")
    names = {t.name: t for t in magics.graph.tasks}
    assert task_label(names["builtins.max"]) == "max(mapreduce.map(double))"
    assert task_label(names["builtins.sum"]) == "sum(mapreduce.map(double)[2:7])"
    assert {"max(mapreduce.map(double))", "sum(mapreduce.map(double)[2:7])"} <= {
        e.label for e in browser.entries
    }
