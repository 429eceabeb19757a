"""``%jug`` subcommands that run tasks: execute (workers or in the kernel), workers, wait, stop, run."""

from __future__ import annotations

import html
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ..backends import select
from ..backends.leases import Lease
from ..session.inkernel import ExecuteOptions, execute_here, find_task, run_task
from ..workers.env import EXIT_STORE_LOST
from ..workers.launch import parse_jobs
from ..workers.lockowners import lease_rows, read_leases
from ..workers.pool import WorkerInfo, WorkerPool
from .command import Command, add_selection, selection, status_snapshot
from .failure_commands import print_failures
from .pools import pool_of
from .views import Rendered


def default_jobs() -> int:
    """Return the CPUs this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def execute_options(args: Any) -> ExecuteOptions:
    """Jug execute's options from parsed ``%jug execute`` arguments."""
    name, pattern = selection(args)
    return ExecuteOptions(
        name, pattern, args.keep_going, args.keep_failed, args.aggressive_unload, args.debug
    )


class ExecuteCommand(Command):
    """Run the tasks: start background workers (returns at once), or run in the kernel with --here."""

    name = "execute"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument(
            "-j",
            "--jobs",
            default=None,  # checked in run(), in the words of `jugnb execute -j`
            help="Number of worker processes (default: the CPUs this process may use).",
        )
        parser.add_argument("--add", action="store_true", help="Add workers to those already running.")
        parser.add_argument(
            "--here",
            action="store_true",
            help="Run the tasks in the kernel itself: blocking, interruptible, %%debug works.",
        )
        parser.add_argument(
            "--detach",
            action="store_true",
            help="Workers keep running after the kernel shuts down or restarts.",
        )
        parser.add_argument("--quiet", action="store_true", help="Do not show the progress panel.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List what would run, by task name and reason, with the expected cost; run nothing.",
        )
        add_selection(parser, required=False)
        parser.add_argument("--keep-going", action="store_true", help="Continue after a task fails.")
        parser.add_argument("--keep-failed", action="store_true", help="Keep failed tasks locked as failed.")
        parser.add_argument(
            "--rerun-failed",
            action="store_true",
            help="Let another worker run again a task that failed earlier in this execute (by default a "
            "failed task is left failed until the next execute or `%%jug retry`).",
        )
        parser.add_argument(
            "--aggressive-unload", action="store_true", help="Unload results from memory eagerly."
        )
        parser.add_argument("--debug", action="store_true", help="jug's debug mode (extra checks).")

    def run(self, magics: Any, args: Any) -> Any:
        if args.jobs is not None:
            try:
                args.jobs = parse_jobs(args.jobs)
            except ValueError as err:
                raise UsageError(str(err)) from None
        magics.graph  # noqa: B018 - a jugfile must be loaded (and reloaded past a cleared barrier)
        # Never run a graph other than the one the notebook shows (a failed cell) or workers would import.
        magics.session.check_executable(on_disk=not (args.here or args.dry_run))
        options = execute_options(args)
        if args.dry_run:
            from ..session.tasks import task_matcher
            from .stale_commands import dry_run

            selected = options.name is not None or options.pattern is not None
            return dry_run(magics, task_matcher(options.name, options.pattern) if selected else None)
        if args.here:
            executed = execute_here(magics.session, options)
            total = sum(executed.values())
            print(f"Executed {total} tasks in the kernel" + (f" ({_counts(executed)})." if total else "."))
            return None
        return _start_workers(magics, args, options)


