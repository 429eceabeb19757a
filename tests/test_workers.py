"""WorkerPool and jugnb.workers.loop with real worker processes on a file store in tmp_path.

Every wait has a timeout, and the ``pools`` fixture checks at teardown that every process a pool started
(replacements included) is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import process_exists, wait_until

from jugnb.notebook.jugfile import atomic_write
from jugnb.notebook.project import Project
from jugnb.status.records import RecordLog, TaskRecord
from jugnb.workers.pool import NotRunning, WorkerPool

MODULE = "wtest"

SQUARES = """
import time
from jug import TaskGenerator

@TaskGenerator
def square(x):
    time.sleep({sleep})
    return x * x

@TaskGenerator
def total(xs):
    return sum(xs)

squares = [square(i) for i in range({n})]
result = total(squares)
"""


class Notebook:
    """A fake notebook project: state folder, pointer file, absolute jugdir."""

    def __init__(self, folder: Path) -> None:
        self.project = Project(folder, MODULE, f"{MODULE}.ipynb")
        self.jugdir = str(folder / f"{MODULE}.jugdata")
        self.folder = folder

    def write(self, source: str) -> Path:
        snapshot = self.project.snapshot(textwrap.dedent(source))
        atomic_write(self.project.state_dir / f"{MODULE}.current", f"{snapshot}\n")
        return snapshot

    def records(self) -> list[TaskRecord]:
        return RecordLog.for_jugdir(self.jugdir).read_new()

    def locks(self) -> list[str]:
        folder = Path(self.jugdir) / "locks"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def load(self, task_hash: str) -> Any:
        from jug.backends.file_store import file_store

        return file_store(self.jugdir).load(task_hash)


@pytest.fixture
def nb(tmp_path: Path) -> Notebook:
    return Notebook(tmp_path)


@pytest.fixture
def pools(nb: Notebook) -> Iterator[Callable[..., WorkerPool]]:
    """Make pools; at teardown, stop them and assert that every process they started is gone."""
    made: list[WorkerPool] = []

    def make(**traits: Any) -> WorkerPool:
        pool = WorkerPool(nb.project.state_dir, MODULE, **{"stop_timeout": 2.0, **traits})
        made.append(pool)
        return pool

    yield make
    leftovers = []
    for pool in made:
        pool.stop(now=True)
        for info in pool.workers():
            if process_exists(info.pid):
                leftovers.append(info.pid)
                os.killpg(info.pid, signal.SIGKILL)
    assert not leftovers, f"worker processes left behind: {leftovers}"


def running(pool: WorkerPool) -> list[Any]:
    return [w for w in pool.workers() if w.state == "running"]


def ok_counts(records: list[TaskRecord]) -> Counter[str]:
    return Counter(r.hash for r in records if r.status == "ok")


# -- start, wait, stop ---------------------------------------------------------------------------------


def test_start_returns_at_once_and_workers_finish_the_graph(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=20, sleep=0.02))
    pool = pools()
    t0 = time.monotonic()
    infos = pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    assert time.monotonic() - t0 < 0.5
    assert len(infos) == 2 and all(i.alive for i in infos) and pool.state == "running"
    assert pool.wait(timeout=30)
    assert pool.state == "after"
    records = nb.records()
    counts = ok_counts(records)
    assert len(counts) == 21 and set(counts.values()) == {1}
    (total,) = [r for r in records if r.name == f"{MODULE}.total"]
    assert nb.load(total.hash) == sum(i * i for i in range(20))
    assert {w.returncode for w in pool.workers()} == {0}
    assert [e.kind for e in pool.events].count("exited") == 2
    assert nb.locks() == []
    assert {r.pid for r in records} <= {w.pid for w in pool.workers()}


def test_workers_show_their_current_task(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=2, sleep=3))
    pool = pools()
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder)
    (info,) = wait_until(lambda: running(pool), 10, "a running task")
    assert info.task == f"{MODULE}.square" and len(info.task_hash) == 40
    assert info.rss > 1_000_000 and 0 <= info.running_for < 5 and info.alive
    assert Path(info.log).exists()
    # The jugdir (a redis URL may hold a password) stays out of the process list.
    assert not any(nb.jugdir in arg for arg in psutil.Process(info.pid).cmdline())
    assert pool.state_file.stat().st_mode & 0o077 == 0


def test_relative_jugdirs_are_made_absolute_against_the_working_directory(tmp_path: Path) -> None:
    from jugnb.backends.spec import absolute_jugdir

    assert absolute_jugdir("nb.jugdata", tmp_path) == str(tmp_path / "nb.jugdata")
    assert absolute_jugdir("file_keepalive:../x", tmp_path) == f"file_keepalive:{tmp_path.parent / 'x'}"
    assert absolute_jugdir("/abs/j", tmp_path) == "/abs/j"
    assert absolute_jugdir("redis://:pw@h:1/", tmp_path) == "redis://:pw@h:1/"


def test_stop_drains_after_the_current_task(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=40, sleep=0.3))
    pool = pools()
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    wait_until(lambda: len(running(pool)) == 2, 10, "two running tasks")
    pool.stop()
    assert pool.wait(timeout=10)
    records = nb.records()
    assert records and all(r.status == "ok" for r in records)  # nothing interrupted
    assert len(records) < 41
    assert {w.returncode for w in pool.workers()} == {0}
    assert nb.locks() == []


def test_stop_now_terminates_and_releases_locks(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=4, sleep=60))
    pool = pools()
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    wait_until(lambda: len(running(pool)) == 2, 10, "two running tasks")
    t0 = time.monotonic()
    pool.stop(now=True)
    assert time.monotonic() - t0 < 3
    assert not any(w.alive for w in pool.workers())
    assert nb.locks() == []
    assert {r.status for r in nb.records()} == {"interrupted"}


BLOCKS_SIGTERM = """
import signal, time
from jug import TaskGenerator

