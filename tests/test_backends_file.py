"""``file_keepalive:`` and ``dict_store`` jugdirs through the magics, workers, status, panel and CLI.

- ``file_keepalive:PATH`` works like a folder; a lock nobody has touched for jug's 30 minutes (back-dated
  here with ``os.utime``) is a failed task in ``%jug status``, the panel and the workers' eyes, and
  ``%jug cleanup --failed-only`` is the recovery.
- ``dict_store`` lives in the kernel only: workers are refused with the reason, ``--here`` runs, and results
  survive re-running ``%%jugfile`` cells. ``dict_store:FILE`` is refused for workers (each process would
  keep its own copy), and jugnb saves FILE after every change, where jug would lose it all.
"""

from __future__ import annotations

import os
import pickle
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backendutil import Transcript, close_shell, expected, graph, new_shell
from conftest import wait_until
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

N = 6
KEEPALIVE = 30 * 60  # jug's file_keepalive_based_lock.is_failed: untouched this long means dead


@pytest.fixture
def shell_on(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Transcript]]:
    shells: list[InteractiveShell] = []

    def make(jugdir: str) -> Transcript:
        if shells:  # a kernel restart: the old kernel is gone first
            close_shell(shells.pop())
        shells.append(new_shell(project, monkeypatch, jugdir))
        return Transcript(shells[-1])

    yield make
    for shell in shells:
        close_shell(shell)


def magics(nb: Transcript) -> Any:
    return nb.shell.magics_manager.registry["JugMagics"]


def totals(nb: Transcript) -> Any:
    from jugnb.magics.command import status_snapshot

    magics(nb)._status_reader = None
    return status_snapshot(magics(nb)).total


# -- file_keepalive -------------------------------------------------------------------------------------


def plant_lock(jugdir: Path, task: Any, age: float) -> Path:
    """A lock of ``task`` as a worker on another host left it, last touched ``age`` seconds ago."""
    lock = jugdir / "locks" / f"{task.hash().decode()}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("PID 4242 on HOSTNAME far-away-host\nLock created on 2026-01-01 (00h00.00)\n")
    when = time.time() - age
    os.utime(lock, (when, when))
    return lock


def test_file_keepalive_works_like_a_folder_and_dead_locks_fail_after_30_minutes(
    shell_on: Callable[[str], Transcript], project: Path
) -> None:
    nb = shell_on("file_keepalive:ka.jugdata")
    _, out = nb.cell(graph(N, sleep=0.05))
    assert "jugdir file_keepalive:" in out
    nb.jug("execute -j 2 --quiet")
    nb.jug("wait --timeout 60")
    assert nb.jug("check")[0] is True
    assert nb.shell.user_ns["value"](nb.shell.user_ns["squares"]) == expected(N)["squares"]
    records = list((project / "ka.jugdata.jugnb" / "records").glob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in records) == N + 1
    # A worker on another host died while running `total`: its lock stays, untouched.
    nb.jug("invalidate --target total")
    total = nb.shell.user_ns["result"]
    lock = plant_lock(project / "ka.jugdata", total, age=10 * 60)
    assert (totals(nb).active, totals(nb).failed) == (1, 0)  # 10 minutes: still possibly alive
    os.utime(lock, (time.time() - KEEPALIVE - 60,) * 2)
    assert (totals(nb).active, totals(nb).failed) == (0, 1)  # 31 minutes: dead, as jug says
    table, _ = nb.jug("status")
    assert re.search(rf"^\s+1\s+0\s+0\s+{N}\s+0\s+Total", table.text, re.MULTILINE)  # Failed first
    panel = _panel(nb)
    assert panel.view.total.failed == 1 and panel.view.total.complete == N
    # Workers do not wait for a dead lock: they leave it failed and exit.
    nb.jug("execute -j 1 --quiet")
    nb.jug("wait --timeout 30")
    assert totals(nb).failed == 1
    # The one-command recovery.
    _, out = nb.jug("cleanup --failed-only")
    assert "Removed 1 failed-task locks." in out and not lock.exists()
    nb.jug("execute -j 1 --quiet")
    nb.jug("wait --timeout 30")
    assert nb.jug("check")[0] is True
    assert nb.shell.user_ns["value"](total) == expected(N)["result"]