def _start_workers(magics: Any, args: Any, options: ExecuteOptions) -> Any:
    session = magics.session
    backend = select(session.jugdir.spec)
    if not backend.supports_workers:
        msg = (
            f"{backend.unshareable_reason()} Use `%jug execute --here` to run the tasks in the "
            "kernel, or a jugdir on disk or in redis."
        )
        raise UsageError(msg)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    pool = pool_of(magics)
    running = [w for w in pool.workers() if w.alive] if pool is not None else []
    if running and not args.add:
        pids = ", ".join(str(w.pid) for w in running)
        print(
            f"{len(running)} workers are already running (pids {pids}); `%jug execute --add -j N` adds more, "
            "`%jug stop` stops them."
        )
        return None
    _check_reproducible(magics)
    if pool is not None and args.add and running:
        started = pool.add(jobs)
    else:
        overrides = {"rerun_failed": True} if args.rerun_failed else {}  # else %config WorkerPool decides
        pool = WorkerPool(session.project.state_dir, session.project.module, parent=magics, **overrides)
        started = pool.start(
            jobs,
            jugdir=session.jugdir.spec,
            cwd=Path.cwd(),
            execute_args=options.worker_args(),
            detach=args.detach,
        )
        # Kept only once started: a pool whose start failed must not answer a later %jug wait or stop.
        magics.shell.configurables.append(pool)
        magics._pool = pool
    # No pids here: a saved notebook's outputs must not change from run to run (`%jug workers` lists them).
    print(
        f"Started {_plural(len(started), 'worker')}"
        + (", detached" if args.detach else "")
        + ". `%jug wait` blocks until they finish."
    )
    if args.quiet:
        magics.panel = None  # a panel of an earlier run must not stand for this one
    else:
        magics.show_progress(pool)
    return None


def _check_reproducible(magics: Any) -> None:
    """Refuse to start workers that would not compute the kernel's tasks (see jugnb.session.reproduce)."""
    timeout = magics.clean_import_timeout
    if not timeout:
        return
    session = magics.session
    try:
        magics.reproducibility.check(session.graph, session.jugdir.spec, Path.cwd(), timeout)
    except subprocess.TimeoutExpired:
        print(
            f"Warning: a clean import of the jugfile took longer than {timeout:g} s "
            "(JugMagics.clean_import_timeout), so whether workers compute the tasks the kernel shows was "
            "not checked; starting them anyway."
        )


class WorkersCommand(Command):
    """Show this notebook's workers: pid, state, current task, running for, memory, host."""

    name = "workers"

    def run(self, magics: Any, args: Any) -> Rendered:
        pool = pool_of(magics)
        infos = pool.workers() if pool is not None else []
        return workers_table(infos, _leases(magics))


def _leases(magics: Any) -> list[Lease]:
    """Return every worker's lease on the jugdir (none before a jugfile is loaded, or for a dict_store)."""
    try:
        graph = magics.graph
    except UsageError:
        return []
    return read_leases(graph.jugdir.spec, graph.store)  # none for a dict_store


def workers_table(infos: list[WorkerInfo], leases: Sequence[Lease] = ()) -> Rendered:
    """Text and HTML tables: this kernel's workers, then every other worker with a lease on the jugdir."""
    header = ("worker", "pid", "state", "task", "running for", "memory", "host", "done", "failed", "slurm")
    by_id = {lease.worker: row for lease, row in zip(leases, lease_rows(leases), strict=True)}
    rows = [
        (
            w.worker_id,
            str(w.pid),
            w.state,
            w.task or "",
            f"{w.running_for:.1f} s" if w.running_for is not None else "",
            f"{w.rss / 2**20:.0f} MiB" if w.rss else "",
            w.host,
            str(w.executed),
            str(w.failed),  # from its heartbeat: a worker that exited has no lease left
            by_id.get(w.worker_id, ("",) * 7)[6],
        )
        for w in infos
    ]
    ours = {w.worker_id for w in infos}
    for lease in leases:
        if lease.worker not in ours:
            worker, host, pid, state, done, failed, slurm = by_id[lease.worker]
            since = time.time() - lease.task_since if lease.task_since and lease.state == "running" else None
            shown = state if state.startswith("lost") else lease.state
            running = f"{since:.1f} s" if since is not None else ""
            rows.append((worker, pid, shown, lease.task or "", running, "", host, done, failed, slurm))
    if not rows:
        return Rendered(
            "No workers. `%jug execute` starts some.",
            "<p>No workers. <code>%jug execute</code> starts some.</p>",
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    head = "".join(f"<th>{h}</th>" for h in header)
    return Rendered(text, f"<table><tr>{head}</tr>{cells}</table>")


class WaitCommand(Command):
    """Block until the workers finish (interrupting stops the waiting, not the workers)."""

    name = "wait"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=None, help="Give up waiting after this many seconds."
        )

    def run(self, magics: Any, args: Any) -> Rendered | None:
        pool = pool_of(magics)
        if pool is None:
            print("No workers are running.")
            return None
        finished = _wait(magics, pool, args.timeout)
        if not finished:
            alive = sum(w.alive for w in pool.workers())
            print(f"Stopped waiting; {alive} workers are still running (`%jug workers`).")
        lost = [str(w.pid) for w in pool.workers() if w.returncode == EXIT_STORE_LOST]
        if lost:
            print(
                f"{len(lost)} workers (pids {', '.join(lost)}) stopped because the store was unreachable. "
                "Results stored before are kept; `%jug execute` carries on once the store is back."
            )
        if magics.session.graph is None:  # a new kernel re-attached to workers before loading the jugfile
            print("Run the %%jugfile cells to see the status of their tasks.")
            return None
        refresh_panel(magics, pool)
        print_failures(magics)  # with a traceback per group; the status below lists no failure twice
        return magics.run_subcommand("status", [])  # type: ignore[no-any-return]