@TaskGenerator
def stubborn(x):
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    time.sleep(60)
    return x

tasks = [stubborn(i) for i in range(2)]
"""


def test_stop_now_kills_after_the_timeout_and_releases_exactly_their_locks(nb: Notebook, pools: Any) -> None:
    nb.write(BLOCKS_SIGTERM)
    pool = pools(stop_timeout=0.5)
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder)
    (info,) = wait_until(lambda: running(pool), 10, "a running task")
    # A lock of the same pid on another host, and one of another local process: never touched.
    locks = Path(nb.jugdir) / "locks"
    (locks / f"{'e' * 40}.lock").write_text(f"PID {info.pid} on HOSTNAME another-host\n")
    (locks / f"{'f' * 40}.lock").write_text(f"PID {os.getpid()} on HOSTNAME {os.uname().nodename}\n")
    pool.stop(now=True)
    assert nb.locks() == [f"{'e' * 40}.lock", f"{'f' * 40}.lock"]
    kinds = [e.kind for e in pool.events]
    assert "died" not in kinds and kinds.count("lock-released") == 1  # asked for: not a death
    released = next(e for e in pool.events if e.kind == "lock-released")
    assert released.hash == info.task_hash
    assert "killed by SIGKILL" in next(e for e in pool.events if e.kind == "exited").message
    assert [r.status for r in nb.records()] == ["killed"]


# -- dead workers ----------------------------------------------------------------------------------------


def test_kill_9_mid_task_is_noticed_and_the_task_runs_again(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=24, sleep=0.15))
    pool = pools(replace_dead=False)
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    victim = wait_until(lambda: running(pool), 10, "a running task")[0]
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: any(e.kind == "died" for e in pool.events), 2, "the death to be noticed")
    assert time.monotonic() - killed_at < 2
    assert pool.wait(timeout=30)
    released = [e for e in pool.events if e.kind == "lock-released"]
    assert [e.pid for e in released] == [victim.pid]
    records = nb.records()
    counts = ok_counts(records)
    assert len(counts) == 25 and set(counts.values()) == {1}  # none lost, none duplicated
    (killed,) = [r for r in records if r.status == "killed"]
    assert killed.pid == victim.pid and counts[killed.hash] == 1
    (total,) = [r for r in records if r.name == f"{MODULE}.total" and r.status == "ok"]
    assert nb.load(total.hash) == sum(i * i for i in range(24))  # equal to a serial run
    assert nb.locks() == []


def test_a_dead_worker_is_replaced(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=12, sleep=0.2))
    pool = pools(max_replacements=1)
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder)
    victim = wait_until(lambda: running(pool), 10, "a running task")[0]
    os.kill(victim.pid, signal.SIGKILL)
    assert pool.wait(timeout=30)
    assert [e.kind for e in pool.events].count("replaced") == 1
    assert len(pool.workers()) == 2
    assert len(ok_counts(nb.records())) == 13


# -- re-attaching and the kernel's death -----------------------------------------------------------------


def test_to_dict_from_dict_and_reattach_keep_the_pids(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=6, sleep=20))
    pool = pools()
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    pids = [w.pid for w in pool.workers()]
    again = WorkerPool.from_dict(json.loads(json.dumps(pool.to_dict())))
    assert [w.pid for w in again.workers()] == pids and again.jugdir == nb.jugdir
    reattached = WorkerPool.reattach(nb.project.state_dir, MODULE)
    assert [w.pid for w in reattached.workers()] == pids
    assert all(w.alive for w in reattached.workers())
    reattached.stop(now=True)
    assert pool.wait(timeout=5)
    assert nb.locks() == []
    with pytest.raises(NotRunning):
        WorkerPool.reattach(nb.project.state_dir, MODULE)


def test_reattach_without_state_file_is_not_running(nb: Notebook) -> None:
    with pytest.raises(NotRunning, match="no workers were started"):
        WorkerPool.reattach(nb.project.state_dir, MODULE)


KERNEL = """
import json, sys, time
from pathlib import Path
from jugnb.workers.pool import WorkerPool
pool = WorkerPool(Path(sys.argv[1]), sys.argv[2])
pool.start(2, jugdir=sys.argv[3], cwd=Path(sys.argv[4]), detach=sys.argv[5] == "detach")
print(json.dumps([w.pid for w in pool.workers()]), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("detach", [False, True])
def test_workers_drain_when_the_kernel_is_killed(nb: Notebook, detach: bool) -> None:
    nb.write(SQUARES.format(n=200, sleep=0.2))
    args = [str(nb.project.state_dir), MODULE, nb.jugdir, str(nb.folder), "detach" if detach else "attached"]
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL, *args], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert kernel.stdout is not None
        with kernel.stdout:
            pids = json.loads(kernel.stdout.readline())
        wait_until(lambda: nb.records(), 10, "a first task")
        kernel.kill()
        kernel.wait(5)
        if detach:
            time.sleep(2)
            assert all(process_exists(p) for p in pids)
            pool = WorkerPool.reattach(nb.project.state_dir, MODULE)
            pool.stop()
            assert pool.wait(timeout=5)
        else:
            wait_until(lambda: not any(process_exists(p) for p in pids), 4, "the workers to drain")
        assert nb.locks() == []
        assert all(r.status == "ok" for r in nb.records())
    finally:
        kernel.kill()
        kernel.wait(5)
        for pid in pids:
            if process_exists(pid):
                os.killpg(pid, signal.SIGKILL)


