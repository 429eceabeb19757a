"""A real one-node SLURM cluster on localhost for tests: munged, slurmctld and slurmd as root.

:class:`OneNodeSlurm` writes a minimal ``slurm.conf`` into a temporary folder (no accounting, so no
``sacct``; ``proctrack/linuxproc``, ``task/none``, one node with this machine's CPUs), starts the daemons
in the foreground as our own children (each in its own session), waits until ``sinfo`` says the node is
idle, and stops exactly those processes by pid. Clients find the cluster through ``SLURM_CONF``.

munged's socket is global (``/run/munge``): an munged that already answers is used as it is and left
running; one that this class started is stopped with the rest.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Debian packages that provide the daemons and the client commands.
PACKAGES = ("slurm-wlm", "slurmctld", "slurmd", "munge")
#: Seconds to wait for the node to become idle (slurmd registers within a few seconds).
START_TIMEOUT = 60.0
#: Seconds a daemon gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 15.0

_CONF = """\
ClusterName=jugnbtest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/slurmd
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=localhost CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmUnavailable(RuntimeError):
    """SLURM is not installed or its daemons did not start; the message says which and why."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _munge_answers() -> bool:
    try:
        encoded = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=True).stdout
        subprocess.run(["unmunge"], input=encoded, capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


class OneNodeSlurm:
    """A one-node SLURM cluster whose configuration and state live in ``root``.

    Parameters
    ----------
    root : Path
        An empty folder for ``slurm.conf``, spool folders, logs and pid files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point SLURM's client commands at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        """Start munged (unless one answers), slurmctld and slurmd; wait until the node is idle.

        Raises
        ------
        SlurmUnavailable
            When a program is missing, this is not root, or the node is not idle within
            :data:`START_TIMEOUT` seconds (the daemons' log tails are in the message).
        """
        missing = [p for p in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo") if not self._which(p)]
        if missing:
            msg = f"not installed: {', '.join(missing)} (apt-get install {' '.join(PACKAGES)})"
            raise SlurmUnavailable(msg)
        if os.geteuid() != 0:
            raise SlurmUnavailable("the one-node SLURM runs its daemons as root")
        for folder in ("ctld", "slurmd"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        cpus = len(os.sched_getaffinity(0))
        self.conf.write_text(
            _CONF.format(root=self.root, ctld_port=_free_port(), slurmd_port=_free_port(), cpus=cpus)
        )
        try:
            self._start_munge()
            self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
            self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
            self._wait_idle()
        except BaseException:
            self.stop()
            raise

    def _which(self, program: str) -> str | None:
        return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")

    def _start_munge(self) -> None:
        if _munge_answers():
            return
        run = Path("/run/munge")
        run.mkdir(mode=0o755, exist_ok=True)
        shutil.chown(run, "munge", "munge")
        # munged refuses to run as root; "-F" keeps it in the foreground, so its pid is ours to stop.
        self._spawn("munged", [str(self._which("munged")), "-F"], user="munge")
        deadline = time.monotonic() + 15
        while not _munge_answers():
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"munged did not answer within 15 s{self._tails()}")
            time.sleep(0.2)

    def _spawn(self, name: str, command: list[str], user: str | None = None) -> None:
        log = open(self.root / f"{name}.out", "ab")  # noqa: SIM115 - the child keeps it
        with log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                env={**os.environ, **self.env},
            )
        self._processes.append((name, process))

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    msg = f"{name} exited with code {process.returncode}{self._tails()}"
                    raise SlurmUnavailable(msg)
            result = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%t"],
                capture_output=True,
                text=True,
                timeout=20,
                env={**os.environ, **self.env},
                check=False,
            )
            state = result.stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise SlurmUnavailable(
            f"the node is not idle after {START_TIMEOUT:.0f} s (sinfo: {state!r}){self._tails()}"
        )

    def _cancel_all(self) -> None:
        # Job steps run under slurmstepd, not under slurmd: scancel ends them, then the queue empties.
        env = {**os.environ, **self.env}
        subprocess.run(["scancel", "--full", "--user", "root"], env=env, timeout=20, check=False)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            queue = subprocess.run(
                ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env, timeout=20, check=False
            )
            if queue.returncode != 0 or not queue.stdout.strip():
                return
            time.sleep(0.5)

    def _tails(self) -> str:
        parts = []
        for name in ("munged.out", "slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = self.root / name
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-8:]
                parts.append(f"\n--- {name}:\n" + "\n".join(lines))
        return "".join(parts)

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop the daemons this object started (slurmd first), by pid."""
        if any(name == "slurmctld" and p.poll() is None for name, p in self._processes):
            self._cancel_all()
        for _name, process in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(STOP_TIMEOUT)
        self._processes.clear()
