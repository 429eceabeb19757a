"""The lease API on real stores: a file jugdir and a real redis-server (what a dead worker leaves behind).

A dead worker is what its files and keys say: a lease renewed long ago and the locks it held. The cluster
tests (``test_cluster.py``) kill real hosts; these check each rule on its own.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jug.task
import pytest

from jugnb.backends import leases_of
from jugnb.backends.leases import Lease, configured_timing, recover_expired
from jugnb.widgets.model import ProgressModel
from jugnb.widgets.poller import StatusPoller
from jugnb.widgets.progress import ProgressPanel
from jugnb.workers.lockowners import LockOwners, lease_rows

JUGFILE = """\
from jug import TaskGenerator

@TaskGenerator
def square(x):
    return x * x

squares = [square(i) for i in range(4)]
"""


def dead_lease(worker: str, host: str, pid: int, ago: float = 120.0) -> Lease:
    """A lease last renewed ``ago`` seconds ago, with a 10 s timeout: expired."""
    then = time.time() - ago
    return Lease(worker, host, pid, then - 5, then, interval=2.0, timeout=10.0, state="running",
                 task="squares.square", slurm_array_job="77", slurm_array_task="3")  # fmt: skip


def file_lock(jugdir: Path, task_hash: str, pid: int, host: str, mtime: float) -> Path:
    """A lock as jug's file store writes it."""
    path = jugdir / "locks" / f"{task_hash}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"PID {pid} on HOSTNAME {host}\n")
    os.utime(path, (mtime, mtime))
    return path


def test_a_file_lease_is_renewed_by_rename_and_read_from_its_content(tmp_path: Path) -> None:
    leases = leases_of(str(tmp_path / "g.jugdata"))
    lease = Lease.new("w1", interval=1.0, timeout=5.0)
    leases.write(lease)
    path = tmp_path / "g.jugdata.jugnb" / "leases" / "w1.json"
    inode = path.stat().st_ino
    os.utime(path, (1.0, 1.0))  # an mtime from NFS's attribute cache: not trusted
    leases.write(replace(lease, done=3, renewed=time.time()))
    (read,) = leases.read_all()
    assert read.done == 3 and not read.expired()
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert [p.name for p in path.parent.iterdir() if p.is_file()] == ["w1.json"]


