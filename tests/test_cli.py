"""The ``jugnb`` command: ``export``, every jug subcommand on a notebook, and the round trip with plain jug.

In-process ``jugnb.cli.app.main([...])`` wherever possible (a jug subcommand still runs in a child process,
whose output ``capfd`` captures); real ``jugnb``/``jug`` processes where a test needs its own working
directory in a module fixture, standard input, or the console script itself.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jug
import jug.task
import nbformat
import pytest
from conftest import free_port

from jugnb.cli.app import main
from jugnb.notebook.export import export_notebook
from jugnb.notebook.jugfile import GENERATED_MARK, is_generated

# In-process main() runs jug in a child process without a timeout: the deadline bounds every test.
pytestmark = pytest.mark.usefixtures("deadline")

NOTEBOOK = "my analysis-v2.ipynb"
MODULE = "my_analysis_v2"
N_TASKS = 6  # five `double` tasks and one `add`

Run = Callable[..., subprocess.CompletedProcess[str]]
MakeNotebook = Callable[..., Path]
Cells = Callable[[str], list[tuple[str, str]]]


@pytest.fixture
def nb(make_notebook: MakeNotebook, cells: Cells) -> Path:
    """The simple sample notebook, not yet run."""
    return make_notebook(cells("simple"), name=NOTEBOOK)


@pytest.fixture
def in_project(project: Path, jug_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in the project folder, with the isolated environment, for in-process ``main`` calls."""
    monkeypatch.chdir(project)
    return project


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("jugnb: error:")]


def _result_hashes(jugdir: Path) -> set[str]:
    """Hashes of the results in a file-store jugdir (``<jugdir>/<h[:2]>/<h[2:]>``)."""
    return {
        sub.name + entry.name
        for sub in jugdir.iterdir()
        if len(sub.name) == 2 and sub.is_dir()
        for entry in sub.iterdir()
    }


# jugnb export


def test_export_writes_module_beside_the_notebook(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(nb)]) == 0
    exported = nb.parent / f"{MODULE}.py"
    assert capsys.readouterr().out == f"wrote {exported} (module {MODULE}, 2 %%jugfile cells)\n"
    assert exported.read_text(encoding="utf-8") == export_notebook(nb).text
    assert is_generated(exported)


