"""Cost of the check `%jug execute` makes before starting workers: a clean import, compared by task hash.

    python benchmarks/bench_reproduce.py                      # 1 000, 10 000 and 100 000 tasks
    python benchmarks/bench_reproduce.py --sizes 1000,10000   # shorter

For each size, a jugfile of N no-op tasks is loaded as the kernel loads it (``NotebookSession``), then timed
(medians of 3, seconds):

- ``kernel load``: what running the ``%%jugfile`` cell costs (import and hashing in the kernel), for scale;
- ``jug import``: ``python -c "import jug.jug; jug.jug.init(...)"`` plus hashing every task in a fresh
  process, what each worker pays at start anyway;
- ``check``: the first check (:class:`jugnb.session.reproduce.ReproducibilityCheck`): a clean import in a
  fresh process, as a worker does it, and the comparison;
- ``again``: a later check with nothing changed (the answer is reused after a few ``stat`` calls).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jugnb.backends.spec import resolve_jugdir
from jugnb.notebook.jugfile import Fragment
from jugnb.notebook.project import Project
from jugnb.session.kernel import NotebookSession
from jugnb.session.reproduce import ReproducibilityCheck

CELL = """\
from jug import TaskGenerator

@TaskGenerator
def noop(i):
    return i

results = [noop(i) for i in range({n})]
"""
HASH_ALL = (
    "import sys, jug.jug\n"
    "from jug import task\n"
    "jug.jug.init(sys.argv[1], 'dict_store')\n"
    "[t.hash() for t in task.alltasks]\n"
)


def _median(run: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(n: int, folder: Path) -> tuple[float, float, float, float]:
    """Return the median seconds of kernel load, fresh jug import, first check and repeated check."""
    project = Project(folder, f"bench{n}", f"bench{n}.ipynb")
    jugdir = resolve_jugdir("%(jugfile)s.jugdata", jugfile=project.export_path, base=folder)
    session = NotebookSession(project, jugdir)
    fragment = Fragment(CELL.format(n=n), name="tasks")
    load = _median(lambda: session.run_fragment(fragment))
    graph = session.graph
    assert graph is not None and len(graph.tasks) == n
    fresh = _median(
        lambda: subprocess.run([sys.executable, "-c", HASH_ALL, str(graph.snapshot)], cwd=folder, check=True)
    )
    first = _median(lambda: ReproducibilityCheck().check(graph, jugdir.spec, folder, 600))
    checker = ReproducibilityCheck()
    checker.check(graph, jugdir.spec, folder, 600)
    again = _median(lambda: checker.check(graph, jugdir.spec, folder, 600))
    return load, fresh, first, again


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated task counts")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    import jug

    print(f"python {sys.version.split()[0]}, jug {jug.__version__}; seconds, median of 3")
    print("|       N | kernel load |  jug import |       check |       again |")
    print("|--------:|------------:|------------:|------------:|------------:|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            load, fresh, first, again = measure(n, Path(tmp))
        print(f"| {n:7d} | {load:11.3f} | {fresh:11.3f} | {first:11.3f} | {again:11.4f} |")


if __name__ == "__main__":
    main()
