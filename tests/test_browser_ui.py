"""The progress panel in a real browser: JupyterLab driven by Playwright in Debian's chromium.

The test starts JupyterLab on a free localhost port with a token in a temporary root folder, opens a small
notebook like the example one, runs all cells, waits for the panel to show every task complete, keeps a
screenshot in ``test-artifacts/`` and checks the panel's visible text.

Needs Debian's ``chromium`` (``apt-get install chromium``; Playwright never downloads a browser here: it is
pointed at ``/usr/bin/chromium``), the ``playwright`` Python package and ``jupyterlab``. Without them the
test is skipped, except on CI (``CI`` set), where it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
N = 24  # squares, plus their total
CELLS = [
    "%load_ext jugnb",
    f"""%%jugfile --name squares
import time
from jug import TaskGenerator

@TaskGenerator
def square(x):
    time.sleep(0.2)
    return x * x

@TaskGenerator
def total(xs):
    return sum(xs)

squares = [square(i) for i in range({N})]
result = total(squares)
""",
    """%config StatusPoller.interval = 0.25
%jug execute -j 2
panel = get_ipython().magics_manager.registry["JugMagics"].panel
""",
    # Busy for a while once the work is done: the test clicks "Refresh" meanwhile.
    """import time
deadline = time.monotonic() + 120
while panel.poller.running and time.monotonic() < deadline:
    time.sleep(0.1)
ticks = panel.poller.ticks
time.sleep(BUSY_SECONDS)
print(f"refreshed while busy: {panel.poller.ticks - ticks}")
""".replace("BUSY_SECONDS", "8"),
]


# No kernel-choice dialog (the notebook names its kernel), no news prompt.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            return f"the {module} package is missing (pip install {module})"
    return None


@pytest.fixture(scope="module", autouse=True)
def requirements() -> None:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run on CI, but {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    """A JupyterLab server this test started."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None


