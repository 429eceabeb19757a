"""How a worker with nothing to run waits: could anyone still make progress, and sleeping until a change.

A waiting worker rescans at least every :data:`MAX_RESCAN_GAP` seconds (pick-up within 1 s even when the
change token misses a change, e.g. NFS attribute caching), but never spends more than
1/:data:`RESCAN_COST_RATIO` of a core on rescans of big graphs. Between rescans it sleeps in ticks,
waking as soon as the backend's change token moves (:meth:`jugnb.backends.Backend.change_token`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .locks import Holder, holder

MAX_RESCAN_GAP = 1.0
RESCAN_COST_RATIO = 50.0
MAX_RESCAN_WAIT = 30.0
#: Ticks before deciding, a second time, that nothing can move any more.
CONFIRM_TICKS = 3
# A change token read this close to the change it reflects may share its timestamp with a change that
# follows (filesystem timestamps are coarse): rescan once more after the next tick.
_FRESH_NS = 20_000_000


def rescan_gap(scan_cost: float) -> float:
    """Return the seconds until a waiting worker rescans with no change seen (one rescan: ``scan_cost`` s)."""
    return min(MAX_RESCAN_WAIT, max(MAX_RESCAN_GAP, RESCAN_COST_RATIO * scan_cost))


def unfinished(tasks: list[Any], state: Any) -> list[Any]:
    """Tasks without a result that this process has not given up on (``state.failed``)."""
    return [t for t in tasks if t.hash() not in state.failed and not t.can_load()]


def with_unfinished_dependencies(tasks: list[Any]) -> list[Any]:
    """``tasks`` and, transitively, their dependencies that have no result yet."""
    seen = {id(t) for t in tasks}
    out, stack = list(tasks), list(tasks)
    while stack:
        for dep in stack.pop().dependencies():
            if id(dep) not in seen and not dep.can_load():
                seen.add(id(dep))
                out.append(dep)
                stack.append(dep)
    return out


def progress_possible(waiting: list[Any], mine: list[Any], barrier: bool, state: Any, jugdir: str) -> Holder:
    """Whether what ``waiting`` needs may still be computed.

    Parameters
    ----------
    waiting : list of Task
        The tasks waited for (all unfinished tasks of the import at a barrier).
    mine : list of Task
        The tasks this worker may run itself (its ``--name``/``--pattern`` selection).
    barrier : bool
        The import stops at a barrier: only ``waiting`` itself matters, not its dependencies.
    state : jug ExecutionState
        ``state.failed`` holds the tasks this process gave up on.
    jugdir : str

    Returns
    -------
    Holder
        ``LIVE``: a live process of this host runs one of those tasks, or this worker can run one
        (its lock was just released). ``UNKNOWN``: only processes that cannot be checked (other
        hosts, redis, other workers' tasks outside ``--name``) might. ``DEAD``: nobody will.
    """
    ours = {id(t) for t in mine}
    verdict = Holder.DEAD
    for t in waiting if barrier else with_unfinished_dependencies(waiting):
        held = holder(t, jugdir)
        if held is Holder.LIVE:
            return Holder.LIVE
        if held is Holder.FREE and t.hash() not in state.failed and t.can_run():
            if id(t) in ours:
                return Holder.LIVE
            verdict = Holder.UNKNOWN
        elif held is Holder.UNKNOWN:
            verdict = Holder.UNKNOWN
    return verdict


def wait_for_change(
    token_now: Callable[[], tuple[int, ...]],
    token: tuple[int, ...],
    gap: float,
    tick: float,
    check_control: Callable[[], None],
) -> bool:
    """Sleep in ticks until the change token differs from ``token`` or ``gap`` seconds pass.

    Parameters
    ----------
    token_now : callable
        Reads the current change token.
    token : tuple of int
        The token read before the last scan.
    gap, tick : float
        Seconds to wait at most, and between two reads.
    check_control : callable
        Called every tick; raises to stop waiting (drain, reload).

    Returns
    -------
    bool
        Whether a change was seen (or the token was too fresh to trust).
    """
    deadline = time.monotonic() + gap
    fresh = token[0] > time.time_ns() - _FRESH_NS
    while True:
        time.sleep(tick)
        check_control()
        if fresh or token_now() != token:
            return True
        if time.monotonic() >= deadline:
            return False
