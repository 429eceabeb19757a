"""``jugnb execute NB.ipynb [-j N]``: N jugnb workers on this host, the loop that ``%jug execute`` runs.

Each worker is ``python -m jugnb.workers.loop`` (woken by store changes, records, fingerprints, heartbeats, a
lease in the jugdir, drain on signal, exit when nothing it could run remains). jug's execute options keep
their meaning; ``--wait-cycle-time`` times ``--nr-wait-cycles`` bounds how long an idle worker waits for
tasks whose lock holder cannot be checked and that nobody renews a lease for. The jugdir reaches the
workers through a pipe (a redis password never appears in their command line or environment).

When every worker has ended, the command imports the jugfile once more and prints a summary: what is
done, what failed, what is still locked and by whom, and what is left that these workers could have
run. The exit code is 0 only when nothing runnable is left and nothing failed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from ..backends import leases_of
from ..backends.leases import LeaseStore, configured_timing
from ..errors import JugnbError
from ..status.records import RecordLog, TaskRecord
from ..workers.env import EXIT_STORE_LOST
from ..workers.launch import launch_worker, parse_jobs, worker_command
from ..workers.lockowners import LockOwners
from ..workers.loop import EXIT_IMPORT_FAILED

EXIT_LEFT = 1


def pop_jobs(argv: list[str]) -> tuple[int | None, list[str]]:
    """Remove ``-j N`` / ``--jobs N`` / ``-jN`` / ``--jobs=N`` from an execute command line.

    Raises
    ------
    ValueError
        When N is not a positive integer (the message names the option).
    """
    out: list[str] = []
    jobs: str | None = None
    it = iter(argv)
    for arg in it:
        if arg in ("-j", "--jobs"):
            jobs = next(it, "")
        elif arg.startswith("--jobs="):
            jobs = arg.split("=", 1)[1]
        elif arg.startswith("-j") and arg[2:].isdigit():
            jobs = arg[2:]
        else:
            out.append(arg)
    return (None if jobs is None else parse_jobs(jobs)), out


def default_jobs() -> int:
    """Return the CPUs this process may use: its CPU affinity, capped by ``SLURM_CPUS_PER_TASK`` when set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cpus, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else max(1, cpus)


def execute_options(argv: list[str], position: int | None) -> list[str]:
    """Return the execute options in ``argv`` (``["execute", ...]``) but the jugfile and ``--jugdir``."""
    out, skip = [], False
    for index, arg in enumerate(argv[1:], start=1):
        if skip:
            skip = False
        elif index == position:
            continue
        elif arg == "--jugdir":
            skip = True
        elif not arg.startswith("--jugdir="):
            out.append(arg)
    return out


