"""What keeps ``cleanup`` from breaking a live run: the jugdir's leases, and a log of every removal.

``cleanup`` (``%jug cleanup`` and ``jugnb cleanup``) never removes a lock that a jugnb worker with a live
lease holds, and refuses to remove results while any live lease exists on the jugdir (a running worker may
be about to load one), unless forced. Every removal is appended to a log beside the jugdir:
``<jugdir>.jugnb/cleanup.log`` for a folder jugdir, the list ``jugnb:cleanup-log`` in the redis database.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from typing import Any

from ..backends import leases_of
from ..backends.leases import LeaseStore
from ..errors import JugnbError
from .lockowners import LockOwners


class CleanupGuard:
    """The jugdir's leases as ``cleanup`` sees them.

    Parameters
    ----------
    jugdir : str
        The jugdir spec (may hold a redis password: never shown).
    store : jug store
        The open store (a redis client is shared).
    """

    def __init__(self, jugdir: str, store: Any) -> None:
        self.jugdir = jugdir
        self.store = store
        try:
            self.leases: LeaseStore | None = leases_of(jugdir, store)
        except JugnbError:
            self.leases = None  # dict_store: one process, no workers to protect
        self.owners = LockOwners(jugdir, self.leases, store)

    def results_refusal(self, force: bool) -> str | None:
        """Say why removing results is refused now (jugnb workers run; not ``force``), else ``None``."""
        live = self.owners.live
        if not live or force:
            return None
        shown = ", ".join(f"{lease.worker} on {lease.host}" for lease in live[:3])
        more = f" and {len(live) - 3} more" if len(live) > 3 else ""
        return (
            f"Refusing to remove results: {len(live)} jugnb worker(s) run on this jugdir ({shown}{more}) "
            "and may be loading them. Use --locks-only or --failed-only (locks of running workers are "
            "kept), stop the workers first (%jug stop, or wait for `jugnb execute` to end), or --force."
        )

    def held_live(self, task_hash: str) -> bool:
        """Whether a jugnb worker with a live lease holds the lock of ``task_hash`` (leases re-read once)."""
        if self.owners.owner(task_hash).kind == "live":
            return True
        # A worker started after the snapshot: its lease exists before its first lock.
        self.owners = LockOwners(self.jugdir, self.leases, self.store)
        return self.owners.owner(task_hash).kind == "live"

    def log(self, removed_results: int, lock_names: Counter[str], mode: str) -> None:
        """Append one line saying what was removed, by whom, to the jugdir's cleanup log."""
        named = ", ".join(f"{name} ×{count}" for name, count in sorted(lock_names.items()))
        line = (
            f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} cleanup {mode} by pid {os.getpid()} on "
            f"{socket.gethostname()}: {removed_results} results, {sum(lock_names.values())} locks"
            + (f" ({named})" if named else "")
        )
        if self.leases is not None:
            self.leases.append_cleanup_log(line)


def removal_lines(removal: Any, mode: str, jug_words: bool = False) -> list[str]:
    """Say what a cleanup removed (or would remove), with the locks' task names and counts.

    Parameters
    ----------
    removal : jugnb.session.tasks.Removal
    mode : str
        The cleanup mode (``all``, ``keep-locks``, ``locks-only``, ``failed-only``).
    jug_words : bool
        Word the counts as ``jug cleanup`` does (``Removed N objects``), for the command line.
    """
    verb = "Would remove" if removal.dry_run else "Removed"
    lines = []
    unused = removal.results.get("(unused results)")
    if unused is not None:
        lines.append(f"{verb} {unused} " + ("objects" if jug_words else "unused results."))
    if mode != "keep-locks":
        kind = ("failure " if jug_words else "failed-task ") if mode == "failed-only" else ""
        end = "" if jug_words else "."
        listed = removal.dry_run and removal.lock_names  # what was removed goes to the cleanup log
        lines.append(f"{verb} {removal.locks} {kind}locks" + (":" if listed else end))
        if listed:
            width = max(len(n) for n in removal.lock_names)
            lines += [f"  {name:<{width}}  {n:>6}" for name, n in sorted(removal.lock_names.items())]
        if removal.kept:
            lines.append(f"Kept {removal.kept} locks held by running jugnb workers (live leases).")
    if removal.refused:
        lines.append("Nothing was removed (dry run). A real cleanup would be refused now: " + removal.refused)
    return lines