def test_only_the_locks_of_an_expired_lease_are_released_once(tmp_path: Path) -> None:
    jugdir = tmp_path / "g.jugdata"
    leases = leases_of(str(jugdir))
    dead = dead_lease("dead.0", "hostZ", 4242)
    leases.write(dead)
    leases.write(Lease.new("alive.0", interval=1.0, timeout=30.0))
    held = file_lock(jugdir, "a" * 40, 4242, "hostZ", dead.renewed - 1)
    failed = file_lock(jugdir, "b" * 40, 4242, "hostZ", 1.0)  # --keep-failed's mark
    later = file_lock(jugdir, "c" * 40, 4242, "hostZ", time.time())  # a later process reusing the pid
    plain = file_lock(jugdir, "d" * 40, 777, "hostY", dead.renewed - 1)  # plain jug: no lease
    owners = LockOwners(str(jugdir), leases)
    assert owners.owner("a" * 40).kind == "lost"
    assert owners.describe("d" * 40).startswith("held by jug, pid 777 on hostY, no lease (locked ")
    results: list[list[Lease]] = []
    threads = [threading.Thread(target=lambda: results.append(recover_expired(leases))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    claimed = [lease for found in results for lease in found]
    assert [lease.worker for lease in claimed] == ["dead.0"]
    assert claimed[0].released == ("a" * 40,)
    assert not held.exists() and failed.exists() and later.exists() and plain.exists()
    assert [lease.worker for lease in leases.read_all()] == ["alive.0"]
    (lost,) = leases.read_lost()
    assert lost.lost_at is not None and leases.is_lost("dead.0")
    (row,) = lease_rows([lost])
    assert row[0:3] == ("dead.0", "hostZ", "4242") and row[3].startswith("lost ") and row[6] == "77_3"


def test_a_late_lease_of_a_live_local_process_is_not_lost(tmp_path: Path) -> None:
    leases = leases_of(str(tmp_path / "g.jugdata"))
    me = replace(Lease.new("me.0", 1.0, 5.0), renewed=time.time() - 60)  # a stopped process, say
    leases.write(me)
    assert me.expired() and recover_expired(leases) == []


def test_redis_leases_expire_by_ttl_and_release_only_owned_locks(redis_db: str) -> None:
    import redis

    leases = leases_of(redis_db)
    client = redis.Redis.from_url(redis_db)
    try:
        lease = replace(dead_lease("r.0", "hostZ", 99, ago=0.0), timeout=0.3)
        leases.write(lease)
        leases.owned("a" * 40, "r.0")
        leases.owned("b" * 40, "r.0")
        client.set("lock:" + "a" * 40, "L")
        client.set("lock:" + "b" * 40, "F")  # failed mark: kept
        client.set("lock:" + "c" * 40, "L")  # no owner: plain jug, kept
        assert LockOwners(redis_db, leases).owner("a" * 40).kind == "live"
        assert recover_expired(leases) == []
        time.sleep(0.5)  # the TTL runs out
        (lost,) = recover_expired(leases)
        assert lost.released == ("a" * 40,)
        assert sorted(client.keys("lock:*")) == [b"lock:" + b"b" * 40, b"lock:" + b"c" * 40]
        assert LockOwners(redis_db, leases).describe("c" * 40) == "held by jug (no owner recorded), no lease"
        assert leases.is_lost("r.0") and recover_expired(leases) == []
    finally:
        client.close()
        leases.close()


def test_jugrc_sets_the_lease_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jugrc").write_text("[jugnb]\nlease_interval = 2\nlease_timeout = 7\n")
    assert configured_timing() == (2.0, 7.0)
    assert configured_timing(1.0, None) == (1.0, 7.0)
    (tmp_path / "jugrc").write_text("[jugnb]\nlease_timeout = soon\n")
    with pytest.raises(Exception, match="lease_timeout = 'soon' is not a number"):
        configured_timing()


@pytest.fixture
def graph(tmp_path: Path, load_jugfile: Callable[[Path, Path], dict[str, Any]]) -> Iterator[Any]:
    jugfile = tmp_path / "squares.py"
    jugfile.write_text(JUGFILE)
    jugdir = tmp_path / "squares.jugdata"
    load_jugfile(jugfile, jugdir)
    yield SimpleNamespace(
        tasks=tuple(jug.task.alltasks), store=jug.task.Task.store, barrier=None,
        jugdir=SimpleNamespace(spec=str(jugdir)),
    )  # fmt: skip
    StatusPoller.stop_all()


def test_the_panel_s_poller_recovers_a_lost_worker_and_shows_it(graph: Any) -> None:
    jugdir = Path(graph.jugdir.spec)
    first = graph.tasks[0]
    leases = leases_of(str(jugdir))
    dead = dead_lease("far.1", "hostZ", 31337)
    leases.write(dead)
    lock = file_lock(jugdir, first.hash().decode(), 31337, "hostZ", dead.renewed - 1)
    live = replace(Lease.new("near.0", 1.0, 60.0), host="hostQ", pid=55, state="idle", done=4)
    leases.write(live)
    poller = StatusPoller(ProgressPanel(), lambda: graph, model=ProgressModel())
    view = poller.tick()
    assert view is not None and not lock.exists()
    (event,) = [e for e in view.events if e.kind == "lost"]
    assert event.title.startswith("worker far.1 on hostZ lost at ")
    assert event.title.endswith("released 1 locks: squares.square")
    rows = {row.worker: row for row in view.workers}
    assert rows["near.0"].alive is True and rows["near.0"].state == "idle"
    assert rows["far.1"].alive is False and rows["far.1"].state.startswith("lost ")
    assert socket.gethostname() not in ("hostZ", "hostQ")


def test_status_notes_name_lost_workers_and_plain_jug_locks(tmp_path: Path) -> None:
    from jug.backends.file_store import file_store

    from jugnb.workers.lockowners import lock_notes

    jugdir = tmp_path / "g.jugdata"
    leases = leases_of(str(jugdir))
    dead = dead_lease("far.1", "hostZ", 31337)
    leases.write(dead)
    file_lock(jugdir, "a" * 40, 31337, "hostZ", dead.renewed - 1)
    file_lock(jugdir, "b" * 40, 8, "hostY", time.time() - 30)
    lines = lock_notes(str(jugdir), file_store(str(jugdir)), {"a" * 40: "g.work"})
    assert lines[0] == "1 task is lost: locked by jugnb workers that are gone (nothing runs them):"
    assert lines[1].startswith("  g.work: lost: worker far.1 on hostZ lost ")
    assert "`jugnb cleanup NOTEBOOK.ipynb --locks-only`" in lines[1]
    assert lines[3].startswith("  bbbbbbbbbbbb: held by jug, pid 8 on hostY, no lease (locked 30 s ago)")


def test_a_live_lease_is_released_only_when_forced(tmp_path: Path, redis_db: str) -> None:
    import redis

    jugdir = tmp_path / "g.jugdata"
    for spec in (str(jugdir), redis_db):
        leases = leases_of(spec)
        live = replace(dead_lease("job.7", "hostS", 4343, ago=0.0), timeout=60.0)
        leases.write(live)
        if spec == redis_db:
            leases.owned("e" * 40, "job.7")
            with redis.Redis.from_url(redis_db) as client:
                client.set("lock:" + "e" * 40, "L")
        else:
            file_lock(jugdir, "e" * 40, 4343, "hostS", live.renewed - 1)
        assert recover_expired(leases) == [] and leases.claim_and_release(live) is None
        lost = leases.claim_and_release(live, force=True)  # e.g. SLURM said the job was cancelled
        assert lost is not None and lost.released == ("e" * 40,)
        assert leases.read_all() == [] and leases.is_lost("job.7")
        leases.close()


def test_the_lease_follows_each_new_task_and_count_at_once(tmp_path: Path) -> None:
    """The same task name with another hash, or one more task done, rewrites the lease before its interval."""
    from jugnb.workers.leasekeeper import LeaseKeeper

    leases = leases_of(str(tmp_path / "g.jugdata"))
    now = {"state": "running", "task": "g.slow", "task_hash": "a" * 40, "task_since": time.time(),
           "done": 0, "failed": 0}  # fmt: skip
    lease = Lease.new("w1", interval=30.0, timeout=90.0)
    keeper = LeaseKeeper(leases, lease, lambda: dict(now), lambda: None)
    keeper.start()
    try:
        now.update(task_hash="b" * 40, task_since=time.time(), done=3, failed=1)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            (lease,) = leases.read_all()
            if lease.done == 3:
                break
            time.sleep(0.1)
        assert (lease.task_hash, lease.done, lease.failed) == ("b" * 40, 3, 1)
    finally:
        keeper.stop()
    assert leases.read_all() == []
