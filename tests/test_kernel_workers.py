"""Workers started from a real kernel: responsive kernel, restarts stop them, --detach and re-attach."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, process_exists
from kernelutil import Kernel

pytestmark = pytest.mark.kernel

SLOW = """\
%%jugfile --name slow
import time
from jug import TaskGenerator

@TaskGenerator
def nap(i):
    time.sleep(30)
    return i

naps = [nap(i) for i in range(4)]
"""
PIDS = (
    "import json; pool = get_ipython().magics_manager.registry['JugMagics']._pool\n"
    "print(json.dumps([w.pid for w in pool.workers()]))"
)


def gone(pids: list[int], timeout: float) -> bool:
    """Whether every pid has exited (zombies count as exited) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(process_exists(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture
def kernel(project: Path, jug_env: dict[str, str]) -> Iterator[Kernel]:
    started = Kernel(project, notebook="work.ipynb")
    started.run("%load_ext jugnb").ok()
    yield started
    if started.manager.is_alive():
        started.run("%jug stop --now", timeout=60)
    started.shutdown()


def start_workers(kernel: Kernel, *options: str) -> list[int]:
    kernel.run(SLOW).ok()
    began = time.monotonic()
    out = kernel.run(f"%jug execute -j 2 --quiet {' '.join(options)}").ok().stdout
    assert time.monotonic() - began < 5 and "Started 2 workers" in out
    assert kernel.run("1 + 1", timeout=5).ok().data[0]["text/plain"] == "2"  # responsive at once
    return json.loads(kernel.run(PIDS).ok().stdout)


def test_restart_stops_workers(kernel: Kernel) -> None:
    pids = start_workers(kernel)
    kernel.restart()
    assert gone(pids, 30), "workers outlived the kernel restart"


def test_detached_workers_survive_restart_and_are_reattached(kernel: Kernel, project: Path) -> None:
    pids = start_workers(kernel, "--detach")
    kernel.restart()
    assert not gone(pids, 2)
    kernel.run("%load_ext jugnb").ok()
    kernel.run(SLOW).ok()
    table = kernel.run("%jug workers").ok().text
    assert "Re-attached to 2 running workers" in table and str(pids[0]) in table
    out = kernel.run("%jug stop --now").ok().stdout
    assert "Stopped 2 workers" in out
    assert gone(pids, 30)


def test_cli_sees_and_stops_detached_workers(kernel: Kernel, project: Path, run: object) -> None:
    pids = start_workers(kernel, "--detach")
    import subprocess

    shown = subprocess.run(
        [str(BIN / "jugnb"), "workers", "work.ipynb"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert f"pid {pids[0]}" in shown.stdout
    assert not gone(pids, 1), "looking at the workers must not stop them"
    stopped = subprocess.run(
        [str(BIN / "jugnb"), "workers", "work.ipynb", "--now"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Stopped them." in stopped.stdout
    assert gone(pids, 30)


def test_sigkilled_kernel_leaves_no_workers(kernel: Kernel) -> None:
    pids = start_workers(kernel)
    kernel_pid = kernel.manager.provisioner.process.pid
    os.kill(kernel_pid, signal.SIGKILL)
    assert gone(pids, 40), "workers outlived a SIGKILLed kernel"