# -- graphs ---------------------------------------------------------------------------------------------

BARRIER = """
import time
from jug import TaskGenerator, barrier, bvalue

@TaskGenerator
def double(x):
    time.sleep(0.05)
    return 2 * x

@TaskGenerator
def add(xs):
    return sum(xs)

firsts = [double(i) for i in range(8)]
{stop}
seconds = [double(v) for v in {values}]
final = add(seconds)
"""


@pytest.mark.parametrize(
    ("stop", "values"),
    [("barrier()", "[f.value() for f in firsts]"), ("n = bvalue(add(firsts))", "range(n)")],
    ids=["barrier", "bvalue"],
)
def test_barrier_and_bvalue_graphs_complete_unattended(
    nb: Notebook, pools: Any, stop: str, values: str
) -> None:
    nb.write(BARRIER.format(stop=stop, values=values))
    pool = pools()
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    assert pool.wait(timeout=30)
    records = nb.records()
    (final,) = [r for r in records if r.name == f"{MODULE}.add" and r.status == "ok"][-1:]
    expected = sum(2 * v for v in ([2 * i for i in range(8)] if stop == "barrier()" else range(56)))
    assert nb.load(final.hash) == expected
    assert set(ok_counts(records).values()) == {1}


WAIT_FOR_DEPENDENCY = """
import time
from jug import TaskGenerator

@TaskGenerator
def slow():
    time.sleep(3.0)
    return 1

@TaskGenerator
def after(x):
    return x + 1

a = after(slow())
"""


