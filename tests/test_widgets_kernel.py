"""The widgets in real kernels: the saved widget state after workers finish (nbclient), and buttons that
work while another cell runs (jupyter_client playing the frontend's part)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import write_notebook
from kernelutil import Kernel
from nbclient import NotebookClient

pytestmark = pytest.mark.kernel

JUGFILE = """\
%%jugfile --name squares
import time
from jug import TaskGenerator

@TaskGenerator
def square(x):
    time.sleep(0.05)
    return x * x

@TaskGenerator
def total(xs):
    return sum(xs)

squares = [square(i) for i in range(20)]
result = total(squares)
"""
SHOW_PANEL = """\
%config StatusPoller.interval = 0.2
%jug execute -j 2
panel = get_ipython().magics_manager.registry["JugMagics"].panel
"""
WAIT = """\
import time
deadline = time.monotonic() + 120
while panel.poller.running and time.monotonic() < deadline:
    time.sleep(0.1)
print(panel.view.summary)
"""
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def widget_values(notebook: Any) -> list[str]:
    """``value`` of every saved widget model that has a string value (HTML widgets)."""
    state = notebook.metadata.widgets[WIDGET_STATE]["state"]
    return [m["state"]["value"] for m in state.values() if isinstance(m["state"].get("value"), str)]


def test_saved_widget_state_shows_the_final_counts(
    project: Path, jug_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_notebook(project / "analysis.ipynb", ["%load_ext jugnb", JUGFILE, SHOW_PANEL, WAIT])
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("JPY_SESSION_NAME", "analysis.ipynb")
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(project)}})  # fmt: skip
    client.execute()
    summary = notebook.cells[3].outputs[0]["text"]
    assert summary.startswith("All 21 tasks complete;"), summary
    values = widget_values(notebook)
    for shown in ("20/20 complete", "1/1 complete", "21/21 complete", "<b>All 21 tasks complete"):
        assert any(v.startswith(shown) for v in values), (shown, values)
    assert not any("waiting for the first status read" in v for v in values)
    # The display's static fallback was updated to the final view too (nbconvert, GitHub keep it).
    display = notebook.cells[2].outputs[-2]  # the last output is the fallback shown where widgets cannot be
    assert "application/vnd.jupyter.widget-view+json" in display["data"]
    assert "All 21 tasks complete" in notebook.cells[2].outputs[-1]["data"]["text/html"]
    assert "All 21 tasks complete" in display["data"]["text/html"]
    assert "All 21 tasks complete" in display["data"]["text/plain"]


@pytest.fixture
def kernel(project: Path, jug_env: dict[str, str]) -> Iterator[Kernel]:
    started = Kernel(project)
    yield started
    started.shutdown()


MAKE_PANEL = """\
import json, threading, time
from jugnb.widgets.progress import ProgressPanel
clicks = []
panel = ProgressPanel(on_refresh=lambda: clicks.append(time.time()))
print(panel.buttons["refresh"].model_id, panel.routed)
"""


def click(kernel: Kernel, model_id: str) -> None:
    """Send what JupyterLab sends when a button is clicked."""
    content = {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}
    kernel.client.shell_channel.send(kernel.client.session.msg("comm_msg", content))


def test_buttons_work_while_another_cell_runs(kernel: Kernel) -> None:
    model_id, routed = kernel.run(MAKE_PANEL).ok().stdout.split()
    assert routed == "True"  # ipykernel has subshells: clicks go to jugnb's
    busy = kernel.client.execute("started = time.time(); time.sleep(3); print(json.dumps([started, clicks]))")
    time.sleep(1.0)
    click(kernel, model_id)
    result = kernel._collect(busy, timeout=60)
    assert result.error is None, result.error
    started, clicks = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(clicks) == 1, "the click was not handled while the cell slept"
    assert started < clicks[0] < started + 3
    assert kernel.run("print(len(clicks))").ok().stdout.strip() == "1"  # the kernel is fine afterwards


def test_without_a_subshell_clicks_wait_for_the_cell(kernel: Kernel) -> None:
    kernel.run("import jugnb.widgets._subshell as s; s._failed, s._subshell_id = True, None").ok()
    model_id, routed = kernel.run(MAKE_PANEL).ok().stdout.split()
    assert routed == "False"
    busy = kernel.client.execute("started = time.time(); time.sleep(2); print(json.dumps([started, clicks]))")
    time.sleep(0.5)
    click(kernel, model_id)
    result = kernel._collect(busy, timeout=60)
    assert json.loads(result.stdout.strip().splitlines()[-1])[1] == []  # documented limitation
    deadline = time.monotonic() + 10
    while kernel.run("print(len(clicks))").ok().stdout.strip() != "1":
        assert time.monotonic() < deadline, "the queued click was never handled"
        time.sleep(0.1)


BVALUE_GRAPH = """\
%%jugfile --name bv
import time
from jug import TaskGenerator, bvalue

@TaskGenerator
def double(x):
    time.sleep(0.05)
    return 2 * x

@TaskGenerator
def add(values):
    return sum(values)

total = add([double(i) for i in range(6)])
n = bvalue(total)
more = [double(100 + i) for i in range(n // 10)]
"""
# The panel %jug execute shows reloads the jugfile on the kernel's own thread once a barrier clears.
SHOW_RELOADING_PANEL = """\
%config StatusPoller.interval = 0.1
%jug execute -j 2
panel = get_ipython().magics_manager.registry["JugMagics"].panel
"""


def test_panel_follows_the_graph_past_a_bvalue(kernel: Kernel) -> None:
    kernel.run("%load_ext jugnb").ok()
    kernel.run(BVALUE_GRAPH).ok()
    kernel.run(SHOW_RELOADING_PANEL).ok()
    deadline = time.monotonic() + 120
    while kernel.run("print(panel.poller.running)").ok().stdout.strip() == "True":
        assert time.monotonic() < deadline, "the panel never finished"
        time.sleep(0.3)  # the kernel is idle in between: the reload can run
    out = kernel.run("print(panel.view.summary); print([e.kind for e in panel.view.events])").ok().stdout
    summary, kinds = out.strip().splitlines()
    assert summary.startswith("All 10 tasks complete"), out  # 6 doubles, add, 30 // 10 doubles after it
    assert "'barrier'" in kinds and "'reloaded'" in kinds
