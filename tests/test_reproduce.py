"""Workers must reproduce the kernel's task graph: %jug execute checks a clean import first."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import write_notebook
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jugnb.session import reproduce

HEADER = """\
%%jugfile
from jug import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

"""


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    return notebook_shell("work")


def _execute(ip: InteractiveShell) -> str:
    with capture_output() as out:
        ip.run_line_magic("jug", "execute -j 1 --quiet")
    return out.stdout


def _refused(ip: InteractiveShell) -> str:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("jug", "execute -j 1 --quiet")
    assert getattr(ip.magics_manager.registry["JugMagics"], "_pool", None) is None  # nothing started
    return str(info.value)


def test_names_from_ordinary_cells_through_main(ip: InteractiveShell) -> None:
    ip.run_cell("SCALE = 3")  # an ordinary cell
    ip.run_cell(HEADER + "from __main__ import SCALE\nresults = [double(i * SCALE) for i in range(3)]\n")
    message = _refused(ip)
    assert "A clean import of the jugfile, as a worker does it, fails" in message
    assert "%%jugfile cell 1, line 8 imports from __main__" in message
    assert "ImportError" in message


def test_kernel_only_module_state(ip: InteractiveShell) -> None:
    (Path.cwd() / "settings.py").write_text("FACTOR = 1\n", encoding="utf-8")
    ordinary = "import os, sys\nsys.path.insert(0, os.getcwd())\nimport settings\nsettings.FACTOR = 5"
    result = ip.run_cell(ordinary)
    assert result.success  # changed in the kernel only
    ip.run_cell(HEADER + "import settings\nresults = [double(i * settings.FACTOR) for i in range(4)]\n")
    message = _refused(ip)
    assert "gives 3 of 4 tasks with other hashes" in message  # double(0) is the same either way
    assert "work.double: 3 of 4 tasks differ (e.g. " in message and " in the kernel, " in message
    assert "state that a fresh process does not have: %%jugfile cell 1, line 8 uses `settings`" in message
    ip.run_cell("settings.FACTOR = 1")  # back to what a worker sees: accepted
    ip.run_cell(HEADER + "import settings\nresults = [double(i * settings.FACTOR) for i in range(4)]\n")
    assert "Started 1 worker" in _execute(ip)
    ip.run_line_magic("jug", "wait --timeout 60")


def test_arguments_that_change_on_every_import(ip: InteractiveShell) -> None:
    ip.run_cell(HEADER + "import random\nresults = [double(random.random()) for i in range(2)]\n")
    message = _refused(ip)
    assert "2 of 2 tasks with other hashes" in message
    assert "two clean imports disagree with each other as well" in message


def test_a_passing_graph_is_checked_once_until_a_module_changes(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = reproduce.clean_import

    def counting(*args: object, **kwargs: object) -> reproduce.CleanImport:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reproduce, "clean_import", counting)
    helper = Path.cwd() / "helper_mod.py"
    helper.write_text("N = 3\n", encoding="utf-8")
    ip.run_cell(HEADER + "from helper_mod import N\nresults = [double(i) for i in range(N)]\n")
    assert "Started 1 worker" in _execute(ip)
    ip.run_line_magic("jug", "wait --timeout 60")
    ip.run_line_magic("jug", "stop")
    assert "Started 1 worker" in _execute(ip)
    assert len(calls) == 1  # nothing changed: the answer is reused
    ip.run_line_magic("jug", "wait --timeout 60")
    helper.write_text("N = 3  # edited\n", encoding="utf-8")
    os.utime(helper, ns=(1, 1))  # a different mtime whatever the clock's resolution
    assert "Started 1 worker" in _execute(ip)
    assert len(calls) == 2
    ip.run_line_magic("jug", "wait --timeout 60")


def test_the_check_can_be_turned_off(ip: InteractiveShell) -> None:
    ip.run_cell("%config JugMagics.clean_import_timeout = 0")
    ip.run_cell(HEADER + "import random\nresults = [double(random.random()) for i in range(2)]\n")
    assert "Started 1 worker" in _execute(ip)
    ip.run_line_magic("jug", "wait --timeout 60")


def test_differences_compare_only_what_both_define_past_a_barrier() -> None:
    kernel = [("m.f", "a" * 40), ("m.g", "b" * 40)]
    assert reproduce.differences(kernel, kernel[:1], barrier=True) is None
    what, _ = reproduce.differences(kernel, kernel[:1], barrier=False) or ("", "")
    assert what == "0 of 2 tasks with other hashes, and 1 tasks where the kernel has 2"


def test_cli_imports_modules_beside_the_notebook_from_another_folder(
    project: Path, run: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    (project / "helper_beside.py").write_text("N = 4\n", encoding="utf-8")
    write_notebook(
        project / "uses_helper.ipynb",
        [HEADER + "from helper_beside import N\nresults = [double(i) for i in range(N)]\n"],
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    notebook = project / "uses_helper.ipynb"
    result = run("jugnb", "execute", notebook, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert run("jugnb", "check", notebook, cwd=elsewhere).returncode == 0
    # The jugdir is the one jug uses for the exported file named by its path (%(jugfile)s): beside it.
    assert (project / "uses_helper.jugdata").is_dir()
