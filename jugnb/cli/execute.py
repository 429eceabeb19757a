"""What ``jugnb execute NOTEBOOK.ipynb`` adds to jug's own ``execute``: task records and ``--dry-run``.

``jugnb execute`` runs jug's execute subcommand unchanged (options, jugrc files, barrier loop, exit codes);
hooks registered here write a record per task, with the code fingerprint of every computed result, to the
same place that background workers use, so the notebook shows durations, failures and staleness for tasks
computed from a terminal or a cluster node too.

``--dry-run`` imports the jugfile and prints what execute would run, by task name and reason, with the
expected cost from recorded durations, and runs nothing.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from ..errors import JugnbError
from ..staleness.classify import classify, dry_run_plan
from ..staleness.fingerprint import FingerprintStore, TaskFingerprinter
from ..staleness.plan import plan_text
from ..status.reader import StatusReader
from ..status.records import RecordLog
from ..workers.heartbeat import Heartbeat
from ..workers.recorder import TaskRecorder


def install_recorder(snapshot: str, jugdir: str, store: Any = None) -> TaskRecorder | None:
    """Register jug hooks that record every task this process runs; ``None`` for a store without records.

    Parameters
    ----------
    snapshot : str
        The jugfile snapshot jug imports (``<folder>/.jugnb/jugfiles/<sha>/<module>.py``).
    jugdir : str
        jug's ``--jugdir`` after option parsing.
    store : jug store, optional
        The store jugnb opened for ``jugdir`` (redis: its client is shared).
    """
    from jug.hooks import register_hook

    try:
        records = RecordLog.for_jugdir(jugdir, store)
        fingerprints = FingerprintStore.for_jugdir(jugdir, store)
    except JugnbError:
        return None  # an in-memory dict_store: nothing outlives this process anyway
    module = Path(snapshot).stem
    worker_id = f"cli-{socket.gethostname()}-{os.getpid()}"
    beats = Path(snapshot).parents[2] / "workers" / module / f"{worker_id}.hb"
    heartbeat = Heartbeat(beats, {"worker": worker_id, "pid": os.getpid(), "jugfile": snapshot})
    recorder = TaskRecorder(records, heartbeat, worker_id, snapshot, fingerprints=fingerprints)
    imported: list[Any] = [None]

    def pre_execute(task: Any) -> None:
        # jug re-imports the jugfile after each barrier; fingerprint with the module being run now.
        namespace = vars(sys.modules[module]) if module in sys.modules else None
        if namespace is not None and namespace is not imported[0]:
            recorder.use_jugfile(namespace)
            imported[0] = namespace
        recorder.pre_execute(task)

    register_hook("execute.task-pre-execute", pre_execute)
    register_hook("execute.task-executed1", recorder.executed1)
    return recorder


def dry_run(
    snapshot: str, jugdir: str, store: Any = None, selection: tuple[str | None, str | None] = (None, None)
) -> str:
    """Import ``snapshot`` and describe what ``execute`` would run (nothing is run).

    Parameters
    ----------
    snapshot : str
        The jugfile snapshot.
    jugdir : str
        jug's ``--jugdir``.
    store : jug store, optional
        The store jugnb opened for ``jugdir`` (default: jug opens it).
    selection : tuple of str or None
        execute's ``--name`` and ``--pattern``: only the tasks they select are planned, as jug runs only them.

    Returns
    -------
    str
        The plan as a table, plus a note when the import stopped at a barrier.

    Raises
    ------
    StoreError
        When the store cannot be read.
    """
    import jug.jug
    from jug import task as jugtask
    from jug.utils import prepare_matcher_from_options

    matcher = prepare_matcher_from_options(*selection)
    store, namespace = jug.jug.init(snapshot, jugdir if store is None else store, on_error="propagate")
    tasks = list(jugtask.alltasks)
    snapshot_status = StatusReader(tasks, store).read()
    try:
        records = RecordLog.for_jugdir(jugdir, store).latest_by_hash()
    except JugnbError:
        records = {}
    fingerprints = TaskFingerprinter(Path(snapshot).read_text(encoding="utf-8"), namespace).for_tasks(tasks)
    report = classify(tasks, snapshot_status.hashes("complete"), fingerprints, records)
    selected = [t for t in tasks if matcher is None or matcher(t.name)]
    if not selected:
        return "No task matches the selection: nothing would run."
    text = plan_text(dry_run_plan(selected, snapshot_status, report, records))
    if namespace.get("__jug__hasbarrier__"):
        text += (
            "\nThe jugfile stops at a barrier or bvalue: tasks after it are not defined yet and not listed."
        )
    return text
