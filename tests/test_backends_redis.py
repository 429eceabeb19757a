"""Redis jugdirs end to end, on real redis-server processes: a password, a database other than 0, plain jug.

jug 2.7 drops both the password and the database number of a redis URL (first test); jugnb opens the store
itself (:mod:`jugnb.backends.redis_store`). Every feature here runs on database 3 of a password-protected
server, and
the password is looked for in everything jugnb writes or shows.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
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
    process_mentions,
    widget_strings,
)
from conftest import BIN, TIMEOUT, wait_until
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jugnb.backends.redis_store import RedisURL, open_redis_store
from jugnb.backends.spec import Jugdir, redact
from jugnb.errors import StoreError

N = 12


@pytest.fixture
def shell_on(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Transcript]]:
    shells: list[InteractiveShell] = []

    def make(jugdir: str) -> Transcript:
        shells.append(new_shell(project, monkeypatch, jugdir))
        return Transcript(shells[-1])

    yield make
    for shell in shells:
        close_shell(shell)


# -- what jug itself does with a redis URL --------------------------------------------------------------


def test_jug_drops_the_database_number_and_a_url_with_a_password_goes_to_localhost() -> None:
    from jug.backends.redis_store import redis_store

    kwargs = redis_store("redis://127.0.0.1:7001/3").redis.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 7001, 0)
    kwargs = redis_store("redis://:secret@db.example:7001/3").redis.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("localhost", 6379, 0, None)


def test_urls_parse_like_redis_and_never_show_the_password() -> None:
    url = RedisURL.parse("redis://:s%40cret@10.0.0.5:7001/3")
    assert (url.host, url.port, url.db, url.password) == ("10.0.0.5", 7001, 3, "s@cret")
    assert "cret" not in repr(url) and url.describe() == "redis://10.0.0.5:7001/3"
    assert RedisURL.parse("redis:") == RedisURL() and RedisURL.parse("redis://h/").db == 0
    assert RedisURL.parse("redis://user:pw@h:1/2").username == "user"
    with pytest.raises(StoreError, match=r"use redis://\[:PASSWORD@\]HOST") as err:
        RedisURL.parse("redis:h:1:topsecret")
    assert "topsecret" not in str(err.value)
    jugdir = Jugdir("redis://:topsecret@h:1/3", "redis")
    assert "topsecret" not in repr(jugdir) + str(jugdir) + repr([jugdir])
    assert redact("redis://:top@secret@h:1/3") == "redis://:***@h:1/3"  # a raw "@" (should be %40)


# -- the magics, workers, panel, browser, records and fingerprints on db 3 ------------------------------


def test_every_feature_on_database_3_of_a_password_protected_server(
    redis_pw: RedisServer,
    shell_on: Callable[[str], Transcript],
    project: Path,
) -> None:
    nb = shell_on(redis_pw.url(db=3))
    _, out = nb.cell(graph(N, sleep=0.1))
    assert f"{N} ready" in out and "jugdir redis://:***@127.0.0.1" in out
    nb.jug("status --short")
    _, out = nb.jug("execute -j 2")
    assert "Started 2 workers" in out
    magics = nb.shell.magics_manager.registry["JugMagics"]
    workers = magics._pool.workers()
    # While they run: no password in their command lines or environments.
    assert not any(process_mentions(w.pid, PASSWORD) for w in workers)
    nb.jug("wait --timeout 60")
    assert nb.jug("check")[0] is True
    values = nb.shell.user_ns["value"]
    assert values(nb.shell.user_ns["squares"]) == expected(N)["squares"]
    assert values(nb.shell.user_ns["result"]) == expected(N)["result"]
    # Everything went to database 3: results, records, fingerprints; nothing to database 0.
    with redis_pw.client(db=3) as db3, redis_pw.client(db=0) as db0:
        assert len(db3.keys("result:*")) == N + 1 and db0.dbsize() == 0
        records = [fields[b"r"] for _, fields in db3.xrange("jugnb:records")]
        assert len(records) == N + 1 and db3.hlen("jugnb:fingerprints") >= 1
        stored = b"".join(records) + b"".join(db3.hvals("jugnb:fingerprints"))
    assert PASSWORD.encode() not in stored
    _exercise_the_other_subcommands(nb)
    _stop_and_resume(nb, redis_pw)
    panel, browser = _widgets(nb)
    assert panel.view is not None and panel.view.total.complete == N + 1
    assert "redis://127.0.0.1" in panel.view.store and PASSWORD not in panel.view.store
    leaks = [s for w in (panel, browser) for s in widget_strings(w) if PASSWORD in s]
    assert leaks == []
    assert PASSWORD not in nb.text()
    assert files_containing(project, PASSWORD) == []  # state files, worker logs, heartbeats, snapshots


def _exercise_the_other_subcommands(nb: Transcript) -> None:
    _, out = nb.jug("why square[0]")
    assert nb.jug("invalidate --target total --dry-run")[0] is None
    nb.jug("invalidate --target total")
    assert nb.jug("check")[0] is False
    assert nb.jug("run total --save")[0] == expected(N)["result"]
    assert nb.jug("check")[0] is True
    _, out = nb.jug("cleanup --dry-run")
    assert "Would remove 0 unused results" in out
    _, out = nb.jug("config")
    assert "redis://:***@127.0.0.1" in nb.text()
    with capture_output() as shown:
        nb.shell.run_line_magic("config", "JugMagics")
    nb.parts.append(shown.stdout)
    assert "redis://:***@127.0.0.1" in shown.stdout


def _stop_and_resume(nb: Transcript, server: RedisServer) -> None:
    nb.jug("invalidate --target square")
    nb.jug("execute -j 2 --quiet")
    with server.client(db=3) as db3:
        wait_until(lambda: db3.keys("lock:*"), 20, "a task to start")
        _, out = nb.jug("stop --now")
        assert "Stopped 2 workers" in out
        assert db3.keys("lock:*") == []  # SIGTERM: jug's own `finally` released the locks
    assert nb.jug("check")[0] is False
    nb.jug("execute -j 2 --quiet")
    nb.jug("wait --timeout 60")
    assert nb.jug("check")[0] is True


def _widgets(nb: Transcript) -> tuple[Any, Any]:
    nb.jug("status --watch")
    magics = nb.shell.magics_manager.registry["JugMagics"]
    panel = magics.panel
    wait_until(lambda: panel.view is not None and panel.view.done, 20, "the panel to show all complete")
    browser, _ = nb.jug("browse")
    browser.refresh()
    return panel, browser


# -- plain jug on the same database -------------------------------------------------------------------


def test_results_are_interchangeable_with_plain_jug_on_database_0(
    redis_db: str, shell_on: Callable[[str], Transcript], project: Path, run: Any
) -> None:
    nb = shell_on(redis_db)
    nb.cell(graph(N))
    nb.jug("execute -j 1 --quiet")
    nb.jug("wait --timeout 60")
    jugfile = project / "plain" / "work.py"  # same file name: same module name, same task hashes
    jugfile.parent.mkdir()
    jugfile.write_text(nb.shell.magics_manager.registry["JugMagics"].session.graph.jugfile.text)
    status = run("jug", "status", jugfile, "--jugdir", redis_db, "--short", cwd=jugfile.parent)
    assert status.returncode == 0 and f"All tasks complete ({N + 1} tasks)" in status.stdout
    # ...and the other way round: what plain jug computes, jugnb sees.
    nb.jug("invalidate --target square")
    done = run("jug", "execute", jugfile, "--jugdir", redis_db, "--will-cite", cwd=jugfile.parent)
    assert done.returncode == 0
    assert nb.jug("check")[0] is True


# -- the CLI ----------------------------------------------------------------------------------------------


def test_cli_with_a_password_and_database_3_from_a_jugrc(
    redis_pw: RedisServer,
    make_notebook: Callable[..., Path],
    project: Path,
    run: Any,
) -> None:
    notebook = make_notebook([graph(N)], name="work.ipynb")
    # On the command line (where `ps` shows it to every local user)...
    done = run("jugnb", "execute", notebook, "--jugdir", redis_pw.url(db=3), "--will-cite", cwd=project)
    assert done.returncode == 0, done.stderr
    with redis_pw.client(db=3) as db3:
        assert len(db3.keys("result:*")) == N + 1
        db3.flushdb()
    # ...or in a jugrc, which keeps the password off every command line (jug reads it in the working folder).
    (project / "jugrc").write_text(f"[main]\njugdir = {redis_pw.url(db=3)}\n")
    done = run("jugnb", "execute", notebook, "--will-cite", cwd=project)
    assert done.returncode == 0, done.stderr
    with redis_pw.client(db=3) as db3, redis_pw.client(db=0) as db0:
        assert len(db3.keys("result:*")) == N + 1 and db0.dbsize() == 0
        assert db3.xlen("jugnb:records") == N + 1
    status = run("jugnb", "status", notebook, "--short", cwd=project)
    assert status.returncode == 0 and "complete" in status.stdout
    dry = run("jugnb", "execute", notebook, "--dry-run", cwd=project)
    assert dry.returncode == 0 and PASSWORD not in dry.stdout + dry.stderr
    assert PASSWORD not in done.stdout + done.stderr + status.stdout + status.stderr


@pytest.fixture
def run_quick(jug_environ: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Like conftest's ``run``, with a short redis retry time (``$JUGNB_STORE_RETRY``)."""
    env = {**jug_environ, "JUGNB_STORE_RETRY": "0.3"}

    def run_program(program: str, *args: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / program), *map(str, args)]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)

    return run_program


