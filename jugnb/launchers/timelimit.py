"""Time-limit-aware task start: a worker in a SLURM job starts no task that cannot finish before the limit.

A task cut off by the time limit wastes its CPU time and shows as crashed. So a worker that runs inside a
SLURM job (``SLURM_JOB_ID`` set) asks SLURM once for the job's time left (``squeue -o %L``), and before
each round of tasks leaves out those whose task name's recorded duration (the median of the successful
runs in the jugdir's records) exceeds the time that remains. When nothing fits, the worker ends as it does
when nothing is left that it could run: cleanly, and its summary lists the tasks left.

Tasks without a recorded duration always start: nothing says they will not fit.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from typing import Any

from .slurm import COMMAND_TIMEOUT, _elapsed_seconds

log = logging.getLogger(__name__)


def job_deadline(environ: dict[str, str] | None = None, squeue: str = "squeue") -> float | None:
    """Return when this process's SLURM job reaches its time limit (seconds since the epoch), if it has one.

    ``None`` outside SLURM, for a job without a limit, or when ``squeue`` cannot say.
    """
    env = os.environ if environ is None else environ
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        result = subprocess.run(
            [squeue, "-h", "-j", job, "-o", "%L"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        log.warning("cannot ask squeue for job %s's time left: every task will start", job)
        return None
    left = result.stdout.strip()
    if result.returncode != 0 or not left or not left[0].isdigit():  # UNLIMITED, NOT_SET, INVALID
        return None
    return time.time() + _elapsed_seconds(left)


class TimeBudget:
    """Which tasks still fit before a deadline.

    Parameters
    ----------
    deadline : float or None
        The job's end (seconds since the epoch); ``None``: everything fits.
    durations : dict of str to float
        Typical seconds per task name (:func:`jugnb.status.records.typical_durations`).
    """

    def __init__(self, deadline: float | None, durations: dict[str, float]) -> None:
        self.deadline = deadline
        self.durations = durations
        self.skipped: set[str] = set()

    def fitting(self, tasks: list[Any], now: float | None = None) -> list[Any]:
        """Return the tasks of ``tasks`` whose typical duration fits in the time left (names them once)."""
        if self.deadline is None:
            return tasks
        left = self.deadline - (time.time() if now is None else now)
        kept = []
        for task in tasks:
            needs = self.durations.get(task.name)
            if needs is None or needs <= left:
                kept.append(task)
            elif task.name not in self.skipped:
                self.skipped.add(task.name)
                log.warning(
                    "not starting %s: it takes about %.0f s, and the job's time limit is %.0f s away",
                    task.name, needs, left,
                )  # fmt: skip
        return kept
