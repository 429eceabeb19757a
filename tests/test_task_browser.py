"""TaskBrowser on a real file store: listing and filters, value preview with a size guard, assign,
invalidate with its dry-run count, retry of a failed task, traceback, run in kernel. No browser needed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jug.task
import pytest
from IPython.core.interactiveshell import InteractiveShell

from jugnb.status.records import RecordLog, TaskRecord
from jugnb.widgets.browser import TaskBrowser
from jugnb.widgets.browsing import listing_table, result_size

JUGFILE = """\
from jug import TaskGenerator

@TaskGenerator
def load(i, kind="raw"):
    return list(range(i))

@TaskGenerator
def score(data, C=1.0):
    return sum(data) * C

@TaskGenerator
def best(scores):
    return max(scores)

datasets = [load(i, kind="clean" if i % 2 else "raw") for i in range(4)]
scores = [score(d, C=c) for d in datasets for c in (0.1, 10.0)]
winner = best(scores)
"""


@pytest.fixture(autouse=True)
def no_leftover_shell() -> Iterator[None]:
    # Output.append_display_data formats through InteractiveShell.instance(): drop one it created.
    existed = InteractiveShell.initialized()
    yield
    if not existed and InteractiveShell.initialized():
        InteractiveShell.clear_instance()


@pytest.fixture
def graph(tmp_path: Path, load_jugfile: Callable[[Path, Path], dict[str, Any]]) -> Any:
    jugfile = tmp_path / "grid.py"
    jugfile.write_text(JUGFILE, encoding="utf-8")
    jugdir = tmp_path / "grid.jugdata"
    load_jugfile(jugfile, jugdir)
    tasks = tuple(jug.task.alltasks)
    for t in tasks[:4]:  # the loads; scores ready, best waiting
        t.run()
    return SimpleNamespace(tasks=tasks, store=jug.task.Task.store, jugdir=SimpleNamespace(spec=str(jugdir)))


def labels(browser: TaskBrowser) -> list[str]:
    """The listed rows, with the spaces that align the columns made ordinary again."""
    return [label.replace("\u00a0", " ") for label, _ in browser.listing.options]


def test_lists_and_filters(graph: Any) -> None:
    browser = TaskBrowser(graph)
    assert browser.page_label.value.strip() == "1–13 of 13 tasks"
    assert [v for _, v in browser.name_filter.options] == [None, "grid.best", "grid.load", "grid.score"]
    assert browser.name_filter.options[2][0] == "load (4)"  # the module is shown once, not per name
    head = browser.listing_head.value.replace("\u00a0", " ").removeprefix("<div>").removesuffix("</div>")
    assert head.split() == ["state", "task", "arg1", "kind", "C", "took"]
    assert labels(browser)[0].split() == ["✓", "complete", "load", "0", "'raw'"]
    assert browser.entries[0].label == "load(0, kind='raw')"
    browser.name_filter.value = "grid.score"
    assert len(browser.entries) == 8 and all(e.state == "ready" for e in browser.entries)
    assert browser.entries[1].label == "score(load(0, kind='raw'), C=10.0)"
    assert labels(browser)[1].split() == ["·", "ready", "score", "load(0,", "kind='raw')", "10.0"]
    browser.name_filter.value = None
    browser.state_filter.value = "waiting"
    assert [e.name for e in browser.entries] == ["grid.best"]
    browser.state_filter.value = None
    browser.text_filter.value = "CLEAN"
    # The loads with kind='clean', the scores of their data and best (it takes every score).
    assert [e.index for e in browser.entries] == [1, 3, 6, 7, 10, 11, 12]
    # The filter reads the full argument text: a dependency's own arguments and every keyword.
    browser.text_filter.value = "c=10.0"
    assert [e.index for e in browser.entries] == [5, 7, 9, 11, 12]  # the scores with C=10.0, and best


def test_pages(graph: Any) -> None:
    browser = TaskBrowser(graph, page_size=5)
    assert browser.page_label.value.strip() == "1–5 of 13 tasks" and browser.previous.disabled
    browser.next.click()
    browser.next.click()
    assert browser.page_label.value.strip() == "11–13 of 13 tasks" and browser.next.disabled
    browser.previous.click()
    assert browser.page == 1 and len(browser.listing.options) == 5


def test_value_preview_with_size_guard_and_assign(graph: Any) -> None:
    namespace: dict[str, Any] = {}
    browser = TaskBrowser(graph, namespace=namespace)
    assert browser.output.layout.max_height == "24em" and browser.output.layout.overflow == "auto"
    browser.listing.value = 3  # load(3)
    assert "grid.load" in browser.details.value and not browser.buttons["value"].disabled
    browser.buttons["value"].click()
    assert browser.output.outputs[-1]["data"]["text/plain"] == "[0, 1, 2]"
    size = result_size(graph.store, graph.tasks[3].hash().decode())
    assert size is not None and size > 0
    browser.max_preview_bytes = size - 1
    browser.output.outputs = ()
    browser.buttons["value"].click()
    assert browser.output.outputs == () and browser.confirm_box.layout.display is None
    assert "load it?" in browser.question.value
    browser.yes.click()
    assert browser.output.outputs[-1]["data"]["text/plain"] == "[0, 1, 2]"
    browser.variable.value = "not valid"
    browser.buttons["assign"].click()
    assert "`not valid` is not a valid variable name" in browser.message.value
    browser.variable.value = "data3"
    browser.buttons["assign"].click()
    browser.yes.click()  # still larger than the limit
    assert namespace == {"data3": [0, 1, 2]}
    browser.listing.value = 4  # score(...): no result yet
    assert browser.buttons["value"].disabled and browser.buttons["assign"].disabled


def test_invalidate_shows_the_count_then_removes(graph: Any) -> None:
    for t in graph.tasks[4:]:
        t.run()
    browser = TaskBrowser(graph)
    browser.listing.value = 0  # load(0): 2 scores and best depend on it
    browser.buttons["invalidate"].click()
    assert "removes 4 results" in browser.question.value
    assert "best ×1, load ×1, score ×2" in browser.question.value
    assert graph.tasks[0].can_load()
    browser.no.click()
    assert browser.confirm_box.layout.display == "none" and graph.tasks[0].can_load()
    browser.buttons["invalidate"].click()
    browser.yes.click()
    assert browser.message.value == "Invalidated 4 results."
    assert not graph.tasks[0].can_load() and not graph.tasks[-1].can_load() and graph.tasks[1].can_load()
    assert browser.entries[0].state == "ready"


def test_retry_traceback_and_run_in_kernel(graph: Any) -> None:
    score = graph.tasks[4]
    assert score.lock()
    score.fail()
    h = score.hash().decode()
    now = time.time()
    RecordLog.for_jugdir(graph.jugdir.spec).append(
        TaskRecord(
            "grid.score",
            h,
            "failed",
            now,
            now + 1,
            1.0,
            "pool.0",
            "here",
            7,
            exc_type="ValueError",
            exc_message="bad C",
            traceback="Traceback (most recent call last):\nValueError: bad C",
            output_tail="fitting...",
        )  # fmt: skip
    )
    ran: list[Any] = []
    browser = TaskBrowser(graph, run_in_kernel=ran.append)
    browser.state_filter.value = "failed"
    assert [e.index for e in browser.entries] == [4]
    browser.listing.value = 4
    assert "failed, 1 s, pool.0@here" in browser.details.value
    browser.buttons["traceback"].click()
    shown = "".join(o.get("text", "") for o in browser.output.outputs)
    assert "ValueError: bad C" in shown and "fitting..." in shown
    browser.buttons["run"].click()
    assert ran == [score]
    browser.buttons["retry"].click()
    assert not score.is_locked()
    assert "will run again" in browser.message.value
    assert browser.entries == []  # no failed task left


def test_errors_are_messages(graph: Any) -> None:
    browser = TaskBrowser(lambda: None)
    assert "No jugfile is loaded yet" in browser.message.value
    browser = TaskBrowser(graph)
    browser._safely(browser.show_value)  # nothing selected
    assert "Select a task first." in browser.message.value and browser.output.outputs == ()
    browser.listing.value = 0
    browser._safely(lambda: 1 / 0)
    assert "ZeroDivisionError: division by zero" in browser.message.value
    assert "Traceback" in browser.output.outputs[-1]["text"]


def test_listing_fits_its_width(graph: Any) -> None:
    browser = TaskBrowser(graph, row_chars=40)
    header, rows = listing_table(browser.entries, 40)
    assert max(len(r) for r in [header, *rows]) <= 40
    assert any("…" in r for r in rows)  # narrowed, not wrapped or scrolled


def test_buttons_messages_and_a_changed_graph(graph: Any) -> None:
    current = {"graph": graph}
    browser = TaskBrowser(lambda: current["graph"])
    actions = ("value", "assign", "invalidate", "retry", "traceback", "run")
    assert all(browser.buttons[a].disabled for a in actions) and not browser.buttons["refresh"].disabled
    browser.listing.value = 0
    assert not browser.buttons["invalidate"].disabled and not browser.buttons["value"].disabled
    browser._safely(lambda: 1 / 0)
    assert "ZeroDivisionError" in browser.message.value
    browser.listing.value = 1  # another task: the old message and output go
    assert browser.message.value == "" and browser.output.outputs == ()
    browser.buttons["invalidate"].click()
    assert "Invalidate load(1, kind=&#x27;clean&#x27;)?" in browser.question.value
    current["graph"] = SimpleNamespace(**vars(graph))  # a %%jugfile cell ran again: another graph object
    browser.yes.click()
    assert "The graph changed since this question" in browser.message.value
    assert graph.tasks[1].can_load()  # nothing was invalidated
    assert browser.selected is None and all(browser.buttons[a].disabled for a in actions)


def test_browser_without_a_widget_frontend_shows_text_and_html(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jugnb.backends.spec import resolve_jugdir
    from jugnb.notebook.jugfile import Fragment
    from jugnb.notebook.project import Project
    from jugnb.session.kernel import NotebookSession
    from jugnb.widgets import TaskBrowser

    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, "plain", "plain.ipynb")
    session = NotebookSession(
        project, resolve_jugdir("%(jugfile)s.jugdata", jugfile=project.export_path, base=tmp_path)
    )
    graph, _ = session.run_fragment(
        Fragment(
            "from jug import TaskGenerator\n@TaskGenerator\ndef f(x):\n    return x\n"
            "ys = [f(i) for i in range(3)]\n"
        )
    )
    bundle = TaskBrowser(graph)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle  # no kernel comm here
    assert bundle["text/plain"].splitlines()[0].startswith("Task browser: 3 tasks")
    assert "  f(2)" in bundle["text/plain"] and "<table>" in bundle["text/html"]
    assert "children=" not in bundle["text/plain"]
    sys.modules.pop("plain", None)
