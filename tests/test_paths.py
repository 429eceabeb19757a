"""Paths: non-ASCII and spaces under a C/POSIX locale, a read-only notebook folder, hyphenated names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN, TIMEOUT, write_notebook
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

Run = Callable[..., subprocess.CompletedProcess[str]]

GRAPH = """\
%%jugfile
from jug import TaskGenerator

@TaskGenerator
def double(x):
    return 2 * x

results = [double(i) for i in range(3)]
"""
# Python's own ways out of an ASCII locale turned off, as on systems without C.UTF-8 or with them disabled.
ASCII_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The notebook's folder, named with spaces and non-ASCII letters for every test here."""
    folder = tmp_path / "mon projet été"
    folder.mkdir()
    return folder


def _run_bytes(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(BIN / "jugnb"), *args], cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT, check=False
    )


@pytest.mark.parametrize("locale", [{"LC_ALL": "C", "LANG": "C"}, ASCII_LOCALE], ids=["C", "C-no-utf8"])
def test_non_ascii_and_spaces_under_a_c_locale(
    project: Path, jug_environ: dict[str, str], locale: dict[str, str]
) -> None:
    folder = project / "données d'été"
    folder.mkdir()
    write_notebook(folder / "ünï cödé.ipynb", [GRAPH])
    env = {**jug_environ, **locale}
    args = [os.path.join("données d'été", "ünï cödé.ipynb")]
    for command in (
        ["execute", *args, "--will-cite"],
        ["status", *args],
        ["check", *args],
        ["export", *args],
    ):
        result = _run_bytes(command, project, env)
        assert result.returncode == 0, (command, result.stderr.decode("utf-8", "replace"))
        assert b"Traceback" not in result.stderr
    # The names a UTF-8 locale gives: plain jug (in this UTF-8 process's locale) shares every result.
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "ünï cödé.ipynb",
        "ünï_cödé.jugdata",
        "ünï_cödé.jugdata.jugnb",
        "ünï_cödé.py",
    ]
    plain = subprocess.run(
        [str(BIN / "jug"), "check", "ünï_cödé.py"], cwd=folder, env=jug_environ, timeout=TIMEOUT, check=False
    )
    assert plain.returncode == 0


