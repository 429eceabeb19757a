"""The magics in an in-process InteractiveShell, against real jug results and real jug processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, write_notebook
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jugnb.notebook.export import export_notebook

DOUBLE = """\
from jug import TaskGenerator, bvalue, barrier

@TaskGenerator
def double(x):
    return 2 * x

xs = [double(i) for i in range(4)]
"""
TOTAL = """\
@TaskGenerator
def add(values):
    return sum(values)

total = add(xs)
"""


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    """An in-process shell as the notebook `analysis.ipynb` in the project folder, jugnb loaded."""
    return notebook_shell("analysis")


def cell(ip: InteractiveShell, source: str, cell_id: str | None = None) -> tuple[Any, str]:
    """Run a cell; return its result and everything it printed (stdout, stderr, displays)."""
    with capture_output() as out:
        result = ip.run_cell(source, cell_id=cell_id)
    shown = "".join(str(o.data.get("text/plain", "")) for o in out.outputs)
    return result, out.stdout + out.stderr + shown


def jug_execute(project: Path, jugfile: Path, *extra: str) -> None:
    subprocess.run(
        [str(BIN / "jug"), "execute", str(jugfile), *extra],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=60,
    )


def current_snapshot(project: Path) -> Path:
    return Path((project / ".jugnb" / "analysis.current").read_text().strip())


def test_cell_binds_names_and_prints_summary(ip: InteractiveShell) -> None:
    result, out = cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    assert result.success
    assert "analysis: 4 tasks (double ×4) · 4 ready · jugdir analysis.jugdata" in out
    assert ip.user_ns["xs"][0].name == "analysis.double"


def test_rerun_replaces_fragment_and_never_doubles_tasks(ip: InteractiveShell) -> None:
    import jug.task

    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    cell(ip, "%%jugfile\n" + DOUBLE.replace("range(4)", "range(6)"), cell_id="c1")
    assert len(jug.task.alltasks) == 6
    assert len(ip.run_line_magic("jug", "count").text.splitlines()) == 2
    text = current_snapshot(Path.cwd()).read_text()
    assert text.count("# %%jugfile cell") == 1 and "range(6)" in text


def test_named_cells_replace_and_unnamed_identical_cells_add_nothing(ip: InteractiveShell) -> None:
    cell(ip, "%%jugfile --name a\n" + DOUBLE)
    cell(ip, "%%jugfile\n" + TOTAL)
    cell(ip, "%%jugfile\n" + TOTAL)  # identical, no id: nothing added
    cell(ip, "%%jugfile --name a\n" + DOUBLE.replace("range(4)", "range(3)"))
    text = current_snapshot(Path.cwd()).read_text()
    assert text.count("# %%jugfile cell") == 2
    assert text.index("range(3)") < text.index("def add")  # replaced in place, order kept
    assert "# %%jugfile cell 1 · name a" in text


def test_reset_forgets_fragments(ip: InteractiveShell) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    cell(ip, "%jug reset")
    assert "xs" not in ip.user_ns
    result, out = cell(ip, "%jug status")
    assert not result.success and "run a %%jugfile cell first" in out


def test_syntax_error_names_cell_line_and_keeps_last_good_state(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    before = current_snapshot(project)
    result, out = cell(ip, "%%jugfile\n" + TOTAL + "y = (\n", cell_id="c2")
    assert not result.success
    assert "%%jugfile cell 2 (id c2), line 7: syntax error" in out
    assert "Traceback" not in out
    assert current_snapshot(project) == before
    assert len(ip.run_line_magic("jug", "count").text.splitlines()) == 2  # one task name + total


def test_import_exception_names_cell_line_and_keeps_graph(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    result, out = cell(ip, "%%jugfile\nvalue = 1\nboom = value / 0\n", cell_id="c2")
    assert not result.success
    assert "%%jugfile cell 2 (id c2), line 3" in out and "ZeroDivisionError" in out
    assert "boom = value / 0" in out
    assert "boom" not in ip.user_ns
    assert "analysis" in sys.modules and hasattr(sys.modules["analysis"], "double")
    # The failing fragment is not kept: the next good cell is cell 2 again.
    cell(ip, "%%jugfile\n" + TOTAL, cell_id="c3")
    assert "# %%jugfile cell 2 · id c3" in current_snapshot(project).read_text()


def test_magic_inside_jugfile_cell_is_refused(ip: InteractiveShell) -> None:
    result, out = cell(ip, "%%jugfile\nimport os\n!ls\n", cell_id="c1")
    assert not result.success
    assert "%%jugfile cell 1 (id c1), line 3: `!ls` is IPython syntax" in out


def test_names_from_ordinary_cells_get_a_warning(ip: InteractiveShell) -> None:
    cell(ip, "scale = 3")
    _, out = cell(
        ip, "%%jugfile\nfrom jug import TaskGenerator\n@TaskGenerator\ndef f(x):\n    return x * scale\n"
    )
    assert "function `f` uses `scale`, defined only in an ordinary cell" in out
    assert "line 5" in out


def test_bvalue_stops_then_extends_on_next_command(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    cell(ip, "%%jugfile\n" + TOTAL, cell_id="c2")
    _, out = cell(ip, "%%jugfile\nn = bvalue(total)\nmore = [double(i) for i in range(n)]\n", cell_id="c3")
    assert "stopped at bvalue in %%jugfile cell 3 (id c3), line 2: waiting for 5 tasks" in out
    assert "more" not in ip.user_ns
    jug_execute(project, current_snapshot(project), "--jugdir", "analysis.jugdata")
    total_row = ip.run_line_magic("jug", "status").text.strip().splitlines()[-1].split()
    assert total_row[3] == "17"  # complete, the 12 tasks after the bvalue included
    assert len(ip.user_ns["more"]) == 12


def test_status_invalidate_check_and_value_against_jug_results(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE + TOTAL, cell_id="c1")
    jug_execute(project, current_snapshot(project), "--jugdir", "analysis.jugdata")
    assert ip.run_line_magic("jug", "check") is True
    assert ip.user_ns["value"](ip.user_ns["total"]) == 12
    with capture_output() as out:
        ip.run_line_magic("jug", "invalidate --name double --dry-run")
    assert "Would invalidate 5 results" in out.outputs[0].data["text/plain"]
    assert ip.run_line_magic("jug", "check") is True
    with capture_output():
        ip.run_line_magic("jug", "invalidate --target /dou.le/")
    assert ip.run_line_magic("jug", "check") is False
    total_row = ip.run_line_magic("jug", "status").text.strip().splitlines()[-1].split()
    assert total_row[:5] == ["0", "1", "4", "0", "0"]  # failed, waiting, ready, complete, active


def test_shell_functions(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE + TOTAL, cell_id="c1")
    assert len(ip.user_ns["get_tasks"]()) == 5
    assert len(ip.user_ns["get_filtered_tasks"](available=True)) == 4
    jug_execute(project, current_snapshot(project), "--jugdir", "analysis.jugdata")
    assert len(ip.user_ns["get_filtered_tasks"](loadable=True)) == 5
    with capture_output():
        assert ip.user_ns["invalidate"](ip.user_ns["xs"][0]) == 2  # double(0) and total
    ip.user_ns["load_all"]()
    with capture_output() as out:
        ip.run_cell("value(total)")
    assert "has no result yet" in out.stdout + out.stderr


def test_cleanup_refuses_at_barrier_and_reports(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE + "barrier()\n" + TOTAL, cell_id="c1")
    result, out = cell(ip, "%jug cleanup")
    assert not result.success and "Refusing to clean up" in out
    _, out = cell(ip, "%jug cleanup --dry-run --force")
    assert "Would remove 0 unused results" in out
    _, out = cell(ip, "%jug cleanup --failed-only")
    assert "Removed 0 failed-task locks" in out


def test_config_precedence(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    text = ip.run_line_magic("jug", "config").text
    assert f"{project / 'analysis.jugdata'}" in text and "default" in text
    (project / "jugrc").write_text("[main]\njugdir = from_rc.jugdata\n")
    cell(ip, "%jug reset")
    text = ip.run_line_magic("jug", "config").text
    assert f"{project / 'from_rc.jugdata'}" in text and "jugrc" in text
    cell(ip, "%config JugMagics.jugdir = 'from_config.jugdata'")
    cell(ip, "%jug reset")
    text = ip.run_line_magic("jug", "config").text
    assert f"{project / 'from_config.jugdata'}" in text and "%config" in text


def test_unknown_subcommand_and_bad_option_are_usage_errors(ip: InteractiveShell) -> None:
    result, out = cell(ip, "%jug frobnicate")
    assert not result.success and "Known: browse, cancel, check, cleanup" in out
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    result, out = cell(ip, "%jug invalidate")
    assert (
        not result.success
        and "say which tasks: --target PAT, --name NAME, --pattern TEXT, --hash HEX or --stale" in out
    )


def test_graph_dot_and_help(ip: InteractiveShell) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE + TOTAL, cell_id="c1")
    dot = ip.run_line_magic("jug", "graph --dot").text
    assert '"analysis.double" -> "analysis.add"' in dot
    assert "invalidate" in ip.run_line_magic("jug", "help").text
    assert "--dry-run" in ip.run_line_magic("jug", "help invalidate").text


def test_kernel_jugfile_equals_export_of_same_cells(ip: InteractiveShell, project: Path) -> None:
    sources = ["%%jugfile\n" + DOUBLE, "%%jugfile --name total\n" + TOTAL]
    notebook = write_notebook(project / "analysis.ipynb", sources)
    for number, source in enumerate(sources, start=1):
        cell(ip, source, cell_id=f"cell-{number}")
    assert current_snapshot(project).read_text() == export_notebook(notebook).text


def test_jug_arguments_are_quoted_as_in_a_shell(ip: InteractiveShell) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    _, out = cell(ip, '%jug invalidate --pattern "dou ble" --dry-run')
    assert "No task matches 'dou ble'" in out
    result, out = cell(ip, "%jug invalidate --target /[/")
    assert not result.success and "bad task pattern '/[/'" in out and "Traceback" not in out


def test_changing_the_jugdir_after_loading_says_how_it_applies(ip: InteractiveShell, project: Path) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE, cell_id="c1")
    _, out = cell(ip, "%config JugMagics.jugdir = 'elsewhere.jugdata'")
    assert "JugMagics.jugdir changed: it applies after `%jug reset`" in out
    assert str(project / "analysis.jugdata") in ip.run_line_magic("jug", "config").text


def test_jugfile_below_a_comment_says_it_must_be_the_first_line(ip: InteractiveShell) -> None:
    result, out = cell(ip, "# setup\n%%jugfile --name m\nx = 1\n", cell_id="c1")
    assert not result.success
    assert "`%%jugfile` must be the first line of the cell" in out and "not found" not in out


def test_unlabelled_cell_without_id_redefining_names_gets_a_warning(ip: InteractiveShell) -> None:
    cell(ip, "%%jugfile\n" + DOUBLE)  # no cell id, no --name: as in terminal IPython
    _, out = cell(ip, "%%jugfile\n" + DOUBLE.replace("range(4)", "range(5)"))
    assert "added as %%jugfile cell 2, and it defines double, xs again" in out
    _, out = cell(ip, "%%jugfile\n" + TOTAL)
    assert "defines" not in out.split("analysis:")[0]  # new names only: no warning
    _, out = cell(ip, "%%jugfile --name a\n" + DOUBLE, cell_id="labelled")
    assert "Warning" not in out  # labelled cells replace each other
