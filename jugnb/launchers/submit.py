"""Submit a notebook's graph to a batch system: checks, job script, jugrc for redis, remembered job.

Shared by ``%jug submit`` and ``jugnb submit NB.ipynb``. Before anything is written or submitted:

- the saved notebook must define the jugfile the kernel ran (the nodes export the ``.ipynb`` file, so an
  unsaved edit would give them other code and other task hashes);
- the jugdir must be reachable from the nodes: never a ``dict_store``, and not a node-local folder (under
  the system temporary folder) or a redis server on localhost, unless ``force``.

A redis jugdir's password reaches the array tasks through a jugrc file with mode 0600 beside the script,
named with ``--jugrc``: never in the script, the command line or the environment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..backends import select
from ..backends.redis_url import RedisURL
from ..backends.spec import Jugdir
from ..errors import JugnbError
from ..notebook.export import export_notebook
from ..notebook.project import Project
from .base import JobRequest, Launcher, SubmitOptions
from .jobs import JobBook, JobEntry

_NODE_LOCAL = ("/dev/shm", "/run")
_UNSAVED = (
    "The saved notebook {notebook} does not define the jugfile this kernel ran: the nodes run the saved "
    "file, so they would compute other code (and other task hashes). Save the notebook, then submit again."
)
_LOCAL_DIR = (
    "The jugdir {jugdir} is under {base}, which is local to each machine: the cluster's nodes would each "
    "write their own results where neither they nor this kernel share them. Use a jugdir on a shared "
    "filesystem (%config JugMagics.jugdir, or a jugrc's [main] jugdir), or pass --force on a one-node "
    "cluster."
)
_LOCAL_REDIS = (
    "The jugdir {jugdir} is a redis server on this machine's loopback address, which the cluster's nodes "
    "cannot reach. Use the server's network name in the jugdir, or pass --force on a one-node cluster."
)


@dataclass(frozen=True)
class Submission:
    """A prepared submission: the request, its script, and where it goes."""

    request: JobRequest
    script: str
    jugrc: str | None  # the jugrc's content (redis), written with mode 0600
    project: Project

    @property
    def script_path(self) -> Path:
        """Where the script is written."""
        return self.request.folder / "job.sh"


def add_submit_arguments(parser: argparse.ArgumentParser, *, jobs: bool = True) -> None:
    """Declare the options of ``%jug submit`` and ``jugnb submit`` (one list, so they cannot drift apart).

    ``jobs=False`` leaves out ``--jobs`` (``%jug scale`` computes it).
    """
    if jobs:
        parser.add_argument("--jobs", type=int, required=True, help="Number of array tasks to submit.")
    parser.add_argument(
        "--cpus-per-task", type=int, default=1, help="CPUs per array task; each runs that many workers."
    )
    parser.add_argument("--mem", help="Memory per array task (sbatch --mem, e.g. 4G).")
    parser.add_argument("--time", help="Time limit per array task (minutes, or [D-]HH:MM:SS).")
    parser.add_argument("--partition", help="The partition (queue) to submit to.")
    parser.add_argument("--account", help="The account to charge.")
    parser.add_argument(
        "--sbatch-option",
        action="append",
        default=[],
        metavar="OPT",
        help="A further scheduler option (qos=debug, or --sbatch-option=--qos=debug); repeatable.",
    )
    parser.add_argument("--dry-run", action="store_true", help="Print the job script; submit nothing.")
    parser.add_argument(
        "--force",
        action="store_true",
        help="Submit although the jugdir is node-local (under the temporary folder, or redis on localhost).",
    )


def options_from(args: argparse.Namespace) -> SubmitOptions:
    """Return the :class:`SubmitOptions` of parsed :func:`add_submit_arguments` options."""
    return SubmitOptions(
        jobs=args.jobs,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        time=args.time,
        partition=args.partition,
        account=args.account,
        sbatch_options=tuple(o if o.startswith("-") else f"--{o}" for o in args.sbatch_option),
        force=args.force,
    )


def check_jugdir(jugdir: Jugdir, *, force: bool) -> None:
    """Refuse a jugdir the nodes cannot share.

    Raises
    ------
    JugnbError
        For a ``dict_store`` (always), a folder under the system temporary folder, ``/dev/shm`` or
        ``/run``, or a redis server on localhost (unless ``force``).
    """
    backend = select(jugdir.spec)
    if not backend.supports_workers:
        msg = backend.unshareable_reason() + " Use a folder or a redis jugdir to run on a cluster."
        raise JugnbError(msg)
    if force:
        return
    if jugdir.path is None:  # a shared store without a folder: a redis server
        host = RedisURL.parse(jugdir.spec).host
        if host in ("localhost", "::1") or host.startswith("127."):
            raise JugnbError(_LOCAL_REDIS.format(jugdir=jugdir))
        return
    path = os.path.realpath(str(jugdir.path))
    for base in (os.path.realpath(tempfile.gettempdir()), "/tmp", "/var/tmp", *_NODE_LOCAL):  # noqa: S108
        if path == base or path.startswith(base.rstrip("/") + "/"):
            raise JugnbError(_LOCAL_DIR.format(jugdir=jugdir, base=base))


def prepare(
    notebook: Path,
    project: Project,
    jugdir: Jugdir,
    options: SubmitOptions,
    launcher: Launcher,
    *,
    kernel_cells: Sequence[str] | None = None,
) -> Submission:
    """Check everything and build the job script; nothing is written.

    Parameters
    ----------
    notebook : Path
        The saved notebook.
    project : Project
        Its project (module name, state folder).
    jugdir : Jugdir
        The jugdir the kernel (or the command line) uses.
    options : SubmitOptions
    launcher : Launcher
    kernel_cells : sequence of str, optional
        The bodies of the ``%%jugfile`` cells the kernel ran, in order; the saved notebook's must be the
        same (the generated comments, which name cell ids, may differ).

    Raises
    ------
    JugnbError
        For an unsaved notebook, a jugdir the nodes cannot share, or a bad option.
    """
    if options.jobs < 1 or options.cpus_per_task < 1:
        raise JugnbError("--jobs and --cpus-per-task must be at least 1.")
    check_jugdir(jugdir, force=options.force)
    saved = [fragment.body for fragment in export_notebook(notebook).fragments]
    if kernel_cells is not None and saved != list(kernel_cells):
        raise JugnbError(_UNSAVED.format(notebook=notebook))
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
    folder = project.state_dir / "jobs" / f"{project.module}-{stamp}"
    jugrc = None
    if jugdir.path is None:  # redis: the URL may hold a password
        jugdir_args: tuple[str, ...] = ("--jugrc", str(folder / "jugrc"))
        jugrc = (
            f"# written by jugnb submit: the jugdir of this job (mode 0600)\n[main]\njugdir = {jugdir.spec}\n"
        )
    else:
        jugdir_args = ("--jugdir", jugdir.spec)
    request = JobRequest(
        notebook=notebook.resolve(),
        module=project.module,
        jugdir_args=jugdir_args,
        folder=folder,
        options=options,
    )
    return Submission(request, launcher.script(request), jugrc, project)


def submit(submission: Submission, launcher: Launcher, book: JobBook) -> str:
    """Write the script (and the 0600 jugrc), submit it, remember the job; return its id.

    When the submission fails, the job's folder (script, jugrc) is removed again.

    Raises
    ------
    LauncherError
        If the batch system refuses the script.
    OSError
        If the state folder cannot be written.
    """
    request = submission.request
    submission.project.ensure_state_dir()
    request.folder.mkdir(parents=True)  # new (a stamp to the nanosecond): this submission's own
    try:
        if submission.jugrc is not None:
            descriptor = os.open(request.folder / "jugrc", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(submission.jugrc)
        submission.script_path.write_text(submission.script, encoding="utf-8")
        job_id = launcher.submit(submission.script_path)
    except BaseException:
        # Nothing was submitted: a script no job runs would only mislead (`--dry-run` prints it).
        shutil.rmtree(request.folder, ignore_errors=True)
        raise
    book.add(
        JobEntry(
            job_id,
            launcher.kind,
            str(request.notebook),
            request.module,
            request.options.jobs,
            str(request.folder),
            time.time(),
        )
    )
    return job_id