@pytest.fixture
def quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel gives up on an unreachable server after 0.3 s instead of 2 s."""
    monkeypatch.setattr("jugnb.backends.redis_store.KERNEL_RETRY", 0.3)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("wrong password", "refused the login"),
        ("no password", "needs a password"),
        ("wrong port", "is unreachable"),
        ("bad database", "DB index is out of range"),
    ],
)
def test_cli_errors_are_one_clear_line_and_exit_2(
    problem: str,
    message: str,
    redis_pw: RedisServer,
    make_notebook: Callable[..., Path],
    project: Path,
    run_quick: Any,
) -> None:
    notebook = make_notebook([graph(3)], name="work.ipynb")
    url = {
        "wrong password": redis_pw.url(db=3, password="not-" + PASSWORD),
        "no password": redis_pw.url(db=3, password=""),
        "wrong port": redis_pw.url(db=3).replace(str(redis_pw.port), "1"),
        "bad database": redis_pw.url(db=99),
    }[problem]
    (project / "jugrc").write_text(f"[main]\njugdir = {url}\n")
    for subcommand in ("execute", "status"):
        done = run_quick("jugnb", subcommand, notebook, cwd=project)
        assert done.returncode == 2, (subcommand, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert PASSWORD not in done.stdout + done.stderr


# -- errors in the kernel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["wrong password", "server down"])
def test_kernel_errors_are_usage_errors_without_the_password(
    problem: str,
    redis_pw: RedisServer,
    shell_on: Callable[[str], Transcript],
    quick_retry: None,
) -> None:
    if problem == "wrong password":
        nb = shell_on(redis_pw.url(db=3, password="not-" + PASSWORD))
        expect = "refused the login"
    else:
        nb = shell_on(redis_pw.url(db=3))
        nb.cell(graph(3))  # loaded while the server was up
        redis_pw.stop()
        expect = "is unreachable"
    result, _ = nb.cell(graph(4), cell_id="c2")
    assert type(result.error_in_exec).__name__ == "UsageError" and expect in str(result.error_in_exec)
    lines = ("status", "execute -j 1", "execute --here", "check", "invalidate --target square")
    for line in lines if problem == "server down" else ():
        with pytest.raises(Exception) as err:
            nb.jug(line)
        assert type(err.value).__name__ == "UsageError" and expect in str(err.value), line
        nb.parts.append(str(err.value))
    assert PASSWORD not in nb.text()


def test_a_store_that_answers_is_checked_when_opened(redis_pw: RedisServer) -> None:
    store = open_redis_store(redis_pw.url(db=3))
    assert store.redis.connection_pool.connection_kwargs["db"] == 3
    assert redact(redis_pw.url(db=3)) == f"redis://:***@127.0.0.1:{redis_pw.port}/3"
    store.redis.close()


def test_jugnb_workers_in_a_shell_finds_and_stops_redis_workers(
    redis_pw: RedisServer, shell_on: Callable[[str], Transcript], project: Path, run: Any
) -> None:
    nb = shell_on(redis_pw.url(db=3))
    nb.cell(graph(N, sleep=1.0))  # 12 s of work: stopped long before the end
    nb.jug("execute -j 1 --quiet")
    state = (project / ".jugnb" / "workers" / "work.json").read_text()
    assert f"redis://:***@127.0.0.1:{redis_pw.port}/3" in state and PASSWORD not in state
    (project / "jugrc").write_text(f"[main]\njugdir = {redis_pw.url(db=3)}\n")
    shown = run("jugnb", "workers", "work.ipynb", cwd=project)
    assert shown.returncode == 0 and "pid " in shown.stdout, shown.stderr
    stopped = run("jugnb", "workers", "work.ipynb", "--now", cwd=project)
    assert stopped.returncode == 0 and "Stopped them." in stopped.stdout
    assert "Traceback" not in shown.stderr + stopped.stderr
    nb.jug("wait --timeout 30")
    with redis_pw.client(db=3) as db3:
        assert db3.keys("lock:*") == []


def test_fatal_errors_apply_to_the_running_thread_only(redis_pw: RedisServer) -> None:
    import threading

    from jugnb.backends.redis_store import StoreLost, fatal_errors
    from jugnb.errors import StoreUnreachable

    store = open_redis_store(redis_pw.url(db=3), retry_for=0.1)
    redis_pw.stop()
    seen: list[BaseException] = []

    def poller() -> None:  # the panel's thread, reading while the kernel runs tasks
        try:
            store.redis.dbsize()
        except BaseException as err:
            seen.append(err)

    with pytest.raises(StoreUnreachable, match="is unreachable"), fatal_errors(store):
        with pytest.raises(StoreLost):
            store.redis.get("x")
        thread = threading.Thread(target=poller)
        thread.start()
        thread.join(10)
        store.redis.get("x")  # latched: fails at once, and leaves the block as StoreUnreachable
    assert len(seen) == 1 and type(seen[0]) is StoreUnreachable
    store.redis.close()
