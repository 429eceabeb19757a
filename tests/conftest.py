"""Generic fixtures: notebooks from cell sources, project folders, jug's global state, jug processes.

Sample notebooks live in ``tests/jugfiles/*.cells``: cell sources separated by lines ``# ---- code``,
``# ---- markdown`` or ``# ---- raw`` (see :func:`read_cells`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jug
import jug.task
import nbformat
import psutil
import pytest
from jug.backends.dict_store import dict_store
from jug.hooks import reset_all_hooks

JUGFILES = Path(__file__).parent / "jugfiles"
BIN = Path(sys.executable).parent
#: Every subprocess gets this timeout (seconds); a jug command on a small notebook takes about 1 s.
TIMEOUT = 60

_SEPARATOR = re.compile(r"^# ---- (code|markdown|raw)[ \t]*\n", re.MULTILINE)

Cell = str | tuple[str, str]


def write_notebook(path: Path, cells: Sequence[Cell], *, ids: bool = True) -> Path:
    """Write a v4 notebook at ``path``.

    ``cells`` holds code cell sources (``str``) or ``(cell_type, source)`` pairs. Cell ids are stable
    (``cell-1``, ``cell-2``, ...) so that tests can name them; ``ids=False`` writes a v4.4 notebook without.
    """
    makers = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }
    notebook = nbformat.v4.new_notebook()
    for number, cell in enumerate(cells, start=1):
        cell_type, source = ("code", cell) if isinstance(cell, str) else cell
        new = makers[cell_type](source)
        if ids:
            new.id = f"cell-{number}"
        else:
            del new["id"]
        notebook.cells.append(new)
    if not ids:
        notebook.nbformat_minor = 4
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def read_cells(name: str) -> list[tuple[str, str]]:
    """The cells of ``tests/jugfiles/<name>.cells`` as ``(cell_type, source)`` pairs."""
    text = (JUGFILES / f"{name}.cells").read_text(encoding="utf-8")
    parts = _SEPARATOR.split(text)
    # parts: [preamble, type, source, type, source, ...]; the preamble is a comment about the sample.
    return [(kind, source.rstrip("\n")) for kind, source in zip(parts[1::2], parts[2::2], strict=True)]


@pytest.fixture(autouse=True)
def jug_reset() -> Iterator[None]:
    """Reset jug's global state around every test, as jug's own ``tests/task_reset.py`` does."""
    jug.task.Task.store = dict_store()
    del jug.task.alltasks[:]
    yield
    jug.task.Task.store = None
    del jug.task.alltasks[:]
    reset_all_hooks()


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail the test after :data:`TIMEOUT` seconds, killing the processes it started and left running.

    For in-process ``jugnb.cli.app.main`` calls, whose jug child process has no timeout of its own.
    """
    expired = False

    def expire(signum: int, frame: object) -> None:
        nonlocal expired
        expired = True
        raise TimeoutError(f"the test was still running after {TIMEOUT} s")

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if expired:
            left = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
            for child in left:
                child.kill()
            psutil.wait_procs(left, timeout=TIMEOUT)  # reaps our own children


@pytest.fixture(scope="session")
def notebook_writer() -> Callable[..., Path]:
    """:func:`write_notebook`, for fixtures of any scope."""
    return write_notebook


@pytest.fixture(scope="session")
def cells() -> Callable[[str], list[tuple[str, str]]]:
    """:func:`read_cells`: ``cells("simple")`` are the cells of ``tests/jugfiles/simple.cells``."""
    return read_cells


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty folder for a notebook."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def make_notebook(project: Path) -> Callable[..., Path]:
    """``make_notebook(cells, name="analysis.ipynb", ids=True)``: write a notebook in :func:`project`."""

    def make(cells: Sequence[Cell], name: str = "analysis.ipynb", *, ids: bool = True) -> Path:
        return write_notebook(project / name, cells, ids=ids)

    return make


