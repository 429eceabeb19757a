"""Time jugnb's status reads against plain ``jug status`` on graphs of complete no-op tasks.

Usage::

    python benchmarks/bench_status.py [--sizes 1000,10000,100000] [--repeat 3] [--no-redis] [--workdir DIR]

For each size N it writes a jugfile of N no-op tasks, loads it in this process with ``jug.init`` and
computes the task hashes (untimed: the kernel does both when it loads a graph), then writes every result
with jug's own encoding (``jug.backends.encode``, what ``store.dump`` writes, minus the fsyncs) to a file
store and to a local ``redis-server`` started for the run. ``jug status`` must then report every task
complete (exit code 0), or the run stops.

Columns (medians of ``--repeat`` runs, seconds):

- ``jug status``: the plain command in a subprocess (wall time, including Python and jug start-up);
- ``full+index``: ``StatusReader(tasks, store).read()`` from the loaded graph, building the index;
- ``full``: the first ``read()`` of a reader whose index is built;
- ``refresh``: a later ``read()`` with nothing changed (file store: after the folder listings were
  verified, see ``jugnb.backends._file_reader.RACY_SECONDS``);
- ``refresh 1Δ``: a later ``read()`` after one result was removed by someone else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jug
import jug.task
from jug.backends.encode import encode

from jugnb.backends import _file_reader
from jugnb.status.reader import StatusReader

JUGFILE = """\
from jug import TaskGenerator

@TaskGenerator
def noop(i):
    return i

tasks = [noop(i) for i in range({n})]
"""
MODULE = "bench_status_graph"
COLUMNS = ("jug status", "full+index", "full", "refresh", "refresh 1Δ")


def median_time(func: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> float:
    """Median wall time of ``func()`` in seconds; ``setup()`` runs untimed before each call."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_graph(folder: Path, n: int) -> list[Any]:
    """Write the jugfile in ``folder``, load it in-process and hash every task."""
    (folder / f"{MODULE}.py").write_text(JUGFILE.format(n=n), encoding="utf-8")
    del jug.task.alltasks[:]
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        jug.init(f"{MODULE}.py", "dict_store", on_error="propagate")
    finally:
        os.chdir(cwd)
    tasks = list(jug.task.alltasks)
    for t in tasks:
        t.hash()
    return tasks


def write_file_results(jugdir: Path, tasks: list[Any]) -> None:
    """Write each task's result where ``file_store.dump`` would, in jug's encoding."""
    made: set[str] = set()
    for t in tasks:
        h = t.hash().decode()
        if h[:2] not in made:
            (jugdir / h[:2]).mkdir(parents=True, exist_ok=True)
            made.add(h[:2])
        (jugdir / h[:2] / h[2:]).write_bytes(encode(t.args[0]))
    from jug.backends.file_store import file_store

    assert file_store(str(jugdir)).load(tasks[-1].hash()) == tasks[-1].args[0]


def write_redis_results(client: Any, tasks: list[Any]) -> None:
    """``SET result:<hash>`` as ``redis_store.dump`` does (base64 of jug's encoding), pipelined."""
    pipe = client.pipeline(transaction=False)
    for i, t in enumerate(tasks):
        pipe.set(b"result:" + t.hash(), b64encode(encode(t.args[0])))
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()


def jug_status_time(folder: Path, jugdir: str, repeat: int, n: int) -> float:
    command = [sys.executable, "-c", "import sys; from jug.jug import main; sys.exit(main())",
               "status", "--short", f"{MODULE}.py", "--jugdir", jugdir]  # fmt: skip

    def run() -> None:
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0 or f"All tasks complete ({n} tasks)" not in result.stdout:
            sys.exit(f"jug status does not see {n} complete tasks:\n{result.stdout}{result.stderr}")

    return median_time(run, repeat)