def test_a_kernel_without_utf8_names_the_fix(project: Path, jug_environ: dict[str, str]) -> None:
    # A kernel cannot switch itself to UTF-8 mode: it says what to do instead of a UnicodeEncodeError.
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from jugnb.errors import ModuleNameError\n"
        "from jugnb.notebook.project import Project\n"
        "try:\n"
        "    Project.for_notebook(Path(sys.argv[1]))\n"
        "except ModuleNameError as err:\n"
        "    print(str(err).encode('ascii', 'backslashreplace').decode())\n"
    )
    notebook = os.fsencode(project / "ünï.ipynb")  # the bytes an ASCII process cannot decode
    result = subprocess.run(
        [os.fsencode(sys.executable), b"-c", code.encode(), notebook],
        env={**jug_environ, **ASCII_LOCALE},
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert b"PYTHONUTF8=1" in result.stdout and b"kernel.json" in result.stdout, result.stdout


def test_the_kernel_works_in_a_folder_with_non_ascii_and_spaces(
    tmp_path: Path, notebook_shell: Callable[[str], InteractiveShell], monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = notebook_shell("mon cahier-été")
    folder = Path.cwd()
    ip.run_cell(GRAPH, cell_id="g")
    with capture_output() as out:
        ip.run_line_magic("jug", "execute -j 1 --quiet")
    assert "Started 1 worker" in out.stdout
    ip.run_line_magic("jug", "wait --timeout 60")
    assert ip.run_line_magic("jug", "check") is True
    assert (folder / "mon_cahier_été.jugdata").is_dir()


def _hyphenated(project: Path) -> Path:
    return write_notebook(project / "run-simple-create-file.ipynb", [GRAPH])


def test_hyphenated_names_share_results_with_plain_jug(run: Run, project: Path) -> None:
    _hyphenated(project)
    assert run("jugnb", "execute", "run-simple-create-file.ipynb", cwd=project).returncode == 0
    assert run("jugnb", "export", "run-simple-create-file.ipynb", cwd=project).returncode == 0
    # The same-named .py under plain jug: the same module name, task hashes and default jugdir.
    plain = run("jug", "execute", "run-simple-create-file.py", cwd=project)
    assert (plain.returncode, "Executed" in plain.stdout) == (0, True)
    assert "      0           3  run-simple-create-file.double" in plain.stdout  # nothing run again
    assert sorted(p.name for p in project.iterdir() if p.suffix == ".jugdata") == [
        "run-simple-create-file.jugdata"
    ]


def test_plain_jug_first_then_jugnb(run: Run, project: Path) -> None:
    _hyphenated(project)
    assert run("jugnb", "export", "run-simple-create-file.ipynb", cwd=project).returncode == 0
    assert run("jug", "execute", "run-simple-create-file.py", cwd=project).returncode == 0
    assert run("jugnb", "check", "run-simple-create-file.ipynb", cwd=project).returncode == 0
    assert (
        run("jugnb", "export", "run-simple-create-file.ipynb", "-o", "run-other.py", cwd=project).returncode
        == 0
    )


def test_hyphenated_name_in_the_kernel(notebook_shell: Callable[[str], InteractiveShell], run: Run) -> None:
    ip = notebook_shell("run-simple-create-file")
    ip.run_cell(GRAPH, cell_id="g")
    assert ip.user_ns["results"][0].name == "run-simple-create-file.double"
    with capture_output():
        ip.run_line_magic("jug", "execute --here")
    folder = Path.cwd()
    _hyphenated(folder)  # the kernel's cell, saved: plain jug runs its export
    assert run("jugnb", "export", "run-simple-create-file.ipynb", cwd=folder).returncode == 0
    assert run("jug", "check", "run-simple-create-file.py", cwd=folder).returncode == 0


needs_mount = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="a read-only bind mount needs root"
)


def _read_only(folder: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (a shell line) with ``folder`` mounted read-only in a private mount namespace."""
    script = f'mount --bind -o ro "{folder}" "{folder}" && {command}'
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@needs_mount
def test_a_read_only_notebook_folder(project: Path, jug_environ: dict[str, str], tmp_path: Path) -> None:
    write_notebook(project / "analysis.ipynb", [GRAPH])
    env = {**jug_environ, "PATH": f"{BIN}:{jug_environ['PATH']}"}
    notebook = project / "analysis.ipynb"
    refused = _read_only(project, f'jugnb execute "{notebook}"', env)
    assert refused.returncode == 2, refused.stderr
    assert "--state-dir DIR" in refused.stderr and "Read-only file system" in refused.stderr
    state, results = tmp_path / "state", tmp_path / "results"
    ran = _read_only(project, f'jugnb execute "{notebook}" --state-dir "{state}" --jugdir "{results}"', env)
    assert ran.returncode == 0, ran.stderr
    # The same from a jugrc in the working directory: [jugnb] state_dir.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".jugrc").write_text(f"[main]\njugdir = {results}\n\n[jugnb]\nstate_dir = {state}\n")
    check = _read_only(project, f'cd "{elsewhere}" && jugnb check "{notebook}"', env)
    assert check.returncode == 0, check.stderr
    assert sorted(p.name for p in project.iterdir()) == ["analysis.ipynb"]
    assert [p.name for p in state.iterdir()] == [f"{project.name}-{_digest(project)}"]


def _digest(folder: Path) -> str:
    import hashlib

    return hashlib.sha1(os.fsencode(folder.resolve())).hexdigest()[:10]


def test_state_dir_setting_in_the_kernel(
    notebook_shell: Callable[[str], InteractiveShell], tmp_path: Path
) -> None:
    ip = notebook_shell("analysis")
    state = tmp_path / "kernel-state"
    ip.run_cell(f"%config JugMagics.state_dir = {str(state)!r}")
    ip.run_cell(f"%config JugMagics.jugdir = {str(tmp_path / 'results')!r}")
    ip.run_cell(GRAPH, cell_id="g")
    with capture_output():
        ip.run_line_magic("jug", "execute -j 1 --quiet")
    ip.run_line_magic("jug", "wait --timeout 60")
    assert ip.run_line_magic("jug", "check") is True
    assert not (Path.cwd() / ".jugnb").exists()
    assert (state / f"{Path.cwd().name}-{_digest(Path.cwd())}" / "analysis.current").is_file()
    config = ip.run_line_magic("jug", "config").text
    assert "%config JugMagics.state_dir" in config


@pytest.mark.parametrize("locale", [{"LC_ALL": "C", "LANG": "C"}, ASCII_LOCALE], ids=["C", "C-no-utf8"])
def test_a_real_kernel_under_a_c_locale_in_a_non_ascii_folder(
    project: Path, jug_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, locale: dict[str, str]
) -> None:
    from kernelutil import Kernel

    for key, value in locale.items():
        monkeypatch.setenv(key, value)  # the kernel (and its workers) inherit them
    kernel = Kernel(project, notebook="work.ipynb")
    try:
        kernel.run("%load_ext jugnb").ok()
        kernel.run(GRAPH, cell_id="g").ok()
        assert "Started 1 worker" in kernel.run("%jug execute -j 1 --quiet").ok().stdout
        kernel.run("%jug wait --timeout 60", timeout=90).ok()
        assert kernel.run("%jug check").ok().data[0]["text/plain"] == "True"
        # A non-ASCII notebook name: a clear fix when the kernel cannot decode it, never a raw error.
        kernel.run("%jug reset").ok()
        kernel.run("%config JugMagics.notebook = 'cahier été.ipynb'").ok()
        result = kernel.run(GRAPH, cell_id="g")
        if locale is ASCII_LOCALE:
            assert "UsageError: The notebook's path 'cahier été.ipynb' is not ASCII" in result.stderr, result
            assert "PYTHONUTF8=1" in result.stderr and "UnicodeEncodeError" not in result.text
        else:
            assert "cahier_été: 3 tasks" in result.ok().stdout
    finally:
        kernel.run("%jug stop --now", timeout=60)
        kernel.shutdown()


def test_an_unwritable_state_folder_in_the_kernel_says_how_to_move_it(
    notebook_shell: Callable[[str], InteractiveShell], tmp_path: Path
) -> None:
    ip = notebook_shell("analysis")
    (Path.cwd() / ".jugnb").write_text("a file where jugnb's state folder belongs\n", encoding="utf-8")
    with capture_output() as out:
        ip.run_cell(GRAPH, cell_id="g")
    assert "UsageError: jugnb cannot write its state folder" in out.stderr
    assert "%config JugMagics.state_dir = 'DIR'" in out.stderr and "Traceback" not in out.stderr
    ip.run_cell(f"%config JugMagics.state_dir = {str(tmp_path / 'state')!r}")
    with capture_output() as out:
        assert ip.run_cell(GRAPH, cell_id="g").success
    assert "analysis: 3 tasks" in out.stdout
