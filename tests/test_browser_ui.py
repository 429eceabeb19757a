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
    page.screenshot(path=str(ARTIFACTS / "progress_panel_live.png"))  # most likely mid-run; not checked
    summary = panel.get_by_text(re.compile(rf"All {N + 1} tasks complete"))
    summary.wait_for(timeout=120_000)
    _click_refresh_while_busy(page, panel)
    text = panel.inner_text()
    for shown in (f"{N}/{N} complete", "1/1 complete", f"{N + 1}/{N + 1} complete", "progress.square",
                  "progress.total", "Drain", "Stop now", "Retry failed", "Refresh", "(final)"):  # fmt: skip
        assert shown in text, f"{shown!r} is not in the panel's text:\n{text}"
    # Drawn by the widget manager (bars are progress widgets), not the static HTML fallback.
    assert panel.locator(".widget-hprogress").count() >= 3 * 5
    assert panel.locator(".progress-bar-success").count() >= 3
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