def jugnb_times(tasks: list[Any], store: Any, repeat: int, remove_one: Callable[[], None],
                restore_one: Callable[[], None]) -> list[float]:  # fmt: skip
    """``full+index``, ``full``, ``refresh`` and ``refresh 1Δ`` times for one store."""

    def full_with_index() -> None:
        snapshot = StatusReader(tasks, store).read()
        assert snapshot.all_complete and snapshot.total.total == len(tasks)

    readers: list[StatusReader] = []
    full = median_time(lambda: readers[-1].read(), repeat, lambda: readers.append(StatusReader(tasks, store)))
    reader = readers[-1]
    reader.read()
    time.sleep(_file_reader.RACY_SECONDS)
    reader.read()  # verifies the folder listings: from now on only changed folders are listed
    refresh = median_time(reader.read, repeat)
    assert reader.read().all_complete

    def change() -> None:
        restore_one()
        reader.read()
        remove_one()

    changed = median_time(reader.read, repeat, change)
    restore_one()
    return [median_time(full_with_index, repeat), full, refresh, changed]


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A throw-away local redis-server (yields its URL), or ``None`` if the binary is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--daemonize", "no",
            "--bind", "127.0.0.1"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(port, proc)
        yield f"redis://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_until_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + 10
    with redis.Redis(port=port) as client:
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def bench_file(folder: Path, tasks: list[Any], repeat: int) -> list[float]:
    from jug.backends.file_store import file_store

    jugdir = folder / "jugdata"
    write_file_results(jugdir, tasks)
    h = tasks[0].hash().decode()
    victim = jugdir / h[:2] / h[2:]
    content = victim.read_bytes()
    store = file_store(str(jugdir))
    times = jugnb_times(tasks, store, repeat, victim.unlink, lambda: victim.write_bytes(content))
    return [jug_status_time(folder, str(jugdir), repeat, len(tasks)), *times]


def bench_redis(url: str, folder: Path, tasks: list[Any], repeat: int) -> list[float]:
    from jugnb.backends.spec import open_store

    store = open_store(url)  # what the kernel uses: jug's redis_store with jugnb's client (db, password)
    store.redis.flushdb()
    write_redis_results(store.redis, tasks)
    key = b"result:" + tasks[0].hash()
    value = store.redis.get(key)
    times = jugnb_times(
        tasks, store, repeat, lambda: store.redis.delete(key), lambda: store.redis.set(key, value)
    )
    result = [jug_status_time(folder, url, repeat, len(tasks)), *times]
    store.redis.flushdb()
    store.close()
    return result


def _redis_parser() -> str:
    # redis-py parses replies in C when hiredis is importable: a redis SCAN of 100k keys is 2-3x faster.
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return "redis-py without hiredis"
    return "redis-py with hiredis"


def print_row(n: int, kind: str, times: list[float]) -> None:
    cells = "".join(f" {t:>11.4f} |" for t in times)
    print(f"| {n:>7} | {kind:<5} |{cells}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated graph sizes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument("--no-redis", action="store_true", help="skip the redis store")
    parser.add_argument(
        "--workdir", type=Path, help="where to build the graphs (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="jugnb-bench-"))
    python = sys.version.split()[0]
    print(f"python {python}, jug {jug.__version__}, {os.cpu_count()} CPUs, {_redis_parser()}")
    print(f"seconds, median of {args.repeat}")
    print("|       N | store |" + "".join(f" {c:>11} |" for c in COLUMNS))
    print("|--------:|-------|" + "------------:|" * len(COLUMNS))
    try:
        with redis_server() as url:
            for n in sizes:
                folder = workdir / str(n)
                folder.mkdir(parents=True, exist_ok=True)
                tasks = load_graph(folder, n)
                print_row(n, "file", bench_file(folder, tasks, args.repeat))
                if url is not None and not args.no_redis:
                    print_row(n, "redis", bench_redis(url, folder, tasks, args.repeat))
            if url is None and not args.no_redis:
                print("redis-server not found: redis rows skipped (apt-get install redis-server)")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
