"""The exit code table (jugnb/cli/exitcodes.py) against the guide and against what the commands do."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import write_notebook

from jugnb.cli.exitcodes import EXIT_CODES, JUG_FAILED, OK, REFUSED

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
Run = Callable[..., subprocess.CompletedProcess[str]]

GRAPH = """\
%%jugfile
from jug import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

results = [double(i) for i in range(3)]
"""
FAILING_TASK = GRAPH.replace("return 2 * x", "return 1 / (x - 1)")
RAISES_ON_IMPORT = GRAPH + "limit = undefined_setting * 2\n"


def test_the_guide_shows_the_table_of_the_code() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    table = text.split("<!-- exit-codes:", 1)[1].split("<!-- /exit-codes -->", 1)[0]
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert rows == [f"| {e.code} | {e.commands} | {e.meaning} |" for e in EXIT_CODES]
    assert [e.code for e in EXIT_CODES] == [OK, JUG_FAILED, REFUSED]


def _same_as_jug(run: Run, project: Path, notebook: Path, *args: str) -> int:
    """Run ``jugnb args[0] NOTEBOOK args[1:]`` and plain jug on the exported file in a copy; same code."""
    result = run("jugnb", args[0], notebook.name, *args[1:], cwd=project)
    plain_dir = project / "plain"
    plain_dir.mkdir(exist_ok=True)
    exported = plain_dir / notebook.with_suffix(".py").name
    assert run("jugnb", "export", notebook, "-o", exported, cwd=project).returncode == OK
    plain = run("jug", args[0], exported.name, *args[1:], cwd=plain_dir)
    assert result.returncode == plain.returncode, (args, result.stderr, plain.stderr)
    return result.returncode


def test_jugs_conditions_keep_jugs_codes(run: Run, project: Path) -> None:
    good = write_notebook(project / "good.ipynb", [GRAPH])
    assert _same_as_jug(run, project, good, "status") == JUG_FAILED  # not complete yet
    assert _same_as_jug(run, project, good, "check") == JUG_FAILED
    assert _same_as_jug(run, project, good, "execute") == OK
    assert _same_as_jug(run, project, good, "check") == OK
    failing = write_notebook(project / "failing.ipynb", [FAILING_TASK])
    assert _same_as_jug(run, project, failing, "execute", "--keep-going") == JUG_FAILED
    assert _same_as_jug(run, project, failing, "execute") == JUG_FAILED
    raising = write_notebook(project / "raising.ipynb", [RAISES_ON_IMPORT])
    for subcommand in ("execute", "status", "check", "invalidate", "cleanup"):
        args = (subcommand, "--name", "double") if subcommand == "invalidate" else (subcommand,)
        result = run("jugnb", *args[:1], raising.name, *args[1:], cwd=project)
        assert result.returncode == JUG_FAILED, (subcommand, result.stderr)
        assert "cell 1 (%%jugfile cell 1, id cell-1), line 9" in result.stderr  # named, as in the kernel
        assert "Traceback" not in result.stderr
    assert _same_as_jug(run, project, raising, "execute") == JUG_FAILED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "usage: jugnb"),
        (("export",), "the following arguments are required"),
        (("status", "missing.ipynb"), "missing.ipynb"),
        (("export", "missing.ipynb"), "missing.ipynb"),
        (("workers", "missing.ipynb", "--bogus"), "unrecognized arguments"),
        (("status", "plain.ipynb"), "no %%jugfile cells"),
        (("execute", "syntax.ipynb"), "syntax error"),
        (("execute", "magic.ipynb"), "IPython syntax"),
        (("execute", "good.ipynb", "--module", "json"), "would shadow"),
        (("execute", "good.ipynb", "--state-dir", "a-file"), "a-file"),
        (("execute", "good.ipynb", "--jugdir", "dict_store"), "lose every result"),
        (("status", "plain.py", "--module", "x"), "--module only applies to a notebook"),
        (("frobnicate", "good.ipynb"), "invalid choice"),
    ],
)
def test_what_jugnb_refuses_exits_2(run: Run, project: Path, args: tuple[str, ...], message: str) -> None:
    write_notebook(project / "good.ipynb", [GRAPH])
    write_notebook(project / "plain.ipynb", ["x = 1"])
    write_notebook(project / "syntax.ipynb", [GRAPH.replace("return 2 * x", "return 2 *")])
    write_notebook(project / "magic.ipynb", [GRAPH.replace("from jug", "%time x = 1\nfrom jug")])
    (project / "a-file").write_text("not a folder\n", encoding="utf-8")
    (project / "plain.py").write_text("x = 1\n", encoding="utf-8")
    result = run("jugnb", *args, cwd=project)
    assert result.returncode == REFUSED, (args, result.stdout, result.stderr)
    assert message.lower() in (result.stdout + result.stderr).lower()
    assert "Traceback" not in result.stderr
    assert not (project / "good.jugdata").exists()  # nothing ran


def test_own_subcommands_succeed_with_0(run: Run, project: Path) -> None:
    write_notebook(project / "good.ipynb", [GRAPH])
    assert run("jugnb", "--help", cwd=project).returncode == OK
    assert run("jugnb", "--version", cwd=project).returncode == OK
    assert run("jugnb", "export", "good.ipynb", cwd=project).returncode == OK
    workers = run("jugnb", "workers", "good.ipynb", cwd=project)
    assert (workers.returncode, "No workers are running" in workers.stdout) == (OK, True)
