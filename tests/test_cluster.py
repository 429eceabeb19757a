"""Several simulated hosts work one notebook's graph through one jugdir: leases, recovery, barriers, cleanup.

Real processes only: every host is a ``jugnb execute`` (or plain ``jug execute``) started through
``unshare --uts`` with its own host name (:mod:`hostsutil`); the redis case runs the server and the hosts in
network namespaces joined by a private bridge. Every task appends a line to a side-effect file, so a task run
twice shows.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TIMEOUT, wait_until, write_notebook
from hostsutil import PASSWORD, hosts, leftover_namespaces, private_network, require_root

GRAPH = """\
%%jugfile
import os, socket, time
from jug import TaskGenerator, bvalue

EFFECTS = os.environ.get("L12_EFFECTS", os.devnull)
N, N2 = int(os.environ.get("L12_N", "30")), int(os.environ.get("L12_N2", "0"))
SLEEP = float(os.environ.get("L12_SLEEP", "0.2"))

def note(kind, x):
    line = f"{kind} {x} {socket.gethostname()} {time.time():.6f}\\n"
    fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode())
    os.close(fd)

@TaskGenerator
def work(x):
    note("start", x)
    time.sleep(SLEEP)
    return x * x

@TaskGenerator
def total(values):
    note("total", 0)
    return sum(values)

@TaskGenerator
def stage2(x, t):
    note("stage2", x)
    time.sleep(SLEEP)
    return x + t

squares = [work(i) for i in range(N)]
if N2:
    t = bvalue(total(squares))
    second = [stage2(i, t) for i in range(N2)]
"""

LEASES = "[jugnb]\nlease_interval = 0.5\nlease_timeout = 3\n"


@pytest.fixture
def cluster(project: Path, jug_environ: dict[str, str]) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project with the graph notebook, a jugrc with short leases, and the environment for its hosts."""
    require_root()
    write_notebook(project / "graph.ipynb", [GRAPH])
    (project / "jugrc").write_text(LEASES)
    env = {**jug_environ, "L12_EFFECTS": str(project / "effects.log")}
    yield project, env


def effects(project: Path) -> list[tuple[str, int, str, float]]:
    """The side-effect lines: (kind, x, host, time)."""
    path = project / "effects.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        kind, x, host, when = line.split()
        out.append((kind, int(x), host, float(when)))
    return out


def started_on(project: Path, host: str) -> int:
    return sum(1 for kind, _, h, _ in effects(project) if kind == "start" and h == host)


def check_ran_once_except_killed(project: Path, n: int, killed: str, workers: int) -> None:
    """Every task ran; only tasks the killed host had started may have run twice (at most one per worker)."""
    starts = Counter(x for kind, x, _, _ in effects(project) if kind == "start")
    assert set(starts) == set(range(n))
    twice = [x for x, count in starts.items() if count > 1]
    assert all(starts[x] == 2 for x in twice)
    on_killed = {x for kind, x, h, _ in effects(project) if kind == "start" and h == killed}
    assert set(twice) <= on_killed, (twice, on_killed)
    assert len(twice) <= workers


def jugnb_execute(extra: list[str] | None = None, jobs: int = 2) -> list[str]:
    return ["jugnb", "execute", "graph.ipynb", "-j", str(jobs), "--will-cite", *(extra or [])]


