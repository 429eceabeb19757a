"""Failed tasks: failed in every view, not run twice in one execute, tracebacks mapped to cells, retry,
stopped is not failed (issue 14, items 1-3). In-process shell, real worker processes."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jugnb.notebook.jugfile import Fragment, assemble
from jugnb.status.reader import NameCounts, StatusReader, StatusSnapshot
from jugnb.status.records import RecordLog, TaskRecord
from jugnb.status.tracebacks import (
    cell_locator,
    extract_frames,
    group_failures,
    plain,
    traceback_parts,
)
from jugnb.widgets.model import ProgressModel

# Task 0 fails at once; the slow ones keep a second worker busy, so that it is alive when the first fails.
MIXED = """\
%%jugfile --name boom
import os, time
from jug import TaskGenerator

@TaskGenerator
def explode(x, scale=1.5):
    if not os.path.exists("fixed.flag"):
        raise ValueError(f"bad input {x}")
    return x * scale

@TaskGenerator
def slow(i):
    time.sleep(0.4)
    return i

failing = [explode(i) for i in range(5)]
others = [slow(i) for i in range(4)]
"""
LONG = """\
%%jugfile --name long
import time
from jug import TaskGenerator

@TaskGenerator
def nap(i):
    time.sleep(60)
    return i

naps = [nap(i) for i in range(2)]
"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_cell_locator_maps_snapshot_lines_to_cells() -> None:
    jugfile = assemble(
        [
            Fragment("import os\n", name="setup"),
            Fragment("x = 1\ny = 2\nz = 3\n", cell_id="abc"),
            Fragment("w=0"),
        ],
        "nb.ipynb",
    )
    locate = cell_locator(jugfile.text)
    lines = jugfile.text.splitlines()
    assert locate(1) is None  # the generated header
    assert locate(lines.index("import os") + 1) == "%%jugfile cell 1 (--name setup), line 2"
    assert locate(lines.index("z = 3") + 1) == "%%jugfile cell 2 (id abc), line 4"
    assert locate(lines.index("w=0") + 1) == "%%jugfile cell 3, line 2"
    # the same as the kernel's own map (jugnb.jugfile.Jugfile.locate), for every body line
    for number in range(1, len(lines) + 1):
        found = jugfile.locate(number)
        if found is not None:
            assert locate(number).endswith(f"line {found[1]}")  # type: ignore[union-attr]


def failure(
    h: str, message: str = "bad", where: str = "%%jugfile cell 1 (--name a), line 3", **kw: object
) -> TaskRecord:
    frames = [
        ["/x/site-packages/jug/task.py", 10, "run", "return self._execute()", None],
        ["/p/.jugnb/jugfiles/1/m.py", 9, "f", "raise ValueError(x)", where],
    ]
    fields: dict[str, object] = dict(
        exc_type="ValueError", exc_message=message, frames=frames, label=f"f({h})"
    )
    fields.update(kw)
    return TaskRecord("m.f", h, "failed", 1.0, 2.0, 1.0, "p.0", "host", 1, **fields)  # type: ignore[arg-type]


def test_traceback_parts_hide_internal_frames_unless_full(monkeypatch: pytest.MonkeyPatch) -> None:
    import jugnb.status.tracebacks as tb

    monkeypatch.setattr(tb, "_INTERNAL", ("/x/site-packages/jug/",))
    text = plain(traceback_parts(failure("a")))
    assert "%%jugfile cell 1 (--name a), line 3 in f\n    raise ValueError(x)\n" in text
    assert "task.py" not in text and "(1 frames of jugnb and jug hidden" in text
    assert text.endswith("ValueError: bad\n")
    full = plain(traceback_parts(failure("a"), full=True))
    assert 'File "/x/site-packages/jug/task.py", line 10 in run' in full
    assert 'File "/p/.jugnb/jugfiles/1/m.py", line 9 [%%jugfile cell 1 (--name a), line 3] in f' in full


def test_extract_frames_of_a_real_exception(tmp_path: Path) -> None:
    jugfile = assemble([Fragment("def f(x):\n    return 1 / x\n", name="div")], "nb.ipynb")
    snapshot = tmp_path / "m.py"
    snapshot.write_text(jugfile.text)
    namespace: dict[str, object] = {}
    exec(compile(jugfile.text, str(snapshot), "exec"), namespace)  # noqa: S102 - the test's own code
    with pytest.raises(ZeroDivisionError) as caught:
        namespace["f"](0)  # type: ignore[operator]
    frames = extract_frames(caught.value, snapshot)
    assert frames[-1][1:] == [frames[-1][1], "f", "return 1 / x", "%%jugfile cell 1 (--name div), line 3"]


