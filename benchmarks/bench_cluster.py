"""Plain ``jug execute`` (default options) against ``jugnb execute`` over 2 simulated hosts, side by side.

Run as root (hosts are ``unshare --uts`` processes with their own host name, sharing a folder jugdir)::

    python benchmarks/bench_cluster.py [--tasks 200] [--stage2 20] [--sleep 0.1] [--lease-timeout 10]

The graph: ``--tasks`` tasks of ``--sleep`` seconds, a ``total`` task read back with ``bvalue``, then
``--stage2`` tasks of ``--sleep`` seconds. Each case runs on a fresh jugdir; 1 process runs on host A, 2 as
one per host, 4 as two per host (``jug execute`` twice per host, ``jugnb execute -j 2`` once per host).

Columns (seconds):

- ``wall``: from starting the processes until the last one exits;
- ``start-up``: from starting them until the first task begins;
- ``span``: from the first task's start to the last task's end;
- ``task time``: the sum of every task's duration (the ideal wall time is ``task time / N + start-up``);
- ``bvalue idle``: time after ``total`` ended beyond the ideal ``stage-2 task time / N``: what processes lost
  waiting at the ``bvalue`` (and exiting);
- recovery rows: host A (half of the 4 processes) is killed with ``kill -9`` once 30 % of the first stage is
  done; ``recovery`` is from the kill until every task that host A was running is done by a survivor
  (``never``: plain jug's locks stay; its survivors are stopped after ``--give-up`` seconds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
JUGFILE = """\
import os, time
from jug import TaskGenerator, bvalue

SLEEP = float(os.environ["BENCH_SLEEP"])

