"""Two sessions on one jugdir at once: a notebook's workers and ``jugnb execute`` in a shell.

The same notebook lives in two folders (so each has its own jugnb state), both pointed at one jugdir. No task
runs twice (every task has exactly one successful execution in the records, which both sides write to the
same place), no result is lost, both sides did some of the work, and each side's status counts all of it.
File store: a real Jupyter kernel. Redis (database 3, with a password): an in-process shell.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from backendutil import (
    PASSWORD,
    RedisServer,
    Transcript,
    close_shell,
    expected,
    graph,
    new_shell,
)
from conftest import BIN, TIMEOUT, wait_until, write_notebook
from kernelutil import Kernel

from jugnb.status.records import RecordLog

N = 24
SLEEP = 0.15


def start_cli(folder: Path, jugdir_args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``jugnb execute work.ipynb`` in ``folder`` (the same notebook as the kernel's), in the background."""
    notebook = write_notebook(folder / "work.ipynb", [graph(N, sleep=SLEEP)])
    # jug waits 12 s between looks at tasks that other processes hold: look every 0.2 s instead.
    options = ["--will-cite", "--wait-cycle-time", "0.2"]
    command = [str(BIN / "jugnb"), "execute", str(notebook), *jugdir_args, *options]
    return subprocess.Popen(command, cwd=folder, env=env, stdout=PIPE, stderr=PIPE, text=True)


def finish(cli: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        out, err = cli.communicate(timeout=TIMEOUT)
    finally:
        if cli.poll() is None:  # only after a timeout: our own child
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, err
    return out, err


def watch(panel: Any) -> list[Any]:
    """Every view the panel draws from now on."""
    views: list[Any] = []
    draw = panel.render

    def render(view: Any, **kwargs: Any) -> None:
        views.append(view)
        draw(view, **kwargs)

    panel.render = render
    return views


def check_shared_records(jugdir: str) -> None:
    """One successful execution per task, and both the kernel's workers and the CLI ran some."""
    records = RecordLog.for_jugdir(jugdir).read_new()
    ok = [r for r in records if r.status == "ok"]
    assert len(ok) == N + 1 and set(Counter(r.hash for r in ok).values()) == {1}
    writers = {"cli" if r.worker.startswith("cli-") else "kernel" for r in ok}
    assert writers == {"kernel", "cli"}, Counter(r.worker for r in ok)


@pytest.mark.kernel
def test_a_kernel_and_the_cli_share_a_file_jugdir(tmp_path: Path, jug_environ: dict[str, str]) -> None:
    jugdir = tmp_path / "shared.jugdata"
    kernel_folder, shell_folder = tmp_path / "kernel", tmp_path / "shell"
    write_notebook(kernel_folder / "work.ipynb", [graph(N, sleep=SLEEP)])
    shell_folder.mkdir()
    cli = start_cli(shell_folder, ["--jugdir", str(jugdir)], jug_environ)
    kernel = Kernel(kernel_folder, notebook=str(kernel_folder / "work.ipynb"))
    try:
        kernel.run(f"%load_ext jugnb\n%config JugMagics.jugdir = {str(jugdir)!r}").ok()
        kernel.run(graph(N, sleep=SLEEP), cell_id="graph").ok()
        kernel.run("%jug execute -j 2 --quiet").ok()
        finish(cli)
        kernel.run("%jug wait --timeout 60").ok()
        out = kernel.run("done = %jug check\nprint(done, value(squares) == [i * i for i in range(24)])").ok()
        assert out.stdout.splitlines() == ["All tasks complete.", "True True"]
    finally:
        kernel.shutdown()
    check_shared_records(str(jugdir))
    status = subprocess.run(
        [str(BIN / "jugnb"), "status", "work.ipynb", "--jugdir", str(jugdir), "--short"],
        cwd=shell_folder,
        env=jug_environ,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert f"All tasks complete ({N + 1} tasks)" in status.stdout


def test_a_notebook_and_the_cli_share_a_redis_database(
    redis_pw: RedisServer, tmp_path: Path, jug_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_pw.url(db=3)
    kernel_folder, shell_folder = tmp_path / "kernel", tmp_path / "shell"
    kernel_folder.mkdir()
    shell_folder.mkdir()
    (shell_folder / "jugrc").write_text(f"[main]\njugdir = {url}\n")  # no password on the command line
    cli = start_cli(shell_folder, [], jug_environ)
    shell = new_shell(kernel_folder, monkeypatch, url)
    try:
        nb = Transcript(shell)
        nb.cell(graph(N, sleep=SLEEP))
        shell.run_line_magic("config", "StatusPoller.interval = 0.1")
        nb.jug("execute -j 2")
        views = watch(shell.magics_manager.registry["JugMagics"].panel)
        out, err = finish(cli)
        nb.jug("wait --timeout 60")
        assert nb.jug("check")[0] is True
        # The panel counted the shell's work too, and listed its process among the workers meanwhile.
        wait_until(lambda: views and views[-1].total.complete == N + 1, 10, "the panel to count all")
        assert any(not w.ours and w.worker.startswith("cli-") for v in views for w in v.workers)
        value: Any = shell.user_ns["value"]
        assert value(shell.user_ns["squares"]) == expected(N)["squares"]
        assert value(shell.user_ns["result"]) == expected(N)["result"]
        assert PASSWORD not in nb.text() + out + err
    finally:
        close_shell(shell)
    check_shared_records(url)
    with redis_pw.client(db=0) as db0:
        assert db0.dbsize() == 0
