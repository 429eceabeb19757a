"""What jugnb execute adds to jug's execute: records with code fingerprints, and --dry-run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import write_notebook

CELLS = [
    "%%jugfile --name tasks\nfrom jug import TaskGenerator\n\nSCALE = 3\n\n@TaskGenerator\ndef scaled(x):\n"
    "    return x * SCALE\n\n@TaskGenerator\ndef total(xs):\n    return sum(xs)\n\n"
    "parts = [scaled(i) for i in range(4)]\nresult = total(parts)\n",
]


def records(project: Path) -> list[dict[str, object]]:
    folder = project / "analysis.jugdata.jugnb" / "records"
    return [json.loads(line) for path in folder.iterdir() for line in path.read_text().splitlines()]


def test_execute_writes_a_record_with_fingerprint_per_task(project: Path, run: Callable[..., object]) -> None:
    notebook = write_notebook(project / "analysis.ipynb", CELLS)
    result = run("jugnb", "execute", notebook, cwd=project)
    assert result.returncode == 0, result.stderr
    written = records(project)
    assert sorted(r["name"] for r in written) == ["analysis.scaled"] * 4 + ["analysis.total"]
    assert all(r["status"] == "ok" and r["fingerprint"] and r["duration"] is not None for r in written)


def test_dry_run_lists_and_runs_nothing_then_sees_code_changes(
    project: Path, run: Callable[..., object]
) -> None:
    notebook = write_notebook(project / "analysis.ipynb", CELLS)
    plan = run("jugnb", "execute", notebook, "--dry-run", cwd=project)
    assert plan.returncode == 0, plan.stderr
    assert "new      analysis.scaled  4" in plan.stdout and "waiting  analysis.total" in plan.stdout
    assert "nothing was run" in plan.stdout
    assert not (project / "analysis.jugdata").exists() or not any((project / "analysis.jugdata").iterdir())
    run("jugnb", "execute", notebook, cwd=project)
    write_notebook(project / "analysis.ipynb", [CELLS[0].replace("SCALE = 3", "SCALE = 4")])
    plan = run("jugnb", "execute", notebook, "--dry-run", cwd=project)
    assert "code changed but kept      analysis.scaled  4" in plan.stdout
    assert "upstream changed but kept  analysis.total   1" in plan.stdout


def test_dry_run_needs_a_notebook(project: Path, run: Callable[..., object]) -> None:
    (project / "plain.py").write_text("x = 1\n")
    result = run("jugnb", "execute", "plain.py", "--dry-run", cwd=project)
    assert result.returncode == 2 and "--dry-run needs a notebook" in result.stderr


def test_dry_run_plans_only_the_selected_tasks(project: Path, run: Callable[..., object]) -> None:
    notebook = write_notebook(project / "analysis.ipynb", CELLS)
    plan = run("jugnb", "execute", notebook, "--dry-run", "--name", "total", cwd=project)
    assert "waiting  analysis.total" in plan.stdout and "analysis.scaled" not in plan.stdout
    none = run("jugnb", "execute", notebook, "--dry-run", "--name", "nosuch", cwd=project)
    assert "No task matches the selection" in none.stdout


def test_an_exception_while_importing_names_the_cell(project: Path, run: Callable[..., object]) -> None:
    broken = [CELLS[0], "%%jugfile --name later\nz = undefined_thing + 1\n"]
    notebook = write_notebook(project / "analysis.ipynb", broken)
    for subcommand in ("execute", "status", "check"):
        result = run("jugnb", subcommand, notebook, cwd=project)
        assert result.returncode == 1, (subcommand, result.stderr)  # jug's code for a failed import
        assert "Importing the jugfile failed at cell 2 (%%jugfile cell 2, --name later" in result.stderr
        assert "line 2:\n    z = undefined_thing + 1\nNameError" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def test_a_failing_task_keeps_jugs_own_traceback(project: Path, run: Callable[..., object]) -> None:
    failing = CELLS[0].replace("return x * SCALE", "return x / 0")
    notebook = write_notebook(project / "analysis.ipynb", [failing])
    result = run("jugnb", "execute", notebook, cwd=project)
    assert result.returncode == 1 and "ZeroDivisionError" in result.stderr
    assert "Importing the jugfile failed" not in result.stderr


def test_a_file_that_is_neither_notebook_nor_jugfile_is_refused(
    project: Path, run: Callable[..., object]
) -> None:
    (project / "plain.txt").write_text("just some notes\nnot python at all\n")
    for command in (["execute", "plain.txt", "-j", "2"], ["status", "plain.txt"]):
        result = run("jugnb", *command, cwd=project)
        assert result.returncode == 2, (command, result.stderr)
        assert "'plain.txt' is neither a notebook (.ipynb) nor a jugfile (.py)" in result.stderr
        assert "NameError" not in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["plain.txt"]  # nothing written


def test_a_dry_run_cleanup_lists_while_workers_run_and_says_a_real_one_is_refused(
    project: Path, run: Callable[..., object]
) -> None:
    from jugnb.backends import leases_of
    from jugnb.backends.leases import Lease

    notebook = write_notebook(project / "analysis.ipynb", CELLS)
    assert run("jugnb", "execute", notebook, cwd=project).returncode == 0
    # A result no task uses any more, and a live worker on the jugdir (a lease renewed now, by this process).
    write_notebook(project / "analysis.ipynb", [CELLS[0].replace("range(4)", "range(3)")])
    leases_of(str(project / "analysis.jugdata")).write(Lease.new("w1", interval=10.0, timeout=600.0))
    dry = run("jugnb", "cleanup", notebook, "--dry-run", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert "Would remove 2 objects" in dry.stdout  # scaled(3) and the old total
    assert "A real cleanup would be refused now: Refusing to remove results: 1 jugnb worker(s)" in dry.stdout
    real = run("jugnb", "cleanup", notebook, cwd=project)
    assert real.returncode == 2 and "Refusing to remove results" in real.stderr
