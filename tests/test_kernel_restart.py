"""Kernel restart and shutdown under Jupyter's own timing (jupyter_client's KernelManager, as Jupyter Server
calls it): interrupt, ``shutdown_request``, SIGTERM after half of ``shutdown_wait_time``, SIGKILL at its end.

The class: however the kernel ends (a restart, a shutdown, a kill mid-shutdown), no worker it started without
``--detach`` runs longer than ``WorkerPool.shutdown_timeout`` after, and no lock of theirs is left. A new
kernel tells such leftovers from detached workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, process_exists
from kernelutil import Kernel

from jugnb.workers.pool import WorkerPool

pytestmark = pytest.mark.kernel

# Tasks far longer than any shutdown timeout: the workers are always mid-task when the kernel goes.
SLOW = """\
%%jugfile --name slow
import time
from jug import TaskGenerator

@TaskGenerator
def nap(i):
    time.sleep(120)
    return i

naps = [nap(i) for i in range(4)]
"""
PIDS = (
    "import json; pool = get_ipython().magics_manager.registry['JugMagics']._pool\n"
    "print(json.dumps([w.pid for w in pool.workers()]))"
)
# Measuring slack: the test polls every 50 ms and process exit is not instantaneous.
SLACK = 0.5


@pytest.fixture
def kernel(project: Path, jug_env: dict[str, str]) -> Iterator[Kernel]:
    started = Kernel(project, notebook="work.ipynb")
    yield started
    if started.manager.is_alive():
        started.run("%jug stop --now", timeout=60)
    started.shutdown()


def start_running(kernel: Kernel, project: Path, config: str = "", redis_url: str | None = None) -> list[int]:
    """Start 2 workers on SLOW and wait until both run a task (each holds a lock)."""
    kernel.run(f"%load_ext jugnb\n{config}").ok()
    kernel.run(SLOW).ok()
    kernel.run("%jug execute -j 2 --quiet").ok()
    pids: list[int] = json.loads(kernel.run(PIDS).ok().stdout)
    deadline = time.monotonic() + 60
    while len(locks(project, redis_url)) < 2:
        assert time.monotonic() < deadline, "the workers never started their tasks"
        time.sleep(0.05)
    return pids


def locks(project: Path, redis_url: str | None = None) -> list[object]:
    """The task locks held: lock files of the project's file store, or ``lock:*`` keys in redis."""
    if redis_url is not None:
        import redis

        with redis.Redis.from_url(redis_url) as client:
            return sorted(client.keys("lock:*"))
    return sorted((project / "work.jugdata" / "locks").glob("*.lock"))


def seconds_until_gone(pids: list[int], limit: float) -> float:
    """Seconds until every pid has exited, polled every 50 ms; fails past ``limit``."""
    began = time.monotonic()
    while any(process_exists(p) for p in pids):
        elapsed = time.monotonic() - began
        assert elapsed < limit, (
            f"workers {[p for p in pids if process_exists(p)]} still run after {elapsed:.1f} s"
        )
        time.sleep(0.05)
    return time.monotonic() - began


def test_default_shutdown_timeout_is_short() -> None:
    assert WorkerPool.shutdown_timeout.default_value <= 10


def test_restart_ends_workers_within_shutdown_timeout(kernel: Kernel, project: Path) -> None:
    pids = start_running(kernel, project)
    began = time.monotonic()
    kernel.manager.restart_kernel(now=False)  # what Jupyter Server's restart does
    limit = WorkerPool.shutdown_timeout.default_value + SLACK - (time.monotonic() - began)
    seconds_until_gone(pids, limit)
    assert locks(project) == [], "a stopped worker's lock was left behind"
    kernel.client.wait_for_ready(timeout=60)
    # The new kernel sees no workers and can start again at once.
    kernel.run("%load_ext jugnb").ok()
    kernel.run(SLOW).ok()
    assert "No workers" in kernel.run("%jug workers").ok().text


def test_shutdown_ends_workers_within_a_configured_timeout(kernel: Kernel, project: Path) -> None:
    pids = start_running(kernel, project, "%config WorkerPool.shutdown_timeout = 3")
    began = time.monotonic()
    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=False)
    seconds_until_gone(pids, 3 + SLACK - (time.monotonic() - began))
    assert locks(project) == []


