"""``%jug submit|jobs|cancel|scale`` and ``jugnb submit|jobs|cancel``, against a real one-node SLURM.

The dry-run and refusal tests need no SLURM; the others use the session's one-node cluster
(:mod:`slurmutil`), started as root, and submit real job arrays whose tasks run ``jugnb execute``.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT, _command, process_exists, wait_until, write_notebook
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

GOLDEN = Path(__file__).parent / "golden" / "slurm_dry_run.sh"
#: Seconds a 2-task array of the sample graph may take from submission to COMPLETED.
RUN_TIMEOUT = 120.0

GRAPH = """\
%%jugfile
import time
from jug import TaskGenerator


@TaskGenerator
def slow(x):
    time.sleep(0.5)
    return x * 2


doubled = [slow(i) for i in range(8)]
"""


@pytest.fixture
def notebook(project: Path) -> Path:
    """``work.ipynb`` with an 8-task graph of 0.5 s tasks, in :func:`project` (under the temporary folder)."""
    return write_notebook(project / "work.ipynb", [GRAPH])


@pytest.fixture
def jugnb(jug_environ: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``jugnb(*args, cwd)``: run this venv's ``jugnb`` with the test's ``SLURM_CONF``, if any."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {**jug_environ, **{k: v for k, v in os.environ.items() if k == "SLURM_CONF"}}
        return subprocess.run(
            _command("jugnb", args),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    return run


def normalized(script: str, project: Path) -> str:
    """``script`` with the paths of this machine and the submission time replaced by placeholders."""
    script = re.sub(r"work-\d{8}-\d{6}-\d{9}", "work-<STAMP>", script)
    script = script.replace(str(project), "<PROJECT>")
    script = script.replace(sys.prefix, "<ENV>")
    return re.sub(r"<ENV>/bin/python[\d.]*", "<PYTHON>", script)


def test_dry_run_script_matches_golden(notebook: Path, jugnb: Callable[..., Any]) -> None:
    options = ["--cpus-per-task", "2", "--mem", "1G", "--time", "10", "--partition", "debug"]
    options += ["--account", "lab", "--sbatch-option=--qos=normal", "--dry-run", "--force"]
    result = jugnb("submit", "work.ipynb", "--jobs", "3", *options, cwd=notebook.parent)
    assert result.returncode == 0, result.stderr
    assert normalized(result.stdout, notebook.parent) == GOLDEN.read_text()
    assert not (notebook.parent / ".jugnb" / "jobs").exists(), "a dry run wrote files"


def test_magic_dry_run_prints_the_same_script(
    notebook: Path, notebook_shell: Callable[[str], InteractiveShell], capsys: pytest.CaptureFixture[str]
) -> None:
    ip = notebook_shell("work")
    ip.run_cell(GRAPH, cell_id="g")
    capsys.readouterr()
    ip.run_line_magic(
        "jug",
        "submit --jobs 3 --cpus-per-task 2 --mem 1G --time 10 --partition debug --account lab "
        "--sbatch-option=--qos=normal --dry-run --force",
    )
    assert normalized(capsys.readouterr().out, notebook.parent) == GOLDEN.read_text()


def test_refuses_node_local_jugdir_and_unsaved_notebook(
    notebook: Path, jugnb: Callable[..., Any], notebook_shell: Callable[[str], InteractiveShell]
) -> None:
    result = jugnb("submit", "work.ipynb", "--jobs", "2", "--dry-run", cwd=notebook.parent)
    assert result.returncode == 2
    assert "local to each machine" in result.stderr and "--force" in result.stderr
    result = jugnb("submit", "work.ipynb", "--jobs", "2", "--jugdir", "dict_store", cwd=notebook.parent)
    assert result.returncode == 2 and "dict_store" in result.stderr
    ip = notebook_shell("work")
    ip.run_cell(GRAPH.replace("range(8)", "range(9)"), cell_id="g")  # edited, not saved
    with pytest.raises(UsageError, match="Save the notebook"):
        ip.run_line_magic("jug", "submit --jobs 2 --force --dry-run")


def test_redis_password_only_in_a_private_jugrc(notebook: Path, jugnb: Callable[..., Any]) -> None:
    secret = "s3cret-pw"
    jugdir = f"redis://:{secret}@db.example:6379/2"
    result = jugnb(
        "submit", "work.ipynb", "--jobs", "2", "--jugdir", jugdir, "--dry-run", cwd=notebook.parent
    )
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout
    assert re.search(r"--jugrc \S+/jugrc", result.stdout)
    local = jugnb(
        "submit",
        "work.ipynb",
        "--jobs",
        "1",
        "--jugdir",
        f"redis://:{secret}@127.0.0.1:1/0",
        "--dry-run",
        cwd=notebook.parent,
    )
    assert local.returncode == 2 and "loopback" in local.stderr and secret not in local.stderr


def _states(jugnb: Callable[..., Any], folder: Path, *options: str) -> dict[str, str]:
    result = jugnb("jobs", "work.ipynb", *options, cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines()[1:] if line[:1].strip()]  # not worker lines
    return {line.split()[0]: line.split()[1] for line in lines}


def test_array_runs_until_completed(slurm: Any, notebook: Path, jugnb: Callable[..., Any]) -> None:
    folder = notebook.parent
    result = jugnb("submit", "work.ipynb", "--jobs", "2", "--force", cwd=folder)
    assert result.returncode == 0, result.stderr
    job = re.search(r"Submitted job (\d+)", result.stdout)
    assert job is not None, result.stdout
    seen: list[dict[str, str]] = []

    def completed() -> bool:
        seen.append(_states(jugnb, folder))
        return seen[-1] == {f"{job[1]}_0": "COMPLETED", f"{job[1]}_1": "COMPLETED"}

    wait_until(completed, RUN_TIMEOUT, f"job {job[1]} to complete (states seen: {seen[-3:]})")
    assert all(s in {"PENDING", "RUNNING", "COMPLETED"} for states in seen for s in states.values()), seen
    status = jugnb("status", "work.ipynb", cwd=folder)
    assert re.search(r"\b0\s+0\s+0\s+8\s+0\s+work\.slow", status.stdout), status.stdout
    logs = sorted(p.name for p in (folder / ".jugnb" / "jobs").glob("work-*/*.log"))
    assert logs == [f"{job[1]}_0.log", f"{job[1]}_1.log"]
    # Both array tasks worked: each log lists the tasks it executed.
    executed = [
        int(m)
        for p in (folder / ".jugnb" / "jobs").glob("work-*/*.log")
        for m in re.findall(r"^\s+(\d+)\s+\d+\s+work\.slow", p.read_text(), re.M)
    ]
    assert sum(executed) == 8 and all(executed), executed


def test_a_refused_submission_leaves_no_job_folder(
    slurm: Any, notebook: Path, jugnb: Callable[..., Any]
) -> None:
    folder = notebook.parent
    result = jugnb(
        "submit", "work.ipynb", "--jobs", "2", "--partition", "nosuchpartition", "--force", cwd=folder
    )
    assert result.returncode != 0 and "nosuchpartition" in result.stderr.lower(), result.stderr
    jobs = folder / ".jugnb" / "jobs"
    assert not jobs.exists() or list(jobs.iterdir()) == [], list(jobs.iterdir())


def test_jobs_reattach_from_new_kernel_and_cancel(
    slurm: Any,
    notebook: Path,
    notebook_shell: Callable[[str], InteractiveShell],
    capsys: pytest.CaptureFixture[str],
    jugnb: Callable[..., Any],
) -> None:
    ip = notebook_shell("work")
    ip.run_cell(GRAPH.replace("0.5", "30"), cell_id="g")
    write_notebook(notebook, [GRAPH.replace("0.5", "30")])
    job = ip.run_line_magic("jug", "submit --jobs 1 --force")
    assert job is not None and job.isdigit()
    # A new kernel (a new shell on the same notebook) finds the job beside the jugdir.
    ip.run_line_magic("unload_ext", "jugnb")
    InteractiveShell.clear_instance()
    ip = notebook_shell("work")
    ip.run_cell(GRAPH.replace("0.5", "30"), cell_id="g")

    def running() -> bool:
        return f"{job}_0  RUNNING" in ip.run_line_magic("jug", "jobs").text

    wait_until(running, RUN_TIMEOUT, f"job {job} to run")
    capsys.readouterr()
    ip.run_line_magic("jug", "cancel")
    assert f"Cancelled {job}." in capsys.readouterr().out
    wait_until(
        lambda: _states(jugnb, notebook.parent).get(f"{job}_0") == "CANCELLED",
        RUN_TIMEOUT,
        f"job {job} to be cancelled",
    )


def test_scale_submits_then_cancels_pending(
    slurm: Any,
    notebook: Path,
    notebook_shell: Callable[[str], InteractiveShell],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ip = notebook_shell("work")
    ip.run_cell(GRAPH.replace("0.5", "30"), cell_id="g")
    write_notebook(notebook, [GRAPH.replace("0.5", "30")])
    # 2 CPUs on the node, 2 CPUs per array task: one runs, the other three pend (Resources).
    ip.run_line_magic("jug", "scale 4 --cpus-per-task 2 --force")
    capsys.readouterr()

    def pending() -> list[str]:
        text: str = ip.run_line_magic("jug", "jobs").text
        return re.findall(r"PENDING \((\w+)\)", text)

    wait_until(lambda: len(pending()) == 3, RUN_TIMEOUT, "three array tasks pending")
    ip.run_line_magic("jug", "scale 2 --force")
    out = capsys.readouterr().out
    assert "4 array tasks live. Cancelled" in out, out
    wait_until(lambda: len(pending()) == 1, RUN_TIMEOUT, "one array task pending")
    ip.run_line_magic("jug", "cancel")


def test_time_limit_records_the_task_as_crashed(
    slurm: Any,
    notebook: Path,
    jugnb: Callable[..., Any],
    notebook_shell: Callable[[str], InteractiveShell],
) -> None:
    slow = GRAPH.replace("0.5", "200").replace("range(8)", "range(1)")
    write_notebook(notebook, [slow])
    result = jugnb("submit", "work.ipynb", "--jobs", "1", "--time", "1", "--force", cwd=notebook.parent)
    assert result.returncode == 0, result.stderr
    job = result.stdout.split()[2]
    started = time.monotonic()
    wait_until(
        lambda: _states(jugnb, notebook.parent).get(f"{job}_0") == "TIMEOUT", 200, f"job {job} to time out"
    )
    assert time.monotonic() - started > 50  # SLURM's limit is one minute: not an early failure
    # A look after the job's processes are gone (SLURM gives them KillWait to stop) records the crash.
    from jugnb.status.records import RecordLog

    def crashed() -> bool:
        jugnb("jobs", "work.ipynb", cwd=notebook.parent)  # each look settles the jobs that ended
        latest = RecordLog.for_jugdir(str(notebook.parent / "work.jugdata")).latest_by_hash().values()
        return any(r.status == "crashed" for r in latest)

    wait_until(crashed, TIMEOUT, "the task to be recorded as crashed")
    ip = notebook_shell("work")
    ip.run_cell(slow, cell_id="g")
    text = ip.run_line_magic("jug", "why slow").text
    assert "crashed with its batch job" in text and "TIMEOUT" in text, text
    assert f"SLURM job {job}_0 on localhost reached its time limit" in text, text
    assert not list((notebook.parent / "work.jugdata" / "locks").glob("*.lock")), "the lock stayed"
    # Settled once: a second look records nothing more.
    again = jugnb("jobs", "work.ipynb", cwd=notebook.parent)
    assert "crashed" not in again.stdout, again.stdout


def test_redis_jugdir_runs_with_private_jugrc(
    slurm: Any, notebook: Path, jugnb: Callable[..., Any], redis_pw: Any
) -> None:
    folder, jugdir = notebook.parent, redis_pw.url()
    result = jugnb("submit", "work.ipynb", "--jobs", "2", "--jugdir", jugdir, "--force", cwd=folder)
    assert result.returncode == 0, result.stderr
    job = re.search(r"Submitted job (\d+)", result.stdout)
    assert job is not None, result.stdout

    def states() -> dict[str, str]:
        return _states(jugnb, folder, "--jugdir", jugdir)

    done = {f"{job[1]}_0": "COMPLETED", f"{job[1]}_1": "COMPLETED"}
    wait_until(lambda: states() == done, RUN_TIMEOUT, f"job {job[1]} to complete: {states()}")
    status = jugnb("status", "work.ipynb", "--jugdir", jugdir, cwd=folder)
    assert re.search(r"\b0\s+0\s+0\s+8\s+0\s+work\.slow", status.stdout), status.stdout + status.stderr
    (submission,) = (folder / ".jugnb" / "jobs").glob("work-*")
    assert stat.S_IMODE((submission / "jugrc").stat().st_mode) == 0o600
    for path in submission.iterdir():
        if path.name != "jugrc":
            assert redis_pw.password not in path.read_text(), f"the password is in {path}"
    with redis_pw.client() as client:  # the job is remembered in the jugdir's database
        assert client.hexists("jugnb:jobs", job[1])


def test_panel_jobs_section_cancels_and_scales(
    slurm: Any, notebook: Path, notebook_shell: Callable[[str], InteractiveShell]
) -> None:
    from jugnb.widgets.jobs import JobsPanel

    ip = notebook_shell("work")
    ip.run_cell(GRAPH.replace("0.5", "30"), cell_id="g")
    write_notebook(notebook, [GRAPH.replace("0.5", "30")])
    job = ip.run_line_magic("jug", "submit --jobs 1 --force")
    ip.run_line_magic("jug", "status --watch")
    magics = ip.magics_manager.registry["JugMagics"]
    panel = magics.panel
    try:
        (section,) = [c for c in panel.children if isinstance(c, JobsPanel)]
        section.refresh()
        assert f"<td>{job}_0</td>" in section.table.value
        section.scale_to.value = 2
        section.click("scale").join(TIMEOUT)
        assert "Submitted job" in section.message.value, section.message.value
        assert len(magics._job_watcher[1].book.entries()) == 2
        section.click("cancel").join(TIMEOUT)
        assert "Cancelled" in section.message.value, section.message.value

        def all_cancelled() -> bool:
            rows = magics._job_watcher[1].rows(refresh=True)
            return bool(rows) and all(r.state.state == "CANCELLED" for r in rows)

        wait_until(all_cancelled, RUN_TIMEOUT, "both jobs to be cancelled")
    finally:
        panel.close()
    assert not section._thread.is_alive(), "the jobs section's thread outlived the panel"


def test_killed_worker_of_a_failed_node_releases_its_lock(
    notebook: Path, jug_environ: dict[str, str]
) -> None:
    """A worker SIGKILLed with its node (no NODE_FAIL can be caused here): its lock is freed at once."""
    from jugnb.backends import leases_of
    from jugnb.launchers.base import JobState
    from jugnb.launchers.crashes import settle_crashes
    from jugnb.status.records import RecordLog

    write_notebook(notebook, [GRAPH.replace("0.5", "200").replace("range(8)", "range(1)")])
    folder = notebook.parent
    env = {**jug_environ, "SLURM_JOB_ID": "778", "SLURM_ARRAY_JOB_ID": "777", "SLURM_ARRAY_TASK_ID": "0"}
    worker = subprocess.Popen(
        _command("jugnb", ["execute", "work.ipynb", "-j", "1"]), cwd=folder, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    locks = folder / "work.jugdata" / "locks"
    jugdir = str(folder / "work.jugdata")
    leases = leases_of(jugdir)
    try:
        wait_until(lambda: list(locks.glob("*.lock")), TIMEOUT, "the worker to lock its task")
        wait_until(lambda: any(lease.task_hash for lease in leases.read_all()), TIMEOUT, "its lease's task")
    finally:
        os.killpg(worker.pid, 9)
        worker.wait(TIMEOUT)
    (lease,) = leases.read_all()
    assert (lease.slurm_array_job, lease.slurm_array_task, lease.task) == ("777", "0", "work.slow")
    wait_until(lambda: not process_exists(lease.pid), TIMEOUT, "the SIGKILLed worker to be gone")
    records = RecordLog.for_jugdir(jugdir)
    states = [JobState("777", "0", "NODE_FAIL", node="node7"), JobState("777", "1", "COMPLETED")]
    started = time.monotonic()
    (record,) = settle_crashes(states, leases, records)
    assert time.monotonic() - started < lease.timeout  # at once, not after the lease timeout
    assert (record.status, record.exc_type, record.name) == ("crashed", "NODE_FAIL", "work.slow")
    assert "SLURM job 777_0 on node7 lost its node" in (record.exc_message or "")
    assert not list(locks.glob("*.lock")), "the dead worker's lock stayed"
    assert [r.status for r in RecordLog.for_jugdir(jugdir).read_new()] == ["crashed"]
    assert leases.read_all() == [] and [lost.worker for lost in leases.read_lost()] == [lease.worker]
    assert settle_crashes(states, leases, records) == []  # settled once


@pytest.mark.kernel
def test_new_kernel_finds_and_cancels_the_jobs(
    slurm: Any, notebook: Path, jug_env: dict[str, str], jugnb: Callable[..., Any]
) -> None:
    from kernelutil import Kernel

    slow = GRAPH.replace("0.5", "30")
    write_notebook(notebook, [slow])
    kernel = Kernel(notebook.parent, notebook="work.ipynb")
    try:
        kernel.run("%load_ext jugnb").ok()
        kernel.run(slow, cell_id="g").ok()
        submitted = kernel.run("job = %jug submit --jobs 1 --force\nprint('job', job)").ok().text
        job = re.search(r"job (\d+)", submitted)
        assert job is not None, submitted
        kernel.restart()  # a new kernel: nothing in memory, the jobs are found beside the jugdir
        kernel.run("%load_ext jugnb").ok()
        kernel.run(slow, cell_id="g").ok()

        def running() -> bool:
            return f"{job[1]}_0  RUNNING" in kernel.run("%jug jobs").ok().text

        wait_until(running, RUN_TIMEOUT, f"job {job[1]} to run, seen from the new kernel")
        assert f"Cancelled {job[1]}." in kernel.run("%jug cancel").ok().text
    finally:
        kernel.shutdown()
    wait_until(
        lambda: _states(jugnb, notebook.parent).get(f"{job[1]}_0") == "CANCELLED",
        RUN_TIMEOUT,
        f"job {job[1]} to be cancelled",
    )


def test_cancelled_job_tasks_complete_in_the_other(
    slurm: Any, notebook: Path, jugnb: Callable[..., Any]
) -> None:
    folder = notebook.parent
    write_notebook(notebook, [GRAPH.replace("0.5", "4")])  # 8 tasks of 4 s
    jobs = []
    for _ in range(2):
        result = jugnb("submit", "work.ipynb", "--jobs", "1", "--force", cwd=folder)
        assert result.returncode == 0, result.stderr
        jobs.append(result.stdout.split()[2])
    first, second = jobs

    def both_working() -> bool:
        text = jugnb("jobs", "work.ipynb", cwd=folder).stdout
        return text.count("running work.slow") == 2

    wait_until(both_working, RUN_TIMEOUT, "both jobs to run a task")
    result = jugnb("cancel", "work.ipynb", first, cwd=folder)
    assert result.returncode == 0 and f"Cancelled {first}." in result.stdout, result.stdout + result.stderr
    done = {f"{first}_0": "CANCELLED", f"{second}_0": "COMPLETED"}
    wait_until(lambda: _states(jugnb, folder) == done, RUN_TIMEOUT, f"job {second} to finish the work")
    status = jugnb("status", "work.ipynb", cwd=folder)
    assert re.search(r"\b0\s+0\s+0\s+8\s+0\s+work\.slow", status.stdout), status.stdout
    assert not list((folder / "work.jugdata" / "locks").glob("*.lock"))


def test_worker_starts_no_task_its_time_limit_would_cut_off(
    slurm: Any, notebook: Path, jugnb: Callable[..., Any]
) -> None:
    from jugnb.status.records import RecordLog, TaskRecord

    write_notebook(notebook, [GRAPH.replace("range(8)", "range(2)")])
    folder = notebook.parent
    # An earlier run (elsewhere) recorded that a work.slow task takes 5 minutes; the job gets 1 minute.
    earlier = TaskRecord("work.slow", "0" * 40, "ok", 1.0, 301.0, 300.0, "w.0", "elsewhere", 1)
    RecordLog.for_jugdir(str(folder / "work.jugdata")).append(earlier)
    result = jugnb("submit", "work.ipynb", "--jobs", "1", "--time", "1", "--force", cwd=folder)
    assert result.returncode == 0, result.stderr
    job = result.stdout.split()[2]
    started = time.monotonic()
    wait_until(lambda: _states(jugnb, folder).get(f"{job}_0") not in ("PENDING", "RUNNING", None), 50,
               f"job {job} to end before its limit")  # fmt: skip
    assert time.monotonic() - started < 50
    assert _states(jugnb, folder)[f"{job}_0"] != "TIMEOUT"
    (log,) = (folder / ".jugnb" / "jobs").glob(f"work-*/{job}_0.log")
    assert "not starting work.slow: it takes about 300 s" in log.read_text(), log.read_text()
    status = jugnb("status", "work.ipynb", cwd=folder)
    assert re.search(r"\b0\s+0\s+2\s+0\s+0\s+work\.slow", status.stdout), status.stdout  # 2 ready, none run


def test_sacct_reads_finished_jobs_where_accounting_runs(tmp_path: Path) -> None:
    """SLURM accounting (slurmdbd and its database) cannot run here: sacct and squeue are stand-ins."""
    from jugnb.launchers.base import JobState
    from jugnb.launchers.slurm import SlurmLauncher

    calls = tmp_path / "calls"
    squeue = tmp_path / "squeue"
    squeue.write_text(
        f'#!/bin/sh\necho "squeue $*" >> {calls}\necho "Invalid job id specified" >&2\nexit 1\n'
    )
    sacct = tmp_path / "sacct"
    output = "41_0|COMPLETED|node3|75\\n41_1|CANCELLED by 0|node4|12\\n41_[2-3]|PENDING|None assigned|0\\n"
    sacct.write_text(f'#!/bin/sh\necho "sacct $*" >> {calls}\nprintf "{output}"\n')
    for stub in (squeue, sacct):
        stub.chmod(0o755)
    launcher = SlurmLauncher(squeue=str(squeue), sacct=str(sacct), use_sacct=True)
    assert launcher.poll(["41", "42"]) == [
        JobState("41", "0", "COMPLETED", "", "node3", 75.0),
        JobState("41", "1", "CANCELLED", "", "node4", 12.0),
        JobState("41", "[2-3]", "PENDING", "", "", 0.0),
        JobState("42", "", "UNKNOWN"),
    ]
    assert calls.read_text().splitlines() == [  # one batched call of each
        "squeue -h -r -j 41,42 -o %F|%K|%T|%r|%N|%M",
        "sacct -n -P -X -j 41,42 -o JobID,State,NodeList,ElapsedRaw",
    ]


def test_without_accounting_scontrol_reads_finished_jobs(slurm: Any) -> None:
    from jugnb.launchers.slurm import SlurmLauncher

    launcher = SlurmLauncher()
    assert launcher._accounting() is False  # the one-node cluster has no accounting: scontrol answers