def stamp(kind, x, start):
    line = f"{kind} {x} {os.uname().nodename} {os.getpid()} {start!r} {time.time()!r}\\n"
    fd = os.open(os.environ["BENCH_STAMPS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode())
    os.close(fd)

@TaskGenerator
def work(x):
    start = time.time()
    stamp("begin", x, start)
    time.sleep(SLEEP)
    stamp("work", x, start)
    return x

@TaskGenerator
def total(values):
    start = time.time()
    stamp("total", 0, start)
    return sum(values)

@TaskGenerator
def stage2(x, t):
    start = time.time()
    time.sleep(SLEEP)
    stamp("stage2", x, start)
    return x + t

first = [work(i) for i in range(int(os.environ["BENCH_TASKS"]))]
t = bvalue(total(first))
second = [stage2(i, t) for i in range(int(os.environ["BENCH_STAGE2"]))]
"""


@dataclass
class Stamp:
    kind: str
    x: int
    host: str
    start: float
    end: float


def read_stamps(path: Path) -> list[Stamp]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            kind, x, host, _pid, start, end = line.split()
            out.append(Stamp(kind, int(x), host, float(start), float(end)))
    return out


def on_host(host: str, args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``args`` as a process group on simulated host ``host``."""
    command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *args]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def commands(tool: str, n: int) -> list[tuple[str, list[str]]]:
    """(host, argv) of every process group of a case."""
    jug = [str(BIN / "jug"), "execute", "bench.py", "--will-cite"]
    if tool == "jug":
        per_host = {1: ["A"], 2: ["A", "B"], 4: ["A", "A", "B", "B"]}[n]
        return [(f"host{h}", jug) for h in per_host]
    jobs = {1: [("A", 1)], 2: [("A", 1), ("B", 1)], 4: [("A", 2), ("B", 2)]}[n]
    return [(f"host{h}", [str(BIN / "jugnb"), *jug[1:], "-j", str(j)]) for h, j in jobs]


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def run_case(tool: str, n: int, args: argparse.Namespace, kill: bool) -> dict[str, str]:
    """Run one case in a fresh folder; return the table row."""
    folder = Path(tempfile.mkdtemp(prefix="l12bench-"))
    try:
        (folder / "bench.py").write_text(JUGFILE)
        (folder / "jugrc").write_text(f"[jugnb]\nlease_interval = {args.lease_timeout / 5}\n"
                                      f"lease_timeout = {args.lease_timeout}\n")  # fmt: skip
        stamps = folder / "stamps"
        env = {**os.environ, "BENCH_STAMPS": str(stamps), "BENCH_SLEEP": str(args.sleep),
               "BENCH_TASKS": str(args.tasks), "BENCH_STAGE2": str(args.stage2)}  # fmt: skip
        started = time.time()
        procs = [(h, on_host(h, argv, folder, env, folder / f"{h}.log")) for h, argv in commands(tool, n)]
        killed_at = None
        if kill:
            while sum(s.kind == "work" for s in read_stamps(stamps)) < 0.3 * args.tasks:
                time.sleep(0.02)
            killed_at = time.time()
            for host, proc in procs:
                if host == "hostA":
                    kill_group(proc)
        deadline = time.time() + (args.give_up if kill else 600)
        while any(p.poll() is None for _, p in procs) and time.time() < deadline:
            time.sleep(0.02)
        ended = time.time()
        gave_up = any(p.poll() is None for _, p in procs)
        for _, proc in procs:
            kill_group(proc)
        return row(tool, n, args, read_stamps(stamps), started, ended, killed_at, gave_up)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def row(tool: str, n: int, args: argparse.Namespace, stamps: list[Stamp], started: float, ended: float,
        killed_at: float | None, gave_up: bool) -> dict[str, str]:  # fmt: skip
    done = [s for s in stamps if s.kind != "begin"]
    first, last = min(s.start for s in done), max(s.end for s in done)
    task_time = sum(s.end - s.start for s in done)
    totals = [s.end for s in done if s.kind == "total"]
    stage2_time = sum(s.end - s.start for s in done if s.kind == "stage2")
    out = {
        "tool": "jug execute" if tool == "jug" else "jugnb execute",
        "procs": str(n) + (" (kill -9 host A)" if killed_at else ""),
        "wall": f"{ended - started:.1f}" + (" (gave up)" if gave_up else ""),
        "start-up": f"{first - started:.2f}",
        "span": f"{last - first:.1f}",
        "task time": f"{task_time:.1f}",
        "bvalue idle": f"{ended - totals[0] - stage2_time / n:.1f}" if totals and not gave_up else "-",
        "recovery": "-",
    }
    if killed_at is not None:
        by_a = {s.x for s in stamps if s.kind == "begin" and s.host == "hostA"}
        finished_a = {s.x for s in stamps if s.kind == "work" and s.host == "hostA"}
        freed = by_a - finished_a
        redone = [s.end for s in stamps if s.kind == "work" and s.x in freed and s.host != "hostA"]
        complete = len({s.x for s in stamps if s.kind == "work" and s.x in freed}) == len(freed)
        out["recovery"] = f"{max(redone) - killed_at:.1f}" if complete and redone else "never"
        out["recovery"] += f" ({len(freed)} freed)"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--stage2", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds per task")
    parser.add_argument("--lease-timeout", type=float, default=10.0, help="jugnb's lease_timeout (s)")
    parser.add_argument(
        "--give-up", type=float, default=40.0, help="seconds to wait for plain jug after a kill"
    )
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("bench_cluster.py needs root and unshare (simulated hosts)", file=sys.stderr)
        return 2
    rows = []
    for n in (1, 2, 4):
        for tool in ("jug", "jugnb"):
            rows.append(run_case(tool, n, args, kill=False))
            print(rows[-1], file=sys.stderr, flush=True)
    for tool in ("jug", "jugnb"):
        rows.append(run_case(tool, 4, args, kill=True))
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"{args.tasks} tasks of {args.sleep} s, bvalue, {args.stage2} tasks; 2 simulated hosts; "
          f"jugnb lease_timeout {args.lease_timeout} s; {os.cpu_count()} CPUs; seconds")  # fmt: skip
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for r in rows:
        print("| " + " | ".join(r[c] for c in columns) + " |")
    by = {(r["tool"], r["procs"]): float(r["wall"].split()[0]) for r in rows}
    print(f"\nspeed-up at 4 processes: {by[('jug execute', '4')] / by[('jugnb execute', '4')]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