@pytest.fixture(scope="session")
def jug_environ(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for jug processes: no user jugrc or IPython profile, no ``JUG_MAX_*`` stop triggers."""
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUG_MAX_")}
    env.update(
        HOME=str(home),
        IPYTHONDIR=str(home / ".ipython"),
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@pytest.fixture
def jug_env(jug_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Apply :func:`jug_environ` to this process, for in-process ``jugnb.cli.app.main`` calls (its
    children)."""
    for key in [k for k in os.environ if k.startswith("JUG_MAX_")]:
        monkeypatch.delenv(key)
    for key in ("HOME", "IPYTHONDIR", "PATH", "PYTHONDONTWRITEBYTECODE"):
        monkeypatch.setenv(key, jug_environ[key])
    return jug_environ


Args = Sequence[str | os.PathLike[str]]


def _command(program: str, args: Args) -> list[str]:
    return [sys.executable if program == "python" else str(BIN / program), *map(str, args)]


@pytest.fixture(scope="session")
def run(jug_environ: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run(program, *args, cwd, input=None)``: run ``jugnb``, ``jug`` or ``python`` from this venv.

    Output is captured as text; the call times out after :data:`TIMEOUT` seconds.
    """

    def run_program(
        program: str, *args: str | os.PathLike[str], cwd: Path, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _command(program, args),
            cwd=cwd,
            env=jug_environ,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    return run_program


@pytest.fixture(scope="session")
def run_parallel(jug_environ: dict[str, str]) -> Callable[..., list[subprocess.CompletedProcess[str]]]:
    """``run_parallel([(program, args, cwd), ...])``: like :func:`run`, all at once; results in order."""

    def run_all(jobs: Sequence[tuple[str, Args, Path]]) -> list[subprocess.CompletedProcess[str]]:
        pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        processes: list[subprocess.Popen[str]] = []
        try:
            for program, args, cwd in jobs:
                command = _command(program, args)
                processes.append(subprocess.Popen(command, cwd=cwd, env=jug_environ, text=True, **pipes))
            results = []
            for process in processes:
                out, err = process.communicate(timeout=TIMEOUT)
                results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
            return results
        finally:
            for process in processes:
                if process.poll() is None:  # only after a timeout: these are our own children
                    process.kill()
                    process.communicate()

    return run_all


@pytest.fixture
def load_jugfile(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, Path], dict[str, Any]]:
    """``load_jugfile(jugfile, jugdir)``: import a jugfile in this process with ``jug.init``, like plain jug.

    Returns the jugfile's namespace; its tasks are in ``jug.task.alltasks``. ``sys.modules``, ``sys.path``
    and the working directory are restored afterwards (:func:`jug_reset` restores the rest).
    """

    def load(jugfile: Path, jugdir: Path) -> dict[str, Any]:
        monkeypatch.setitem(sys.modules, jugfile.stem, None)  # jug.init replaces it; undone after the test
        monkeypatch.setattr(sys, "path", list(sys.path))
        monkeypatch.chdir(jugfile.parent)
        _, jugspace = jug.init(str(jugfile), str(jugdir), on_error="propagate")
        return jugspace  # type: ignore[no-any-return]

    return load


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on a free local port, for this session; yields ``redis://127.0.0.1:PORT/``.

    Skipped where redis-server is not installed, except on CI (``CI`` set), which must install it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; CI must install Debian's redis-server package")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    options = ["--save", "", "--appendonly", "no", "--daemonize", "no", "--bind", "127.0.0.1"]
    args = [binary, *options, "--port", str(port), "--dir", str(folder)]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_redis(port, server)
        yield f"redis://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=TIMEOUT)


@pytest.fixture
def redis_pw(tmp_path: Path) -> Iterator[Any]:
    """A password-protected ``redis-server`` of this test (a :class:`backendutil.RedisServer`)."""
    from backendutil import password_server

    with password_server(tmp_path) as server:
        yield server


@pytest.fixture
def redis_db(redis_server: str) -> str:
    """The session's redis server with its database emptied, as a jugdir (``redis://127.0.0.1:PORT/``)."""
    import redis

    with redis.Redis.from_url(redis_server) as client:
        client.flushdb()
    return redis_server


def _wait_for_redis(port: int, server: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + TIMEOUT
    with redis.Redis(port=port) as client:
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def notebook_shell(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """``notebook_shell(module)``: an in-process InteractiveShell as the notebook ``<module>.ipynb``.

    The shell runs in :func:`project` with jugnb loaded and no user jugrc. At teardown it stops the workers
    the magics started (and checks that they are gone), unloads jugnb and clears the shell.
    """
    from IPython.core.interactiveshell import InteractiveShell

    modules = []

    def make(module: str) -> Any:
        monkeypatch.chdir(project)
        monkeypatch.setenv("JPY_SESSION_NAME", str(project / f"{module}.ipynb"))
        monkeypatch.setenv("HOME", str(project.parent))
        modules.append(module)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jugnb")
        return shell

    yield make
    if InteractiveShell.initialized():
        shell = InteractiveShell.instance()
        magics = shell.magics_manager.registry.get("JugMagics")
        pool = getattr(magics, "_pool", None)
        if pool is not None:
            pool.stop(now=True)
            alive = [w.pid for w in pool.workers() if process_exists(w.pid)]
            assert not alive, f"workers left running: {alive}"
        shell.run_line_magic("unload_ext", "jugnb")
        InteractiveShell.clear_instance()
    for module in modules:
        sys.modules.pop(module, None)


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` every 20 ms until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, exited but not reaped, counts as gone)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real one-node SLURM (munged, slurmctld, slurmd on localhost) for this session.

    Skipped where SLURM cannot start, except on CI (``CI`` set), where that is a failure.
    """
    from slurmutil import OneNodeSlurm, SlurmUnavailable

    cluster = OneNodeSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"SLURM did not start; CI must install {' '.join(cluster_packages())}: {err}")
        pytest.skip(f"SLURM did not start: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def cluster_packages() -> tuple[str, ...]:
    """Debian packages of the one-node SLURM."""
    from slurmutil import PACKAGES

    return PACKAGES


@pytest.fixture
def slurm(slurm_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's SLURM, with ``SLURM_CONF`` set in this process for the test (and its children)."""
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    return slurm_cluster
