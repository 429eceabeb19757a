"""What a worker pool keeps in its state file, so that a new kernel (or ``jugnb workers``) can re-attach.

:class:`PersistentPool` holds the pool's traits tagged ``to_dict`` and turns them, with its workers' pids
and process create times, into ``<state_dir>/workers/<module>.json`` and back (the ``to_dict`` /
``from_dict`` pattern of ipyparallel's launchers). :class:`jugnb.workers.pool.WorkerPool` adds starting,
watching and stopping the workers.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any, TypeVar

from traitlets import Bool, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..backends.spec import redact
from ..errors import StoreError
from ..notebook.jugfile import atomic_write
from ..status.records import RecordLog
from .process import NotRunning, WorkerProcess

P = TypeVar("P", bound="PersistentPool")


class PersistentPool(LoggingConfigurable):
    """A pool's persistent state: the traits tagged ``to_dict``, its workers, its state file.

    Parameters
    ----------
    state_dir : Path
        jugnb's state folder (the state file is ``<state_dir>/workers/<module>.json``).
    module : str
        Module name of the jugfile.
    parent : traitlets Configurable, optional

    Subclasses provide :attr:`records`, :meth:`_watch` and :meth:`_stop_at_exit`.
    """

    state = Unicode("before", help="'before' start, 'running', or 'after' every worker ended.")
    jugdir = Unicode(help="jugdir string given to workers (absolute for file stores).").tag(to_dict=True)
    cwd = Unicode(help="Working directory of the workers (the kernel's).").tag(to_dict=True)
    execute_args = List(Unicode(), help="jug execute options passed through.").tag(to_dict=True)
    detach = Bool(False, help="Workers outlive the kernel.").tag(to_dict=True)
    pool_id = Unicode(help="Random id; worker ids are '<pool_id>.<n>'.").tag(to_dict=True)
    host = Unicode(help="Host the workers run on.").tag(to_dict=True)
    kernel_pid = Int(0, help="pid of the process (kernel) that started the workers.").tag(to_dict=True)
    kernel_started = Float(0.0, help="Its create time (seconds since the epoch).").tag(to_dict=True)

    @default("pool_id")
    def _default_pool_id(self) -> str:
        return uuid.uuid4().hex[:8]

    @default("host")
    def _default_host(self) -> str:
        return socket.gethostname()

    def __init__(self, state_dir: Path, module: str, parent: Any = None, **traits: Any) -> None:
        super().__init__(parent=parent, **traits)
        self.state_dir = Path(state_dir).resolve()
        self.module = module
        self._procs: list[WorkerProcess] = []

    @property
    def state_file(self) -> Path:
        """``<state_dir>/workers/<module>.json``: what :meth:`reattach` reads."""
        return self.state_dir / "workers" / f"{self.module}.json"

    @property
    def records(self) -> RecordLog:
        """Task records of the pool's jugdir (subclasses)."""
        raise NotImplementedError

    def _watch(self, proc: WorkerProcess) -> None:
        """Wait for ``proc`` to end, in a thread (subclasses)."""
        raise NotImplementedError

    def _stop_at_exit(self) -> None:
        """Stop the workers when this process exits (subclasses)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return the pool's traits tagged ``to_dict`` plus its workers (pids and process create times).

        The jugdir is redacted: a state file never holds a redis password (:meth:`reattach` takes the
        real jugdir from its caller).
        """
        data = {name: getattr(self, name) for name in self.trait_names(to_dict=True)}
        return {
            **data,
            "jugdir": redact(self.jugdir),
            "state_dir": str(self.state_dir),
            "module": self.module,
            "workers": [p.to_dict() for p in self._procs],
        }

    @classmethod
    def from_dict(
        cls: type[P],
        data: dict[str, Any],
        parent: Any = None,
        jugdir: str | None = None,
        stop_at_exit: bool = True,
        **traits: Any,
    ) -> P:
        """Rebuild a pool from :meth:`to_dict` and watch its workers that are still running.

        Parameters
        ----------
        data : dict
        parent : Configurable, optional
        jugdir : str, optional
            The real jugdir (with its password), used when it redacts to the one in ``data``.
        stop_at_exit : bool
            Drain workers that are not detached when this process exits (a kernel taking them over);
            ``False`` for a look from outside (``jugnb workers``), which must leave them running.

        Raises
        ------
        NotRunning
            If none of its workers is running any more (a recycled pid does not count).
        """
        names = set(cls.class_trait_names(to_dict=True))
        if jugdir is not None and redact(jugdir) == data.get("jugdir"):
            data = {**data, "jugdir": jugdir}
        settings = {k: v for k, v in data.items() if k in names}
        pool = cls(Path(data["state_dir"]), data["module"], parent=parent, **settings, **traits)
        pool._adopt([WorkerProcess.from_dict(w) for w in data["workers"]], stop_at_exit)
        return pool

    def _adopt(self, procs: list[WorkerProcess], stop_at_exit: bool) -> None:
        """Watch the re-attached workers that still run (:meth:`from_dict`)."""
        self._procs = procs
        try:
            self.records.read_new()
        except StoreError as err:  # store down, or its password unknown here: the workers still show
            self.log.warning("cannot read the task records: %s", err)
        if not [p for p in procs if p.reattach()]:
            msg = f"no worker of {self.module} is running any more (pids {[p.pid for p in procs]})."
            raise NotRunning(msg, path=str(self.state_file))
        self.state = "running"
        for proc in procs:
            if proc.ended is None:  # ended ones were settled by the pool that saw them end
                self._watch(proc)
        if stop_at_exit and not self.detach:
            self._stop_at_exit()

    @classmethod
    def reattach(
        cls: type[P],
        state_dir: Path,
        module: str,
        parent: Any = None,
        jugdir: str | None = None,
        stop_at_exit: bool = True,
    ) -> P:
        """Return the pool whose workers still run on ``module`` (from its state file).

        ``jugdir`` and ``stop_at_exit`` are passed to :meth:`from_dict`.

        Raises
        ------
        NotRunning
            If there is no state file or none of its workers runs any more.
        """
        path = Path(state_dir).resolve() / "workers" / f"{module}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            msg = f"no workers were started for {module} (no {path})."
            raise NotRunning(msg, path=str(path)) from None
        return cls.from_dict(data, parent=parent, jugdir=jugdir, stop_at_exit=stop_at_exit)

    def _save(self) -> None:
        atomic_write(self.state_file, json.dumps(self.to_dict(), indent=1) + "\n")
        self.state_file.chmod(0o600)  # pids and paths only, but other users have no business there
