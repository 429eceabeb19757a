"""Time the status read with workers' leases (lost tasks) against jug's states and plain ``jug status``.

Usage::

    python benchmarks/bench_status_leases.py [--sizes 1000,10000,100000] [--workers 8] [--repeat 5]

For each size N it writes a jugfile of N no-op tasks (a file store), writes every result but ``2 * workers``,
and locks those: half by ``workers`` live leases (other hosts, renewed now), half by one lost lease (expired
long ago), as jugnb's workers leave them. Columns (medians of ``--repeat`` runs, seconds):

- ``jug status``: the plain command in a subprocess (wall time, including Python and jug start-up);
- ``jug states``: a refresh ``read(jug_states=True)`` (no leases read);
- ``live only``: a refresh ``read()`` when every lease is live (the leases are read once, no lock is read);
- ``with lost``: a refresh ``read()`` with one lost lease (the leases once, then each active lock's owner).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_status import MODULE, load_graph, median_time, write_file_results

from jugnb.backends import leases_of
from jugnb.backends.leases import Lease
from jugnb.status.reader import StatusReader

COLUMNS = ("jug status", "jug states", "live only", "with lost")


def lock(jugdir: Path, task: Any, host: str, pid: int, mtime: float) -> None:
    """A lock as jug's file store writes it, owned by ``pid`` on ``host``."""
    path = jugdir / "locks" / f"{task.hash().decode()}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"PID {pid} on HOSTNAME {host}\n")
    os.utime(path, (mtime, mtime))


def arrange(folder: Path, tasks: list[Any], workers: int, lost: bool) -> str:
    """Results for all tasks but the last ``2 * workers``; those locked under live (and a lost) lease."""
    jugdir = folder / f"{MODULE}.jugdata"
    shutil.rmtree(jugdir, ignore_errors=True)
    shutil.rmtree(folder / f"{MODULE}.jugdata.jugnb", ignore_errors=True)
    open_tasks = tasks[-2 * workers :]
    write_file_results(jugdir, tasks[: -2 * workers])
    leases = leases_of(str(jugdir))
    now = time.time()
    for i, task in enumerate(open_tasks[:workers]):
        leases.write(Lease(f"live.{i}", f"host{i}", 1000 + i, now - 60, now, interval=10.0, timeout=60.0))
        lock(jugdir, task, f"host{i}", 1000 + i, now - 5)
    then = now - 600
    if lost:
        leases.write(Lease("gone.0", "hostgone", 999, then - 60, then, interval=10.0, timeout=60.0))
    for task in open_tasks[workers:]:
        lock(jugdir, task, "hostgone" if lost else "host0", 999 if lost else 1000, then + 1)
    return str(jugdir)


def bench(folder: Path, tasks: list[Any], workers: int, repeat: int) -> list[float]:
    jugdir = arrange(folder, tasks, workers, lost=False)
    command = [sys.executable, "-c", "import sys; from jug.jug import main; sys.exit(main())",
               "status", "--short", f"{MODULE}.py", "--jugdir", jugdir]  # fmt: skip
    run = lambda: subprocess.run(command, cwd=folder, capture_output=True, timeout=600, check=False)  # noqa: E731
    plain = median_time(run, repeat)
    reader = StatusReader(tasks, jugdir, jugdir=jugdir)
    reader.read()
    jug_states = median_time(lambda: reader.read(jug_states=True), repeat)
    live = median_time(reader.read, repeat)
    if reader.read().total.lost:
        sys.exit("live leases only, yet lost tasks were counted")
    arrange(folder, tasks, workers, lost=True)
    reader = StatusReader(tasks, jugdir, jugdir=jugdir)
    if reader.read().total.lost != workers:
        sys.exit(f"expected {workers} lost tasks")
    with_lost = median_time(reader.read, repeat)
    return [plain, jug_states, live, with_lost]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated graph sizes")
    parser.add_argument("--workers", type=int, default=8, help="live leases (and lost locks)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the median is shown)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="jugnb-bench-leases-"))
    print(f"seconds, median of {args.repeat}; {args.workers} live leases, {args.workers} lost locks")
    print("|       N |" + "".join(f" {c:>11} |" for c in COLUMNS))
    print("|--------:|" + "------------:|" * len(COLUMNS))
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            folder = workdir / str(n)
            folder.mkdir(parents=True)
            times = bench(folder, load_graph(folder, n), args.workers, args.repeat)
            print(f"| {n:>7} |" + "".join(f" {t:>11.4f} |" for t in times), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
