"""Jug's own semantics survive export: each sample runs under real ``jugnb execute`` and plain ``jug status``.

One notebook per feature (``tests/jugfiles/<feature>.cells``), each in its own folder. The module fixture
runs every ``jugnb execute`` at once, exports the notebooks, then runs every plain ``jug status`` on the
exported files at once; each test then checks one feature's values by loading its exported jugfile the way
plain jug does (``jug.init``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jug
import jug.task
import pytest

from jugnb.cli.app import main

FEATURES = ("barrier", "bvalue", "tasklets", "mapreduce", "compound", "jug_execute")


@dataclass
class Run:
    folder: Path
    notebook: Path
    exported: Path
    jugdir: Path
    execute: subprocess.CompletedProcess[str]
    status: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
    notebook_writer: Callable[..., Path],
    cells: Callable[[str], list[tuple[str, str]]],
    run_parallel: Callable[..., list[subprocess.CompletedProcess[str]]],
) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("semantics")
    notebooks = {f: notebook_writer(root / f / f"{f}_nb.ipynb", cells(f)) for f in FEATURES}
    executed = run_parallel(
        [("jugnb", ["execute", nb.name, "--will-cite"], nb.parent) for nb in notebooks.values()]
    )
    for notebook in notebooks.values():
        assert main(["export", str(notebook)]) == 0
    exported = {f: nb.with_suffix(".py") for f, nb in notebooks.items()}
    statuses = run_parallel(
        [("jug", ["status", path.name, "--short", "--will-cite"], path.parent) for path in exported.values()]
    )
    return {
        f: Run(nb.parent, nb, exported[f], nb.with_suffix(".jugdata"), ex, st)
        for (f, nb), ex, st in zip(notebooks.items(), executed, statuses, strict=True)
    }


@pytest.fixture
def load(runs: dict[str, Run], load_jugfile: Callable[[Path, Path], dict[str, Any]]) -> Callable[[str], Any]:
    """``load(feature)``: the exported jugfile's namespace, loaded from the jugdir that jugnb filled."""

    def load_feature(feature: str) -> Any:
        result = runs[feature]
        space = load_jugfile(result.exported, result.jugdir)
        assert "__jug__hasbarrier__" not in space, "a barrier stopped the import: jugnb left work undone"
        assert all(t.can_load() for t in jug.task.alltasks)
        return space

    return load_feature


@pytest.mark.parametrize("feature", FEATURES)
def test_jugnb_execute_succeeds(runs: dict[str, Run], feature: str) -> None:
    execute = runs[feature].execute
    assert execute.returncode == 0, execute.stderr
    assert "Traceback" not in execute.stderr
    # jug's final table: "<executed> <loaded> Total"; every task ran in this fresh jugdir
    executed, loaded, label = execute.stdout.splitlines()[-2].split()
    assert label == "Total"
    assert int(executed) > 0


@pytest.mark.parametrize("feature", FEATURES)
def test_plain_jug_status_on_the_export_agrees(runs: dict[str, Run], feature: str) -> None:
    status = runs[feature].status
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("All tasks complete")


def test_barrier(load: Callable[[str], Any], runs: dict[str, Run]) -> None:
    space = load("barrier")
    assert jug.value(space["squares"]) == [0, 1, 4, 9]
    assert space["positive"] == [1, 4, 9]
    assert jug.value(space["result"]) == 14
    assert "barrier_nb.total" in runs["barrier"].execute.stdout


def test_bvalue(load: Callable[[str], Any]) -> None:
    space = load("bvalue")
    assert space["n"] == 3
    assert jug.value(space["steps"]) == [0, 10, 20]


def test_tasklets(load: Callable[[str], Any]) -> None:
    space = load("tasklets")
    assert isinstance(space["first"], jug.Tasklet)
    assert jug.value(space["doubled"]) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert (jug.value(space["first"]), jug.value(space["third"])) == (0, 4)
    assert jug.value(space["pair_plus1"]) == 5
    assert jug.value(space["final"]) == 11


def test_mapreduce(load: Callable[[str], Any]) -> None:
    space = load("mapreduce")
    assert jug.value(space["doubled"]) == [2 * i for i in range(10)]
    assert jug.value(space["summed"]) == 45
    assert jug.value(space["total"]) == 90
    assert jug.value(space["largest"]) == 18


def test_compound_task_generator(load: Callable[[str], Any]) -> None:
    space = load("compound")
    assert tuple(jug.value(space["pair"])) == (8, 16)
    assert jug.value(space["result"]) == 24


def test_jug_execute(load: Callable[[str], Any], runs: dict[str, Run]) -> None:
    result = runs["jug_execute"]
    assert "jug_execute echoes this" in result.execute.stdout
    # The command ran in the working directory of `jugnb execute`: the notebook's folder.
    assert (result.folder / "made_by_task.txt").read_text(encoding="utf-8") == "written by a task"
    space = load("jug_execute")
    assert jug.value(space["made"]) == "made_by_task.txt"
    assert jug.value(space["text"]) == "written by a task"
