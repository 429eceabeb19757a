"""Task browser on N tasks: open, filter by argument text, change page (seconds, median of 3).

The graph is a grid search: ``cv_score(params, fold)`` with a parameter dict per task and one ``best``
task over all of them, in jug's in-memory ``dict_store`` (the browser's cost is labelling and filtering,
not the store). Plain jug has no task browser; ``jug shell`` leaves listing and filtering to the user, so
the table has no jug column.

    python benchmarks/bench_browser.py                       # 1 000, 10 000, 100 000 tasks
    python benchmarks/bench_browser.py --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import jug.task
from jug import TaskGenerator
from jug.backends.dict_store import dict_store

from jugnb.widgets.browser import TaskBrowser


@TaskGenerator
def cv_score(params: dict[str, Any], fold: int) -> float:
    return 0.0


@TaskGenerator
def best(scores: list[float]) -> float:
    return 0.0


def graph(n: int) -> Any:
    jug.task.alltasks.clear()
    jug.task.Task.store = store = dict_store()
    per = max(1, n // 4)
    params = [{"kernel": "rbf", "C": 10.0 ** (i % 5), "gamma": round(0.001 * (i + 1), 6), "tol": 1e-3}
              for i in range(per)]  # fmt: skip
    scores = [cv_score(p, fold) for p in params for fold in range(4)]
    best(scores)
    tasks = tuple(jug.task.alltasks)
    for t in tasks:
        t.hash()  # the kernel hashes when it loads the graph
    return SimpleNamespace(tasks=tasks, store=store, jugdir=SimpleNamespace(spec="dict_store"))


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def once(n: int) -> dict[str, float]:
    """One run: open a browser on a fresh graph of ``n`` tasks, filter twice, turn a page."""
    g = graph(n)
    start = time.perf_counter()
    browser = TaskBrowser(g)
    found = {"open": time.perf_counter() - start}
    found["filter (first)"] = timed(lambda: setattr(browser.text_filter, "value", "0.03"))
    browser.text_filter.value = ""
    found["filter (again)"] = timed(lambda: setattr(browser.text_filter, "value", "0.03"))
    found["next page"] = timed(lambda: browser.show_page(1))
    return found


def measure(n: int) -> dict[str, float]:
    runs = [once(n) for _ in range(3)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="Comma-separated task counts.")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print("seconds, median of 3")
    columns = ["open", "filter (first)", "filter (again)", "next page"]
    print("| N | " + " | ".join(columns) + " |")
    print("|--:|" + "--:|" * len(columns))
    for n in sizes:
        found = measure(n)
        print(f"| {n} | " + " | ".join(f"{found[c]:.4f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