def test_failures_group_by_type_and_place() -> None:
    records = [failure(str(i), message=f"bad {i}") for i in range(12)]
    records += [failure("x", where="%%jugfile cell 2 (--name b), line 1"), failure("y", exc_type="KeyError")]
    groups = group_failures(records)
    assert [len(g.records) for g in groups] == [12, 1, 1]
    assert groups[0].headline == "12 tasks failed with ValueError: bad 0"
    assert groups[0].signature == "ValueError at %%jugfile cell 1 (--name a), line 3"


def test_status_reader_marks_failed_runs_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jug

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    source = "from jug import TaskGenerator\n@TaskGenerator\ndef f(x):\n    return x\n"
    (tmp_path / "sf.py").write_text(source + "fs = [f(i) for i in range(3)]\n")
    del jug.task.alltasks[:]
    jugdir = str(tmp_path / "sf.jugdata")
    store, _ = jug.init("sf.py", jugdir, on_error="propagate")
    tasks = list(jug.task.alltasks)
    log = RecordLog.for_jugdir(jugdir)
    h0, h1 = (t.hash().decode() for t in tasks[:2])
    log.append(failure(h0))
    log.append(failure(h1))
    tasks[1].run()  # computed since it failed (by plain jug, say): complete, not failed
    reader = StatusReader(tasks, store, records=RecordLog.for_jugdir(jugdir))
    snapshot = reader.read()
    assert [snapshot.state_of(t.hash()) for t in tasks] == ["failed", "complete", "ready"]
    assert reader.read(jug_states=True).state_of(h0) == "ready"  # jug forgets the failure
    log.append(TaskRecord("sf.f", h0, "retry", 3.0, 3.0, 0.0, "p.retry", "host", 1))
    assert reader.read().state_of(h0) == "ready"
    log.append(TaskRecord("sf.f", h0, "interrupted", 4.0, 5.0, 1.0, "p.0", "host", 1))
    assert reader.read().state_of(h0) == "ready"  # stopped is not failed
    __import__("sys").modules.pop("sf", None)


def snap(row: NameCounts) -> StatusSnapshot:
    return StatusSnapshot(rows=(row,), taken_at=100.0, store="s")


def test_summary_says_stopped_or_drained() -> None:
    for stopped, verb in (("now", "Stopped"), ("drain", "Drained"), ("", "Finished")):
        view = ProgressModel(since=0).view(snap(NameCounts("g.f", 0, 0, 3, 0, 7)), done=True, stopped=stopped)
        assert view.summary.startswith(f"{verb}: 7 of 10 tasks complete, 3 ready")


@pytest.fixture
def ip(notebook_shell: Callable[[str], InteractiveShell]) -> InteractiveShell:
    return notebook_shell("work")


def jug(ip: InteractiveShell, line: str) -> tuple[object, str]:
    with capture_output() as out:
        result = ip.run_line_magic("jug", line)
    return result, ANSI.sub("", out.stdout)


def cell(ip: InteractiveShell, source: str) -> str:
    with capture_output() as out:
        ip.run_cell(source)
    return ANSI.sub("", out.stdout)


def records_by_status(jugdir: str) -> Counter[tuple[str, str]]:
    log = RecordLog.for_jugdir(str(Path(jugdir).resolve()))
    return Counter((r.name.rsplit(".", 1)[-1], r.status) for r in log.read_new())


