"""Fault injection: the redis server is stopped (SIGTERM) or frozen (SIGSTOP) while workers run.

Short outages are ridden out (``WorkerPool.store_retry``) and the run completes with the results of a
serial run; a longer one stops the workers cleanly (exit code 3, reported by the pool and by ``%jug wait``)
without losing anything stored, and ``%jug execute`` finishes the job once the server is back, releasing
the locks the stopped workers could not. The server keeps its data across the restart (append-only file).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
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
    files_containing,
    graph,
    new_shell,
)
from conftest import BIN, TIMEOUT, wait_until
from IPython.core.error import UsageError

N = 24


@pytest.fixture
def nb(redis_pw: RedisServer, project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Transcript]:
    monkeypatch.setattr("jugnb.backends.redis_store.KERNEL_RETRY", 0.3)  # the kernel's reads give up sooner
    shell = new_shell(project, monkeypatch, redis_pw.url(db=3))
    try:
        yield Transcript(shell)
    finally:
        close_shell(shell)


def stored(server: RedisServer) -> set[bytes]:
    with server.client(db=3) as client:
        return set(client.keys("result:*"))


def start_run(nb: Transcript, server: RedisServer, store_retry: float) -> set[bytes]:
    """Start 2 workers on N tasks of 0.1 s; return the results stored once a few are done."""
    nb.shell.run_line_magic("config", f"WorkerPool.store_retry = {store_retry}")
    nb.cell(graph(N, sleep=0.1))
    nb.jug("execute -j 2 --quiet")

    def some_done() -> set[bytes] | None:
        keys = stored(server)
        return keys if len(keys) >= 4 else None

    return wait_until(some_done, 30, "4 results")  # type: ignore[no-any-return]


def assert_serial_results(nb: Transcript) -> None:
    value = nb.shell.user_ns["value"]
    assert value(nb.shell.user_ns["squares"]) == expected(N)["squares"]
    assert value(nb.shell.user_ns["result"]) == expected(N)["result"]


def executions(server: RedisServer) -> dict[str, int]:
    """Completed executions per task hash, from the records."""
    counts: dict[str, int] = {}
    with server.client(db=3) as client:
        for _, fields in client.xrange("jugnb:records"):
            record = fields[b"r"].decode()
            if '"status":"ok"' in record:
                key = record.split('"hash":"')[1][:40]
                counts[key] = counts.get(key, 0) + 1
    return counts


def test_a_restart_on_the_same_port_is_ridden_out(nb: Transcript, redis_pw: RedisServer) -> None:
    before = start_run(nb, redis_pw, store_retry=30)
    redis_pw.stop()
    time.sleep(1.0)  # the workers retry meanwhile
    redis_pw.start()
    assert before <= stored(redis_pw)  # nothing stored was lost
    nb.jug("wait --timeout 60")
    pool = nb.shell.magics_manager.registry["JugMagics"]._pool
    assert {w.returncode for w in pool.workers()} == {0}
    assert nb.jug("check")[0] is True
    assert_serial_results(nb)
    assert len(executions(redis_pw)) == N + 1


def test_a_frozen_server_is_waited_for(nb: Transcript, redis_pw: RedisServer) -> None:
    start_run(nb, redis_pw, store_retry=30)
    redis_pw.pause()
    time.sleep(1.5)
    redis_pw.resume()
    nb.jug("wait --timeout 60")
    assert nb.jug("check")[0] is True
    assert_serial_results(nb)
    assert set(executions(redis_pw).values()) == {1}  # nothing ran twice


def test_a_long_outage_stops_the_workers_cleanly_and_execute_finishes_later(
    nb: Transcript, redis_pw: RedisServer, project: Path
) -> None:
    before = start_run(nb, redis_pw, store_retry=0.5)
    redis_pw.stop()
    with pytest.raises(UsageError, match="is unreachable"):
        nb.jug("wait --timeout 30")  # the status read after the wait fails: the server is away
    assert "stopped because the store was unreachable" in nb.text()
    pool = nb.shell.magics_manager.registry["JugMagics"]._pool
    assert {w.returncode for w in pool.workers()} == {3}
    messages = [e.message for e in pool.events if e.kind == "exited"]
    assert len(messages) == 2 and all("its store was unreachable" in m for m in messages)
    logs = "".join(Path(w.log).read_text() for w in pool.workers())
    assert "is unreachable" in logs and "Traceback" not in logs
    redis_pw.start()
    assert before <= stored(redis_pw)
    with redis_pw.client(db=3) as client:
        left = {key[len(b"lock:") :].decode() for key in client.keys("lock:*")}
    nb.jug("execute -j 2 --quiet")
    # The locks the stopped workers held (none else) are released before the new workers start.
    new_pool = nb.shell.magics_manager.registry["JugMagics"]._pool
    released = {e.message.split()[4].rstrip(",") for e in new_pool.events if e.kind == "lock-released"}
    assert released == left
    nb.jug("wait --timeout 60")
    assert nb.jug("check")[0] is True
    assert_serial_results(nb)
    assert PASSWORD not in nb.text() and files_containing(project, PASSWORD) == []


def test_cli_stops_with_exit_2_when_the_server_goes_away_mid_run(
    redis_pw: RedisServer, make_notebook: Any, project: Path, jug_environ: dict[str, str]
) -> None:
    notebook = make_notebook([graph(N, sleep=0.1)], name="work.ipynb")
    (project / "jugrc").write_text(f"[main]\njugdir = {redis_pw.url(db=3)}\n")
    env = {**jug_environ, "JUGNB_STORE_RETRY": "0.5"}
    command = [str(BIN / "jugnb"), "execute", str(notebook), "--will-cite"]
    with subprocess.Popen(command, cwd=project, env=env, stdout=PIPE, stderr=PIPE, text=True) as cli:
        try:
            before = wait_until(lambda: len(stored(redis_pw)) >= 3 and stored(redis_pw), 30, "3 results")
            redis_pw.stop()
            out, err = cli.communicate(timeout=TIMEOUT)
        finally:
            if cli.poll() is None:  # only after a failure above: our own child
                cli.kill()
    assert cli.returncode == 2, err
    assert "jugnb: error: the redis server" in err and "is unreachable" in err and "Traceback" not in err
    assert PASSWORD not in out + err
    redis_pw.start()
    assert before <= stored(redis_pw)