def _wait(magics: Any, pool: WorkerPool, timeout: float | None) -> bool:
    """``pool.wait``, with a live progress line in terminal IPython."""
    from .live import LiveLine, wants_live_line

    if magics.session.graph is None or not wants_live_line(magics.shell):
        return pool.wait(timeout)
    line = LiveLine(lambda: status_snapshot(magics))
    try:
        return pool.wait(timeout, on_tick=line.tick)
    finally:
        line.finish()


def refresh_panel(magics: Any, pool: Any = None) -> None:
    """Bring the progress panel of ``pool``'s run up to date now: a saved notebook keeps its final state.

    In terminal IPython, where a display cannot be updated in place, its final text is printed once.
    """
    panel = getattr(magics, "panel", None)
    if panel is None or getattr(panel, "poller", None) is None:
        return
    if pool is not None and panel.poller.pool is not pool:
        return  # the panel of an earlier run (this one ran --quiet): its workers are not news
    panel.poller.refresh()
    if getattr(magics.shell, "kernel", None) is None:
        panel.poller.stop()
        from ..widgets.static import view_text

        print(view_text(panel.view), end="")
    else:
        panel.update_display()


class StopCommand(Command):
    """Stop the workers: drain (finish the current task), or --now (terminate, release their locks)."""

    name = "stop"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument(
            "--now",
            action="store_true",
            help="SIGTERM, then SIGKILL after WorkerPool.stop_timeout seconds; locks are released.",
        )

    def run(self, magics: Any, args: Any) -> None:
        pool = pool_of(magics)
        if pool is None:
            print("No workers are running.")
            return
        alive = [w.pid for w in pool.workers() if w.alive]
        if not alive:
            print("No workers are running.")
            return
        pool.stop(now=args.now)
        verb = "Stopped" if args.now else "Asked to finish their current task and exit:"
        print(f"{verb} {_plural(len(alive), 'worker')} (pids {', '.join(map(str, alive))}).")


class RunCommand(Command):
    """Run one task in the kernel (hash prefix, or name[i]) so that %debug works on its exception."""

    name = "run"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("task", help="A hash prefix (6+ hex digits) or a task name, e.g. score[3].")
        parser.add_argument("--save", action="store_true", help="Store the result, as a worker would.")

    def run(self, magics: Any, args: Any) -> Any:
        graph = magics.graph
        task = find_task(graph.tasks, args.task)
        return run_task(task, save=args.save)  # exceptions keep their traceback, for %debug


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _counts(counter: Any) -> str:
    return ", ".join(f"{name.rsplit('.', 1)[-1]} ×{n}" for name, n in sorted(counter.items()))
