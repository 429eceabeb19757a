"""The process around a worker's loop: drain requests, signals, the kernel's death, the pointer file.

Used only inside worker processes (:mod:`jugnb.workers.loop`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("jugnb.workers.loop")

#: Exit code of a worker that stopped because its store (a redis server) stayed unreachable.
EXIT_STORE_LOST = 3


class Control:
    """Why the worker should stop after its current task, if it should (set by signals and threads)."""

    def __init__(self) -> None:
        self.draining: str | None = None

    def request_drain(self, reason: str) -> None:
        """Finish the current task, then exit (safe from a signal handler or another thread)."""
        if self.draining is None:
            self.draining = reason


def read_pointer(pointer: Path) -> str:
    """Return the snapshot path that the pointer file names.

    Raises
    ------
    FileNotFoundError
        If there is no pointer file (the kernel has not written a jugfile yet).
    """
    # The file holds the path's bytes as the filesystem has them (see NotebookSession.load): decoded as
    # this process decodes file names, it names the file under any locale.
    return os.fsdecode(pointer.read_bytes().strip())


def stat_key(path: Path) -> tuple[int, int, int] | None:
    """Return what changes when ``path`` is replaced or rewritten (inode, mtime, size); ``None`` if absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def install_signals(control: Control) -> None:
    """SIGUSR1 drains, SIGTERM exits through ``SystemExit`` (so jug unlocks), SIGINT is ignored."""

    def drain(_signum: int, _frame: Any) -> None:
        control.request_drain("asked to drain")

    def terminate(_signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGUSR1, drain)
    signal.signal(signal.SIGTERM, terminate)
    # Interrupts are for the kernel; only the pool stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def read_jugdir_from_stdin() -> str:
    """Return the first line of stdin: the pool hands the jugdir over this way.

    The command line is readable by every local user and the environment by the user's other processes
    (``ps e``); a redis jugdir may hold a password, so it goes through a pipe that only we read.
    """
    # Bytes as file names have them (os.fsencode on the other side): right under any locale.
    return os.fsdecode(sys.stdin.buffer.readline().rstrip(b"\n"))


def put_jugdir_on_stdin(jugdir: str) -> None:
    """Make stdin a pipe holding ``jugdir``, for the fresh interpreter that ``os.execv`` starts next."""
    read_end, write_end = os.pipe()
    os.write(write_end, os.fsencode(jugdir) + b"\n")  # far below a pipe's buffer: never blocks
    os.close(write_end)
    os.dup2(read_end, 0)  # dup2 makes fd 0 inheritable across exec
    os.close(read_end)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the worker's command line (``[options] -- [jug execute options]``)."""
    parser = argparse.ArgumentParser(prog="python -m jugnb.workers.loop")
    parser.add_argument("--state-dir", required=True, help="jugnb's state folder (holds the pointer file)")
    parser.add_argument("--module", required=True, help="module name of the jugfile")
    parser.add_argument("--jugdir", help="jugdir string, absolute for file stores")
    parser.add_argument(
        "--jugdir-stdin",
        action="store_true",
        help="read the jugdir from the first line of stdin (keeps a redis password out of the process list "
        "and the environment)",
    )
    parser.add_argument(
        "--store-retry", type=float, default=60.0, help="seconds to retry an unreachable redis server"
    )
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--heartbeat", required=True, help="heartbeat file")
    parser.add_argument("--log", default=None, help="this worker's log file (stdout and stderr)")
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds to stop in once the kernel (--parent-pid) shuts down or is gone",
    )
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds between idle checks")
    parser.add_argument("--idle-timeout", type=float, default=1800.0, help="seconds (see module doc)")
    parser.add_argument(
        "--lease-interval", type=float, default=None, help="seconds between lease renewals (jugrc, 10)"
    )
    parser.add_argument(
        "--lease-timeout", type=float, default=None, help="seconds until a silent lease expires (default: 60)"
    )
    parser.add_argument("--summary-file", default=None, help="write the task counts here, not to stdout")
    parser.add_argument("--pointer", default=None, help="pointer file (default <state-dir>/<module>.current)")
    parser.add_argument("execute_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.jugdir_stdin:
        args.jugdir = read_jugdir_from_stdin()
    if not args.jugdir:
        parser.error("give --jugdir, or --jugdir-stdin and the jugdir on stdin")
    args.argv = list(argv)
    if args.execute_args[:1] == ["--"]:
        args.execute_args = args.execute_args[1:]
    return args
