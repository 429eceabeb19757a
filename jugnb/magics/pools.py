"""The kernel's worker pool, for the ``%jug`` subcommands that start, watch or retry workers."""

from __future__ import annotations

from typing import Any

from ..workers.pool import NotRunning, WorkerPool


def pool_of(magics: Any) -> WorkerPool | None:
    """Return this kernel's worker pool: the one it started, or one re-attached from the state file."""
    pool: WorkerPool | None = getattr(magics, "_pool", None)
    if pool is None:
        session = magics.session
        try:
            pool = WorkerPool.reattach(
                session.project.state_dir, session.project.module, parent=magics, jugdir=session.jugdir.spec
            )
        except NotRunning:
            return None
        if pool.leftover():
            _stop_leftovers(pool)
            return None
        magics._pool = pool
        magics.shell.configurables.append(pool)
        print(f"Re-attached to {sum(w.alive for w in pool.workers())} running workers of {pool.module}.")
    return pool


def _stop_leftovers(pool: WorkerPool) -> None:
    """Stop the workers a previous kernel started without ``--detach`` (they are stopping on their own)."""
    pids = [w.pid for w in pool.workers() if w.alive]
    print(
        f"{_plural(len(pids), 'worker')} (pids {', '.join(map(str, pids))}) of a previous kernel (pid "
        f"{pool.kernel_pid}, gone) are still stopping: they were not started with --detach, so a kernel "
        "restart ends them. Stopping them now and releasing their locks; `%jug execute` starts new ones."
    )
    pool.stop(now=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
