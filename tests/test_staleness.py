"""Staleness, `why` and the dry-run plan on real jug graphs, with records written as jugnb workers do."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from test_fingerprint import DEFS, MODULE, Notebook, open_notebook

from jugnb.staleness.classify import Plan, StalenessReport, classify, dry_run_plan, why
from jugnb.staleness.fingerprint import FingerprintStore
from jugnb.status.reader import StatusReader, StatusSnapshot
from jugnb.status.records import RecordLog, TaskRecord

CHAIN = """
xs = [double(i) for i in range(3)]
total = add(xs)
ys = [other(i) for i in range(2)]
"""
ADD = """
@TaskGenerator
def add(values):
    return sum(values)
"""
DOUBLE, TOTAL, OTHER = f"{MODULE}.double", f"{MODULE}.add", f"{MODULE}.other"
HELPER_EDIT = ("sqrt(x) * SCALE", "sqrt(x) * SCALE + 1")


def hexes(tasks: Iterable[Any]) -> set[str]:
    return {t.hash().decode() for t in tasks}


def named(notebook: Notebook, name: str) -> list[Any]:
    return [t for t in notebook.tasks if t.name == name]


def run_recorded(
    notebook: Notebook, durations: Mapping[str, float] | None = None, status: str = "ok"
) -> None:
    """Compute every task without a result and record it as a jugnb worker does: fingerprint saved first."""
    fingerprinter = notebook.fingerprinter()
    log = RecordLog.for_jugdir(notebook.jugdir.spec)
    sources = FingerprintStore.for_jugdir(notebook.jugdir.spec)
    for task in notebook.tasks:
        if task.can_load():
            continue
        task.run()
        fingerprint = fingerprinter(task)
        sources.save(fingerprint)
        seconds = (durations or {}).get(task.name, 1.0)
        record = TaskRecord(
            name=task.name,
            hash=task.hash().decode(),
            status=status,
            start=1000.0,
            end=1000.0 + seconds,
            duration=seconds,
            worker="test.0",
            host="localhost",
            pid=os.getpid(),
            fingerprint=fingerprint.digest,
        )
        log.append(record)
    log.close()


class Assessed:
    """Status, records, fingerprints and staleness of the notebook's current graph."""

    def __init__(self, notebook: Notebook) -> None:
        graph = notebook.graph
        assert graph is not None
        self.tasks = graph.tasks
        self.snapshot: StatusSnapshot = StatusReader(graph.tasks, graph.store).read()
        self.fingerprints = notebook.by_hash()
        self.records = RecordLog.for_jugdir(notebook.jugdir.spec).latest_by_hash()
        self.store = FingerprintStore.for_jugdir(notebook.jugdir.spec)
        self.report: StalenessReport = classify(
            graph.tasks, self.snapshot.hashes("complete"), self.fingerprints, self.records
        )

    def why(self, task: Any) -> Any:
        return why(task, self.report, self.fingerprints, self.records, self.store, now=1000.0 + 7200)

    def plan(self) -> Plan:
        return dry_run_plan(self.tasks, self.snapshot, self.report, self.records)

    def counts(self) -> dict[str, tuple[int, int, int, int]]:
        """Per task name: (fresh, stale, depends on stale, unknown)."""
        return {r.name: (r.fresh, r.stale, r.depends_on_stale, r.unknown) for r in self.report.rows}


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notebook]:
    yield from open_notebook(tmp_path, monkeypatch)


@pytest.fixture
def computed(notebook: Notebook) -> Notebook:
    """The chain, computed and recorded with its fingerprints."""
    notebook.load(DEFS + ADD, CHAIN)
    run_recorded(notebook)
    return notebook


def test_everything_fresh_after_a_recorded_run(computed: Notebook) -> None:
    state = Assessed(computed)
    assert state.counts() == {DOUBLE: (3, 0, 0, 0), TOTAL: (1, 0, 0, 0), OTHER: (2, 0, 0, 0)}
    assert state.report.total.fresh == 6 and not state.report.invalidation()


