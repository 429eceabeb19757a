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
from ..backends.spec import child_environment, with_env_password
from ..errors import JugnbError
from ..workers.env import EXIT_STORE_LOST
from ..workers.launch import worker_command
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
    if jobs is None:
        return None, out
    if not jobs.isdigit() or int(jobs) < 1:
        raise ValueError(f"-j/--jobs takes a number of worker processes (1 or more), not {jobs!r}.")
    return int(jobs), out


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
            command = worker_command(options, self.options)
            env = child_environment(PYTHONUNBUFFERED="1")
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
            if proc.stdin is not None:
                try:
                    proc.stdin.write(with_env_password(self.jugdir).encode("utf-8") + b"\n")
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            self.procs.append(proc)

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
        return [int(p.returncode) for p in self.procs]

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
        executed = workers.executed()
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

    text, left, table = summary(jugfile, jugdir, store, options, executed)
    print(f"jugnb execute: {n} worker(s) ended after {time.monotonic() - started:.1f} s. {text}", flush=True)
    print_task_summary_table(options, table)  # last, as `jug execute` prints it
    maybe_print_citation_info(options)
    serious = [c for c in codes if c in (2, 3)]  # bad setup, store lost: as the workers said
    if serious:
        return max(serious)
    return EXIT_LEFT if left or any(c != 0 for c in codes) else 0


def summary(
    jugfile: str, jugdir: str, store: Any, options: Any, executed: Counter[str]
) -> tuple[str, bool, list[tuple[str, Counter[str]]]]:
    """Say what is left and whether work these workers could do is; return jug's table (executed, loaded)."""
    from jug.utils import prepare_matcher_from_options

    tasks, namespace = _import(jugfile, jugdir, store)
    matcher = prepare_matcher_from_options(options.execute_name, options.execute_pattern)
    owners = LockOwners(jugdir, _leases(jugdir, store), store)
    done = {id(t) for t in tasks if t.can_load()}
    loaded = Counter(str(t.name) for t in tasks if id(t) in done) - executed
    failed = [t for t in tasks if id(t) not in done and t.is_failed()]
    locked = [t for t in tasks if id(t) not in done and t not in failed and t.is_locked()]
    blocked_by = {id(t) for t in failed + locked}
    lines, runnable = [], []
    for t in tasks:
        if id(t) in done or id(t) in blocked_by:
            continue
        if matcher is not None and not matcher(t.name):
            continue
        if not any(id(d) in blocked_by for d in _deps(t)):
            runnable.append(t)
    lines.append(f"{len(done)} of {len(tasks)} tasks done.")
    if failed:
        lines.append(f"{len(failed)} failed (locked by --keep-failed or failing again): {_names(failed)}.")
    for t in locked[:10]:
        lines.append(f"  {t.name}: {owners.describe(t.hash().decode('ascii'))}")
    if len(locked) > 10:
        lines.append(f"  ... and {len(locked) - 10} more locked tasks")
    waiting = len(tasks) - len(done) - len(failed) - len(locked) - len(runnable)
    if waiting:
        lines.append(f"{waiting} wait on failed or locked tasks, or were not selected (--name/--target).")
    if runnable:
        lines.append(f"LEFT UNFINISHED although these workers could have run them: {_names(runnable)}.")
    if namespace.get("__jug__hasbarrier__") and len(done) < len(tasks):
        lines.append("The jugfile stops at a barrier or bvalue: the tasks after it are not counted.")
    return "\n".join(lines), bool(runnable), [("Executed", executed), ("Loaded", Counter(loaded))]


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
    shown = ", ".join(str(t.name) for t in tasks[:most])
    return shown + (f" and {len(tasks) - most} more" if len(tasks) > most else "")


def _leases(jugdir: str, store: Any) -> LeaseStore | None:
    from ..errors import JugnbError

    try:
        return leases_of(jugdir, store)
    except JugnbError:
        return None