def test_export_again_says_unchanged(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(nb)]) == 0
    assert main(["export", str(nb)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"unchanged: {nb.parent / MODULE}.py")


def test_export_after_a_notebook_change_writes(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(nb)]) == 0
    notebook = nbformat.read(nb, as_version=4)
    notebook.cells[-1].source += "\nextra = double(10)"
    nbformat.write(notebook, nb)
    assert main(["export", str(nb)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("wrote ")
    assert (nb.parent / f"{MODULE}.py").read_text(encoding="utf-8").endswith("extra = double(10)\n")


def test_export_output_option(nb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "elsewhere" / "pipeline.py"
    assert main(["export", str(nb), "-o", str(output)]) == 0
    assert "(module pipeline," in capsys.readouterr().out
    assert output.read_text(encoding="utf-8") == export_notebook(nb).text
    assert not (nb.parent / f"{MODULE}.py").exists()


def test_export_name_option(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(nb), "--name", "pipeline"]) == 0
    assert (nb.parent / "pipeline.py").exists()
    assert not (nb.parent / f"{MODULE}.py").exists()


def test_export_output_and_name_must_agree(
    nb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(nb), "-o", str(tmp_path / "a.py"), "--name", "b"]) == 2
    assert "disagree" in capsys.readouterr().err
    assert not (tmp_path / "a.py").exists()


@pytest.mark.parametrize(("stem", "module"), [("2024 results", "_2024_results"), ("class", "class_")])
def test_export_module_name_from_an_awkward_stem(
    make_notebook: MakeNotebook, capsys: pytest.CaptureFixture[str], stem: str, module: str
) -> None:
    path = make_notebook(["%%jugfile\nx = 1"], name=f"{stem}.ipynb")
    assert main(["export", str(path)]) == 0
    assert (path.parent / f"{module}.py").exists()


def test_export_refuses_a_foreign_file_and_leaves_it(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = nb.parent / f"{MODULE}.py"
    mine.write_text("# my own jugfile\n", encoding="utf-8")
    assert main(["export", str(nb)]) == 2
    err = capsys.readouterr().err
    assert _errors(err) and "not generated by jugnb" in err and "--force" in err
    assert mine.read_text(encoding="utf-8") == "# my own jugfile\n"


def test_export_force_replaces_a_foreign_file(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = nb.parent / f"{MODULE}.py"
    mine.write_text("# my own jugfile\n", encoding="utf-8")
    assert main(["export", str(nb), "--force"]) == 0
    assert mine.read_text(encoding="utf-8").startswith(GENERATED_MARK)


@pytest.mark.parametrize("stem", ["json", "numpy"])
def test_export_refuses_a_stem_that_shadows_a_module(
    make_notebook: MakeNotebook, capsys: pytest.CaptureFixture[str], stem: str
) -> None:
    path = make_notebook(["%%jugfile\nx = 1"], name=f"{stem}.ipynb")
    assert main(["export", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"would shadow the importable module `{stem}`" in err
    assert "--name OTHER_NAME" in err
    assert not (path.parent / f"{stem}.py").exists()
    # ... and --name is indeed the way out
    assert main(["export", str(path), "--name", f"my_{stem}"]) == 0


def test_export_unwritable_output(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (nb.parent / "taken").write_text("a file, not a folder\n", encoding="utf-8")
    assert main(["export", str(nb), "-o", str(nb.parent / "taken" / "out.py"), "--force"]) == 2
    err = capsys.readouterr().err
    assert _errors(err) and "cannot write" in err and "Traceback" not in err


def _write_v3_notebook(path: Path, source: str) -> Path:
    v3 = nbformat.v3
    worksheet = v3.new_worksheet(cells=[v3.new_code_cell(input=source)])
    path.write_text(nbformat.writes(v3.new_notebook(worksheets=[worksheet]), version=3), encoding="utf-8")
    return path


def test_export_converts_a_v3_notebook(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_v3_notebook(project / "old.ipynb", "%%jugfile\nfrom jug import Task\nt = Task(sum, [1])")
    assert main(["export", str(path)]) == 0
    assert main(["export", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("unchanged:")
    assert (project / "old.py").read_text(encoding="utf-8").endswith("t = Task(sum, [1])\n")


def test_execute_a_v3_notebook(
    in_project: Path, capfd: pytest.CaptureFixture[str], load_jugfile: Callable[[Path, Path], dict[str, Any]]
) -> None:
    _write_v3_notebook(in_project / "old.ipynb", "%%jugfile\nfrom jug import Task\nt = Task(sum, [1, 2, 3])")
    assert main(["execute", "old.ipynb", "--will-cite"]) == 0
    assert "1           0  builtins.sum" in capfd.readouterr().out
    assert main(["export", "old.ipynb"]) == 0
    space = load_jugfile(in_project / "old.py", in_project / "old.jugdata")
    assert jug.value(space["t"]) == 6


# bad input: exit 2, one clear line, no traceback; the same through `export` and a jug subcommand

BAD_CELLS = {
    "no_jugfile_cells": (["x = 1", ("markdown", "%%jugfile")], "has no %%jugfile cells"),
    "line_magic": (
        ["%%jugfile\nimport os\n%time os.getcwd()"],
        "cell 1 (%%jugfile cell 1, id cell-1), line 3",
    ),
    "shell_escape": (["x = 1", "%%jugfile\n!ls"], "cell 2 (%%jugfile cell 1, id cell-2), line 2: `!ls`"),
    "shell_assign": (["%%jugfile\ny = 1\nx = !ls"], "line 3: `x = !ls` is IPython syntax"),
    "syntax_error": (
        ["%%jugfile\nx = 1", "%%jugfile\ny = (\n"],
        "cell 2 (%%jugfile cell 2, id cell-2), line 2",
    ),
    "comment_first": (["# tasks\n%%jugfile\nx = 1"], "must be the first line"),
}


def _bad_notebook(project: Path, kind: str, writer: Callable[..., Path]) -> tuple[Path, str]:
    if kind == "missing":
        return project / "missing.ipynb", "no such notebook"
    if kind == "invalid_json":
        path = project / "broken.ipynb"
        path.write_text('{"cells": [', encoding="utf-8")
        return path, "not valid notebook JSON"
    cells, expected = BAD_CELLS[kind]
    return writer(project / "bad.ipynb", cells), expected


BAD_KINDS = ["missing", "invalid_json", *BAD_CELLS]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_export_bad_input(
    project: Path, notebook_writer: Callable[..., Path], capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path, expected = _bad_notebook(project, kind, notebook_writer)
    assert main(["export", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(_errors(captured.err)) == 1
    assert expected in captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in project.iterdir()) == sorted({path.name} - {"missing.ipynb"})


@pytest.mark.parametrize("kind", ["missing", "line_magic", "syntax_error"])
def test_subcommand_bad_input(
    in_project: Path, notebook_writer: Callable[..., Path], capfd: pytest.CaptureFixture[str], kind: str
) -> None:
    path, expected = _bad_notebook(in_project, kind, notebook_writer)
    assert main(["status", path.name]) == 2
    captured = capfd.readouterr()
    assert expected in captured.err
    assert "Traceback" not in captured.err
    assert not (in_project / ".jugnb").exists()


def test_subcommand_cannot_write_the_snapshot(
    in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (in_project / ".jugnb").write_text("a file where jugnb's state folder belongs\n", encoding="utf-8")
    assert main(["status", NOTEBOOK]) == 2
    err = capfd.readouterr().err
    assert "jugnb: error: jugnb cannot write its state folder" in err
    assert "File exists" in err and "--state-dir DIR" in err  # why, and how to move it
    assert "Traceback" not in err


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().out.startswith("usage: jugnb export")
    assert main(["--help"]) == 0
    assert "SUBCOMMAND" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("jugnb 0.")


def test_export_without_a_notebook_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export"])
    assert info.value.code == 2
    assert "usage: jugnb export" in capsys.readouterr().err


# `jugnb execute` once, then the round trip with plain jug and the read-only subcommands


@dataclass
class Executed:
    folder: Path
    notebook: Path
    execute: subprocess.CompletedProcess[str]
    listing: set[str]  # the folder's entries right after `jugnb execute`
    exported: Path
    plain_status: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def executed(
    tmp_path_factory: pytest.TempPathFactory, notebook_writer: Callable[..., Path], cells: Cells, run: Run
) -> Executed:
    """``jugnb execute`` (the console script) on a fresh notebook, then ``jugnb export``, then plain jug."""
    folder = tmp_path_factory.mktemp("executed")
    notebook = notebook_writer(folder / NOTEBOOK, cells("simple"))
    execute = run("jugnb", "execute", NOTEBOOK, cwd=folder)
    listing = {p.name for p in folder.iterdir()}
    assert main(["export", str(notebook)]) == 0
    exported = folder / f"{MODULE}.py"
    plain_status = run("jug", "status", exported.name, "--will-cite", cwd=folder)
    return Executed(folder, notebook, execute, listing, exported, plain_status)


@pytest.fixture
def in_executed(executed: Executed, jug_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Executed:
    monkeypatch.chdir(executed.folder)
    return executed


def test_execute_runs_every_task(executed: Executed) -> None:
    assert executed.execute.returncode == 0, executed.execute.stderr
    assert f"5           0  {MODULE}.double" in executed.execute.stdout
    assert f"1           0  {MODULE}.add" in executed.execute.stdout


def test_execute_without_will_cite_asks_for_a_citation(executed: Executed) -> None:
    assert "please cite" in executed.execute.stdout


def test_execute_adds_only_the_jugdir_its_records_and_the_state_folder(executed: Executed) -> None:
    # <jugdir>.jugnb holds the task records and code fingerprints that go with the jugdir (shared with
    # cluster hosts, unlike .jugnb/); both jugnb folders keep themselves out of git.
    assert executed.listing == {NOTEBOOK, f"{MODULE}.jugdata", f"{MODULE}.jugdata.jugnb", ".jugnb"}


def test_snapshot_lives_in_the_state_folder(executed: Executed) -> None:
    state = executed.folder / ".jugnb"
    snapshots = list((state / "jugfiles").glob("*/*"))
    assert [p.name for p in snapshots] == [f"{MODULE}.py"]
    assert snapshots[0].read_text(encoding="utf-8") == export_notebook(executed.notebook).text
    assert (state / ".gitignore").exists()


def test_plain_jug_status_on_the_export_shows_all_complete(executed: Executed) -> None:
    status = executed.plain_status
    assert status.returncode == 0, status.stderr
    assert f"0           0           0           5           0  {MODULE}" in status.stdout
    assert "0           0           0           6           0  Total" in status.stdout


def test_results_of_jugnb_are_loadable_by_plain_jug(
    executed: Executed, load_jugfile: Callable[[Path, Path], dict[str, Any]]
) -> None:
    jugdir = executed.folder / f"{MODULE}.jugdata"
    space = load_jugfile(executed.exported, jugdir)
    tasks = list(jug.task.alltasks)
    assert len(tasks) == N_TASKS
    assert all(t.can_load() for t in tasks)
    # Same task hashes: the jugdir holds exactly the results of the tasks plain jug computes.
    assert {t.hash().decode() for t in tasks} == _result_hashes(jugdir)
    assert jug.value(space["total"]) == 20


def test_shell_sees_the_same_hashes_and_values(executed: Executed, run: Run) -> None:
    script = "\n".join(
        [
            'print("HASHES", *sorted(t.hash().decode() for t in get_tasks()))',
            'print("TOTAL", value(total))',
            "exit",
        ]
    )
    shell = run("jugnb", "shell", NOTEBOOK, "--will-cite", cwd=executed.folder, input=script)
    assert shell.returncode == 0, shell.stderr
    hashes = next(line for line in shell.stdout.splitlines() if "HASHES" in line).split("HASHES")[1].split()
    assert set(hashes) == _result_hashes(executed.folder / f"{MODULE}.jugdata")
    assert "TOTAL 20" in shell.stdout


def test_status_matches_plain_jug(in_executed: Executed, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["status", NOTEBOOK, "--will-cite"]) == 0
    assert capfd.readouterr().out == in_executed.plain_status.stdout


def test_status_short(in_executed: Executed, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["status", NOTEBOOK, "--short"]) == 0
    assert capfd.readouterr().out == f"All tasks complete ({N_TASKS} tasks).\n"


@pytest.mark.parametrize("subcommand", ["check", "sleep-until"])
def test_check_and_sleep_until_on_finished_work(
    in_executed: Executed, capfd: pytest.CaptureFixture[str], subcommand: str
) -> None:
    assert main([subcommand, NOTEBOOK]) == 0


def test_count(in_executed: Executed, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["count", NOTEBOOK]) == 0
    out = capfd.readouterr().out
    assert f"5  {MODULE}.double" in out
    assert f"{N_TASKS}  Total" in out


def test_graph_writes_beside_the_notebook(executed: Executed, run: Run) -> None:
    # From another working directory: jug writes <jugfile>.dot beside the jugfile, jugnb beside the notebook.
    graph = run("jugnb", "graph", f"{executed.folder.name}/{NOTEBOOK}", cwd=executed.folder.parent)
    assert graph.returncode == 0, graph.stderr
    dot = (executed.folder / f"{MODULE}.dot").read_text(encoding="utf-8")
    assert f'"{MODULE}.double" -> "{MODULE}.add"' in dot
    assert not list((executed.folder / ".jugnb").rglob("*.dot"))


def test_webstatus_help(run: Run, executed: Executed) -> None:
    result = run("jugnb", "webstatus", "--help", cwd=executed.folder)
    assert result.returncode == 0
    assert "webstatus:" in result.stdout


def test_webstatus_starts(executed: Executed, jug_environ: dict[str, str], run: Run) -> None:
    port = free_port()
    args = ["webstatus", NOTEBOOK, "--port", str(port), "--ip", "127.0.0.1"]
    try:
        import bottle  # noqa: F401
    except ImportError:
        # jug loads the jugfile, then says bottle is missing: the same as plain jug on the export
        result = run("jugnb", *args, cwd=executed.folder)
        plain = run(
            "jug", *(a if a != NOTEBOOK else executed.exported.name for a in args), cwd=executed.folder
        )
        assert (result.returncode, result.stderr) == (plain.returncode, plain.stderr)
        assert "requires that bottle be installed" in result.stderr
        return
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jugnb"), *args],
        cwd=executed.folder,
        env=jug_environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        page = _get_within(f"http://127.0.0.1:{port}/", timeout=30)
        assert f"{MODULE}.double" in page
    finally:
        server.terminate()
        server.wait(timeout=30)


def _get_within(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode("utf-8"))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_python_m_jugnb(executed: Executed, run: Run) -> None:
    result = run("python", "-m", "jugnb", "status", NOTEBOOK, "--short", cwd=executed.folder)
    assert (result.returncode, result.stdout) == (0, f"All tasks complete ({N_TASKS} tasks).\n")


# the other way round: plain jug first, then jugnb


@dataclass
class PlainFirst:
    folder: Path
    execute: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def plain_first(
    tmp_path_factory: pytest.TempPathFactory, notebook_writer: Callable[..., Path], cells: Cells, run: Run
) -> PlainFirst:
    folder = tmp_path_factory.mktemp("plain_first")
    notebook = notebook_writer(folder / NOTEBOOK, cells("simple"))
    assert main(["export", str(notebook)]) == 0
    return PlainFirst(folder, run("jug", "execute", f"{MODULE}.py", "--will-cite", cwd=folder))


@pytest.fixture
def in_plain_first(
    plain_first: PlainFirst, jug_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> PlainFirst:
    monkeypatch.chdir(plain_first.folder)
    return plain_first


def test_jugnb_sees_results_of_plain_jug(
    in_plain_first: PlainFirst, capfd: pytest.CaptureFixture[str]
) -> None:
    assert in_plain_first.execute.returncode == 0, in_plain_first.execute.stderr
    assert main(["status", NOTEBOOK, "--short"]) == 0
    assert capfd.readouterr().out == f"All tasks complete ({N_TASKS} tasks).\n"
    assert main(["check", NOTEBOOK]) == 0


def test_jugnb_execute_after_plain_jug_loads_everything(
    in_plain_first: PlainFirst, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["execute", NOTEBOOK, "--will-cite"]) == 0
    out = capfd.readouterr().out
    assert f"0           5  {MODULE}.double" in out
    assert f"0           1  {MODULE}.add" in out


def test_py_jugfile_is_passed_straight_to_jug(
    in_plain_first: PlainFirst, capfd: pytest.CaptureFixture[str]
) -> None:
    state_before = (in_plain_first.folder / ".jugnb").exists()
    assert main(["status", f"{MODULE}.py", "--short"]) == 0
    assert capfd.readouterr().out == f"All tasks complete ({N_TASKS} tasks).\n"
    assert (in_plain_first.folder / ".jugnb").exists() == state_before


# subcommands that change the jugdir: each on a fresh run


@pytest.fixture
def fresh(in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[Path]:
    """The sample notebook, executed by ``jugnb execute``, in the working directory."""
    assert main(["execute", NOTEBOOK, "--will-cite"]) == 0
    capfd.readouterr()
    yield in_project


def test_status_and_check_exit_1_until_all_is_done(
    in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", NOTEBOOK, "--short"]) == 1
    assert capfd.readouterr().out.startswith(f"{N_TASKS} tasks waiting to be run, 0 failed, 0 complete")
    assert main(["check", NOTEBOOK]) == 1
    assert not (in_project / f"{MODULE}.jugdata").exists()


def test_invalidate(fresh: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["invalidate", NOTEBOOK, "--name", f"{MODULE}.double"]) == 0
    out = capfd.readouterr().out
    assert f"5  {MODULE}.double" in out
    assert f"1  {MODULE}.add" in out  # it depends on them
    assert main(["status", NOTEBOOK, "--short"]) == 1
    assert capfd.readouterr().out.startswith(f"{N_TASKS} tasks waiting to be run, 0 failed, 0 complete")
    assert _result_hashes(fresh / f"{MODULE}.jugdata") == set()


def test_cleanup_removes_results_the_notebook_no_longer_needs(
    fresh: Path, nb: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    notebook = nbformat.read(nb, as_version=4)
    notebook.cells[-1].source = notebook.cells[-1].source.replace("range(5)", "range(3)")
    nbformat.write(notebook, nb)
    assert main(["cleanup", NOTEBOOK]) == 0
    # two `double` results and the old `add` result are no longer part of the notebook's jugfile
    assert "Removed 3 objects" in capfd.readouterr().out
    assert len(_result_hashes(fresh / f"{MODULE}.jugdata")) == 3


def test_pack(fresh: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", NOTEBOOK]) == 0
    assert f"Packed {N_TASKS} objects" in capfd.readouterr().out
    assert (fresh / f"{MODULE}.jugdata" / "packs").is_dir()
    assert main(["status", NOTEBOOK, "--short"]) == 0


# jug's options and configuration


def test_jugdir_option(in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["execute", NOTEBOOK, "--jugdir", "results", "--will-cite"]) == 0
    assert "please cite" not in capfd.readouterr().out
    assert len(_result_hashes(in_project / "results")) == N_TASKS
    assert not (in_project / f"{MODULE}.jugdata").exists()
    assert main(["check", NOTEBOOK, "--jugdir=results"]) == 0
    assert main(["check", NOTEBOOK]) == 1


def test_jugdir_placeholders_use_the_exported_path(
    project: Path,
    nb: Path,
    jug_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # From the parent folder %(jugfile)s is "project/my_analysis_v2", as for `jug execute project/<mod>.py`.
    monkeypatch.chdir(project.parent)
    days = {datetime.date.today().isoformat()}
    assert main(["execute", f"project/{NOTEBOOK}", "--jugdir", "%(jugfile)s.%(date)s", "--will-cite"]) == 0
    days.add(datetime.date.today().isoformat())
    made = [project / f"{MODULE}.{day}" for day in days if (project / f"{MODULE}.{day}").is_dir()]
    assert len(made) == 1
    assert len(_result_hashes(made[0])) == N_TASKS
    # jugnb's state folder is the notebook's, wherever jugnb runs from
    records = f"{made[0].name}.jugnb"  # the task records that go with this jugdir
    assert {p.name for p in project.iterdir()} == {NOTEBOOK, ".jugnb", made[0].name, records}
    assert {p.name for p in project.parent.iterdir()} == {"project"}


def test_redis_jugdir(
    in_project: Path, nb: Path, redis_db: str, run: Run, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["execute", NOTEBOOK, "--jugdir", redis_db, "--will-cite"]) == 0
    assert not (in_project / f"{MODULE}.jugdata").exists()
    assert main(["export", NOTEBOOK]) == 0
    # plain jug on the export finds every result in the same redis database
    status = run("jug", "status", f"{MODULE}.py", "--jugdir", redis_db, "--short", cwd=in_project)
    assert (status.returncode, status.stdout) == (0, f"All tasks complete ({N_TASKS} tasks).\n")


def test_jugrc_in_the_working_directory(
    in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (in_project / "jugrc").write_text("[main]\njugdir = from_jugrc\nwill_cite = True\n", encoding="utf-8")
    assert main(["execute", NOTEBOOK]) == 0
    assert "please cite" not in capfd.readouterr().out
    assert len(_result_hashes(in_project / "from_jugrc")) == N_TASKS
    assert not (in_project / f"{MODULE}.jugdata").exists()


def test_module_option(in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["execute", NOTEBOOK, "--module", "pipeline", "--will-cite"]) == 0
    assert "pipeline.double" in capfd.readouterr().out
    assert len(_result_hashes(in_project / "pipeline.jugdata")) == N_TASKS
    assert main(["export", NOTEBOOK, "--name", "pipeline"]) == 0
    assert main(["check", "pipeline.py"]) == 0  # plain jug's view of the same results


def test_module_option_refuses_a_shadowing_name(
    in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", NOTEBOOK, "--module", "json"]) == 2
    err = capfd.readouterr().err
    assert "would shadow the importable module `json`" in err and "--module OTHER_NAME" in err


def test_module_option_needs_a_notebook(in_project: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (in_project / "plain.py").write_text("x = 1\n", encoding="utf-8")
    assert main(["status", "plain.py", "--module", "other"]) == 2
    assert "--module only applies to a notebook" in capfd.readouterr().err


def test_notebook_after_options(in_project: Path, nb: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["execute", "--jugdir", "results", "--will-cite", NOTEBOOK]) == 0
    assert len(_result_hashes(in_project / "results")) == N_TASKS


def test_console_script_exit_code_is_jugs(run: Run, nb: Path) -> None:
    result = run("jugnb", "check", NOTEBOOK, cwd=nb.parent)
    assert result.returncode == 1
    plain = run("jugnb", "export", NOTEBOOK, cwd=nb.parent)
    assert plain.returncode == 0
    assert run("jug", "check", f"{MODULE}.py", cwd=nb.parent).returncode == 1


def test_execute_reports_import_errors_by_cell(
    make_notebook: MakeNotebook, in_project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # An exception while importing the jugfile names the cell and line, as in the kernel (not a traceback),
    # and exits 1 as jug does when the jugfile raises while imported (jugnb.cli.exitcodes).
    make_notebook(["%%jugfile\nraise RuntimeError('boom in the jugfile')"], name="failing.ipynb")
    assert main(["execute", "failing.ipynb"]) == 1
    err = capfd.readouterr().err
    assert "Importing the jugfile failed at cell 1 (%%jugfile cell 1, id cell-1), line 2:" in err
    assert "RuntimeError: boom in the jugfile" in err