def test_an_idle_worker_picks_up_within_a_second_and_stays_idle_cheaply(nb: Notebook, pools: Any) -> None:
    nb.write(WAIT_FOR_DEPENDENCY)
    pool = pools()
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    busy = wait_until(lambda: running(pool), 10, "the slow task")[0]
    (idle,) = [w for w in pool.workers() if w.pid != busy.pid]
    wait_until(lambda: next(w for w in pool.workers() if w.pid == idle.pid).state == "waiting", 5, "waiting")
    process = psutil.Process(idle.pid)
    time.sleep(0.3)  # past its start-up and first checks: measure the steady wait
    cpu0, t0 = sum(process.cpu_times()[:2]), time.monotonic()
    time.sleep(1.5)
    cpu = (sum(process.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
    assert cpu < 0.02
    assert pool.wait(timeout=10)
    by_name = {r.name.rsplit(".")[-1]: r for r in nb.records()}
    assert by_name["after"].start - by_name["slow"].end < 1.0


def test_a_worker_does_not_wait_for_a_dead_process_lock(nb: Notebook, pools: Any) -> None:
    nb.write(WAIT_FOR_DEPENDENCY)
    from jug import task as jug_task
    from jug.jug import init

    init(_snapshot(nb), nb.jugdir, on_error="propagate")
    slow = next(t for t in jug_task.alltasks if t.name.endswith("slow"))
    lock = Path(nb.jugdir) / "locks" / f"{slow.hash().decode()}.lock"
    lock.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"PID {dead.pid} on HOSTNAME {os.uname().nodename}\n")
    pool = pools()
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder)
    assert pool.wait(timeout=5)  # gives up at once: nobody alive will ever finish `slow`
    assert lock.exists()  # not ours: left alone
    del jug_task.alltasks[:]


def _snapshot(nb: Notebook) -> str:
    return (nb.project.state_dir / f"{MODULE}.current").read_text().strip()


# -- failures and jug execute options --------------------------------------------------------------------

FAILING = """
import time
from jug import TaskGenerator

@TaskGenerator
def work(x):
    time.sleep(0.05)
    if x == 3:
        print("about to fail on", x)
        raise ValueError(f"boom {x}")
    return x

@TaskGenerator
def total(xs):
    return sum(xs)

items = [work(i) for i in range(8)]
result = total(items)
"""


def _failed(records: list[TaskRecord]) -> list[TaskRecord]:
    return [r for r in records if r.status == "failed"]


def test_a_failing_task_leaves_its_traceback_and_output_in_the_records(nb: Notebook, pools: Any) -> None:
    nb.write(FAILING)
    pool = pools()
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder)
    assert pool.wait(timeout=20)
    (failed,) = _failed(nb.records())
    assert failed.exc_type == "ValueError" and failed.exc_message == "boom 3"
    assert 'raise ValueError(f"boom {x}")' in failed.traceback and "Traceback" in failed.traceback
    assert failed.output_tail == "about to fail on 3"
    assert failed.duration >= 0.05 and failed.jugfile == _snapshot(nb)
    assert pool.workers()[0].returncode == 1
    exited = next(e for e in pool.events if e.kind == "exited")
    assert "ValueError: boom 3" in exited.message  # the log tail
    assert nb.locks() == []
    assert any(e.kind == "task-failed" and e.task == f"{MODULE}.work" for e in pool.events)


def test_keep_going_runs_everything_else(nb: Notebook, pools: Any) -> None:
    nb.write(FAILING)
    pool = pools()
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder, execute_args=["--keep-going"])
    assert pool.wait(timeout=20)
    records = nb.records()
    assert len(_failed(records)) == 1 and len(ok_counts(records)) == 7  # total waits on the failure
    assert pool.workers()[0].returncode == 1
    assert nb.locks() == []


def test_keep_failed_keeps_the_failed_lock_and_nobody_retries(nb: Notebook, pools: Any) -> None:
    nb.write(FAILING)
    pool = pools()
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder, execute_args=["--keep-going", "--keep-failed"])
    assert pool.wait(timeout=20)
    (failed,) = _failed(nb.records())
    assert nb.locks() == [f"{failed.hash}.lock"]
    assert (Path(nb.jugdir) / "locks" / f"{failed.hash}.lock").stat().st_mtime == 1  # jug's failed mark
    assert not any(e.kind == "lock-released" for e in pool.events)


