"""SLURM: a job array whose tasks each run ``jugnb execute`` on the notebook's jugdir.

Configuration (IPython profile, ``%config``, or a jugrc file's ``[slurm]`` section for the template)::

    c.SlurmLauncher.template = "..."          # the whole job script, with {{field}} placeholders
    c.SlurmLauncher.template_file = "~/slurm.sh"   # or from a file (jugrc: [slurm] template_file)
    c.SlurmLauncher.sbatch = "sbatch"         # the commands, e.g. a wrapper that logs in to a head node

A template's fields are listed in :data:`FIELDS`; ``{{field}}`` is used so that the script's own shell
syntax (``$VAR``, ``${VAR}``) needs no escaping. Values are quoted for the shell where they are words.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from traitlets import Bool, Unicode, default

from .base import JobRequest, JobState, Launcher, LauncherError

#: Seconds any SLURM command may take before it counts as failed.
COMMAND_TIMEOUT = 60.0

FIELDS = {
    "job_name": "the job name (jugnb-<module>)",
    "array": "the --array range (0-N-1)",
    "cpus_per_task": "CPUs per array task",
    "log": "the per-array-task log path (%A_%a in jugnb's state folder)",
    "sbatch_options": "#SBATCH lines for --mem, --time, --partition, --account and --sbatch-option",
    "activate": "shell lines that activate the kernel's Python environment",
    "workdir": "the notebook's folder (quoted)",
    "python": "the kernel's Python interpreter (quoted)",
    "run": "the command line(s) that run the workers",
    "notebook": "the notebook (quoted)",
}

DEFAULT_TEMPLATE = """\
#!/bin/bash
#SBATCH --job-name={{job_name}}
#SBATCH --array={{array}}
#SBATCH --cpus-per-task={{cpus_per_task}}
#SBATCH --output={{log}}
{{sbatch_options}}
# Written by jugnb submit. Each array task runs jugnb's workers on {{notebook}}'s jugdir;
# jug's locks make every task run once, whichever array task gets to it first.
set -euo pipefail
{{activate}}
cd {{workdir}}
echo "jugnb: array task ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname)"
{{run}}
"""

_FIELD = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")


def _elapsed_seconds(text: str) -> float:
    """Seconds in SLURM's ``[D-][HH:]MM:SS`` (``"1-02:03:04"``, ``"2:05"``); 0 for anything else."""
    days, _, clock = text.rpartition("-")
    try:
        parts = [int(p) for p in clock.split(":")]
        whole_days = int(days) if days else 0
    except ValueError:
        return 0.0
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return float(whole_days * 86400 + seconds)


def activation_lines(prefix: str = sys.prefix, base_prefix: str = sys.base_prefix) -> str:
    """Shell lines that make the kernel's environment (venv or conda) the array task's environment."""
    root = Path(prefix)
    if prefix != base_prefix and (root / "bin" / "activate").exists():
        return f"source {shlex.quote(str(root / 'bin' / 'activate'))}"
    if (root / "conda-meta").is_dir():
        # `conda activate` needs conda's shell hook, which batch shells often lack; PATH is what matters.
        quoted = shlex.quote(str(root))
        return f"export CONDA_PREFIX={quoted}\nexport PATH={quoted}/bin:$PATH"
    return f"# the kernel runs the system Python ({shlex.quote(sys.executable)}): nothing to activate"


def run_lines(python: str, argv: Sequence[str]) -> str:
    """Return the command that runs ``python -m jugnb execute ARGV -j $SLURM_CPUS_PER_TASK`` (C workers).

    ``exec`` makes it the array task's main process, so SLURM's signals (cancel, time limit) reach it, and
    its exit code (non-zero when work it could have done is left) is the array task's.
    """
    words = [shlex.quote(python), "-m", "jugnb", "execute", *(shlex.quote(a) for a in argv)]
    return "exec " + " ".join([*words, "-j", '"${SLURM_CPUS_PER_TASK:-1}"'])


