"""Saved notebooks: outputs that re-run identically elsewhere, and a static panel wherever widgets cannot
render (issue 14, item 8). Real kernels through nbclient; the exported HTML in Debian's chromium, offline.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import write_notebook
from nbclient import NotebookClient
from nbconvert import HTMLExporter

pytestmark = pytest.mark.kernel

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CELLS = [
    "%load_ext jugnb",
    """%%jugfile --name grid
import time
from jug import TaskGenerator

@TaskGenerator
def score(gamma, c):
    time.sleep(0.1)
    if gamma > 0.5:
        raise ValueError(f"gamma {gamma} is too large")
    return gamma * c

scores = [score(g, c) for g in (0.01, 0.03, 1.0) for c in (1, 10)]
""",
    "%jug execute -j 2 --keep-going     # two background workers",
    "%jug wait --timeout 120",
    "%jug status",
]


def execute(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    folder.mkdir()
    path = write_notebook(folder / "hygiene.ipynb", CELLS)
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # what Jupyter Server would set
    client = NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()
    nbformat.write(notebook, path)
    return notebook


def outputs(notebook: Any) -> list[list[dict[str, Any]]]:
    """Each code cell's outputs, without what Jupyter itself varies (widget model ids, metadata)."""
    cells = []
    for cell in notebook.cells:
        kept = []
        for output in copy.deepcopy(cell.get("outputs", [])):
            output.pop("metadata", None)
            output.pop("execution_count", None)
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
            kept.append(output)
        cells.append(kept)
    return cells


def test_saved_outputs_rerun_identically_elsewhere_and_export_a_static_panel(
    tmp_path: Path, jug_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = execute(tmp_path / "first", monkeypatch)
    second = execute(tmp_path / "second-machine", monkeypatch)
    # the same outputs although the folder, the pids, the clock and the worker ids all differ: nbval needs
    # no sanitizer for them
    assert outputs(first) == outputs(second)
    text = str(outputs(second))
    assert str(tmp_path) not in text and "pid" not in text.lower()
    assert not re.search(r"\b\d\d:\d\d:\d\d\b", text)  # no clock times
    # what the cells say: the failures once, as failed, mapped to the cell; the final panel, saved
    wait = re.sub(r"\x1b\[[0-9;]*m", "", "".join(o.get("text", "") for o in second.cells[3].outputs))
    assert "\x1b[31mValueError\x1b[39m" in second.cells[3].outputs[0]["text"]  # IPython's colours
    assert wait.count("2 tasks failed with ValueError: gamma 1.0 is too large") == 1
    assert "score(1.0, 1)" in wait and "score(1.0, 10)" in wait
    assert "%%jugfile cell 1 (--name grid), line 9 in score" in wait
    panel = [o for o in second.cells[2].outputs if "text/html" in o.get("data", {})]
    assert len(panel) == 2  # the widget (with its static text/html) and the fallback output
    assert all("jug progress (final) · hygiene.jugdata" in o["data"]["text/html"] for o in panel)
    assert "jugnb-static-fallback" in panel[1]["data"]["text/html"]
    assert "text/plain" not in panel[1]["data"]  # a terminal prints the panel once

    html = HTMLExporter().from_notebook_node(second)[0]
    page = tmp_path / "hygiene.html"
    page.write_text(html, encoding="utf-8")
    assert "application/vnd.jupyter.widget-view+json" in html  # the widget stays, for online viewers
    _offline_shows_the_static_panel(page)


def _offline_shows_the_static_panel(page: Path) -> None:
    """Open the exported file in chromium with every network request refused: the static panel shows."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            view = browser.new_page(viewport={"width": 1024, "height": 900})
            view.route("http*://**", lambda route: route.abort())  # offline: no widget manager script
            view.goto(page.as_uri(), wait_until="load", timeout=60_000)
            fallback = view.locator(".jugnb-static-fallback").first
            fallback.wait_for(state="visible", timeout=30_000)
            box = fallback.bounding_box()
            assert box is not None and box["height"] > 50 and box["width"] > 200
            assert "jug progress (final)" in fallback.inner_text()
            view.screenshot(path=str(ARTIFACTS / "exported_html_offline.png"), full_page=True)
        finally:
            browser.close()
