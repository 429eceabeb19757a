"""``%jug`` subcommands for batch jobs: submit, jobs, cancel, scale (SLURM, through jugnb.launchers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ..launchers.jobs import JobBook, JobRow, JobWatcher, jobs_text, live_job_ids
from ..launchers.slurm import SlurmLauncher
from ..launchers.submit import SubmitOptions, add_submit_arguments, options_from, prepare, submit
from .commands import Command
from .views import preformatted


def launcher_of(magics: Any) -> SlurmLauncher:
    """Return the kernel's SLURM launcher (configurable with ``%config SlurmLauncher``)."""
    launcher: SlurmLauncher | None = getattr(magics, "_launcher", None)
    if launcher is None:
        launcher = magics._launcher = SlurmLauncher(parent=magics)
        magics.shell.configurables.append(launcher)
    return launcher


def watcher_of(magics: Any) -> JobWatcher:
    """Return the job watcher of the session's jugdir (a new one when the jugdir changed)."""
    jugdir = magics.session.jugdir
    cached = getattr(magics, "_job_watcher", None)
    if cached is None or cached[0] != jugdir.spec:
        if not jugdir.shareable:
            raise UsageError(jugdir.unshareable_reason() + " No batch job can use it.")
        watcher = JobWatcher(JobBook(jugdir.spec), launcher=launcher_of(magics), parent=magics)
        magics.shell.configurables.append(watcher)
        cached = magics._job_watcher = (jugdir.spec, watcher)
    watcher_: JobWatcher = cached[1]
    return watcher_


def submit_jobs(magics: Any, options: SubmitOptions, *, dry_run: bool) -> str | None:
    """Check, then submit ``options.jobs`` array tasks (or print the script); return the job id."""
    notebook, source = magics.notebook_setting()
    if notebook is None:
        msg = (
            f"%jug submit needs the notebook's path ({source}): the nodes run the saved notebook. "
            "Set it with %config JugMagics.notebook = 'NAME.ipynb'."
        )
        raise UsageError(msg)
    session = magics.session
    current = session.current_jugfile()
    launcher = launcher_of(magics)
    submission = prepare(
        Path(notebook),
        session.project,
        session.jugdir,
        options,
        launcher,
        kernel_cells=[f.body for f in current.fragments] if current is not None else None,
    )
    if dry_run:
        print(submission.script, end="")
        return None
    job_id = submit(submission, launcher, watcher_of(magics).book)
    print(f"Submitted job {job_id} ({options.jobs} array tasks); `%jug jobs` shows them.")
    return job_id


class SubmitCommand(Command):
    """Submit the notebook's workers to SLURM as a job array; each array task runs jugnb execute."""

    name = "submit"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        add_submit_arguments(parser)

    def run(self, magics: Any, args: Any) -> str | None:
        return submit_jobs(magics, options_from(args), dry_run=args.dry_run)


class JobsCommand(Command):
    """Show the submitted jobs: array task, state (pending reason), node, elapsed time, log tail."""

    name = "jobs"

    def run(self, magics: Any, args: Any) -> Any:
        return preformatted(jobs_text(watcher_of(magics).rows(refresh=True)))


class CancelCommand(Command):
    """Cancel the notebook's unfinished jobs, or the JOBIDs given (one scancel)."""

    name = "cancel"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("job_ids", nargs="*", metavar="JOBID", help="Jobs to cancel (default: all).")

    def run(self, magics: Any, args: Any) -> None:
        watcher = watcher_of(magics)
        targets = args.job_ids or live_job_ids(watcher.rows(refresh=True))
        if not targets:
            print("No unfinished jobs to cancel.")
            return
        watcher.launcher.cancel(targets)
        print(f"Cancelled {', '.join(targets)}.")


def pending_tasks(rows: list[JobRow]) -> list[str]:
    """Pending array tasks as scancel names them (``123_4``), newest first."""
    names = [f"{r.state.job_id}_{r.state.array_index}" for r in rows if r.state.state == "PENDING"]
    return list(reversed(names))


class ScaleCommand(Command):
    """Keep N array tasks pending or running: submit more, or cancel pending ones."""

    name = "scale"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("target", type=int, help="The number of array tasks wanted.")
        add_submit_arguments(parser, jobs=False)

    def run(self, magics: Any, args: Any) -> None:
        if args.target < 0:
            raise UsageError("%jug scale N: N must be 0 or more.")
        watcher = watcher_of(magics)
        rows = watcher.rows(refresh=True)
        live = [r for r in rows if r.state.state in ("PENDING", "RUNNING") and r.state.array_index.isdigit()]
        live += [r for r in rows if r.state.state == "PENDING" and not r.state.array_index.isdigit()]
        count = sum(_task_count(r.state.array_index) for r in live)
        if args.target > count:
            args.jobs = args.target - count
            submit_jobs(magics, options_from(args), dry_run=args.dry_run)
            return
        excess = count - args.target
        pending = pending_tasks(rows)
        chosen = pending[:excess]
        if chosen and not args.dry_run:
            watcher.launcher.cancel(chosen)
        running = excess - len(chosen)
        note = f"; {running} running array tasks stay (%jug cancel JOBID stops them)" if running else ""
        verb = "Would cancel" if args.dry_run else "Cancelled"
        print(
            f"{count} array tasks live. "
            + (f"{verb} {', '.join(chosen)}{note}." if excess else "Nothing to do.")
        )


def _task_count(index: str) -> int:
    """Array tasks in ``"3"``, ``"[2-5]"``, ``"[1,4-6]%2"``."""
    total = 0
    for part in index.strip("[]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit():
            total += int(high) - int(low) + 1 if high.isdigit() else 1
    return total
