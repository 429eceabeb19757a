"""Inside a worker that is not detached: stop within ``shutdown_timeout`` seconds once its kernel goes.

Jupyter stops a kernel on its own schedule: ``shutdown_request``, SIGTERM half of ``shutdown_wait_time``
(5 s) later, SIGKILL at its end. The kernel may therefore never get to stop its workers itself, so each
worker enforces the bound on its own. Its clock starts when the pool signals ``SIGUSR2`` (the kernel is
shutting down or restarting) or when the worker sees its parent, the kernel, gone (it is re-parented); then:

- it drains: a task that finishes in time is stored, and the worker exits;
- ``grace`` seconds before the deadline it raises ``SystemExit`` in its main thread (its own SIGTERM
  handler), so that jug's ``finally`` releases the task's lock, as ``%jug stop --now`` does;
- just before the deadline, if it is still there (stuck in C code that ignores signals), it releases the
  locks it holds itself (on a file store those naming its pid; on redis the running task's) and kills its
  whole process group, children included.

Used only inside worker processes (:mod:`jugnb.workers.loop`); ``--detach`` workers never get here.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("jugnb.workers.loop")

#: What the pool sends a worker that is not detached when its kernel shuts down or restarts.
SHUTDOWN_SIGNAL = signal.SIGUSR2
#: Seconds between the clock's looks at its parent pid and its deadline.
TICK = 0.1
#: Seconds before the deadline at which the worker kills its process group if it is still there.
HARD_MARGIN = 0.3


class StopClock:
    """The deadline of a worker whose kernel is going (shared by a signal handler and a thread).

    Parameters
    ----------
    control : object
        The worker's :class:`jugnb.workers.env.Control`: ``request_drain(reason)`` is called at once.
    """

    def __init__(self, control: Any) -> None:
        self.control = control
        self.started: float | None = None  # time.monotonic() when the kernel was seen going
        self.reason = ""

    def start(self, reason: str, already: float = 0.0) -> None:
        """Start the clock (once), ``already`` seconds ago; safe from a signal handler."""
        if self.started is None:
            self.started, self.reason = time.monotonic() - already, reason
            self.control.request_drain(reason)

    def install(self) -> None:
        """Start the clock on :data:`SHUTDOWN_SIGNAL` (install before anything slow: its default kills)."""

        def shutting_down(_signum: int, _frame: Any) -> None:
            self.start("the kernel is shutting down")

        signal.signal(SHUTDOWN_SIGNAL, shutting_down)

    def watch(self, parent_pid: int, timeout: float, release: Callable[[], None]) -> threading.Thread:
        """Start the daemon thread that notices the kernel's end and enforces the deadline.

        Parameters
        ----------
        parent_pid : int
            The kernel's pid; a different parent pid means it is gone.
        timeout : float
            Seconds from the clock's start to the worker's end (``WorkerPool.shutdown_timeout``).
        release : callable
            Releases the locks this worker holds (called just before it kills itself).
        """
        thread = threading.Thread(
            target=self._run, args=(parent_pid, timeout, release), name="watch-kernel", daemon=True
        )
        thread.start()
        return thread

    def _run(self, parent_pid: int, timeout: float, release: Callable[[], None]) -> None:
        grace = min(2.0, timeout / 3)
        terminated = False
        while True:
            if self.started is None and os.getppid() != parent_pid:
                # Seen up to one tick late: count that tick against the deadline.
                self.start("the kernel is gone", already=TICK)
                log.warning("the kernel (pid %d) is gone: stopping within %.1f s", parent_pid, timeout)
            if self.started is not None:
                left = self.started + timeout - time.monotonic()
                if left <= HARD_MARGIN:
                    _kill_self(release)
                if left <= grace and not terminated:
                    terminated = True
                    log.warning("%s and the current task is not done: stopping it", self.reason)
                    os.kill(os.getpid(), signal.SIGTERM)  # SystemExit in the main thread: jug unlocks
            time.sleep(TICK)


def _kill_self(release: Callable[[], None]) -> None:
    log.error("still running at the deadline: releasing this worker's locks and killing it")
    try:
        release()
    except Exception:  # the kill must happen whatever the store says
        log.exception("could not release the locks")
    logging.shutdown()
    if os.getpgid(0) == os.getpid():  # our own group (the pool starts a new session): children go too
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)  # never another process's group


def release_own_locks(jugdir: str, held: Callable[[], Iterable[str]], started: float) -> None:
    """Release the locks this process still holds: those naming its pid, or (redis) those it took.

    Failed marks (``--keep-failed``) are kept.

    Parameters
    ----------
    jugdir : str
        The worker's jugdir.
    held : callable
        Returns the hashes of the redis locks this worker may hold (the running task's, and those its
        client took and did not delete).
    started : float
        This process's create time (seconds since the epoch): older locks under its pid are not its own.
    """
    from ..backends import select
    from .locks import release_locks_of

    backend = select(jugdir)
    if not backend.lock_names_owner:  # redis: its locks name no owner, so release what we know we hold
        for task_hash in held():
            backend.release_lock(task_hash)
        return
    release_locks_of(jugdir, os.getpid(), started=started, ended=time.time())