class CliWorkers:
    """The worker processes of one ``jugnb execute`` (all in this process group).

    Parameters
    ----------
    jugfile : str
        The file the workers import (a notebook's snapshot, or the ``.py`` jugfile).
    jugdir : str
        The jugdir (may hold a redis password: it goes through stdin only).
    options : list of str
        jug execute options passed on to every worker.
    idle_timeout : float
        Seconds an idle worker waits on locks it cannot check (see the module docstring).
    """

    def __init__(self, jugfile: str, jugdir: str, options: list[str], idle_timeout: float) -> None:
        self.jugfile = os.path.abspath(jugfile)
        self.jugdir = jugdir
        self.options = options
        self.idle_timeout = idle_timeout
        self.folder = Path(tempfile.mkdtemp(prefix="jugnb-execute-"))
        self.module = Path(jugfile).stem
        (self.folder / f"{self.module}.current").write_text(self.jugfile + "\n", encoding="utf-8")
        self.procs: list[subprocess.Popen[bytes]] = []
        # "cli-": records and leases tell the command line's workers from a kernel's.
        self.prefix = f"cli-{socket.gethostname()}-{os.getpid()}"
        self.interrupts = 0  # Ctrl-C (1: drained) or SIGTERM / a second Ctrl-C (2 or more: stopped)

    def start(self, n: int) -> None:
        """Start ``n`` workers."""
        interval, timeout = configured_timing()
        for index in range(n):
            worker = f"{self.prefix}.{index}"
            options = [
                f"--state-dir={self.folder}", f"--module={self.module}", f"--worker-id={worker}",
                f"--heartbeat={self.folder / (worker + '.hb')}", f"--idle-timeout={self.idle_timeout}",
                f"--lease-interval={interval}", f"--lease-timeout={timeout}",
                f"--store-retry={float(os.environ.get('JUGNB_STORE_RETRY') or 60.0)}",
                f"--parent-pid={os.getpid()}", f"--summary-file={self.folder / (worker + '.summary')}",
            ]  # fmt: skip
            self.procs.append(launch_worker(worker_command(options, self.options), jugdir=self.jugdir))

    def wait(self) -> list[int]:
        """Wait for every worker; Ctrl-C drains them (a second one, or SIGTERM, stops them at once)."""
        interrupts = [0]

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            interrupts[0] += 1 if signum == signal.SIGINT else 2
            self.signal(signal.SIGUSR1 if interrupts[0] == 1 else signal.SIGTERM)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while any(p.poll() is None for p in self.procs):
                time.sleep(0.05)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.interrupts = interrupts[0]
        return [int(p.returncode) for p in self.procs]

    def how_ended(self) -> str:
        """Say how the workers ended: ``ended``, ``drained (Ctrl-C)`` or ``stopped (...)``."""
        if self.interrupts == 0:
            return "ended"
        return "drained (Ctrl-C)" if self.interrupts == 1 else "stopped (SIGTERM or a second Ctrl-C)"

    def records(self, store: Any) -> list[TaskRecord]:
        """Return the task records these workers wrote (none for a store without records)."""
        try:
            log = RecordLog.for_jugdir(self.jugdir, store)
        except JugnbError:
            return []
        try:
            return [r for r in log.read_new() if r.worker.startswith(self.prefix + ".")]
        finally:
            log.close()

    def executed(self) -> Counter[str]:
        """Sum the tasks the workers executed, by task name."""
        total: Counter[str] = Counter()
        for path in self.folder.glob("*.summary"):
            for title, by_name in json.loads(path.read_text(encoding="utf-8")):
                if title == "Executed":
                    total.update(by_name)
        return total

    def remove_folder(self) -> None:
        """Delete the pointer, heartbeats and summaries."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every live worker (by pid)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signum)


def run(jugfile: str, jugdir: str, store: Any, argv: list[str], position: int | None, jobs: int | None,
        options: Any) -> int:  # fmt: skip
    """Run ``jugnb execute`` with ``jobs`` workers; print the summary; return the exit code.

    Parameters
    ----------
    jugfile : str
        What the workers import (snapshot or ``.py``).
    jugdir : str
        The jugdir jug's options resolved.
    store : jug store or None
        The store jugnb opened (redis), else ``None`` (jug opens it).
    argv : list of str
        The execute command line as jug parses it; ``position`` is the jugfile's index in it.
    jobs : int or None
        Worker processes (default :func:`default_jobs`).
    options : jug options
        jug's parsed options (wait cycles, name selection).
    """
    n = jobs if jobs is not None else default_jobs()
    idle = float(options.execute_wait_cycle_time) * int(options.execute_nr_wait_cycles)
    workers = CliWorkers(jugfile, jugdir, execute_options(argv, position), idle)
    started = time.monotonic()
    try:
        workers.start(n)
        codes = workers.wait()
        run_records = workers.records(store)
        # The records count the tasks of drained workers too (those write no summary file).
        executed = Counter(r.name for r in run_records if r.status == "ok") or workers.executed()
    finally:
        workers.remove_folder()
    from jug.io import print_task_summary_table
    from jug.subcommands import maybe_print_citation_info

    if EXIT_STORE_LOST in codes:  # the workers said why on stderr; the summary would need the store
        where = getattr(getattr(store, "redis", None), "description", "the store")
        msg = (
            f"the redis server {where} is unreachable: the workers stopped, keeping every result stored so "
            "far. Start it and run again (locks the workers held are released once their leases expire)."
        )
        raise JugnbError(msg)
    if EXIT_IMPORT_FAILED in codes:
        _import(jugfile, jugdir, store)  # raises the error, named by cell (the workers said nothing)

    failed = failed_in(run_records)
    text, left, table = summary(jugfile, jugdir, store, options, executed, failed, workers.interrupts > 0)
    took = time.monotonic() - started
    print(f"jugnb execute: {n} worker(s) {workers.how_ended()} after {took:.1f} s. {text}", flush=True)
    print_task_summary_table(options, table)  # last, as `jug execute` prints it
    maybe_print_citation_info(options)
    serious = [c for c in codes if c in (2, 3)]  # bad setup, store lost: as the workers said
    if serious:
        return max(serious)
    return EXIT_LEFT if left or any(c != 0 for c in codes) else 0


def failed_in(records: list[TaskRecord]) -> dict[str, TaskRecord]:
    """Return the latest record of every task whose latest record in ``records`` is a failure, by hash."""
    latest: dict[str, TaskRecord] = {}
    for record in sorted(records, key=lambda r: r.end or r.start):
        if record.status in ("ok", "failed"):  # an interrupted run says nothing about the task
            latest[record.hash] = record
    return {h: r for h, r in latest.items() if r.failed}


def summary(
    jugfile: str,
    jugdir: str,
    store: Any,
    options: Any,
    executed: Counter[str],
    failed_here: dict[str, TaskRecord] | None = None,
    interrupted: bool = False,
) -> tuple[str, bool, list[tuple[str, Counter[str]]]]:
    """Say what is left and whether work these workers could do is; return jug's table (executed, loaded).

    ``failed_here`` (task hash -> its failure record) are the tasks that raised in this run: jug releases
    their locks, so without it they would look runnable. ``interrupted``: the workers were drained or
    stopped, so what is left was not run on purpose.
    """
    from jug.utils import prepare_matcher_from_options

    failed_here = failed_here or {}
    tasks, namespace = _import(jugfile, jugdir, store)
    matcher = prepare_matcher_from_options(options.execute_name, options.execute_pattern)
    owners = LockOwners(jugdir, _leases(jugdir, store), store)
    done = {id(t) for t in tasks if t.can_load()}
    loaded = Counter(str(t.name) for t in tasks if id(t) in done) - executed
    failed = [t for t in tasks if id(t) not in done and (_hex(t) in failed_here or t.is_failed())]
    locked = [t for t in tasks if id(t) not in done and t not in failed and t.is_locked()]
    runnable, waiting_failed = _left(tasks, done, failed, locked, matcher)
    lines = [f"{len(done)} of {len(tasks)} tasks done."]
    if failed:
        lines.append(f"FAILED: {len(failed)} task(s): {_names(failed)}.")
        lines.extend(_headlines(failed, failed_here))
    lines += [f"  {t.name}: {owners.describe(_hex(t))}" for t in locked[:10]]
    if len(locked) > 10:
        lines.append(f"  ... and {len(locked) - 10} more locked tasks")
    if waiting_failed:
        lines.append(f"{len(waiting_failed)} wait on failed tasks: {_names(waiting_failed)}.")
    waiting = len(tasks) - len(done) - len(failed) - len(locked) - len(runnable) - len(waiting_failed)
    if waiting:
        lines.append(f"{waiting} wait on locked tasks, or were not selected (--name/--target).")
    if runnable:
        why = "Not run, as the workers were interrupted" if interrupted else (
            "LEFT UNFINISHED although these workers could have run them"
        )  # fmt: skip
        lines.append(f"{why}: {_names(runnable)}.")
    if namespace.get("__jug__hasbarrier__") and len(done) < len(tasks):
        lines.append("The jugfile stops at a barrier or bvalue: the tasks after it are not counted.")
    return "\n".join(lines), bool(runnable or failed_here), [("Executed", executed), ("Loaded", loaded)]


def _left(
    tasks: list[Any], done: set[int], failed: list[Any], locked: list[Any], matcher: Any
) -> tuple[list[Any], list[Any]]:
    """Split the selected tasks left over: those these workers could run, those waiting on failed tasks."""
    blocked_by = {id(t) for t in failed + locked}
    on_failed = {id(t) for t in failed}
    runnable, waiting_failed = [], []
    for t in tasks:
        if id(t) in done or id(t) in blocked_by or (matcher is not None and not matcher(t.name)):
            continue
        deps = _deps(t)
        if any(id(d) in on_failed for d in deps):
            waiting_failed.append(t)
        elif not any(id(d) in blocked_by for d in deps):
            runnable.append(t)
    return runnable, waiting_failed


def _headlines(failed: list[Any], failed_here: dict[str, TaskRecord]) -> list[str]:
    """One line per distinct error of ``failed`` (with its tasks), and where the tracebacks are."""
    by_error: dict[str, list[Any]] = {}
    for t in failed:
        record = failed_here.get(_hex(t))
        if record is None:
            error = "failed before this run (kept locked as failed by --keep-failed)"
        else:
            message = (record.exc_message or "").strip().splitlines()
            error = f"raised {record.exc_type or 'an error'}: {message[0] if message else ''}".rstrip(": ")
        by_error.setdefault(error, []).append(t)
    lines = [f"  {_names(group)} {error}" for error, group in by_error.items()]
    lines.append(
        "  Their tracebacks are printed above; in the notebook `%jug failures` shows them, `%jug retry` "
        "reruns them."
    )
    return lines


def _hex(t: Any) -> str:
    return str(t.hash().decode("ascii"))


def _import(jugfile: str, jugdir: str, store: Any) -> tuple[list[Any], dict[str, Any]]:
    """Import the jugfile as jug does (up to its first unfinished barrier); return its tasks and namespace."""
    import jug.jug
    from jug import task as jugtask

    del jugtask.alltasks[:]
    _, namespace = jug.jug.init(jugfile, store if store is not None else jugdir, on_error="propagate")
    return list(jugtask.alltasks), namespace


def _deps(t: Any) -> list[Any]:
    out, stack, seen = [], list(t.dependencies()), set()
    while stack:
        d = stack.pop()
        if id(d) not in seen:
            seen.add(id(d))
            out.append(d)
            stack.extend(d.dependencies())
    return out


def _names(tasks: list[Any], most: int = 5) -> str:
    """Task names, each once with its count (``raises.boom (3 tasks)``), the ``most`` first."""
    counts = Counter(str(t.name) for t in tasks)
    shown = [name + (f" ({count} tasks)" if count > 1 else "") for name, count in list(counts.items())[:most]]
    return ", ".join(shown) + (f" and {len(counts) - most} more" if len(counts) > most else "")


def _leases(jugdir: str, store: Any) -> LeaseStore | None:
    try:
        return leases_of(jugdir, store)
    except JugnbError:
        return None
