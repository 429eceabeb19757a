"""jugnb workers vs hand-started ``jug execute`` processes on the same jugfile, side by side.

Run: ``python benchmarks/bench_workers.py [--repeat N] [--quick]``. Every figure includes process
start-up, for both sides; each case uses a fresh jugdir (file store) in a temporary folder.

- no-op throughput: N independent tasks that return their argument, 2 workers, tasks per second
  (start to last exit);
- CPU-bound speed-up: 20 tasks of about 0.6 s of pure-Python CPU each, wall time with 1 worker divided
  by wall time with 2 (start-up included, so short runs understate it);
- post-barrier pick-up: one 1 s task, a ``barrier()``, then 10 tasks of 1.5 s: the seconds from the end
  of the pre-barrier task until the *other* worker (the one that was idle) starts a post-barrier task.
  jug's idle worker sleeps ``--wait-cycle-time`` (12 s) before looking again;
- first task: seconds from starting one worker (``WorkerPool.start`` or ``Popen``) until the first task
  function begins.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from jugnb.notebook.jugfile import atomic_write
from jugnb.notebook.project import Project
from jugnb.workers.pool import WorkerPool

MODULE = "benchjug"
JUG = str(Path(sys.executable).with_name("jug"))

STAMP = """
import os, time
from jug import TaskGenerator, barrier

def stamp(what):
    with open(os.environ["BENCH_STAMPS"], "a") as out:
        out.write(f"{what} {os.getpid()} {time.time()!r}\\n")
"""

NOOP = (
    STAMP
    + """
@TaskGenerator
def noop(i):
    return i

tasks = [noop(i) for i in range(N_TASKS)]
"""
)

CPU = (
    STAMP
    + """
@TaskGenerator
def burn(i):
    stamp("burn-start")
    x = 0
    for k in range(10_000_000):  # about 0.6 s of pure-Python work on the reference machine
        x += k * k
    stamp("burn-end")
    return i

tasks = [burn(i) for i in range(N_TASKS)]
"""
)

BARRIER = (
    STAMP
    + """
@TaskGenerator
def before():
    time.sleep(1.0)
    stamp("before-end")
    return 1

@TaskGenerator
def after(i):
    stamp("after-start")
    time.sleep(1.5)
    return i

b = before()
barrier()
post = [after(i) for i in range(10)]
"""
)

FIRST = (
    STAMP
    + """
@TaskGenerator
def first():
    stamp("first-start")
    return 1

