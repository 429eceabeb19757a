"""Cost of the progress panel's poller tick, and how long it can delay the kernel's main thread.

Usage::

    python benchmarks/bench_poller.py [--sizes 10000,100000] [--seconds 5]

For each size N it loads a jugfile of N no-op tasks in this process (as the kernel does), writes every
result but the last 10 to a file store (so the work is never "done" and the poller keeps ticking), builds
the graph's StatusReader on the main thread (as the kernel does for ``%jug status``), then measures
(milliseconds; medians of 10 ticks):

- ``index``: building the StatusReader (once per loaded graph);
- ``tick``: one ``StatusPoller.tick()`` with nothing changed: read the store, build the view, render the
  ``ProgressPanel`` (no kernel here, so rendering sends nothing);
- ``tick 100Δ``: a tick after 100 more results appeared;
- ``gap 1 s``, ``gap 0 s``: the longest pause of a pure-Python loop on the main thread while the poller
  thread ticks every second (the default) or back to back;
- ``gap reindex``: the same while every tick builds a new StatusReader (a poller given no reader after
  each jugfile reload: the worst case);
- ``gap none``: the loop alone (the machine's own noise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jug
import jug.task
from jug.backends.encode import encode

from jugnb.backends import _file_reader
from jugnb.status.reader import StatusReader
from jugnb.widgets.poller import StatusPoller
from jugnb.widgets.progress import ProgressPanel

JUGFILE = """\
from jug import TaskGenerator

@TaskGenerator
def noop(i):
    return i

tasks = [noop(i) for i in range({n})]
"""
COLUMNS = ("index", "tick", "tick 100Δ", "gap 1 s", "gap 0 s", "gap reindex", "gap none")


def load(folder: Path, n: int) -> Any:
    (folder / "bench_poller_graph.py").write_text(JUGFILE.format(n=n), encoding="utf-8")
    del jug.task.alltasks[:]
    os.chdir(folder)
    jug.init("bench_poller_graph.py", str(folder / "jugdata"), on_error="propagate")
    tasks = tuple(jug.task.alltasks)
    for t in tasks:
        t.hash()
    return SimpleNamespace(tasks=tasks, store=jug.task.Task.store, barrier=None, jugdir=None)


def write(jugdir: Path, tasks: Any) -> None:
    for t in tasks:
        h = t.hash().decode()
        (jugdir / h[:2]).mkdir(parents=True, exist_ok=True)
        (jugdir / h[:2] / h[2:]).write_bytes(encode(t.args[0]))


def max_gap(seconds: float) -> float:
    gap, last = 0.0, time.perf_counter()
    end = last + seconds
    while last < end:
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    return gap


def median_ms(func: Any, repeat: int = 10, setup: Any = None) -> float:
    times = []
    for i in range(repeat):
        if setup is not None:
            setup(i)
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def gap_while_polling(graph: Any, reader: Any, interval: float, seconds: float) -> float:
    poller = StatusPoller(ProgressPanel(), graph, reader=reader, interval=interval)
    poller.tick()
    poller.start()
    try:
        return 1000 * max_gap(seconds)
    finally:
        poller.stop()


def bench(n: int, seconds: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        graph = load(folder, n)
        write(folder / "jugdata", graph.tasks[:-110])
        start = time.perf_counter()
        reader = StatusReader(graph.tasks, graph.store)
        reader.read()
        index = 1000 * (time.perf_counter() - start)
        time.sleep(_file_reader.RACY_SECONDS + 0.1)
        poller = StatusPoller(ProgressPanel(), graph, reader=lambda g: reader)
        poller.tick()  # verifies the folder listings: from now on only changed folders are listed
        tick = median_ms(poller.tick)
        extra = [graph.tasks[-110 + 10 * i : -100 + 10 * i] for i in range(10)]
        changed = median_ms(poller.tick, setup=lambda i: write(folder / "jugdata", extra[i]))
        gaps = [gap_while_polling(graph, lambda g: reader, interval, seconds) for interval in (1.0, 0.0)]
        reindex = gap_while_polling(graph, None, 0.0, seconds)
        return [index, tick, changed, *gaps, reindex, 1000 * max_gap(seconds)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="Comma-separated graph sizes.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Seconds of each main-thread loop.")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]} · {os.cpu_count()} cpus · milliseconds")
    print(f"{'tasks':>8}" + "".join(f"{c:>13}" for c in COLUMNS))
    for n in (int(s) for s in args.sizes.split(",")):
        row = bench(n, args.seconds)
        print(f"{n:>8}" + "".join(f"{v:>13.1f}" for v in row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
