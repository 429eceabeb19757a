"""Helpers for the store tests (``test_backends_*.py``): a redis server we can stop, an in-process shell.

:class:`RedisServer` runs Debian's ``redis-server`` on a free loopback port with its configuration on stdin
(so a test password is not in its command line either), appending every write to a file in its folder so
that a restart on the same port keeps the data. Tests stop it with SIGTERM or freeze it with SIGSTOP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT, free_port, process_exists
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

PASSWORD = "pw-Zq7xK3sV9"  # distinctive: found nowhere unless it leaked

GRAPH = """\
%%jugfile
import time
from jug import TaskGenerator

@TaskGenerator
def square(x):
    time.sleep(SLEEP)
    return x * x

@TaskGenerator
def total(values):
    return sum(values)

SLEEP = {sleep}
squares = [square(i) for i in range({n})]
result = total(squares)
"""


def graph(n: int = 12, sleep: float = 0.0) -> str:
    """A ``%%jugfile`` cell: ``n`` squares and their total."""
    return GRAPH.format(n=n, sleep=sleep)


def expected(n: int) -> dict[str, Any]:
    """What a serial run of :func:`graph` computes."""
    return {"squares": [i * i for i in range(n)], "result": sum(i * i for i in range(n))}


def redis_binary() -> str:
    """Path of redis-server; the test fails on CI (which must install it) and is skipped elsewhere."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; CI must install Debian's redis-server package")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return binary


class RedisServer:
    """A redis-server this test started: stop, freeze, restart on the same port with the same data.

    Parameters
    ----------
    folder : Path
        Holds its append-only file.
    password : str, optional
        ``requirepass``.
    """

    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.binary = redis_binary()
        self.folder = folder
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0, password: str | None = None) -> str:
        """``redis://[:password@]127.0.0.1:PORT/db`` (the server's own password unless given)."""
        secret = self.password if password is None else password
        auth = f":{secret}@" if secret else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start (again) on the same port; return once it answers."""
        config = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.folder}",
            "appendonly yes",
            'save ""',
            "daemonize no",
        ]
        if self.password:
            config.append(f"requirepass {self.password}")
        self.process = subprocess.Popen(
            [self.binary, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert self.process.stdin is not None
        self.process.stdin.write("\n".join(config).encode() + b"\n")
        self.process.stdin.close()
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except Exception:
                assert self.process is not None and self.process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def client(self, db: int = 0) -> Any:
        """A plain redis-py client on database ``db``."""
        import redis

        return redis.Redis(port=self.port, db=db, password=self.password)

    def stop(self) -> None:
        """SIGTERM (redis writes its append-only file and exits) and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=TIMEOUT)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@contextlib.contextmanager
def password_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A password-protected redis server of one test (which may stop and restart it)."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder, PASSWORD)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.resume()
        server.stop()


def new_shell(project: Path, monkeypatch: pytest.MonkeyPatch, jugdir: str | None) -> InteractiveShell:
    """An in-process shell in ``project`` with jugnb loaded, the notebook ``work.ipynb`` and ``jugdir``."""
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", list(sys.path))  # jug.init puts the working directory in front
    monkeypatch.setenv("JPY_SESSION_NAME", str(project / "work.ipynb"))
    monkeypatch.setenv("HOME", str(project.parent))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jugnb")
    if jugdir is not None:
        shell.run_line_magic("config", f"JugMagics.jugdir = {jugdir!r}")
    return shell


def close_shell(shell: InteractiveShell) -> None:
    """Stop this shell's workers (checking none is left), unload jugnb and forget the shell."""
    magics = shell.magics_manager.registry["JugMagics"]
    pool = magics._pool
    if pool is not None:
        pool.stop(now=True)
        pids = [w.pid for w in pool.workers()]
        assert not any(process_exists(p) for p in pids), "a worker outlived its test"
    shell.run_line_magic("unload_ext", "jugnb")
    InteractiveShell.clear_instance()
    sys.modules.pop("work", None)


class Transcript:
    """Everything the shell printed or raised, to search for a leaked password afterwards."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self.parts: list[str] = []

    def jug(self, line: str) -> tuple[Any, str]:
        """Run ``%jug line``; return its value and printed output (both kept, also when it raises)."""
        value = None
        try:
            with capture_output() as out:
                value = self.shell.run_line_magic("jug", line)
        except Exception as err:
            self.parts.append(str(err))
            raise
        finally:
            self.parts += [out.stdout, out.stderr, _shown(value)]
        return value, out.stdout

    def cell(self, source: str, cell_id: str = "c1") -> tuple[Any, str]:
        """Run a cell; return its result object and printed output (both kept)."""
        with capture_output() as out:
            result = self.shell.run_cell(source, cell_id=cell_id)
        error = result.error_in_exec or result.error_before_exec
        self.parts += [out.stdout, out.stderr, str(error or "")]
        return result, out.stdout

    def text(self) -> str:
        """All of it, joined."""
        return "\n".join(self.parts)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    bundle = getattr(value, "_repr_mimebundle_", None)
    if bundle is not None:
        data = bundle()
        data = data[0] if isinstance(data, tuple) else data
        return "\n".join(str(v) for v in data.values())
    return repr(value)


def widget_strings(widget: Any) -> Iterable[str]:
    """Every string held by a widget and its descendants (values, descriptions, HTML, tooltips)."""
    for name in widget.keys:
        value = getattr(widget, name, None)
        if isinstance(value, str):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, str):
                    yield item
                elif hasattr(item, "keys"):
                    yield from widget_strings(item)
        elif hasattr(value, "keys") and hasattr(value, "comm"):
            yield from widget_strings(value)


def files_containing(folder: Path, secret: str) -> list[Path]:
    """Files under ``folder`` (hidden ones too) whose bytes contain ``secret``."""
    needle = secret.encode()
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def process_mentions(pid: int, secret: str) -> bool:
    """Whether ``secret`` is in the command line or the environment of process ``pid``."""
    needle = secret.encode()
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return needle in cmdline or needle in environ
