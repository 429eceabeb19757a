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
        magics._pool = pool
        magics.shell.configurables.append(pool)
        print(f"Re-attached to {sum(w.alive for w in pool.workers())} running workers of {pool.module}.")
    return pool
