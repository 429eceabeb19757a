r"""Code run inside each jugnb worker process: jug's execute loop, woken by the store instead of a timer.

Started by :class:`jugnb.workers.pool.WorkerPool` as ``python -m jugnb.workers.loop [options] -- [jug execute
options]``
in the kernel's working directory, in its own session. Uses only the core and jug.

What it adds to ``jug execute`` (whose option parsing, ``jug.init`` import and ``execution_loop`` task
loop it reuses unchanged):

- **Waiting.** ``execution_loop`` is called with no wait cycles: it runs whatever is runnable and returns
  when nothing is. The worker then sleeps in short ticks (``--poll-interval``, 0.1 s) that cost one
  ``stat`` each (the mtime of the jugdir's ``locks`` folder changes whenever any worker on any host
  locks or releases a task) and rescans when it changes, or at least every second, or less often when
  a rescan is expensive (rescans are kept under 2 % of a core). A barrier or ``bvalue`` whose tasks are
  all done re-imports the jugfile at once, as ``jug execute`` does after its wait.
- **Exit.** The worker exits when nothing it may run is left, or when what is left can only become
  runnable through tasks that nobody alive is running: it keeps waiting while such a task is locked by a
  live process on this host (or by any process on another host or in redis, which cannot be checked, for
  at most ``--idle-timeout`` seconds without any change in the store).
- **Drain.** ``SIGUSR1`` (sent by the pool to this pid only) makes the worker finish its current task and
  exit 0. ``SIGTERM`` exits at once through ``SystemExit``, so jug's own ``finally`` releases the lock of
  the interrupted task. When the kernel shuts down, restarts (``SIGUSR2`` from the pool) or dies (its
  parent pid changes), a worker that is not detached stops within ``--shutdown-timeout`` seconds
  (:mod:`jugnb.workers.stop`).
- **New code.** Before and after every task the worker checks the pointer file
  ``<state_dir>/<module>.current``; when it names another snapshot the worker ``exec``\\ s itself afresh
  (same pid, fresh interpreter), so no task ever runs on a mix of old and new code, nor on helper modules
  imported by the old one.
- **Records.** :class:`jugnb.workers.recorder.TaskRecorder` writes a record per task and a heartbeat.
- **Failures.** A task that failed in any worker of this execute (same pool) is not run again by another
  one; ``--rerun-failed`` lets them (see :mod:`jugnb.workers.recorder`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends import select, store_lost_errors
from ..backends.spec import redact
from ..errors import JugfileImportError, JugnbError, StoreUnreachable
from ..launchers.timelimit import TimeBudget, job_deadline
from ..session.loader import snapshot_import_error
from ..session.misuse import construct_checks
from ..staleness.fingerprint import FingerprintStore
from ..status.records import RecordLog, typical_durations
from .env import (
    EXIT_STORE_LOST,
    Control,
    install_signals,
    parse_args,
    put_jugdir_on_stdin,
    read_pointer,
    stat_key,
)
from .heartbeat import Heartbeat
from .idle import CONFIRM_TICKS, progress_possible, rescan_gap, unfinished, wait_for_change
from .leasekeeper import keeper_for
from .locks import Holder
from .recorder import TaskRecorder
from .stop import StopClock, release_own_locks

log = logging.getLogger("jugnb.workers.loop")

EXIT_DRAINED = 0
EXIT_FAILED = 1
EXIT_TERMINATED = 128 + signal.SIGTERM  # the SystemExit that jugnb.workers.env.install_signals raises
EXIT_IMPORT_FAILED = 4


class Stop(BaseException):
    """Raised from a jug hook to leave ``execution_loop`` between tasks (jug's ``finally`` unlocks).

    A ``BaseException``: jug's loop catches ``Exception`` as a task failure.
    """


class Reload(Stop):
    """The pointer file names a new jugfile snapshot: restart on it."""


class Worker:
    """One worker process's loop (see the module docstring).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by :func:`jugnb.workers.env.parse_args`.
    control : Control
        Drain requests (installed before anything slow, so an early signal is not lost).
    """

    def __init__(self, args: argparse.Namespace, control: Control) -> None:
        self.args = args
        self.control = control
        self.pointer = Path(args.pointer or Path(args.state_dir) / f"{args.module}.current")
        self.snapshot = read_pointer(self.pointer)
        self._pointer_stat = stat_key(self.pointer)
        self.heartbeat = Heartbeat(
            Path(args.heartbeat), {"worker": args.worker_id, "pid": os.getpid(), "jugfile": self.snapshot}
        )
        # Opened here, not by jug: jug's redis store drops the URL's password and database number.
        self.backend = select(args.jugdir)
        self.store: Any = self.backend.open(fatal=True, retry_for=args.store_retry)
        self.recorder = TaskRecorder(
            RecordLog.for_jugdir(args.jugdir, self.store),
            self.heartbeat,
            args.worker_id,
            self.snapshot,
            Path(args.log) if args.log else None,
            fingerprint_store(args.jugdir, self.store),
        )
        self._scan_cost = 0.0
        self.keeper = keeper_for(self)
        self.budget = _time_budget(self.recorder.records)

    # -- control -------------------------------------------------------------------------------------

    def check_control(self, _task: Any = None) -> None:
        """Raise :class:`Stop` when draining, :class:`Reload` when the jugfile changed (also a jug hook).

        Raises
        ------
        Stop, Reload
        """
        if self.control.draining is not None:
            raise Stop(self.control.draining)
        key = stat_key(self.pointer)
        if key != self._pointer_stat:
            self._pointer_stat = key
            if read_pointer(self.pointer) != self.snapshot:
                raise Reload("the jugfile changed")

    # -- main ----------------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until done, drained or failed; return the exit code (re-exec on a new jugfile)."""
        import jug.jug
        from jug.options import parse

        jug.jug._is_jug_running = True  # what `jug` sets: jugfiles may test jug.is_jug_running()
        self.heartbeat.beat("starting", executed=0)
        code, held, task_failed, reloading = EXIT_FAILED, [], False, False
        if self.keeper is not None:
            self.keeper.start()
        try:
            # jug gets the open store; the string is for show only (and never holds the password).
            jugdir = redact(self.args.jugdir)
            options = parse(["execute", self.snapshot, "--jugdir", jugdir, *self.args.execute_args])
            self._register_hooks(options)
            code = self._execute(options)
            task_failed = code == EXIT_FAILED and self.recorder.nr_failed > 0  # --keep-going
        except Reload:
            reloading = True
            self._exec_again()
        except Stop as stop:
            log.info("drained (%s) after %d tasks", stop, self.recorder.nr_executed)
            code = EXIT_DRAINED
        except store_lost_errors() as lost:
            held = self.backend.held_locks(self.store)
            log.error("stopping: %s", lost)
            code = EXIT_STORE_LOST
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
        except JugfileImportError as err:
            # `jugnb execute` names the cell itself, once for all its workers (exit code 4 tells it to).
            if not self.args.summary_file:
                log.error("%s", err)
            code = EXIT_IMPORT_FAILED if self.args.summary_file else EXIT_FAILED
        except Exception as err:
            task_failed = err is self.recorder.last_failure
            if task_failed:  # its traceback is in its record: the log need not repeat it
                log.error("stopping: a task failed (%s: %s)", type(err).__name__, err)
            else:
                log.exception("worker %s failed", self.args.worker_id)
            code = EXIT_FAILED
        finally:
            # ``held``: the locks this worker may have left behind, for the pool to release.
            extra: dict[str, Any] = {"held": held} if held else {}
            if task_failed:
                extra["task_failed"] = True
            self.heartbeat.beat("exited", code=code, **extra)
            if self.keeper is not None and not reloading:
                # A lost store may keep our locks: leave the lease to expire, so survivors release them.
                self.keeper.stop(remove=code != EXIT_STORE_LOST)
            self.store.close()
        return code

    def _register_hooks(self, options: Any) -> None:
        from jug.hooks import register_hook
        from jug.hooks.exit_checks import exit_env_vars, exit_if_file_exists

        if not options.execute_no_check_environment:  # as `jug execute` does
            exit_env_vars()
            exit_if_file_exists("__jug_please_stop_running.txt")
        register_hook("execute.task-pre-execute", self.check_control)
        register_hook("execute.task-pre-execute", self.recorder.pre_execute)
        if self.keeper is not None:
            register_hook("execute.task-pre-execute", self.keeper.owned)
            register_hook("execute.task-executed1", self.keeper.disowned)
        register_hook("execute.task-executed1", self.recorder.executed1)
        register_hook("execute.task-executed1", self._announce_change)
        register_hook("execute.task-executed1", self.check_control)
        register_hook("execute.task-loadable", self.recorder.loadable)

    def _execute(self, options: Any) -> int:
        """``jug execute``'s re-import loop: import, run, and import again past each barrier."""
        import jug.jug
        from jug import task
        from jug.hooks import jug_hook
        from jug.io import print_task_summary_table

        state = jug.jug.ExecutionState()
        # jug never runs a task again that failed in this process; the recorder extends that to the tasks
        # that failed in any worker of this execute (unless --rerun-failed).
        self.recorder.given_up = state.failed
        self.recorder.skip_failed_in_run = not self.args.rerun_failed
        failures = False
        while True:
            del task.alltasks[:]
            try:
                with construct_checks():  # a misused construct is refused at its cell, before any task runs
                    self.store, jugspace = jug.jug.init(
                        options.jugfile, options.jugdir, on_error="propagate", store=self.store
                    )
            except Exception as err:
                # Named by cell and line, as in the kernel: the snapshot's traceback means nothing to users.
                raise snapshot_import_error(err, options.jugfile) from None
            self.recorder.use_jugfile(jugspace)
            if options.debug:
                for t in task.alltasks:
                    t.hash()
            barrier = bool(jugspace.get("__jug__hasbarrier__", False))
            finished, failed = self._run_import(list(task.alltasks), barrier, options, state)
            failures = failures or failed
            if not (finished and barrier):
                break
            log.info("barrier passed: importing the jugfile again")
        jug_hook("execute.finished_pre_status")  # jugfiles may hang summaries on these, as in `jug execute`
        groups = [("Executed", self.recorder.executed), ("Loaded", self.recorder.loaded)]
        if self.args.summary_file:  # `jugnb execute` prints one table for all its workers
            Path(self.args.summary_file).write_text(json.dumps(groups), encoding="utf-8")
        else:
            print_task_summary_table(options, groups)
        jug_hook("execute.finished_post_status")
        return EXIT_FAILED if failures else 0

    def _run_import(self, imported: list[Any], barrier: bool, options: Any, state: Any) -> tuple[bool, bool]:
        """Run the tasks of one import until they are done or stuck.

        Returns
        -------
        finished : bool
            Every task of the import has a result (a barrier can then be passed).
        failures : bool
            A task failed (only returned with ``--keep-going``; otherwise the exception propagates).
        """
        from jug.jug import execution_loop
        from jug.utils import prepare_matcher_from_options

        matcher = prepare_matcher_from_options(options.execute_name, options.execute_pattern)
        mine = [t for t in imported if matcher is None or matcher(t.name)]
        options.execute_nr_wait_cycles = 0  # never sleep inside jug's loop: wait below instead
        failures, stuck_once, quiet_since, first = False, False, time.monotonic(), True
        while True:
            self.check_control()
            token = self._token()
            started, before = time.perf_counter(), self._nr_done()
            mine = self.budget.fitting(unfinished(mine, state))  # none that SLURM's time limit would cut off
            if mine and self.recorder.skip_failed_in_run:
                state.failed.update(h.encode("ascii") for h in self.recorder.failed_in_run())
                mine = unfinished(mine, state)
            if mine:
                self.heartbeat.beat("idle")
                failures = execution_loop(list(mine), options, state) or failures
                if self._nr_done() != before:
                    stuck_once, quiet_since = False, time.monotonic()
                    continue
                mine = unfinished(mine, state)
            waiting_on = mine or (unfinished(imported, state) if barrier else [])
            if not waiting_on:
                return (not barrier or all(t.can_load() for t in imported)), failures
            verdict = progress_possible(waiting_on, mine, barrier, state, self.args.jugdir)
            if not first:  # the first pass also hashes every task: not what a rescan costs
                self._scan_cost = time.perf_counter() - started
            first = False
            if verdict is Holder.UNKNOWN and time.monotonic() - quiet_since >= self.args.idle_timeout:
                verdict = Holder.DEAD
            if verdict is Holder.DEAD and stuck_once:
                log.info("nothing left that this worker could run (%d tasks wait)", len(waiting_on))
                return False, failures
            # When nothing seems to move, confirm soon: a worker may have been between two tasks.
            stuck_once = verdict is Holder.DEAD
            gap = CONFIRM_TICKS * self.args.poll_interval if stuck_once else rescan_gap(self._scan_cost)
            self.heartbeat.beat("waiting")
            if wait_for_change(self._token, token, gap, self.args.poll_interval, self.check_control):
                quiet_since = time.monotonic()

    def _announce_change(self, _task: Any) -> None:
        """Wake waiting workers where the store does not signal changes by itself."""
        self.backend.notify_change(self.store)

    def _token(self) -> tuple[int, ...]:
        return self.backend.change_token(self.store)

    def _nr_done(self) -> int:
        return self.recorder.nr_executed + self.recorder.nr_failed

    def _exec_again(self) -> None:
        """Replace this process by a fresh worker on the new snapshot (same pid, log and heartbeat)."""
        log.info("the jugfile changed: restarting on %s", read_pointer(self.pointer))
        self.heartbeat.beat("reloading")
        self.recorder.records.close()
        self.store.close()
        sys.stdout.flush()
        sys.stderr.flush()
        if self.args.jugdir_stdin:
            put_jugdir_on_stdin(self.args.jugdir)
        os.execv(sys.executable, [sys.executable, "-m", "jugnb.workers.loop", *self.args.argv])


def _time_budget(records: RecordLog) -> TimeBudget:
    """Return the budget of tasks that fit before this SLURM job's time limit (all of them outside SLURM)."""
    deadline = job_deadline()
    durations = typical_durations(records.latest_by_hash().values()) if deadline is not None else {}
    return TimeBudget(deadline, durations)


def fingerprint_store(jugdir: str, store: Any = None) -> FingerprintStore | None:
    """Where the worker saves fingerprints; ``None`` when the jugdir has no place for them."""
    try:
        return FingerprintStore.for_jugdir(jugdir, store)
    except JugnbError as err:
        log.warning("no code fingerprints will be recorded: %s", err)
        return None


def main(argv: list[str] | None = None) -> int:
    """Run one worker; return its exit code.

    0 done or drained, 1 a task failed, 2 bad setup, 3 store lost, 4 the jugfile's import failed.
    """
    control = Control()
    install_signals(control)
    clock = StopClock(control)
    clock.install()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("jugnb").setLevel(logging.INFO)
    made: list[Worker] = []
    release = _lock_releaser(args.jugdir, made)
    if args.parent_pid is not None:  # not detached: bounded stop once the kernel goes (jugnb.workers.stop)
        if os.getppid() != args.parent_pid:
            clock.start("the kernel is gone")
        clock.watch(args.parent_pid, args.shutdown_timeout, release)
    try:
        made.append(Worker(args, control))
    except FileNotFoundError as err:
        log.error("no jugfile to run: %s (run a %%%%jugfile cell first)", err)
        return 2
    except JugnbError as err:
        log.error("%s", err)
        return EXIT_STORE_LOST if isinstance(err, StoreUnreachable) else 2
    code = made[0].run()
    if code == EXIT_TERMINATED:
        # SIGTERM can land inside jug's `t.lock()`, after the lock is taken but before jug notes it: its
        # `finally` then leaves that lock. A terminated worker holds no lock, so release any it still has.
        release()
    return code


def _lock_releaser(jugdir: str, made: list[Worker]) -> Callable[[], None]:
    """Return what releases the locks this worker still holds (:func:`.stop.release_own_locks`)."""
    import psutil

    started = psutil.Process().create_time()

    def held() -> set[str]:
        if not made:
            return set()
        state = made[0].heartbeat.state
        running = {str(state["hash"])} if state.get("state") == "running" and state.get("hash") else set()
        return running | set(select(jugdir).held_locks(made[0].store))

    return lambda: release_own_locks(jugdir, held, started)


if __name__ == "__main__":
    sys.exit(main())