def _wait_for_lab(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise AssertionError(f"JupyterLab exited:\n{lab.log.read_text(errors='replace')[-3000:]}")
        try:
            lab.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise AssertionError(
        f"JupyterLab did not answer in {timeout} s:\n{lab.log.read_text(errors='replace')[-3000:]}"
    )


def _write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(notebook, path)


def _write_settings(folder: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def _lab_command(port: int, token: str, root: Path, settings: Path) -> list[str]:
    return [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",  # CI runs as root
        "--ServerApp.ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}", "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip


@pytest.fixture
def lab(tmp_path: Path, jug_environ: dict[str, str]) -> Iterator[Lab]:
    root = tmp_path / "root"
    root.mkdir()
    _write_notebook(root / "progress.ipynb")
    _write_settings(tmp_path / "lab-settings")
    token, port = secrets.token_hex(16), _free_port()
    env = {**jug_environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}  # fmt: skip
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(_lab_command(port, token, root, tmp_path / "lab-settings"), cwd=root,
                                   env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    started = Lab(f"http://127.0.0.1:{port}", token, process, log)
    try:
        _wait_for_lab(started, timeout=90)
        yield started
    finally:
        _stop_lab(started)


def _stop_lab(lab: Lab) -> None:
    """Shut the server down (it shuts its kernels down, whose workers drain); kill its group if it hangs."""
    try:
        for kernel in lab.api("/api/kernels"):
            lab.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        lab.api("/api/shutdown", method="POST")
    except (urllib.error.URLError, OSError):
        pass
    try:
        lab.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(lab.process.pid, signal.SIGKILL)  # its own session: only what this test started
        lab.process.wait(timeout=30)


def test_progress_panel_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            _run_all_and_check(page, lab)
        finally:
            page.screenshot(path=str(ARTIFACTS / "progress_panel.png"), full_page=True)
            browser.close()


def _run_all_and_check(page: Any, lab: Lab) -> None:
    page.goto(f"{lab.url}/lab/tree/progress.ipynb?reset&token={lab.token}", timeout=90_000)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
    _accept_kernel_dialog(page)
    _wait_for_kernel_idle(page)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    panel = page.locator(".jugnb-progress-panel")
    panel.wait_for(timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "progress_panel_live.png"))  # most likely mid-run
    live = panel.evaluate(_GEOMETRY)  # the live panel (ETAs, rates, active workers) is laid out too
    assert live["overlaps"] == [] and live["clipped"] == [] and not live["sideways"], live
    summary = panel.get_by_text(re.compile(rf"All {N + 1} tasks complete"))
    summary.wait_for(timeout=120_000)
    _click_refresh_while_busy(page, panel)
    text = panel.inner_text()
    for shown in (f"{N}/{N} complete", "1/1 complete", f"{N + 1}/{N + 1} complete", "square", "total",
                  "Drain", "Stop now", "Retry failed", "Refresh", "(final)", "progress (final)"):  # fmt: skip
        assert shown in text, f"{shown!r} is not in the panel's text:\n{text}"
    # Drawn by the widget manager (bars are progress widgets), not the static HTML fallback.
    assert panel.locator(".widget-hprogress").count() >= 3 * 5
    colours = panel.locator(".widget-hprogress .progress-bar").evaluate_all(
        "bars => bars.map(b => getComputedStyle(b).backgroundColor)"
    )
    assert colours.count("rgb(0, 158, 115)") >= 3  # complete: the palette's bluish green, in 3 rows
    assert "waiting for the first status read" not in text


def _click_refresh_while_busy(page: Any, panel: Any) -> None:
    """Click "Refresh" while the last cell sleeps: the click is handled before the cell ends."""
    busy = page.locator(".jp-Notebook-ExecutionIndicator")
    assert busy.first.get_attribute("data-status") == "busy"
    panel.get_by_role("button", name="Refresh").click()
    time.sleep(1.0)
    assert busy.first.get_attribute("data-status") == "busy", "the click's idle status ended the cell's busy"
    output = page.locator(".jp-OutputArea-output", has_text="refreshed while busy")
    output.wait_for(timeout=60_000)
    assert output.inner_text().strip() == "refreshed while busy: 1"


def _accept_kernel_dialog(page: Any, timeout: float = 15) -> None:
    """Click "Select" if JupyterLab asks which kernel to start (it may, despite the notebook's kernelspec)."""
    select = page.locator(".jp-Dialog button", has_text=re.compile(r"^Select$"))
    try:
        select.first.wait_for(timeout=timeout * 1000)
    except Exception:  # no dialog: the kernel starts by itself
        return
    select.first.click()


def _wait_for_kernel_idle(page: Any, timeout: float = 90) -> None:
    status = page.locator(".jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status.count() and status.first.get_attribute("data-status") == "idle":
            return
        time.sleep(0.2)
    raise AssertionError("the notebook's kernel did not become idle")


# -- layout at 1024 and 1400 px, light and dark theme: a grid search with a failing task ------------------

GRID_CELLS = [
    "%load_ext jugnb",
    """%%jugfile --name grid
import time
from jug import TaskGenerator

PARAMS = [{"kernel": "rbf", "C": C, "gamma": gamma, "tol": 0.001}
          for C in (0.1, 1.0, 10.0, 100.0) for gamma in (0.003, 0.03, 0.3)]


@TaskGenerator
def cv_score(params, fold):
    time.sleep(0.05)
    if params["C"] == 100.0 and params["gamma"] == 0.3 and fold == 0:
        raise ValueError("the solver did not converge")
    return params["C"] * params["gamma"] + fold


@TaskGenerator
def best(scores):
    return max(scores)


scores = [cv_score(p, fold) for p in PARAMS for fold in range(4)]
winner = best(scores)
""",
    """%config StatusPoller.interval = 0.25
%jug execute -j 2 --keep-failed
panel = get_ipython().magics_manager.registry["JugMagics"].panel
""",
    """import time
deadline = time.monotonic() + 120
while panel.poller.running and time.monotonic() < deadline:
    time.sleep(0.1)
print("workers done")
""",
    "%jug browse",
]
GRID_FAILED = 1
GAMMA_003 = 16  # 4 values of C x 4 folds with gamma 0.03 (a C of 0.03 does not exist)
SIZES = [(1024, "light"), (1400, "light"), (1024, "dark"), (1400, "dark"), (800, "light"), (1600, "dark")]
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
# Text-bearing leaves of the panel and the browser whose boxes must neither overlap nor clip their text.
TEXT_LEAVES = ".widget-html-content, .widget-label, button, .widget-inline-hbox > label, .jugnb-legend > span"

_GEOMETRY = """(root) => {
  const shown = e => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && e.innerText.trim() !== ""; };
  const leaves = [...root.querySelectorAll(arguments_selector)].filter(shown);
  const hidden = (e, axis) => getComputedStyle(e)["overflow" + axis] !== "visible";
  const boxes = leaves.map(e => { const r = e.getBoundingClientRect();
    const wide = e.scrollWidth > e.clientWidth + 1 && hidden(e, "X");
    const tall = e.scrollHeight > e.clientHeight + 2 && hidden(e, "Y");
    return {text: e.innerText.trim().slice(0, 60), x: r.x, y: r.y, w: r.width, h: r.height,
            clipped: wide || tall}; });
  const overlaps = [];
  for (let i = 0; i < leaves.length; i++) for (let j = i + 1; j < leaves.length; j++) {
    if (leaves[i].contains(leaves[j]) || leaves[j].contains(leaves[i])) continue;
    const a = boxes[i], b = boxes[j];
    const dx = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
    const dy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
    if (dx > 1 && dy > 1) overlaps.push([a.text, b.text]);
  }
  // The listing's rows are <option> text: measure the longest in the listing's font against its box.
  const cut = [...root.querySelectorAll("select[size]")].flatMap(select => {
    const canvas = document.createElement("canvas").getContext("2d");
    const style = getComputedStyle(select);
    canvas.font = `${style.fontSize} ${style.fontFamily}`;
    const room = select.clientWidth - 8;  // the options' own padding
    return [...select.options].filter(o => canvas.measureText(o.text).width > room).map(o => o.text);
  });
  const right = root.getBoundingClientRect().right;
  const beyond = [...root.querySelectorAll("*")].filter(e => e.getBoundingClientRect().right > right + 1)
    .map(e => e.className + ":" + (e.innerText || "").slice(0, 30));
  return {count: boxes.length, overlaps, clipped: boxes.filter(b => b.clipped).map(b => b.text).concat(cut),
          sideways: root.scrollWidth > root.clientWidth + 1, beyond};
}""".replace("arguments_selector", json.dumps(TEXT_LEAVES))


@pytest.fixture
def grid_lab(tmp_path: Path, jug_environ: dict[str, str]) -> Iterator[Lab]:
    root = tmp_path / "root"
    root.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in GRID_CELLS]
    nbformat.write(notebook, root / "grid.ipynb")
    _write_settings(tmp_path / "lab-settings")
    token, port = secrets.token_hex(16), _free_port()
    env = {**jug_environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}  # fmt: skip
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(_lab_command(port, token, root, tmp_path / "lab-settings"), cwd=root,
                                   env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    started = Lab(f"http://127.0.0.1:{port}", token, process, log)
    try:
        _wait_for_lab(started, timeout=90)
        yield started
    finally:
        _stop_lab(started)


def test_panel_and_browser_layout_themes_failure_and_filter(grid_lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            _run_grid(page, grid_lab)
            for width, theme in SIZES:
                _check_layout(page, width, theme)
            _check_failure_path(page)
            _check_filter(page)
        finally:
            page.screenshot(path=str(ARTIFACTS / "grid_final.png"), full_page=True)
            browser.close()


def _run_grid(page: Any, lab: Lab) -> None:
    page.goto(f"{lab.url}/lab/tree/grid.ipynb?reset&token={lab.token}", timeout=90_000)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
    _accept_kernel_dialog(page)
    _wait_for_kernel_idle(page)
    page.keyboard.press("Control+b")  # hide the file browser: the notebook gets the window's width
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.locator(".jp-OutputArea-output", has_text="workers done").wait_for(timeout=180_000)
    page.locator(".jugnb-task-browser .jugnb-listing select").wait_for(timeout=60_000)
    page.locator(".jugnb-progress-panel", has_text="(final)").wait_for(timeout=60_000)


def _set_theme(page: Any, theme: str) -> None:
    """Choose the theme in the Settings menu (as a user does) and wait until it applies."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Settings$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{THEMES[theme]}$")).click()
    light = "true" if theme == "light" else "false"
    page.wait_for_function(f"document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    time.sleep(1.0)  # the theme's stylesheet settles


def _check_layout(page: Any, width: int, theme: str) -> None:
    page.set_viewport_size({"width": width, "height": 1100})
    _set_theme(page, theme)
    for name, selector in (("panel", ".jugnb-progress-panel"), ("browser", ".jugnb-task-browser")):
        widget = page.locator(selector).first
        widget.scroll_into_view_if_needed()
        time.sleep(0.3)
        widget.screenshot(path=str(ARTIFACTS / f"{name}_{width}_{theme}.png"))
        found = widget.evaluate(_GEOMETRY)
        assert found["count"] >= 10, (name, width, theme, found)
        assert found["overlaps"] == [], f"{name} at {width} px, {theme}: texts overlap: {found['overlaps']}"
        clipped = found["clipped"]
        assert clipped == [], f"{name} at {width} px, {theme}: {len(clipped)} clipped texts: {clipped[:3]}"
        assert not found["sideways"], f"{name} at {width} px, {theme} scrolls sideways: {found['beyond']}"


def _check_failure_path(page: Any) -> None:
    panel = page.locator(".jugnb-progress-panel").first
    failed = panel.locator(".jugnb-failed-link", has_text=f"{GRID_FAILED} failed")
    assert failed.count() == 2  # the cv_score row and Total
    colour = failed.first.evaluate("e => getComputedStyle(e).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", colour)[:3])
    assert red > 150 and red > 2 * green and red > 2 * blue, colour  # a red, whatever the theme
    failed.first.click()
    traceback = panel.locator("pre:visible", has_text="ValueError: the solver did not converge")
    traceback.first.wait_for(state="visible", timeout=30_000)
    panel.screenshot(path=str(ARTIFACTS / "panel_failure_opened.png"))


def _check_filter(page: Any) -> None:
    browser = page.locator(".jugnb-task-browser").first
    buttons = [browser.get_by_role("button", name=n) for n in ("Show value", "Invalidate…", "Traceback")]
    assert all(b.is_disabled() for b in buttons), "actions must wait for a selected task"
    # The grid search notebook's own suggestion: cv_score tasks with 0.03 in their arguments.
    browser.locator(".widget-dropdown select").first.select_option(label="cv_score (48)")
    browser.get_by_text("1–48 of 48 tasks").wait_for(timeout=30_000)
    box = browser.locator("input[type=text]").first
    box.fill("0.03")
    box.press("Enter")
    browser.get_by_text(f"1–{GAMMA_003} of {GAMMA_003} tasks").wait_for(timeout=30_000)
    rows = browser.locator(".jugnb-listing option")
    assert rows.count() == GAMMA_003
    assert all("0.03" in t for t in rows.all_inner_texts())
    from playwright.sync_api import expect

    browser.locator(".jugnb-listing select").select_option(index=0)
    expect(browser.get_by_role("button", name="Invalidate…")).to_be_enabled(timeout=30_000)
    expect(browser.locator(".jugnb-details")).to_contain_text("0.03", timeout=30_000)
    browser.screenshot(path=str(ARTIFACTS / "browser_filtered.png"))