f = first()
"""
)


class Case:
    """One jugfile in a fresh folder, run either by jugnb workers or by plain jug processes."""

    def __init__(self, root: Path, name: str, source: str) -> None:
        self.folder = root / name
        self.folder.mkdir()
        self.project = Project(self.folder, MODULE, f"{MODULE}.ipynb")
        self.snapshot = self.project.snapshot(textwrap.dedent(source))
        atomic_write(self.project.state_dir / f"{MODULE}.current", f"{self.snapshot}\n")
        self.stamps = self.folder / "stamps.txt"
        self.runs = 0

    def _fresh(self) -> str:
        self.runs += 1
        self.stamps.write_text("")
        os.environ["BENCH_STAMPS"] = str(self.stamps)
        return str(self.folder / f"run{self.runs}.jugdata")

    def jugnb(self, workers: int) -> tuple[float, float]:
        """Run with a WorkerPool; return (start time, end time) in time.time() seconds."""
        jugdir = self._fresh()
        pool = WorkerPool(self.project.state_dir, MODULE)
        start = time.time()
        pool.start(workers, jugdir=jugdir, cwd=self.folder)
        if not pool.wait(timeout=600):
            pool.stop(now=True)
            raise RuntimeError("jugnb workers did not finish")
        bad = [w for w in pool.workers() if w.returncode != 0]
        if bad:
            raise RuntimeError(f"jugnb workers failed: {bad}")
        return start, time.time()

    def jug(self, workers: int) -> tuple[float, float]:
        """Run ``workers`` hand-started ``jug execute`` processes; return (start, end) times."""
        jugdir = self._fresh()
        command = [JUG, "execute", str(self.snapshot), "--jugdir", jugdir]
        start = time.time()
        procs = [
            subprocess.Popen(command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(workers)
        ]
        codes = [p.wait(600) for p in procs]
        end = time.time()
        if any(codes):
            raise RuntimeError(f"jug execute exited with {codes}")
        return start, end

    def read_stamps(self) -> list[tuple[str, int, float]]:
        out = []
        for line in self.stamps.read_text().splitlines():
            what, pid, when = line.split()
            out.append((what, int(pid), float(when)))
        return out


def throughput(root: Path, n: int, repeat: int) -> tuple[float, float]:
    case = Case(root, f"noop{n}", NOOP.replace("N_TASKS", str(n)))
    return _paired(repeat, lambda: n / _span(case.jugnb(2)), lambda: n / _span(case.jug(2)))


def speedup(root: Path, repeat: int) -> tuple[list[float], list[float]]:
    """Per side: wall -j 1, wall -j 2, their ratio, and the ratio of task spans (start-up excluded)."""
    case = Case(root, "cpu", CPU.replace("N_TASKS", "20"))

    def measure(run: Callable[[int], tuple[float, float]], workers: int) -> tuple[float, float]:
        wall = _span(run(workers))
        stamps = case.read_stamps()
        return wall, max(w for k, _, w in stamps if k == "burn-end") - min(
            w for k, _, w in stamps if k == "burn-start"
        )

    sides: list[list[tuple[float, ...]]] = [[], []]
    for _ in range(repeat):
        for side, run in zip(sides, (case.jugnb, case.jug), strict=True):
            side.append(measure(run, 1) + measure(run, 2))
    out = []
    for runs in sides:
        wall1, span1, wall2, span2 = (statistics.median(r[i] for r in runs) for i in range(4))
        out.append([wall1, wall2, wall1 / wall2, span1 / span2])
    return out[0], out[1]


def pickup(root: Path, repeat: int) -> tuple[float, float]:
    case = Case(root, "barrier", BARRIER)

    def latency(run: Callable[[int], tuple[float, float]]) -> float:
        run(2)
        stamps = case.read_stamps()
        ((_, runner, cleared),) = [s for s in stamps if s[0] == "before-end"]
        idle_starts = [when for what, pid, when in stamps if what == "after-start" and pid != runner]
        # The idle worker never joining means the busy one ran everything: report it as the whole wait.
        last = max(when for what, _, when in stamps if what == "after-start")
        return (min(idle_starts) if idle_starts else last) - cleared

    return _paired(repeat, lambda: latency(case.jugnb), lambda: latency(case.jug))


def first_task(root: Path, repeat: int) -> tuple[float, float]:
    case = Case(root, "first", FIRST)

    def delay(run: Callable[[int], tuple[float, float]]) -> float:
        start, _ = run(1)
        ((_, _, began),) = case.read_stamps()
        return began - start

    return _paired(repeat, lambda: delay(case.jugnb), lambda: delay(case.jug))


def _span(times: tuple[float, float]) -> float:
    return times[1] - times[0]


def _paired(repeat: int, ours: Callable[[], float], theirs: Callable[[], float]) -> tuple[float, float]:
    """Medians of ``repeat`` alternated runs, so that both sides see the same background load."""
    pairs = [(ours(), theirs()) for _ in range(repeat)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (the median is shown)")
    parser.add_argument("--quick", action="store_true", help="skip the 10 000-task throughput case")
    parser.add_argument("--cases", default="throughput,speedup,pickup,first", help="comma-separated subset")
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        root = Path(tmp)
        for n in ((1000,) if args.quick else (1000, 10000)) if "throughput" in cases else ():
            ours, theirs = throughput(root, n, args.repeat)
            rows.append(
                (
                    f"no-op throughput, {n} tasks, -j 2",
                    f"{ours:.0f}/s",
                    f"{theirs:.0f}/s",
                    f"{ours / theirs:.2f}x",
                    ">= 1.00x",
                )
            )
        if "speedup" in cases:
            (o1, o2, ospeed, ospan), (j1, j2, jspeed, jspan) = speedup(root, args.repeat)
            rows.append(
                (
                    "CPU-bound 20 x 0.6 s, -j 1 / -j 2",
                    f"{o1:.1f} / {o2:.1f} s",
                    f"{j1:.1f} / {j2:.1f} s",
                    "",
                    "",
                )
            )
            rows.append(
                ("  speed-up -j 2 vs -j 1 (wall)", f"{ospeed:.2f}x", f"{jspeed:.2f}x", "", ">= 1.85x")
            )
            rows.append(("  speed-up, first start to last end", f"{ospan:.2f}x", f"{jspan:.2f}x", "", ""))
        if "pickup" in cases:
            ours, theirs = pickup(root, args.repeat)
            rows.append(
                ("post-barrier pick-up (idle worker)", f"{ours:.2f} s", f"{theirs:.2f} s", "", "< 1 s")
            )
        if "first" in cases:
            ours, theirs = first_task(root, args.repeat)
            rows.append(("start to first task running", f"{ours:.2f} s", f"{theirs:.2f} s", "", "< 1.5 s"))
    _print_table(rows, cpus=len(os.sched_getaffinity(0)))
    return 0


def _print_table(rows: list[tuple[str, str, str, str, str]], cpus: int) -> None:
    header = ("measure", "jugnb workers", "jug execute", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# {cpus} CPUs, Python {sys.version.split()[0]}, file store, load average {load} at the end")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(
            " | ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


if __name__ == "__main__":
    sys.exit(main())
