"""The ``jugnb`` command: ``export`` and every jug subcommand on a notebook.

::

    jugnb export NOTEBOOK.ipynb [-o FILE] [--name MODULE] [--force]
    jugnb SUBCOMMAND NOTEBOOK.ipynb [--module MODULE] [jug options...]   # execute, status, cleanup, ...
    jugnb SUBCOMMAND JUGFILE.py [jug options...]                         # passed straight to jug

A jug subcommand runs in a child process (``python -m jugnb.cli.jugrun``); its exit code is ``jugnb``'s, and a
SIGTERM sent to ``jugnb`` is passed on to it. Uses only the core and jug.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from .. import __version__
from ..errors import JugnbError
from ..notebook.export import export_notebook
from ..notebook.jugfile import write_jugfile
from ..notebook.project import Project
from .exitcodes import OK, REFUSED

OWN_COMMANDS = ("export", "workers", "submit", "jobs", "cancel")
JUG_STATES_HELP = (
    "--jug-states          jug's exact table: a failed task counts as ready, a lost worker's task as active "
    "(by default jugnb counts them as failed and lost, as %jug status does)"
)
STATE_DIR_HELP = (
    "where jugnb keeps its state (jugfile snapshots, worker logs), one subfolder per notebook folder "
    "(default: jugrc's [jugnb] state_dir, else .jugnb beside the notebook)"
)
USAGE = """\
usage: jugnb export NOTEBOOK.ipynb [-o FILE] [--name MODULE] [--force]
       jugnb workers NOTEBOOK.ipynb [--module MODULE] [--state-dir DIR] [--stop | --now]
       jugnb execute NOTEBOOK.ipynb [-j N] [--dry-run] [jug execute options...]
       jugnb status NOTEBOOK.ipynb [--jug-states] [--short] [jug status options...]
       jugnb submit NOTEBOOK.ipynb --jobs N [--cpus-per-task C] [--mem M] [--time T] [--dry-run] ...
       jugnb jobs NOTEBOOK.ipynb
       jugnb cancel NOTEBOOK.ipynb [JOBID...]
       jugnb SUBCOMMAND NOTEBOOK.ipynb [--module MODULE] [--state-dir DIR] [jug options...]
       jugnb SUBCOMMAND JUGFILE.py [jug options...]

