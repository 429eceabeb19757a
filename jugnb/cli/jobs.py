"""``jugnb submit|jobs|cancel NOTEBOOK.ipynb``: a notebook's workers on a batch system, from a shell.

::

    jugnb submit NB.ipynb --jobs N [--cpus-per-task C] [--mem M] [--time T] [--partition P] [--account A]
                          [--sbatch-option OPT]... [--dry-run] [--force] [--jugdir JUGDIR] [--module M]
    jugnb jobs NB.ipynb [--jugdir JUGDIR] [--module M]
    jugnb cancel NB.ipynb [JOBID...] [--jugdir JUGDIR] [--module M]

The jugdir is the one ``jugnb execute NB.ipynb`` would use: ``--jugdir``, else a jugrc's, else
``<module>.jugdata`` beside the notebook. Uses only the core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..backends.spec import Jugdir, redact_text, resolve_jugdir
from ..errors import JugnbError
from ..launchers.base import LauncherError
from ..launchers.jobs import JobBook, JobWatcher, crash_lines, jobs_text, live_job_ids
from ..launchers.slurm import SlurmLauncher
from ..launchers.submit import add_submit_arguments, options_from, prepare, submit
from ..notebook.project import Project

COMMANDS = ("submit", "jobs", "cancel")


def _parser(command: str) -> argparse.ArgumentParser:
    descriptions = {
        "submit": "Submit the notebook's workers as a SLURM job array (each array task runs jugnb execute).",
        "jobs": "Show the jobs submitted for the notebook's jugdir: state, node, elapsed time, log tail.",
        "cancel": "Cancel the notebook's jobs (all unfinished ones, or those given), with one scancel.",
    }
    parser = argparse.ArgumentParser(prog=f"jugnb {command}", description=descriptions[command])
    parser.add_argument("notebook", type=Path, help="the .ipynb file")
    parser.add_argument("--module", help="module name (default: the notebook's file stem)")
    parser.add_argument("--jugdir", help="the jugdir (default: a jugrc's, else <module>.jugdata)")
    if command == "submit":
        add_submit_arguments(parser)
    if command == "cancel":
        parser.add_argument("job_ids", nargs="*", metavar="JOBID", help="jobs to cancel (default: all)")
    return parser


def main(command: str, argv: list[str]) -> int:
    """Run ``jugnb COMMAND ARGV``; return the exit code (2 for a usage or input error, 1 if SLURM failed)."""
    args = _parser(command).parse_args(argv)
    jugdir: Jugdir | None = None
    try:
        project = Project.for_notebook(args.notebook, args.module, flag="--module")
        jugdir = resolve_jugdir(_jugdir_spec(args.jugdir), jugfile=project.export_path, base=Path.cwd())
        launcher = SlurmLauncher()
        if command == "submit":
            return _submit(args, project, jugdir, launcher)
        watcher = JobWatcher(JobBook(jugdir.spec), launcher=launcher)
        rows = watcher.rows(refresh=True)
        if command == "jobs":
            print(jobs_text(rows))
            crashes = crash_lines(watcher.take_crashes())
            if crashes:
                print(crashes)
            return 0
        targets = args.job_ids or live_job_ids(rows)
        if not targets:
            print("No unfinished jobs to cancel.")
            return 0
        launcher.cancel(targets)
        print(f"Cancelled {', '.join(targets)}.")
        return 0
    except LauncherError as err:
        print(f"jugnb: error: {_redacted(str(err), jugdir)}", file=sys.stderr)
        return 1
    except JugnbError as err:
        print(f"jugnb: error: {_redacted(str(err), jugdir)}", file=sys.stderr)
        return 2


def _submit(args: argparse.Namespace, project: Project, jugdir: Jugdir, launcher: SlurmLauncher) -> int:
    submission = prepare(args.notebook, project, jugdir, options_from(args), launcher)
    if args.dry_run:
        print(submission.script, end="")
        return 0
    job_id = submit(submission, launcher, JobBook(jugdir.spec))
    request = submission.request
    print(f"Submitted job {job_id} ({request.options.jobs} array tasks); logs in {request.folder}")
    return 0


def _jugdir_spec(given: str | None) -> str:
    if given:
        return given
    from jug.options import default_options, read_configuration_file

    configured = getattr(read_configuration_file(default_options=default_options), "jugdir", None)
    return str(configured) if configured else "%(jugfile)s.jugdata"


def _redacted(text: str, jugdir: Jugdir | None) -> str:
    return redact_text(text, jugdir.spec) if jugdir is not None else text