def test_failed_tasks_are_failed_run_once_and_mapped_to_their_cell(ip: InteractiveShell) -> None:
    ip.run_cell(MIXED, cell_id="m")
    # a comment after the magic's options is a comment (README's quickstart line)
    _, out = jug(ip, "execute -j 2 --quiet --keep-going     # two background workers")
    assert "Started 2 workers" in out
    out = cell(ip, "%jug wait --timeout 120\n%jug status")
    # every failure once in the cell (wait and status both report), grouped, with the instances
    assert out.count("5 tasks failed with ValueError: bad input") == 1
    assert out.count("Traceback of explode(") == 1
    for i in range(5):
        assert f"explode({i})" in out
    # the frame is the cell and line, with the source line; jugnb's and jug's frames are hidden
    assert "%%jugfile cell 1 (--name boom), line 8 in explode" in out
    assert 'raise ValueError(f"bad input {x}")' in out
    assert "recorder.py" not in out and "jug/task.py" not in out and ".jugnb/jugfiles" not in out
    assert "frames of jugnb and jug hidden" in out
    assert "5 tasks are failed: the last run raised. The next `%jug execute` runs them again" in out
    # status counts them as failed; --jug-states is jug's own table (ready)
    snapshot = ip.run_line_magic("jug", "status")
    assert re.search(r"^\s+5\s+0\s+0\s+0\s+0\s+work\.explode", snapshot.text, re.M)
    jug_table = ip.run_line_magic("jug", "status --jug-states").text
    assert re.search(r"^\s+0\s+0\s+5\s+0\s+0\s+work\.explode", jug_table, re.M)
    # each failing task ran once in this execute, although the other worker was free to take it
    assert records_by_status("work.jugdata")[("explode", "failed")] == 5
    # --full shows every frame, with the snapshot path beside the cell
    _, full = jug(ip, "failures --full")
    assert "recorder.py" in full and ".jugnb/jugfiles/" in full and "[%%jugfile cell 1 (--name boom)" in full


def test_retry_runs_failed_tasks_now(ip: InteractiveShell) -> None:
    ip.run_cell(MIXED, cell_id="m")
    jug(ip, "execute -j 1 --quiet --keep-going")
    jug(ip, "wait --timeout 120")
    Path("fixed.flag").write_text("")
    _, out = jug(ip, "retry")
    assert "Marked 5 failed tasks for a new run; started 1 workers." in out
    jug(ip, "wait --timeout 120")
    assert ip.run_line_magic("jug", "check") is True
    assert ip.user_ns["value"](ip.user_ns["failing"]) == [0.0, 1.5, 3.0, 4.5, 6.0]


def test_rerun_failed_lets_another_worker_try_again(ip: InteractiveShell) -> None:
    ip.run_cell(MIXED.replace("range(5)", "range(1)"), cell_id="m")
    jug(ip, "execute -j 2 --quiet --rerun-failed")
    jug(ip, "wait --timeout 120")
    # the first worker stopped at the failure; the second took the task again after its slow ones
    assert records_by_status("work.jugdata")[("explode", "failed")] == 2


def test_stop_now_is_stopped_not_failed(ip: InteractiveShell) -> None:
    ip.run_cell(LONG, cell_id="l")
    jug(ip, "execute -j 2 --quiet")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ip.run_line_magic("jug", "workers").text.count("work.nap") < 2:
        time.sleep(0.2)
    jug(ip, "stop --now")
    out = cell(ip, "%jug wait --timeout 30\n%jug status")
    assert "SystemExit" not in out and "143" not in out and "Traceback" not in out
    assert "failed with" not in out and "are failed" not in out
    snapshot = ip.run_line_magic("jug", "status")
    assert re.search(r"^\s+0\s+0\s+2\s+0\s+0\s+work\.nap", snapshot.text, re.M)
    counts = records_by_status("work.jugdata")
    assert counts == Counter({("nap", "interrupted"): 2})
    log = RecordLog.for_jugdir(str(Path("work.jugdata").resolve()))
    assert all(r.traceback is None and r.exc_type is None for r in log.read_new())


def test_panel_retry_failed_button_works_without_keep_failed(ip: InteractiveShell) -> None:
    ip.run_cell(MIXED, cell_id="m")
    jug(ip, "execute -j 2 --keep-going")  # shows the panel
    jug(ip, "wait --timeout 120")
    panel = ip.magics_manager.registry["JugMagics"].panel
    assert panel.total_row.row.failed == 5 and not panel.buttons["retry_failed"].disabled
    Path("fixed.flag").write_text("")
    panel.buttons["retry_failed"].click()
    assert panel.wait_for_actions(timeout=30)
    counts = records_by_status("work.jugdata")
    assert counts[("explode", "retry")] == 5  # marked for a new run: no --keep-failed lock was needed
    jug(ip, "wait --timeout 120")  # the pool's workers were started again
    assert ip.run_line_magic("jug", "check") is True
    panel.poller.refresh()
    assert (panel.total_row.row.failed, panel.total_row.row.complete) == (0, 9)