Run the Jug task graph defined by a notebook's %%jugfile cells.

  export        write the notebook's jugfile (<module>.py beside it), runnable by plain jug
  workers       show the background workers a kernel started for the notebook; --stop drains them,
                --now terminates them (and releases the locks they held)
  execute       run the tasks in N worker processes on this host (-j N; default: the CPUs this process
                may use), each holding a lease in the jugdir; prints what is left unfinished and why
  status        the status table, with failed tasks (from jugnb's task records) and tasks of lost
                workers in their own states, and notes on them; --jug-states prints jug's exact table
  submit        submit the notebook's workers to SLURM as a job array (--dry-run prints the script)
  jobs          the submitted jobs of the notebook's jugdir: state, node, elapsed time, log tail
  cancel        cancel the notebook's unfinished jobs (or the JOBIDs given)
  SUBCOMMAND    any jug subcommand (execute, status, check, sleep-until, invalidate, cleanup, shell,
                graph, count, webstatus, pack, ...) on the notebook's jugfile, with jug's own options;
                `jugnb SUBCOMMAND --help` lists them. --module picks the module name (default: the
                notebook's file stem), which names the tasks and the default jugdir <module>.jugdata.
                --state-dir DIR moves jugnb's state folder (default: .jugnb beside the notebook;
                jugrc: [jugnb] state_dir = DIR), e.g. for a read-only notebook folder.

Exit codes: 0 success; 1 jug's own (a task failed, tasks not complete, the jugfile raised while
imported); 2 for an error found before jug ran, or a refusal (the message says why and what to do).
"""


def main(argv: list[str] | None = None) -> int:
    """Run the ``jugnb`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code, from the table in :mod:`jugnb.cli.exitcodes`: 0 on success, 2 when jugnb stops or refuses
        before jug runs, otherwise the jug subcommand's own code.
    """
    from_command_line = argv is None
    if argv is None:
        _utf8_or_exec()
        argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return OK if argv else REFUSED
    if argv[0] == "--version":
        print(f"jugnb {__version__}")
        return 0
    if argv[0] == "export":
        return _export(argv[1:])
    if argv[0] == "workers":
        return _workers(argv[1:])
    if argv[0] in ("submit", "jobs", "cancel"):
        from .jobs import main as jobs_main

        return jobs_main(argv[0], argv[1:])
    utf8 = ["-X", "utf8"] if sys.flags.utf8_mode else []  # the mode _utf8_or_exec chose, kept by jug's run
    command = [sys.executable, *utf8, "-m", "jugnb.cli.jugrun", *argv]
    if from_command_line and argv[0] == "execute":
        # The `jugnb` command itself: become the execute process (one interpreter start less before the
        # workers start; signals reach it directly). Called from Python, a child keeps the caller intact.
        sys.stdout.flush()
        os.execv(sys.executable, command)
    code = run_child(command)
    if argv[0] == "status" and code == OK and {"-h", "--help"} & set(argv):
        print(f"\njugnb's own status option:\n  {JUG_STATES_HELP}")
    return code


def _utf8_or_exec() -> None:
    """Run again in Python's UTF-8 mode when the filesystem encoding is not UTF-8 (a C/POSIX locale).

    Under such a locale, with locale coercion and UTF-8 mode turned off, a non-ASCII file name reaches
    Python as undecodable bytes: the module name derived from it would differ from the one a UTF-8 locale
    gives (so would task names and results), and text holding it cannot be written. UTF-8 mode reads the
    same bytes as UTF-8 in the new process (the command line is passed on byte for byte).
    """
    if sys.flags.utf8_mode or sys.getfilesystemencoding().lower().replace("-", "") == "utf8":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-X", "utf8", "-m", "jugnb", *sys.argv[1:]])


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jugnb export", description="Write a notebook's jugfile, a plain Python file that jug runs."
    )
    parser.add_argument("notebook", type=Path, help="the .ipynb file")
    parser.add_argument(
        "-o", "--output", type=Path, help="output file (default: <module>.py beside the notebook)"
    )
    parser.add_argument(
        "--name",
        "--module",
        dest="module",
        help="module name, which names the tasks (<module>.<function>) and the default jugdir "
        "(default: the notebook's file stem as an identifier)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite a file that jugnb did not generate")
    return parser


def _export(argv: list[str]) -> int:
    args = _export_parser().parse_args(argv)
    try:
        module = args.module
        if args.output is not None:
            stem = args.output.stem
            if module is not None and module != stem:
                msg = (
                    f"-o {args.output} and --name {module} disagree: jug names the module after the file, "
                    f"so write to {args.output.with_name(module + '.py')} or drop --name."
                )
                raise JugnbError(msg)
            module = stem if module is None else module
        project = Project.for_notebook(args.notebook, module)
        jugfile = export_notebook(args.notebook)
        output = args.output if args.output is not None else project.export_path
        changed = write_jugfile(output, jugfile.text, force=args.force)
    except JugnbError as err:
        print(f"jugnb: error: {err}", file=sys.stderr)
        return REFUSED
    except OSError as err:
        where = err.filename or args.output or "the jugfile"
        print(f"jugnb: error: cannot write {where}: {err.strerror or err}.", file=sys.stderr)
        return REFUSED
    state = "wrote" if changed else "unchanged:"
    print(f"{state} {output} (module {project.module}, {len(jugfile.fragments)} %%jugfile cells)")
    return 0


def _workers(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="jugnb workers", description="Show (and stop) the workers a kernel started for a notebook."
    )
    parser.add_argument("notebook", type=Path, help="the .ipynb file")
    parser.add_argument("--module", help="module name, if the notebook's kernel used another one")
    parser.add_argument(
        "--jugdir", help="the jugdir whose workers to list (default: jugrc's, else <module>.jugdata)"
    )
    parser.add_argument("--state-dir", help=STATE_DIR_HELP)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--stop", action="store_true", help="drain: each worker finishes its task, then exits")
    group.add_argument("--now", action="store_true", help="terminate now and release the locks they held")
    args = parser.parse_args(argv)
    from ..workers.pool import NotRunning, WorkerPool

    pool = None
    try:
        project = Project.for_notebook(args.notebook, args.module, flag="--module", state_root=args.state_dir)
        # Only a look from outside: the workers keep running when this command exits.
        with contextlib.suppress(NotRunning):
            pool = WorkerPool.reattach(
                project.state_dir, project.module, jugdir=_jugrc_jugdir(), stop_at_exit=False
            )
        shown = set()
        if not (args.stop or args.now):
            shown = _show_leases(args.jugdir or _jugrc_jugdir() or str(project.default_jugdir))
    except JugnbError as err:
        print(f"jugnb: error: {err}", file=sys.stderr)
        return REFUSED
    # The kernel's workers that have no lease yet (just started), or all of them before --stop/--now.
    for info in pool.workers() if pool is not None else []:
        if info.worker_id not in shown and info.state not in ("exited", "died"):
            task = f"  {info.task}" if info.task else ""
            print(f"pid {info.pid} on {info.host}: {info.state}{task} ({info.executed} tasks done)")
    if pool is None and not shown:
        print(f"No workers are running for {args.notebook}.")
        return 0
    if pool is not None and pool.leftover():
        print(
            f"The kernel that started them (pid {pool.kernel_pid}) is gone and they are not detached: each "
            "stops on its own within WorkerPool.shutdown_timeout seconds of its end."
        )
    if pool is not None and (args.stop or args.now):
        pool.stop(now=args.now)
        print("Stopped them." if args.now else "Asked them to finish their current task and exit.")
    return 0


def _show_leases(jugdir: str) -> set[str]:
    """Print every jugnb worker on every host that shares ``jugdir``, from their leases; return their ids."""
    from ..workers.lockowners import lease_rows, read_leases

    rows = lease_rows(read_leases(jugdir))
    for worker, host, pid, state, done, failed, slurm in rows:
        job = f", SLURM job {slurm}" if slurm else ""
        print(f"pid {pid} on {host}: {state} ({done} tasks done, {failed} failed; worker {worker}{job})")
    return {row[0] for row in rows}


def _jugrc_jugdir() -> str | None:
    """Return the jugdir of the jugrc files, if any (a state file's redis jugdir has no password)."""
    from jug.options import default_options, read_configuration_file

    configured = getattr(read_configuration_file(default_options=default_options), "jugdir", None)
    return configured if isinstance(configured, str) and configured != default_options.jugdir else None


def run_child(command: list[str]) -> int:
    """Run ``command`` with this process's standard streams; pass SIGTERM on to it; return its exit code."""
    child = subprocess.Popen(command)
    if threading.current_thread() is not threading.main_thread():
        return child.wait()

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the child as well: let it finish (jug cleans up its locks).
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
