"""The ``%jug`` subcommand table: the :class:`Command` base class, the registry, and what commands share.

Each command has a ``name``, a one-line help (the first line of its docstring), ``add_arguments(parser)``
and ``run(magics, args)``, and registers itself when its module is imported (as jug's own subcommands
do). Parsers are IPython's ``MagicArgumentParser``, so bad input raises ``UsageError``. The commands live
in :mod:`.commands` (the graph's tasks), :mod:`.status_command`, :mod:`.stale_commands` and
:mod:`.worker_commands`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ..backends import select
from ..session.loader import LoadedGraph
from ..status.labels import display_name
from ..status.reader import StatusReader, StatusSnapshot
from ..status.records import RecordLog, TaskRecord

_COMMANDS: dict[str, Command] = {}


class Command:
    """Base of the ``%jug`` subcommands; subclasses register themselves by ``name``."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _COMMANDS[cls.name] = cls()

    @property
    def help(self) -> str:
        """One-line help: the first line of the class docstring."""
        return (self.__doc__ or "").strip().splitlines()[0]

    def parser(self) -> MagicArgumentParser:
        """Return the argument parser of ``%jug <name>``."""
        # IPython's help formatter adds the "%" itself.
        parser = MagicArgumentParser(prog=f"jug {self.name}", description=(self.__doc__ or "").strip())
        self.add_arguments(parser)
        return parser

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        """Declare the subcommand's options (none by default)."""

    def run(self, magics: Any, args: Any) -> Any:
        """Do the work; ``magics`` is the :class:`~jugnb.magics.JugMagics` instance."""
        raise NotImplementedError


def get(name: str) -> Command:
    """Return the command called ``name``.

    Raises
    ------
    UsageError
        For an unknown name, listing the known ones.
    """
    try:
        return _COMMANDS[name]
    except KeyError:
        known = ", ".join(sorted(_COMMANDS))
        raise UsageError(
            f"%jug: unknown subcommand {name!r}. Known: {known}. `%jug help` describes them."
        ) from None


def status_reader(magics: Any, graph: LoadedGraph) -> StatusReader:
    """Return the status reader of ``graph``, kept per graph: refreshes are incremental (thread-safe)."""
    reader = getattr(magics, "_status_reader", None)
    if reader is None or reader[0] is not graph:
        reader = (graph, StatusReader(graph.tasks, graph.store))
        magics._status_reader = reader
    return reader[1]


def latest_records(magics: Any, graph: LoadedGraph) -> dict[str, TaskRecord]:
    """Return the latest task record per hash of the graph's jugdir (``{}`` for a store without records).

    One record log is kept per jugdir, so each call reads only the records written since the last one.
    """
    if not select(graph.jugdir.spec).keeps_records:
        return {}
    cached = getattr(magics, "_record_log", None)
    if cached is None or cached[0] != graph.jugdir.spec:
        cached = magics._record_log = (
            graph.jugdir.spec,
            RecordLog.for_jugdir(graph.jugdir.spec, graph.store),
        )
    return cached[1].latest_by_hash()


def status_snapshot(magics: Any, graph: LoadedGraph | None = None) -> StatusSnapshot:
    """Return a fresh status of the loaded graph."""
    graph = graph if graph is not None else magics.graph
    return status_reader(magics, graph).read()


def forget_status(magics: Any) -> None:
    """Drop the status reader of a replaced graph."""
    magics._status_reader = None


def summary_line(magics: Any, graph: LoadedGraph) -> str:
    """``grid_search: 60 tasks (score ×60) · 12 complete · 48 ready · jugdir grid_search.jugdata``."""
    names = Counter(display_name(t.name) for t in graph.tasks)  # mapreduce.map, not _jug_map
    kinds = ", ".join(f"{n} ×{c}" for n, c in names.items())
    parts = [f"{graph.module}: {len(graph.tasks)} tasks" + (f" ({kinds})" if kinds else "")]
    total = status_snapshot(magics, graph).total
    for label in ("complete", "active", "ready", "waiting", "failed"):
        if getattr(total, label):
            parts.append(f"{getattr(total, label)} {label}")
    parts.append(f"jugdir {_short_jugdir(graph)}")
    line = " · ".join(parts)
    if graph.barrier is not None:
        stop = graph.barrier
        plural = "task" if stop.waiting == 1 else "tasks"
        line += f"\nstopped at {stop.kind} in {stop.where}: waiting for {stop.waiting} {plural}"
    return line


def _short_jugdir(graph: LoadedGraph) -> str:
    path = graph.jugdir.path
    folder = graph.snapshot.parents[3]  # <folder>/.jugnb/jugfiles/<sha>/<module>.py
    if path is not None and path.parent == folder:
        return str(graph.jugdir).replace(str(path), path.name)
    return str(graph.jugdir)


def add_selection(parser: MagicArgumentParser, required: bool) -> None:
    """Add the ``--target``/``--name``/``--pattern`` options that choose tasks (one at most)."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--target", help="/regex/ (searched in the task name), or a task name as for --name.")
    group.add_argument("--name", help="Task name: module.fn or fn, with * wildcards (jug's --name).")
    group.add_argument("--pattern", help="Substring of the task name, or /regex/ (jug's --pattern).")


def selection(args: Any) -> tuple[str | None, str | None]:
    """``(name, pattern)`` for jug's matcher from ``--target``/``--name``/``--pattern``."""
    target = args.target
    if target is not None:
        is_regex = len(target) > 2 and target.startswith("/") and target.endswith("/")
        return (None, target) if is_regex else (target, None)
    return args.name, args.pattern