@pytest.mark.parametrize(
    "edit",
    [
        ("return 2 * helper(x)", "return 2*helper( x )  # same code"),
        ('"""Scale x."""', '"""Scale x (reworded)."""'),
        ("def other(x):", "def unrelated(x):\n    return x\n\n\n@TaskGenerator\ndef other(x):"),
    ],
    ids=["reformat-and-comment", "docstring", "new-unrelated-function"],
)
def test_cosmetic_and_unrelated_edits_are_not_stale(computed: Notebook, edit: tuple[str, str]) -> None:
    computed.load((DEFS + ADD).replace(*edit), CHAIN)
    assert Assessed(computed).report.total.fresh == 6


def test_changed_helper_makes_callers_stale_and_users_depend_on_stale(computed: Notebook) -> None:
    computed.load((DEFS + ADD).replace(*HELPER_EDIT), CHAIN)
    state = Assessed(computed)
    assert state.counts() == {DOUBLE: (0, 3, 0, 0), TOTAL: (0, 0, 1, 0), OTHER: (2, 0, 0, 0)}
    assert state.report.stale == hexes(named(computed, DOUBLE))
    assert state.report.invalidation() == hexes(named(computed, DOUBLE) + named(computed, TOTAL))
    assert state.report.invalidation(lambda name: name == OTHER) == frozenset()


def test_changed_constant_makes_its_readers_stale(computed: Notebook) -> None:
    computed.load((DEFS + ADD).replace("OFFSET = 1", "OFFSET = 2"), CHAIN)
    assert Assessed(computed).counts() == {DOUBLE: (3, 0, 0, 0), TOTAL: (1, 0, 0, 0), OTHER: (0, 2, 0, 0)}


def test_why_code_changed_shows_the_diff(computed: Notebook) -> None:
    computed.load((DEFS + ADD).replace(*HELPER_EDIT), CHAIN)
    state = Assessed(computed)
    explained = state.why(named(computed, DOUBLE)[0])
    assert explained.reason == "code changed" and not explained.runs
    assert "-    return sqrt(x) * SCALE\n+    return sqrt(x) * SCALE + 1\n" in explained.diff
    assert explained.diff.startswith("--- recorded (")
    assert "will not run" in str(explained) and explained.diff in str(explained)
    upstream = state.why(named(computed, TOTAL)[0])
    assert upstream.reason == "upstream changed"
    assert {ref.hash for ref in upstream.stale_upstream} == hexes(named(computed, DOUBLE))
    assert "Stale upstream: fpnb.double (" in upstream.message
    assert state.why(named(computed, OTHER)[0]).reason == "fresh"


def test_why_without_the_old_source_says_so(computed: Notebook) -> None:
    computed.load((DEFS + ADD).replace(*HELPER_EDIT), CHAIN)
    state = Assessed(computed)
    explained = why(named(computed, DOUBLE)[0], state.report, state.fingerprints, state.records, store=None)
    assert explained.diff == "" and "is not in the fingerprint store" in explained.message