def test_kill_9_of_one_host_completes_unattended(
    cluster: tuple[Path, dict[str, str]], run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    project, env = cluster
    env = {**env, "L12_N": "30"}
    with hosts("hostA", "hostB") as h:
        h["hostA"].start(jugnb_execute(), cwd=project, env=env, log=project / "A.log")
        b = h["hostB"].start(jugnb_execute(), cwd=project, env=env, log=project / "B.log")
        wait_until(lambda: started_on(project, "hostA") >= 4, TIMEOUT, "host A to run tasks")
        shown = run("jugnb", "workers", "graph.ipynb", cwd=project).stdout
        h["hostA"].kill()
        assert b.wait(timeout=TIMEOUT) == 0, (project / "B.log").read_text()
    # Every worker of every host, from the leases.
    assert shown.count(" on hostA: ") == 2 and shown.count(" on hostB: ") == 2, shown
    after = run("jugnb", "workers", "graph.ipynb", cwd=project).stdout
    assert after.count(" on hostA: lost ") == 2 and " on hostB" not in after, after
    out = (project / "B.log").read_text()
    assert "30 of 30 tasks done." in out
    assert "worker cli-hostA-" in out and " on hostA lost at " in out
    lost = [
        json.loads(p.read_text())
        for p in (project / "graph.jugdata.jugnb" / "leases" / "lost").glob("*.json")
    ]
    assert len(lost) == 2
    assert not list((project / "graph.jugdata" / "locks").glob("*.lock"))
    check_ran_once_except_killed(project, 30, "hostA", workers=2)
    # Survivors pick the freed tasks up within a second of their release.
    released_at = min(lease["lost_at"] for lease in lost if lease["released"])
    on_a = {x for kind, x, h, _ in effects(project) if kind == "start" and h == "hostA"}
    again = [t for kind, x, h, t in effects(project) if kind == "start" and h == "hostB" and x in on_a]
    assert again and min(again) - released_at < 1.0, (released_at, again)


def test_a_bvalue_across_two_hosts_starts_the_second_stage_within_a_second(
    cluster: tuple[Path, dict[str, str]],
) -> None:
    project, env = cluster
    env = {**env, "L12_N": "10", "L12_N2": "6", "L12_SLEEP": "0.3"}
    with hosts("hostA", "hostB") as h:
        procs = [
            h[name].start(jugnb_execute(jobs=1), cwd=project, env=env,
                          log=project / f"{name}.log")
            for name in ("hostA", "hostB")
        ]  # fmt: skip
        codes = [p.wait(timeout=TIMEOUT) for p in procs]
    assert codes == [0, 0], [(project / f"{n}.log").read_text() for n in ("hostA", "hostB")]
    lines = effects(project)
    (total_time,) = [when for kind, _, _, when in lines if kind == "total"]
    for host in ("hostA", "hostB"):
        first = min(when for kind, _, h, when in lines if kind == "stage2" and h == host)
        assert first - total_time < 1.0, (host, first - total_time)


def test_a_plain_jug_lock_has_no_lease_and_is_never_released(
    cluster: tuple[Path, dict[str, str]], run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    project, env = cluster
    env = {**env, "L12_N": "1", "L12_SLEEP": "60"}
    export = run("jugnb", "export", "graph.ipynb", cwd=project)
    assert export.returncode == 0, export.stderr
    lock_folder = project / "graph.jugdata" / "locks"
    with hosts("hostC", "hostB") as h:
        h["hostC"].start(
            ["jug", "execute", "graph.py", "--will-cite"], cwd=project, env=env, log=project / "C.log"
        )
        # jug creates the lock file, then writes its owner into it: wait for the content.
        (lock,) = wait_until(
            lambda: [p for p in lock_folder.glob("*.lock") if p.read_text().strip()],
            TIMEOUT,
            "plain jug's lock",
        )
        pid = int(lock.read_text().split()[1])
        h["hostC"].kill()
        # Longer than the lease timeout: a jugnb worker would have been recovered by now.
        b = h["hostB"].start(
            jugnb_execute(["--wait-cycle-time", "1", "--nr-wait-cycles", "4"]), cwd=project, env=env,
            log=project / "B.log",
        )  # fmt: skip
        b.wait(timeout=TIMEOUT)
    out = (project / "B.log").read_text()
    assert f"held by jug, pid {pid} on hostC, no lease (locked " in out
    assert lock.exists()
    assert started_on(project, "hostB") == 0
    status = run("jugnb", "status", "graph.ipynb", cwd=project).stdout
    assert "1 active tasks are locked by processes without a lease (plain jug):" in status, status
    assert f"  graph.work: held by jug, pid {pid} on hostC, no lease (locked " in status


def test_redis_over_a_private_network_recovers_a_killed_host(
    cluster: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    project, env = cluster
    env = {**env, "L12_N": "24"}
    with private_network(tmp_path, n_clients=2) as net:
        jugrc = project / "jugrc"
        jugrc.write_text(f"[main]\njugdir = {net.url}\n{LEASES}")
        jugrc.chmod(0o600)
        where = {"hostA": net.clients[0], "hostB": net.clients[1]}
        with hosts("hostA", "hostB", netns=where) as h:
            h["hostA"].start(jugnb_execute(), cwd=project, env=env, log=project / "A.log")
            b = h["hostB"].start(jugnb_execute(), cwd=project, env=env, log=project / "B.log")
            wait_until(lambda: started_on(project, "hostA") >= 4, TIMEOUT, "host A to run tasks")
            h["hostA"].kill()
            assert b.wait(timeout=TIMEOUT) == 0, (project / "B.log").read_text()
        tag = net.tag
    assert not leftover_namespaces(tag)
    out = (project / "B.log").read_text()
    assert "24 of 24 tasks done." in out
    assert " on hostA lost at " in out
    for log in ("A.log", "B.log"):
        assert PASSWORD not in (project / log).read_text()
    check_ran_once_except_killed(project, 24, "hostA", workers=2)
    assert os.stat(jugrc).st_mode & 0o777 == 0o600


def test_a_cleanup_during_a_run_runs_no_task_twice(
    cluster: tuple[Path, dict[str, str]], run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    project, env = cluster
    env = {**env, "L12_N": "40", "L12_SLEEP": "0.5"}  # 5 s: the cleanups run while tasks are locked
    with hosts("hostA", "hostB") as h:
        procs = [
            h[name].start(jugnb_execute(), cwd=project, env=env, log=project / f"{name}.log")
            for name in ("hostA", "hostB")
        ]
        wait_until(lambda: len(effects(project)) >= 6, TIMEOUT, "both hosts to run tasks")
        refused = run("jugnb", "cleanup", "graph.ipynb", cwd=project)
        dry = run("jugnb", "cleanup", "graph.ipynb", "--locks-only", "--dry-run", cwd=project)
        locks_only = run("jugnb", "cleanup", "graph.ipynb", "--locks-only", cwd=project)
        codes = [p.wait(timeout=TIMEOUT) for p in procs]
    assert refused.returncode == 2
    assert "Refusing to remove results: 4 jugnb worker(s) run on this jugdir" in refused.stderr
    assert "Would remove 0 locks\n" in dry.stdout and "held by running jugnb workers" in dry.stdout
    assert "Removed 0 locks\n" in locks_only.stdout, locks_only.stdout
    assert codes == [0, 0]
    starts = Counter(x for kind, x, _, _ in effects(project) if kind == "start")
    assert starts == Counter(range(40))
    log = (project / "graph.jugdata.jugnb" / "cleanup.log").read_text()
    assert "cleanup locks-only by pid" in log and ": 0 results, 0 locks" in log


def test_cleanup_dry_run_lists_lock_names_and_logs_removals(
    cluster: tuple[Path, dict[str, str]], run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    project, env = cluster
    env = {**env, "L12_N": "3", "L12_SLEEP": "60"}
    assert run("jugnb", "export", "graph.ipynb", cwd=project).returncode == 0
    lock_folder = project / "graph.jugdata" / "locks"
    with hosts("hostC") as h:
        for _ in range(2):
            h["hostC"].start(["jug", "execute", "graph.py", "--will-cite"], cwd=project, env=env,
                             log=project / "C.log")  # fmt: skip
        wait_until(lambda: len(list(lock_folder.glob("*.lock"))) == 2, TIMEOUT, "two plain jug locks")
        h["hostC"].kill()
    dry = run("jugnb", "cleanup", "graph.ipynb", "--locks-only", "--dry-run", cwd=project)
    assert "Would remove 2 locks:\n  graph.work       2\n" in dry.stdout, dry.stdout
    assert len(list(lock_folder.glob("*.lock"))) == 2
    done = run("jugnb", "cleanup", "graph.ipynb", "--locks-only", cwd=project)
    assert "Removed 2 locks\n" in done.stdout
    assert not list(lock_folder.glob("*.lock"))
    log = (project / "graph.jugdata.jugnb" / "cleanup.log").read_text()
    assert ": 0 results, 2 locks (graph.work ×2)" in log