def test_name_option_passes_through(nb: Notebook, pools: Any) -> None:
    nb.write(SQUARES.format(n=5, sleep=0))
    pool = pools()
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder, execute_args=["--name", "square"])
    assert pool.wait(timeout=15)
    assert {r.name for r in nb.records()} == {f"{MODULE}.square"}


def test_bad_options_and_missing_jugfile_are_refused(nb: Notebook, pools: Any) -> None:
    from jugnb.errors import WorkerError

    pool = pools()
    with pytest.raises(WorkerError, match="run a %%jugfile cell first"):
        pool.start(1, jugdir=nb.jugdir, cwd=nb.folder)
    nb.write(SQUARES.format(n=1, sleep=0))
    with pytest.raises(WorkerError, match="--no-such-option"):
        pool.start(1, jugdir=nb.jugdir, cwd=nb.folder, execute_args=["--no-such-option"])
    assert pool.workers() == []


# -- editing the jugfile while workers run ---------------------------------------------------------------

VERSIONED = """
import time
from jug import TaskGenerator

@TaskGenerator
def step(x):
    time.sleep(0.1)
    return ("{version}", x)

steps = [step(i) for i in range(30)]
"""


def test_a_new_jugfile_is_picked_up_between_tasks(nb: Notebook, pools: Any) -> None:
    v1 = nb.write(VERSIONED.format(version="v1"))
    pool = pools()
    pool.start(2, jugdir=nb.jugdir, cwd=nb.folder)
    wait_until(lambda: len(ok_counts(nb.records())) >= 4, 10, "some v1 tasks")
    v2 = nb.write(VERSIONED.format(version="v2"))
    assert pool.wait(timeout=30)
    records = [r for r in nb.records() if r.status == "ok"]
    assert len(ok_counts(records)) == 30 and set(ok_counts(records).values()) == {1}
    versions = Counter()
    for r in records:
        version, _ = nb.load(r.hash)
        assert r.jugfile == str({"v1": v1, "v2": v2}[version])  # the code that ran is the code recorded
        versions[version] += 1
    assert versions["v1"] >= 4 and versions["v2"] >= 4
    assert {w.pid for w in pool.workers()} == {r.pid for r in records}  # same processes, exec'd afresh


def test_worker_modules_import_neither_ipython_nor_widgets() -> None:
    code = (
        "import sys, jugnb.workers.loop, jugnb.workers.pool\n"
        "print(sorted({'IPython', 'ipywidgets'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "[]"


# -- redis ------------------------------------------------------------------------------------------------


def test_redis_workers_record_and_recover_a_killed_worker(nb: Notebook, pools: Any, redis_db: str) -> None:
    import redis

    nb.write(SQUARES.format(n=16, sleep=0.15))
    pool = pools(replace_dead=False)
    pool.start(2, jugdir=redis_db, cwd=nb.folder)
    victim = wait_until(lambda: running(pool), 10, "a running task")[0]
    os.kill(victim.pid, signal.SIGKILL)
    assert pool.wait(timeout=30)
    released = [e for e in pool.events if e.kind == "lock-released"]
    assert [e.hash for e in released] == [victim.task_hash]  # the task its heartbeat named
    records = RecordLog.for_jugdir(redis_db).read_new()
    counts = ok_counts(records)
    assert len(counts) == 17 and set(counts.values()) == {1}
    with redis.Redis.from_url(redis_db) as client:
        assert list(client.scan_iter("lock:*")) == []


def test_add_more_workers_with_debug_and_aggressive_unload_and_an_event_callback(
    nb: Notebook, pools: Any
) -> None:
    nb.write(SQUARES.format(n=20, sleep=0.05))
    pool = pools()
    seen: list[str] = []
    pool.on_event = lambda event: seen.append(event.kind)
    pool.start(1, jugdir=nb.jugdir, cwd=nb.folder, execute_args=["--aggressive-unload", "--debug"])
    added = pool.add(1)
    assert len(added) == 1 and len(pool.workers()) == 2
    assert pool.wait(timeout=30)
    assert seen.count("started") == 2 and seen.count("exited") == 2
    assert {w.returncode for w in pool.workers()} == {0}
    assert len(ok_counts(nb.records())) == 21