def test_plain_jug_results_are_unknown_never_stale(
    notebook: Notebook, run: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    graph = notebook.load(DEFS + ADD, CHAIN)
    done = run("jug", "execute", graph.snapshot, "--jugdir", notebook.jugdir.spec, cwd=graph.snapshot.parent)
    assert done.returncode == 0, done.stderr
    notebook.load((DEFS + ADD).replace(*HELPER_EDIT), CHAIN)
    state = Assessed(notebook)
    assert state.counts() == {DOUBLE: (0, 0, 0, 3), TOTAL: (0, 0, 0, 1), OTHER: (0, 0, 0, 2)}
    explained = state.why(named(notebook, DOUBLE)[0])
    assert explained.reason == "unknown" and "plain jug" in explained.message
    assert not state.report.invalidation()


def test_unknown_upstream_does_not_hide_a_stale_downstream(notebook: Notebook) -> None:
    notebook.load(DEFS + ADD, CHAIN)
    for task in named(notebook, DOUBLE):
        task.run()  # computed without a record, as plain jug does
    run_recorded(notebook)
    notebook.load((DEFS + ADD).replace("sum(values)", "sum(values) + 0"), CHAIN)
    assert Assessed(notebook).counts() == {DOUBLE: (0, 0, 0, 3), TOTAL: (0, 1, 0, 0), OTHER: (2, 0, 0, 0)}


MORE = """
extra = [other(i) for i in range(2, 5)]
final = add([extra[0], ys[0]])
"""


def test_dry_run_plan_groups_by_name_and_reason_and_runs_nothing(computed: Notebook) -> None:
    computed.load((DEFS + ADD).replace(*HELPER_EDIT), CHAIN, MORE)
    graph = computed.graph
    assert graph is not None
    extra = named(computed, OTHER)[2:]
    invalidated = named(computed, OTHER)[0]
    graph.store.remove(invalidated.hash())
    _record_failure(computed, extra[1])
    graph.store.getlock(extra[2].hash()).get()  # a worker is on it
    _add_durations(computed, {OTHER: 2.0, TOTAL: 0.5})
    jugdir = computed.jugdir.path
    assert jugdir is not None
    before = sorted(jugdir.rglob("*"))

    plan = Assessed(computed).plan()
    groups = {(g.name, g.reason): g.count for g in plan.groups}
    assert groups == {
        (OTHER, "new"): 1,
        (OTHER, "invalidated"): 1,
        (OTHER, "retry"): 1,
        (TOTAL, "waiting"): 1,
        (OTHER, "running"): 1,
        (DOUBLE, "code changed but kept"): 3,
        (TOTAL, "upstream changed but kept"): 1,
    }
    assert [g.reason for g in plan.groups] == [
        "new",
        "invalidated",
        "retry",
        "waiting",
        "running",
        "code changed but kept",
        "upstream changed but kept",
    ]
    assert plan.task_count == 4 and plan.untimed == 0
    assert plan.seconds == pytest.approx(3 * 2.0 + 0.5)
    assert sorted(jugdir.rglob("*")) == before


def test_why_new_invalidated_failed_and_waiting(computed: Notebook) -> None:
    computed.load(DEFS + ADD, CHAIN, MORE)
    graph = computed.graph
    assert graph is not None
    extra = named(computed, OTHER)[2:]
    graph.store.remove(named(computed, OTHER)[0].hash())
    _record_failure(computed, extra[1])
    state = Assessed(computed)
    new = state.why(extra[0])
    assert new.reason == "new" and new.runs and new.message.endswith("it was never computed.")
    gone = state.why(named(computed, OTHER)[0])
    assert gone.reason == "invalidated" and "computed 2 h ago" in gone.message
    failed = state.why(extra[1])
    assert failed.reason == "failed" and "ValueError: boom" in failed.message
    final = state.why(named(computed, TOTAL)[1])
    assert final.reason == "new"
    assert {ref.hash for ref in final.waiting_on} == hexes([extra[0], named(computed, OTHER)[0]])
    assert "It waits on 2 task(s) without a result: fpnb.other (" in final.message


def test_plan_without_durations_counts_untimed_tasks(notebook: Notebook) -> None:
    notebook.load(DEFS + ADD, CHAIN)
    plan = Assessed(notebook).plan()
    assert {(g.name, g.reason): g.count for g in plan.groups} == {
        (DOUBLE, "new"): 3,
        (OTHER, "new"): 2,
        (TOTAL, "waiting"): 1,
    }
    assert plan.seconds == 0.0 and plan.untimed == 6 and all(g.seconds is None for g in plan.groups)


def _record_failure(notebook: Notebook, task: Any) -> None:
    log = RecordLog.for_jugdir(notebook.jugdir.spec)
    log.append(
        TaskRecord(
            name=task.name,
            hash=task.hash().decode(),
            status="failed",
            start=1500.0,
            end=1501.0,
            duration=1.0,
            worker="test.1",
            host="localhost",
            pid=os.getpid(),
            exc_type="ValueError",
            exc_message="boom",
        )
    )
    log.close()


def _add_durations(notebook: Notebook, durations: Mapping[str, float]) -> None:
    """Successful runs of other tasks with these names and durations (medians come from them)."""
    log = RecordLog.for_jugdir(notebook.jugdir.spec)
    for number, (name, seconds) in enumerate(durations.items()):
        for n in range(3):
            log.append(
                TaskRecord(
                    name=name,
                    hash=f"{number:020x}{n:020x}",
                    status="ok",
                    start=10.0,
                    end=10.0 + seconds,
                    duration=seconds,
                    worker="test.2",
                    host="localhost",
                    pid=os.getpid(),
                )
            )
    log.close()
