"""The summary `jugnb execute -j N` prints at the end: failed tasks, tasks waiting on them, a drain."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from conftest import BIN, TIMEOUT, write_notebook

RAISES = (
    "%%jugfile\nfrom jug import TaskGenerator\n\n@TaskGenerator\ndef boom(i):\n    if i == 2:\n"
    "        raise ValueError(f'bad input {i}')\n    return i\n\n@TaskGenerator\ndef agg(xs):\n"
    "    return sum(xs)\n\nresult = agg([boom(i) for i in range(4)])\n"
)
SLOW = (
    "%%jugfile\nimport time\nfrom jug import TaskGenerator\n\n@TaskGenerator\ndef slow(i):\n"
    "    time.sleep(0.5)\n    return i\n\nresults = [slow(i) for i in range(16)]\n"
)


def test_a_task_that_raised_is_named_failed_with_its_error(project: Path, run: Callable[..., object]) -> None:
    notebook = write_notebook(project / "raises.ipynb", [RAISES])
    result = run("jugnb", "execute", notebook, "-j", "2", "--will-cite", cwd=project)
    assert result.returncode == 1, result.stderr
    assert "3 of 5 tasks done." in result.stdout
    assert "FAILED: 1 task(s): raises.boom." in result.stdout
    assert "raises.boom raised ValueError: bad input 2" in result.stdout
    assert "`%jug failures`" in result.stdout
    assert "1 wait on failed tasks: raises.agg." in result.stdout
    assert "LEFT UNFINISHED" not in result.stdout


def _ok_records(project: Path, module: str) -> list[dict[str, object]]:
    folder = project / f"{module}.jugdata.jugnb" / "records"
    if not folder.is_dir():
        return []
    lines = [line for path in folder.iterdir() for line in path.read_text().splitlines() if line.strip()]
    return [r for r in map(json.loads, lines) if r["status"] == "ok"]


def test_a_drain_is_said_and_this_runs_tasks_count_as_executed(
    project: Path, jug_environ: dict[str, str]
) -> None:
    notebook = write_notebook(project / "slow16.ipynb", [SLOW])
    command = [str(BIN / "jugnb"), "execute", str(notebook), "-j", "2", "--will-cite"]
    proc = subprocess.Popen(command, cwd=project, env=jug_environ, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(_ok_records(project, "slow16")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_ok_records(project, "slow16")) >= 2
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    done = len(_ok_records(project, "slow16"))
    assert proc.returncode == 1 and done < 16
    assert "2 worker(s) drained (Ctrl-C) after" in out
    assert f"{done} of 16 tasks done." in out
    assert f"Not run, as the workers were interrupted: slow16.slow ({16 - done} tasks)." in out
    executed, loaded = out.split("slow16.slow")[-2].split("\n")[-1].split()[:2]
    assert (int(executed), int(loaded)) == (done, 0), out
