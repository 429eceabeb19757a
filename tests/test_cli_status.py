"""``jugnb status NOTEBOOK.ipynb``: jugnb's states (failed from task records, lost from leases), jug's with
``--jug-states``.

Real processes only: ``jugnb execute`` runs the tasks (its workers write the records and leases), a worker
is killed with SIGKILL under a short lease timeout, and the CLI runs as a subprocess or through
``jugnb.cli.app.main`` (whose child process is jugnb's real jugrun).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, TIMEOUT, wait_until, write_notebook

from jugnb.cli.app import main
from jugnb.status.records import RecordLog, TaskRecord

Run = Callable[..., subprocess.CompletedProcess[str]]

GRAPH = """\
%%jugfile
import os, time
from jug import TaskGenerator

@TaskGenerator
def work(x):
    if x == int(os.environ.get("S14_FAIL", "-1")):
        raise ValueError(f"bad input {x}")
    time.sleep(float(os.environ.get("S14_SLEEP", "0")))
    return x * x

@TaskGenerator
def total(values):
    return sum(values)

squares = [work(i) for i in range(3)]
answer = total(squares)
"""
# Short leases: a killed worker's lease expires within seconds (defaults: renewed every 10 s, 60 s timeout).
LEASES = "[jugnb]\nlease_interval = 0.3\nlease_timeout = 2\n"


@pytest.fixture
def graph(project: Path, jug_environ: dict[str, str]) -> Iterator[Path]:
    write_notebook(project / "graph.ipynb", [GRAPH])
    (project / "jugrc").write_text(LEASES)
    yield project


JUG_HEADER = ["Failed", "Waiting", "Ready", "Complete", "Active", "Task", "name"]


def _locks(project: Path) -> list[Path]:
    return [p for p in (project / "graph.jugdata" / "locks").glob("*.lock") if p.read_text().strip()]


def _held(project: Path, jugdir: list[str]) -> list[Any]:
    """The task locks held in the file store of ``project``, or in the redis database of ``jugdir``."""
    if not jugdir:
        return _locks(project)
    import redis

    with redis.Redis.from_url(jugdir[1]) as client:
        return list(client.keys("lock:*"))


@pytest.mark.parametrize("store", ["file", "redis"])
def test_a_killed_worker_s_lock_is_lost_with_the_fix_not_active(
    graph: Path, run: Run, jug_environ: dict[str, str], store: str, request: pytest.FixtureRequest
) -> None:
    jugdir = ["--jugdir", request.getfixturevalue("redis_db")] if store == "redis" else []
    env = {**jug_environ, "S14_SLEEP": "120"}
    command = [str(BIN / "jugnb"), "execute", "graph.ipynb", "-j", "1", "--will-cite", *jugdir]
    with open(graph / "execute.log", "wb") as log:
        execute = subprocess.Popen(
            command, cwd=graph, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(lambda: _held(graph, jugdir), TIMEOUT, "the worker to lock a task")
        live = run("jugnb", "status", "graph.ipynb", *jugdir, cwd=graph)
    finally:
        os.killpg(execute.pid, signal.SIGKILL)  # the execute process and its worker: a host gone at once
        execute.wait(timeout=TIMEOUT)
    assert live.returncode == 1
    assert live.stdout.splitlines()[0].split() == JUG_HEADER
    assert "lost" not in live.stdout.lower(), live.stdout
    workers = lambda: run("jugnb", "workers", "graph.ipynb", *jugdir, cwd=graph).stdout  # noqa: E731
    wait_until(lambda: "lost" in workers(), TIMEOUT, "the killed worker's lease to expire")
    status = run("jugnb", "status", "graph.ipynb", *jugdir, cwd=graph)
    assert status.returncode == 1, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split()[:6] == ["Failed", "Waiting", "Ready", "Complete", "Active", "Lost"], status.stdout
    work = next(line for line in lines if line.endswith("graph.work") or "graph.work " in line)
    assert [int(n) for n in work.split()[:6]] == [0, 0, 2, 0, 0, 1], status.stdout
    assert "1 task is lost: locked by jugnb workers that are gone (nothing runs them):" in status.stdout
    assert "`jugnb cleanup graph.ipynb --locks-only`" in status.stdout
    assert "releases it within a second" in status.stdout
    short = run("jugnb", "status", "graph.ipynb", "--short", *jugdir, cwd=graph)
    assert short.stdout.startswith("3 tasks waiting to be run, 0 failed, 0 complete, (none active, 1 lost).")
    # jug's own table counts the lock as active, exactly as `jug status` prints it.
    jugs = run("jugnb", "status", "graph.ipynb", "--jug-states", *jugdir, cwd=graph)
    assert run("jugnb", "export", "graph.ipynb", cwd=graph).returncode == 0
    plain = run("jug", "status", "graph.py", "--will-cite", *jugdir, cwd=graph)
    assert jugs.returncode == plain.returncode == 1
    assert jugs.stdout.startswith(plain.stdout), (jugs.stdout, plain.stdout)
    assert "Lost" not in plain.stdout
    # The lock is still there: status only reads.
    assert _held(graph, jugdir)
    # A task whose batch job ended under it gets its line, as in %jug status (the record as
    # jugnb.launchers.crashes writes it when SLURM says the job timed out).
    spec = jugdir[1] if jugdir else str(graph / "graph.jugdata")
    log = RecordLog.for_jugdir(spec)
    (held,) = _held(graph, jugdir)
    task_hash = held.decode().removeprefix("lock:") if jugdir else held.stem
    reason = "SLURM job 7_0 on hostX reached its time limit"
    now = time.time()
    log.append(
        TaskRecord("graph.work", task_hash, "crashed", now - 5, now, 5.0, "job.0", "hostX", 7,
                   exc_type="TIMEOUT", exc_message=reason)
    )  # fmt: skip
    log.close()
    crashed = run("jugnb", "status", "graph.ipynb", *jugdir, cwd=graph)
    assert f"Task graph.work ({task_hash[:12]}) crashed: {reason}" in crashed.stdout, crashed.stdout


def test_failed_tasks_show_as_failed_grouped_and_jug_states_shows_jugs_table(
    graph: Path, run: Run, jug_environ: dict[str, str], jug_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(graph)
    monkeypatch.setenv("S14_FAIL", "1")
    assert main(["execute", "graph.ipynb", "-j", "1", "--keep-going", "--will-cite"]) == 1
    capfd.readouterr()
    assert main(["status", "graph.ipynb"]) == 1
    out = capfd.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == JUG_HEADER
    work = next(line for line in lines if "graph.work" in line)
    assert [int(n) for n in work.split()[:5]] == [1, 0, 0, 2, 0], out
    assert "1 task is failed: the last run raised." in out
    assert "1 task failed with ValueError: bad input 1" in out
    assert "    work(1)  (task " in out, out
    assert "`jugnb execute graph.ipynb` runs them again" in out
    assert main(["status", "graph.ipynb", "--short"]) == 1
    assert capfd.readouterr().out.startswith(
        "1 tasks waiting to be run, 1 failed, 2 complete, (none active)."
    )
    # jug's exact table: the failed task is ready there.
    assert main(["status", "graph.ipynb", "--jug-states"]) == 1
    jugs = capfd.readouterr().out
    assert main(["export", "graph.ipynb"]) == 0
    capfd.readouterr()
    plain = run("jug", "status", "graph.py", "--will-cite", cwd=graph)
    assert jugs == plain.stdout and plain.returncode == 1
    work = next(line for line in jugs.splitlines() if "graph.work" in line)
    assert [int(n) for n in work.split()[:5]] == [0, 0, 1, 2, 0]
    # jug's cache knows jug's states only: refused without --jug-states, jug's with it.
    assert main(["status", "graph.ipynb", "--cache"]) == 2
    assert "add --jug-states" in capfd.readouterr().err
    assert main(["status", "graph.ipynb", "--jug-states", "--cache"]) == 1
    assert capfd.readouterr().out == plain.stdout
    # Once everything is done, jugnb's table is jug's byte for byte and status exits 0.
    monkeypatch.delenv("S14_FAIL")
    assert main(["execute", "graph.ipynb", "-j", "1", "--will-cite"]) == 0
    capfd.readouterr()
    done = run("jugnb", "status", "graph.ipynb", cwd=graph)
    plain = run("jug", "status", "graph.py", "--will-cite", cwd=graph)
    assert done.returncode == plain.returncode == 0
    assert done.stdout == plain.stdout


def test_jug_status_magic_shows_a_lost_worker_s_lock_as_lost(
    notebook_shell: Callable[[str], Any], project: Path, jug_environ: dict[str, str]
) -> None:
    """``%jug status`` in a notebook whose tasks a ``jugnb execute`` elsewhere was running when killed."""
    (project / "jugrc").write_text(LEASES)
    ip = notebook_shell("graph")
    ip.run_cell(GRAPH, cell_id="g")
    # The same jugfile as a file (same module name, hence the same task hashes), run by a separate process.
    (project / "graph.py").write_text(GRAPH.split("\n", 1)[1])
    env = {**jug_environ, "S14_SLEEP": "120"}
    command = [str(BIN / "jugnb"), "execute", "graph.py", "-j", "1", "--will-cite"]
    execute = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _locks(project), TIMEOUT, "the worker to lock a task")
        assert "Lost" not in ip.run_line_magic("jug", "status").text
    finally:
        os.killpg(execute.pid, signal.SIGKILL)
        execute.wait(timeout=TIMEOUT)
    wait_until(lambda: "Lost" in ip.run_line_magic("jug", "status").text, TIMEOUT, "the lease to expire")
    shown = ip.run_line_magic("jug", "status")
    work = next(line for line in shown.text.splitlines() if "graph.work" in line)
    assert [int(n) for n in work.split()[:6]] == [0, 0, 2, 0, 0, 1], shown.text
    assert "1 task is lost: locked by jugnb workers that are gone (nothing runs them):" in shown.text
    assert "--locks-only" in shown.text
    assert "<th>Lost</th>" in shown._repr_html_()
    jugs = ip.run_line_magic("jug", "status --jug-states").text
    assert "Lost" not in jugs.splitlines()[0]
    assert _locks(project)  # status only reads: the lock stays until a worker or cleanup releases it


def test_status_help_names_jugnb_s_option(jug_env: dict[str, str], capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--help"]) == 0
    out = capfd.readouterr().out
    assert "--short" in out and "--cache" in out  # jug's own options
    assert "--jug-states          jug's exact table" in out
