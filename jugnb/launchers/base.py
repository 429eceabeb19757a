"""The launcher interface: submit a notebook's workers to a batch system, read job states, cancel jobs.

One :class:`Launcher` subclass per batch system (SLURM now; PBS, LSF or SGE can follow), in the spirit of
ipyparallel's launchers. A launcher knows nothing of notebooks or kernels: it gets a :class:`JobRequest`
(what to run, where, with what resources) and returns job ids and :class:`JobState` rows. What the jobs
are for, and where they are remembered, is :mod:`jugnb.launchers.submit` and :mod:`jugnb.launchers.jobs`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from traitlets.config import LoggingConfigurable

from ..errors import JugnbError

#: Job states that will not change any more.
FINISHED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
#: Finished states in which the batch system, not the task's code, ended the worker.
CRASH_STATES = frozenset({"CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL"})


class LauncherError(JugnbError):
    """A batch-system command failed or is missing; the message names the command and its output."""


@dataclass(frozen=True)
class SubmitOptions:
    """The options of ``%jug submit`` and ``jugnb submit``.

    Attributes
    ----------
    jobs : int
        Array tasks to submit (at least 1).
    cpus_per_task : int
        CPUs, hence worker processes, per array task.
    mem, time, partition, account : str or None
        sbatch's ``--mem``, ``--time`` (minutes, or ``[D-]HH:MM:SS``), ``--partition`` and ``--account``.
    sbatch_options : tuple of str
        Further scheduler options, each as written after ``#SBATCH`` (``--qos=debug``).
    force : bool
        Submit although the jugdir looks node-local.
    """

    jobs: int
    cpus_per_task: int = 1
    mem: str | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    sbatch_options: tuple[str, ...] = field(default=())
    force: bool = False


@dataclass(frozen=True)
class JobRequest:
    """What to submit: ``options.jobs`` array tasks, each running the notebook's workers on its jugdir.

    Attributes
    ----------
    notebook : Path
        The saved notebook (absolute); its folder is the working directory of every array task.
    module : str
        The jugfile's module name (``jugnb execute --module``).
    jugdir_args : tuple of str
        Arguments that give ``jugnb execute`` the jugdir (``--jugdir PATH`` or ``--jugrc FILE``), never a
        password.
    folder : Path
        Where the script, its jugrc and the array tasks' logs go (in jugnb's state folder).
    options : SubmitOptions
        How many array tasks, with what resources.
    """

    notebook: Path
    module: str
    jugdir_args: tuple[str, ...]
    folder: Path
    options: SubmitOptions


@dataclass(frozen=True)
class JobState:
    """One array task (or a whole pending array) as the batch system reports it.

    Attributes
    ----------
    job_id : str
        The array's job id (what ``sbatch --parsable`` printed).
    array_index : str
        The array task index (``"3"``), or a range of pending ones (``"[2-5]"``), or ``""``.
    state : str
        ``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``, ``CANCELLED``, ``TIMEOUT``, ``OUT_OF_MEMORY``,
        ``NODE_FAIL``, ... or ``UNKNOWN`` when the batch system has forgotten the job.
    reason : str
        Why a job is pending (``Resources``, ``Priority``...), ``""`` otherwise.
    node : str
        The node(s) it runs or ran on, ``""`` while pending.
    elapsed : float
        Seconds it has run.
    """

    job_id: str
    array_index: str
    state: str
    reason: str = ""
    node: str = ""
    elapsed: float = 0.0

    @property
    def finished(self) -> bool:
        """Whether the state is final."""
        return self.state in FINISHED_STATES

    @property
    def crashed(self) -> bool:
        """Whether the batch system ended it (time limit, memory, node failure, cancel), not its own code."""
        return self.state in CRASH_STATES


class Launcher(LoggingConfigurable):
    """Submit, watch and cancel workers on one kind of batch system."""

    #: The batch system's name, as users type it (``"slurm"``).
    kind: ClassVar[str] = ""

    @abstractmethod
    def script(self, request: JobRequest) -> str:
        """Return the job script for ``request`` (nothing is written or submitted).

        Raises
        ------
        LauncherError
            If the template is broken (names an unknown field).
        """

    @abstractmethod
    def submit(self, script: Path) -> str:
        """Submit the job script at ``script``; return the job id.

        Raises
        ------
        LauncherError
            If the batch system refuses it (its message is included).
        """

    @abstractmethod
    def poll(self, job_ids: Sequence[str]) -> list[JobState]:
        """Return the state of every array task of ``job_ids``, with one batched query.

        Jobs the batch system no longer knows are returned as one ``UNKNOWN`` row each.

        Raises
        ------
        LauncherError
            If the query command fails.
        """

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel ``job_ids`` (``"123"`` for a whole array, ``"123_4"`` for one task) in one command.

        Raises
        ------
        LauncherError
            If the command fails.
        """