class SlurmLauncher(Launcher):
    """Submit the notebook's workers as a SLURM job array; read their states with squeue and scontrol."""

    kind: ClassVar[str] = "slurm"

    template = Unicode(
        help="The job script, with {{field}} placeholders (fields: "
        + ", ".join(FIELDS)
        + "). Empty: template_file, else jugnb's default."
    ).tag(config=True)
    template_file = Unicode(
        help="A file holding the job script template (used when template is empty). Empty: a jugrc file's "
        "[slurm] template_file, else jugnb's default."
    ).tag(config=True)
    sbatch = Unicode("sbatch", help="The sbatch command.").tag(config=True)
    squeue = Unicode("squeue", help="The squeue command.").tag(config=True)
    scontrol = Unicode("scontrol", help="The scontrol command.").tag(config=True)
    scancel = Unicode("scancel", help="The scancel command.").tag(config=True)
    sacct = Unicode("sacct", help="The sacct command (jobs that left the queue, where accounting runs).").tag(
        config=True
    )
    use_sacct = Bool(
        None,
        allow_none=True,
        help="Read jobs that left the queue with sacct (True) or scontrol (False). None: sacct when "
        "`scontrol show config` says accounting is on.",
    ).tag(config=True)

    @default("template_file")
    def _jugrc_template_file(self) -> str:
        from jug.options import default_options, read_configuration_file

        configured = getattr(
            read_configuration_file(default_options=default_options), "slurm_template_file", ""
        )
        return str(configured or "")

    def template_text(self) -> str:
        """Return the template in use: ``template``, else ``template_file``'s content, else the default.

        Raises
        ------
        LauncherError
            If ``template_file`` cannot be read.
        """
        if self.template:
            return self.template
        if self.template_file:
            path = Path(self.template_file).expanduser()
            try:
                return path.read_text(encoding="utf-8")
            except OSError as err:
                msg = f"cannot read SlurmLauncher.template_file {path}: {err.strerror or err}."
                raise LauncherError(msg) from err
        return DEFAULT_TEMPLATE

    def script(self, request: JobRequest) -> str:
        """Return the job-array script for ``request`` (see :class:`~jugnb.launchers.base.Launcher`)."""
        options = [
            f"--{name}={value}"
            for name, value in (
                ("mem", request.options.mem),
                ("time", request.options.time),
                ("partition", request.options.partition),
                ("account", request.options.account),
            )
            if value
        ]
        options += list(request.options.sbatch_options)
        python = sys.executable
        values = {
            "job_name": f"jugnb-{request.module}",
            "array": f"0-{request.options.jobs - 1}",
            "cpus_per_task": str(request.options.cpus_per_task),
            "log": str(request.folder / "%A_%a.log"),
            "sbatch_options": "\n".join(f"#SBATCH {o}" for o in options),
            "activate": activation_lines(),
            "workdir": shlex.quote(str(request.notebook.parent)),
            "python": shlex.quote(python),
            "run": run_lines(
                python, [request.notebook.name, "--module", request.module, *request.jugdir_args]
            ),
            "notebook": shlex.quote(request.notebook.name),
        }

        def fill(match: re.Match[str]) -> str:
            name = match[1]
            if name not in values:
                known = ", ".join(FIELDS)
                msg = f"the SLURM job template uses {{{{{name}}}}}, which is not a field. Fields: {known}."
                raise LauncherError(msg)
            return values[name]

        return _FIELD.sub(fill, self.template_text())

    def _run(self, argv: list[str], what: str) -> str:
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
            )
        except FileNotFoundError:
            msg = f"`{argv[0]}` is not installed here: {what} needs SLURM's commands on this machine's PATH."
            raise LauncherError(msg) from None
        except subprocess.TimeoutExpired:
            msg = f"`{shlex.join(argv)}` did not answer within {COMMAND_TIMEOUT:.0f} s ({what})."
            raise LauncherError(msg) from None
        if result.returncode != 0:
            error = result.stderr.strip()
            msg = f"`{shlex.join(argv)}` failed with exit code {result.returncode} ({what}): {error}"
            raise LauncherError(msg)
        return result.stdout

    def submit(self, script: Path) -> str:
        """Run ``sbatch --parsable SCRIPT``; return the job id."""
        out = self._run([*shlex.split(self.sbatch), "--parsable", str(script)], "submitting the job array")
        return out.strip().split(";")[0]

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Run one ``scancel`` for ``job_ids``."""
        if job_ids:
            self._run([*shlex.split(self.scancel), *job_ids], "cancelling jobs")

    def poll(self, job_ids: Sequence[str]) -> list[JobState]:
        """One ``squeue`` for live jobs, then one ``scontrol show job`` if some have left the queue."""
        if not job_ids:
            return []
        rows = self._squeue(job_ids)
        missing = [j for j in job_ids if not any(r.job_id == j for r in rows)]
        if missing:
            rows += self._sacct(missing) if self._accounting() else self._scontrol(missing)
        return rows

    def _accounting(self) -> bool:
        """Whether sacct can answer: ``use_sacct``, else asked once from ``scontrol show config``."""
        if self.use_sacct is None:
            out = self._run([*shlex.split(self.scontrol), "show", "config"], "reading SLURM's configuration")
            storage = re.search(r"^AccountingStorageType\s*=\s*(\S+)", out, re.MULTILINE)
            self.use_sacct = storage is not None and storage[1] != "accounting_storage/none"
        return bool(self.use_sacct)

    def _sacct(self, job_ids: Sequence[str]) -> list[JobState]:
        argv = [*shlex.split(self.sacct), "-n", "-P", "-X", "-j", ",".join(job_ids)]
        out = self._run([*argv, "-o", "JobID,State,NodeList,ElapsedRaw"], "reading finished jobs")
        rows = []
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) != 4:
                continue
            ident, state, node, elapsed = parts
            job, _, index = ident.partition("_")
            state = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0"
            node = "" if state == "PENDING" or node.startswith("None") else node
            seconds = float(elapsed) if elapsed.isdigit() else 0.0
            rows.append(JobState(job, index, state, "", node, seconds))
        found = {r.job_id for r in rows}
        return rows + [JobState(j, "", "UNKNOWN") for j in job_ids if j not in found]

    def _squeue(self, job_ids: Sequence[str]) -> list[JobState]:
        argv = [*shlex.split(self.squeue), "-h", "-r", "-j", ",".join(job_ids), "-o", "%F|%K|%T|%r|%N|%M"]
        try:
            out = self._run(argv, "reading job states")
        except LauncherError as err:
            if "Invalid job id" in str(err):  # every id has left the queue
                return []
            raise
        rows = []
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) != 6:
                continue
            job, index, state, reason, node, elapsed = parts
            index = "" if index in ("N/A", "4294967294") else index
            pending = state == "PENDING"
            rows.append(
                JobState(
                    job,
                    index,
                    state,
                    reason if pending and reason != "None" else "",
                    "" if pending else node,
                    _elapsed_seconds(elapsed),
                )
            )
        return rows

    def _scontrol(self, job_ids: Sequence[str]) -> list[JobState]:
        # Without an id, one call lists every job slurmctld still remembers (MinJobAge after the end).
        out = self._run([*shlex.split(self.scontrol), "show", "job", "-o"], "reading finished jobs")
        rows = []
        for line in out.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            job = fields.get("ArrayJobId") or fields.get("JobId", "")
            if job not in job_ids:
                continue
            rows.append(
                JobState(
                    job,
                    fields.get("ArrayTaskId", ""),
                    fields.get("JobState", "UNKNOWN"),
                    "",
                    fields.get("NodeList", "").replace("(null)", ""),
                    _elapsed_seconds(fields.get("RunTime", "")),
                )
            )
        found = {r.job_id for r in rows}
        rows += [JobState(j, "", "UNKNOWN") for j in job_ids if j not in found]
        return rows
