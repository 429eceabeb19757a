"""Starting one worker process: its id and log file, its command line, and the process itself.

The worker runs ``python -m jugnb.workers.loop`` in its own session (process group), so that signals reach
it and its children only. The jugdir reaches it through a pipe on stdin, never argv or the environment:
a redis URL may hold a password, every local user can read a command line, and the user's processes can
read each other's environment.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..backends.spec import child_environment, with_env_password


def claim_worker_id(folder: Path, pool_id: str, first_index: int) -> tuple[str, Path]:
    """Pick the first worker id ``<pool_id>.<n>`` (``n >= first_index``) whose log file does not exist yet.

    The log file is created exclusively, so two pool objects adding workers to one state folder at the
    same time never share an id.

    Returns
    -------
    worker_id : str
    log : Path
        ``<folder>/<worker_id>.log``, created empty.
    """
    folder.mkdir(parents=True, exist_ok=True)
    index = first_index
    while True:
        worker_id = f"{pool_id}.{index}"
        log = folder / f"{worker_id}.log"
        try:
            os.close(os.open(log, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            index += 1
            continue
        return worker_id, log


def parse_jobs(text: str) -> int:
    """Return the number of worker processes ``-j/--jobs`` names (``%jug execute`` and ``jugnb execute``).

    Raises
    ------
    ValueError
        When ``text`` is not a positive integer; the message names the option and the value.
    """
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"-j/--jobs takes a number of worker processes (1 or more), not {text!r}.")
    return int(text)


def worker_command(options: Sequence[str], execute_args: Sequence[str]) -> list[str]:
    """Return the command line of a worker: jugnb's worker options, ``--``, then jug execute's.

    A parent in Python's UTF-8 mode (``jugnb`` under a C locale) passes the mode on, so that the worker
    decodes file names as its parent did.
    """
    utf8 = ["-X", "utf8"] if sys.flags.utf8_mode else []
    worker = [sys.executable, *utf8, "-m", "jugnb.workers.loop"]
    return [*worker, *options, "--jugdir-stdin", "--", *execute_args]


def launch_worker(
    command: Sequence[str], *, jugdir: str, cwd: str | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a worker with ``jugdir`` on its stdin and no ``$JUGNB_REDIS_PASSWORD``; return at once.

    Parameters
    ----------
    command : sequence of str
        From :func:`worker_command`.
    jugdir : str
        Written to the worker's stdin (it may hold a password).
    cwd : str, optional
        Working directory (a kernel's, so that relative paths mean the same); default: this process's.
    log : Path, optional
        A kernel's worker: stdout and stderr appended here, in its own session. Without it (the command
        line's workers) the worker shares this process's output and process group.
    """
    with contextlib.ExitStack() as stack:
        out = None if log is None else stack.enter_context(open(log, "ab"))
        popen = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=None if log is None else subprocess.STDOUT,
            start_new_session=log is not None,
            env=child_environment(PYTHONUNBUFFERED="1"),  # never $JUGNB_REDIS_PASSWORD: see below
        )
    if popen.stdin is not None:  # always: stdin=PIPE
        with contextlib.suppress(BrokenPipeError), popen.stdin:  # gone already: its waiter reports it
            popen.stdin.write(os.fsencode(with_env_password(jugdir)) + b"\n")  # read back by os.fsdecode
    return popen