def test_kernel_killed_mid_shutdown_still_bounds_its_workers(kernel: Kernel, project: Path) -> None:
    # Jupyter's last resort: the kernel is killed before it could stop anything.
    pids = start_running(kernel, project, "%config WorkerPool.shutdown_timeout = 4")
    os.kill(kernel.manager.provisioner.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
    seconds_until_gone(pids, 4 + SLACK)
    assert locks(project) == []


def test_a_task_that_finishes_in_time_is_kept(kernel: Kernel, project: Path) -> None:
    quick = SLOW.replace("time.sleep(120)", "time.sleep(1.5)").replace("range(4)", "range(2)")
    kernel.run("%load_ext jugnb\n%config WorkerPool.shutdown_timeout = 8").ok()
    kernel.run(quick).ok()
    kernel.run("%jug execute -j 2 --quiet").ok()
    pids: list[int] = json.loads(kernel.run(PIDS).ok().stdout)
    deadline = time.monotonic() + 60
    while len(locks(project)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kernel.manager.restart_kernel(now=False)
    seconds_until_gone(pids, 8 + SLACK)
    kernel.client.wait_for_ready(timeout=60)
    kernel.run("%load_ext jugnb").ok()
    kernel.run(quick).ok()
    assert kernel.run("value(naps)").ok().data[0]["text/plain"] == "[0, 1]"


STUCK = SLOW.replace(
    "    time.sleep(120)",
    "    import signal\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as code stuck in C would\n"
    "    time.sleep(120)",
)


def test_a_worker_deaf_to_sigterm_is_killed_in_time_and_frees_its_lock(kernel: Kernel, project: Path) -> None:
    # The kernel is killed (no help from it) and the task ignores SIGTERM: the worker's own clock must
    # release its lock and kill it before the deadline.
    kernel.run("%load_ext jugnb\n%config WorkerPool.shutdown_timeout = 4").ok()
    kernel.run(STUCK).ok()
    kernel.run("%jug execute -j 2 --quiet").ok()
    pids: list[int] = json.loads(kernel.run(PIDS).ok().stdout)
    deadline = time.monotonic() + 60
    while len(locks(project)) < 2:
        assert time.monotonic() < deadline, "the workers never started their tasks"
        time.sleep(0.05)
    os.kill(kernel.manager.provisioner.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
    seconds_until_gone(pids, 4 + SLACK)
    assert locks(project) == []


def test_redis_locks_are_released_on_restart(kernel: Kernel, project: Path, redis_db: str) -> None:
    import redis

    pids = start_running(kernel, project, f"%config JugMagics.jugdir = {redis_db!r}", redis_url=redis_db)
    began = time.monotonic()
    kernel.manager.restart_kernel(now=False)
    seconds_until_gone(pids, WorkerPool.shutdown_timeout.default_value + SLACK - (time.monotonic() - began))
    with redis.Redis.from_url(redis_db) as client:
        assert client.keys("lock:*") == []


def test_new_kernel_stops_leftovers_and_says_so(kernel: Kernel, project: Path) -> None:
    # A long timeout: the workers of the old kernel are still finishing when the new one looks.
    pids = start_running(kernel, project, "%config WorkerPool.shutdown_timeout = 60")
    old_kernel = kernel.manager.provisioner.process.pid  # type: ignore[union-attr]
    kernel.manager.restart_kernel(now=True)  # killed at once: nothing stopped the workers
    kernel.client.wait_for_ready(timeout=60)
    assert all(process_exists(p) for p in pids)
    shown = subprocess.run(
        [str(BIN / "jugnb"), "workers", "work.ipynb"], cwd=project, capture_output=True, text=True, timeout=60
    ).stdout
    assert f"The kernel that started them (pid {old_kernel}) is gone" in shown and str(pids[0]) in shown
    kernel.run("%load_ext jugnb").ok()
    kernel.run(SLOW).ok()
    out = kernel.run("%jug workers").ok().text
    assert f"of a previous kernel (pid {old_kernel}, gone)" in out and str(pids[0]) in out
    assert "Re-attached" not in out and "No workers" in out
    seconds_until_gone(pids, 15)
    assert locks(project) == []


# A "kernel" that is a plain Python process (terminal IPython, a script): its exit runs WorkerPool's atexit.
PLAIN_KERNEL = """
import json, sys, time
from pathlib import Path
from jugnb.workers.pool import WorkerPool
pool = WorkerPool(Path(sys.argv[4]), "plain", shutdown_timeout=float(sys.argv[3]))
pool.start(int(sys.argv[6]), jugdir=sys.argv[2], cwd=Path(sys.argv[1]))
print(json.dumps([w.pid for w in pool.workers()]), flush=True)
jugdir = Path(sys.argv[2])
while len(list((jugdir / "locks").glob("*.lock"))) < int(sys.argv[5]):
    time.sleep(0.05)
print("exiting", flush=True)
"""
PLAIN_JUGFILE = """
import time
from jug import TaskGenerator

@TaskGenerator
def nap(seconds):
    time.sleep(seconds)
    return seconds

naps = [nap(0.5), nap(120)]
"""


def test_a_plain_process_exit_bounds_its_workers_and_keeps_a_task_done_in_time(
    project: Path, jug_env: dict[str, str]
) -> None:
    import sys

    from jugnb.notebook.jugfile import atomic_write
    from jugnb.notebook.project import Project

    state = Project(project, "plain", "plain.ipynb")
    atomic_write(state.state_dir / "plain.current", f"{state.snapshot(PLAIN_JUGFILE)}\n")
    jugdir = project / "plain.jugdata"
    command = [
        sys.executable,
        "-c",
        PLAIN_KERNEL,
        str(project),
        str(jugdir),
        "3",
        str(state.state_dir),
        "2",
        "2",
    ]
    kernel = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, text=True)
    assert kernel.stdout is not None
    with kernel.stdout:
        pids = json.loads(kernel.stdout.readline())
        assert kernel.stdout.readline().strip() == "exiting"
    began = time.monotonic()
    kernel.wait(10)
    seconds_until_gone(pids, 3 + SLACK - (time.monotonic() - began))
    assert time.monotonic() - began < 3 + SLACK, "the process exit waited longer than shutdown_timeout"
    assert not list((jugdir / "locks").glob("*.lock"))
    from jug.backends.file_store import file_store

    store = file_store(str(jugdir))
    results = [p for p in jugdir.glob("??/*")]
    assert len(results) == 1 and store.load(results[0].parent.name + results[0].name) == 0.5


def test_a_terminated_worker_leaves_no_lock_under_its_pid(project: Path, jug_env: dict[str, str]) -> None:
    # SIGTERM can land inside jug's `t.lock()` after the lock file exists but before jug notes it (its
    # `finally` then leaves it). Stand for that with a lock naming the worker, written behind jug's back;
    # the kernel is killed, so no pool is left to clean up after the worker: it must do it itself.
    import socket
    import sys

    from jugnb.notebook.jugfile import atomic_write
    from jugnb.notebook.project import Project

    state = Project(project, "plain", "plain.ipynb")
    long_only = PLAIN_JUGFILE.replace("[nap(0.5), nap(120)]", "[nap(120)]")
    atomic_write(state.state_dir / "plain.current", f"{state.snapshot(long_only)}\n")
    jugdir = project / "plain.jugdata"
    staying = PLAIN_KERNEL.replace(
        'print("exiting", flush=True)', 'print("running", flush=True)\ntime.sleep(120)'
    )
    command = [sys.executable, "-c", staying, str(project), str(jugdir), "3", str(state.state_dir), "1", "1"]
    kernel = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout is not None
        with kernel.stdout:
            (pid,) = json.loads(kernel.stdout.readline())  # one worker: it runs the task
            kernel.stdout.readline()
        stray = jugdir / "locks" / f"{'ab' * 20}.lock"
        stray.write_text(f"PID {pid} on HOSTNAME {socket.gethostname()}\n")
        kernel.kill()
        kernel.wait(10)
        seconds_until_gone([pid], 3 + SLACK)
        assert not list((jugdir / "locks").glob("*.lock"))
    finally:
        kernel.kill()
        kernel.wait(10)