def _panel(nb: Transcript) -> Any:
    nb.jug("status --watch")
    panel = magics(nb).panel
    wait_until(lambda: panel.view is not None, 20, "the panel's first frame")
    panel.poller.stop()
    return panel


# -- dict_store -----------------------------------------------------------------------------------------


def test_dict_store_refuses_workers_runs_here_and_keeps_results_across_cells(
    shell_on: Callable[[str], Transcript],
) -> None:
    nb = shell_on("dict_store")
    nb.cell(graph(N), cell_id="graph")
    with pytest.raises(UsageError, match=r"in-memory dict_store: worker processes cannot see it.*--here"):
        nb.jug("execute -j 2")
    _, out = nb.jug("execute --here")
    assert f"Executed {N + 1} tasks in the kernel" in out
    # Re-running the cell (edited) and adding another keeps the store, hence the results.
    _, out = nb.cell(graph(N) + "\n# edited\n", cell_id="graph")
    assert f"{N + 1} complete" in out
    _, out = nb.cell("%%jugfile\nextra = square(100)\n", cell_id="more")
    assert f"{N + 1} complete" in out and "1 ready" in out
    nb.jug("execute --here")
    assert nb.jug("check")[0] is True
    assert nb.shell.user_ns["value"](nb.shell.user_ns["extra"]) == 10_000


def saved(path: Path) -> set[bytes]:
    with open(path, "rb") as handle:
        return {k for k in pickle.load(handle) if k.startswith(b"result:")}


def test_dict_store_file_is_saved_after_each_change_and_refused_for_workers(
    shell_on: Callable[[str], Transcript], project: Path
) -> None:
    nb = shell_on("dict_store:results.pkl")
    nb.cell(graph(N), cell_id="graph")
    with pytest.raises(UsageError, match=r"reads FILE once.*last one to exit.*--here"):
        nb.jug("execute -j 2")
    nb.jug("execute --here")
    assert len(saved(project / "results.pkl")) == N + 1  # written now, not when the kernel exits
    nb.cell(graph(N) + "\n# edited\n", cell_id="graph")
    assert totals(nb).complete == N + 1
    nb.jug("invalidate --target total")
    assert len(saved(project / "results.pkl")) == N
    nb.jug("run total --save")
    assert len(saved(project / "results.pkl")) == N + 1
    # A new kernel on the same file finds everything.
    nb = shell_on("dict_store:results.pkl")
    _, out = nb.cell(graph(N), cell_id="graph")
    assert f"{N + 1} complete" in out


def test_plain_jug_loses_a_dict_store_file_and_jugnb_execute_keeps_it(
    make_notebook: Callable[..., Path], project: Path, run: Any
) -> None:
    notebook = make_notebook([graph(N)], name="work.ipynb")
    done = run("jugnb", "execute", notebook, "--jugdir", "dict_store:cli.pkl", "--will-cite", cwd=project)
    assert done.returncode == 0, done.stderr
    assert len(saved(project / "cli.pkl")) == N + 1
    status = run("jugnb", "status", notebook, "--jugdir", "dict_store:cli.pkl", "--short", cwd=project)
    assert f"All tasks complete ({N + 1} tasks)" in status.stdout
    # jug 2.7 writes FILE only from dict_store.__del__ at interpreter exit, where `open` is gone already.
    plain = project / "plain"
    plain.mkdir()
    (plain / "work.py").write_text(
        "from jug import TaskGenerator\n@TaskGenerator\ndef f(x):\n    return x\ny = f(1)\n"
    )
    done = run("jug", "execute", "work.py", "--jugdir", "dict_store:plain.pkl", "--will-cite", cwd=plain)
    assert done.returncode == 0 and not (plain / "plain.pkl").exists()
    assert "NameError: name 'open' is not defined" in done.stderr
