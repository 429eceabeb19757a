"""``%jug`` subcommands for batch jobs: submit, jobs, cancel, scale (SLURM, through jugnb.launchers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ..backends import select
from ..launchers.base import SubmitOptions
from ..launchers.jobs import JobBook, JobRow, JobWatcher, crash_lines, jobs_text, live_job_ids
from ..launchers.slurm import SlurmLauncher
from ..launchers.submit import add_submit_arguments, options_from, prepare, submit
from .command import Command
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
        backend = select(jugdir.spec)
        if not backend.supports_workers:
            raise UsageError(backend.unshareable_reason() + " No batch job can use it.")
        watcher = JobWatcher(JobBook(jugdir.spec), launcher=launcher_of(magics), parent=magics)
        magics.shell.configurables.append(watcher)
        cached = magics._job_watcher = (jugdir.spec, watcher)
    watcher_: JobWatcher = cached[1]
    return watcher_


def submit_jobs(magics: Any, options: SubmitOptions, *, dry_run: bool) -> tuple[str | None, str]:
    """Check, then submit ``options.jobs`` array tasks; return the job id and a line to show.

    With ``dry_run`` nothing is submitted, and the line is the job script.
    """
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
        return None, submission.script
    job_id = submit(submission, launcher, watcher_of(magics).book)
    magics._submit_options = options  # the panel's scale button submits more of the same
    return job_id, f"Submitted job {job_id} ({options.jobs} array tasks); `%jug jobs` shows them."


def cancel_jobs(magics: Any, job_ids: list[str] | None = None) -> str:
    """Cancel ``job_ids`` (default: every unfinished job) with one scancel; return a line to show."""
    watcher = watcher_of(magics)
    targets = job_ids or live_job_ids(watcher.rows(refresh=True))
    if not targets:
        return "No unfinished jobs to cancel."
    watcher.launcher.cancel(targets)
    return f"Cancelled {', '.join(targets)}."


def scale_jobs(magics: Any, target: int, options: SubmitOptions, *, dry_run: bool = False) -> str:
    """Keep ``target`` array tasks pending or running: submit more, or cancel pending ones (newest first).

    Running array tasks are never cancelled here: they may be in the middle of a task.
    """
    if target < 0:
        raise UsageError("%jug scale N: N must be 0 or more.")
    watcher = watcher_of(magics)
    rows = watcher.rows(refresh=True)
    count = sum(_task_count(r.state.array_index) for r in rows if r.state.state in ("PENDING", "RUNNING"))
    if target > count:
        more = dataclasses.replace(options, jobs=target - count)
        return submit_jobs(magics, more, dry_run=dry_run)[1]
    excess = count - target
    chosen = pending_tasks(rows)[:excess]
    if chosen and not dry_run:
        watcher.launcher.cancel(chosen)
    running = excess - len(chosen)
    note = f"; {running} running array tasks stay (%jug cancel JOBID stops them)" if running else ""
    verb = "Would cancel" if dry_run else "Cancelled"
    return f"{count} array tasks live. " + (
        f"{verb} {', '.join(chosen)}{note}." if excess else "Nothing to do."
    )


def jobs_panel(magics: Any) -> Any:
    """Return a started :class:`~jugnb.widgets.jobs.JobsPanel` on the jugdir's jobs."""
    from ..widgets.jobs import JobsPanel

    watcher = watcher_of(magics)
    return JobsPanel(
        watcher.rows,
        on_cancel=lambda: cancel_jobs(magics),
        on_scale=lambda n: scale_jobs(magics, n, getattr(magics, "_submit_options", SubmitOptions(jobs=1))),
        interval=watcher.poll_interval,
    ).start()


def add_jobs_section(magics: Any, panel: Any) -> None:
    """Add the jobs section to the live progress ``panel`` when the jugdir has remembered jobs."""
    if not select(magics.session.jugdir.spec).supports_workers or not watcher_of(magics).book.entries():
        return
    section = jobs_panel(magics)
    panel.children = (*panel.children, section)
    panel.on_close(section.stop)


class SubmitCommand(Command):
    """Submit the notebook's workers to SLURM as a job array; each array task runs jugnb execute."""

    name = "submit"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        add_submit_arguments(parser)

    def run(self, magics: Any, args: Any) -> str | None:
        job_id, text = submit_jobs(magics, options_from(args), dry_run=args.dry_run)
        print(text if job_id is not None else text.rstrip("\n"))
        return job_id


class JobsCommand(Command):
    """Show the submitted jobs: array task, state (pending reason), node, elapsed time, log tail."""

    name = "jobs"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument(
            "--watch",
            action="store_true",
            help="Show a live table (every JobWatcher.poll_interval seconds) with cancel and scale buttons.",
        )

    def run(self, magics: Any, args: Any) -> Any:
        if args.watch:
            return jobs_panel(magics)
        watcher = watcher_of(magics)
        text = jobs_text(watcher.rows(refresh=True))
        crashes = crash_lines(watcher.take_crashes())
        return preformatted(f"{text}\n{crashes}" if crashes else text)


class CancelCommand(Command):
    """Cancel the notebook's unfinished jobs, or the JOBIDs given (one scancel)."""

    name = "cancel"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("job_ids", nargs="*", metavar="JOBID", help="Jobs to cancel (default: all).")

    def run(self, magics: Any, args: Any) -> None:
        print(cancel_jobs(magics, args.job_ids))


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
        args.jobs = 1  # replaced by the number of array tasks missing
        print(scale_jobs(magics, args.target, options_from(args), dry_run=args.dry_run))


def _task_count(index: str) -> int:
    """Array tasks in ``"3"``, ``"[2-5]"``, ``"[1,4-6]%2"``."""
    total = 0
    for part in index.strip("[]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit():
            total += int(high) - int(low) + 1 if high.isdigit() else 1
    return total
