"""The ``%jug`` subcommands, one small class each (like jug's own subcommand table).

Each command has a ``name``, a one-line help (the first line of its docstring), ``add_arguments(parser)``
and ``run(magics, args)``. Parsers are IPython's ``MagicArgumentParser``, so bad input raises ``UsageError``.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections import Counter
from typing import Any, ClassVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import SVG, display

from ..backends.spec import redact
from ..errors import JugnbError
from ..session import tasks as task_ops
from ..session.loader import LoadedGraph
from ..status.reader import StatusReader, StatusSnapshot
from ..status.render import status_html, status_text
from ..workers.cleanupguard import removal_lines
from ..workers.records import RecordLog, TaskRecord
from .views import Rendered, preformatted

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
    if not graph.jugdir.shareable:
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
    names = Counter(t.name.rsplit(".", 1)[-1] for t in graph.tasks)
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
        return ("file_keepalive:" if graph.jugdir.kind == "file_keepalive" else "") + path.name
    return str(graph.jugdir)


class StatusCommand(Command):
    """Show how many tasks of each name are failed, waiting, ready, active and complete."""

    name = "status"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("--short", action="store_true", help="One line per state instead of a table.")
        parser.add_argument(
            "--watch",
            action="store_true",
            help="Show the live progress panel instead (it updates while other cells run).",
        )

    def run(self, magics: Any, args: Any) -> Any:
        graph = magics.graph
        if args.watch:
            from .worker_commands import pool_of

            return magics.show_progress(pool_of(magics))
        snapshot = status_snapshot(magics, graph)
        text, table = status_text(snapshot, short=args.short), status_html(snapshot)
        from .stale_commands import current_staleness, stale_note
        from .worker_commands import print_failures

        # One read of the store serves the table, the failures and the stale counts.
        print_failures(magics, snapshot)
        notes = []
        if latest_records(magics, graph):  # without records (plain jug's results) nothing can be stale
            notes.append(stale_note(current_staleness(magics, graph, snapshot)))
        if graph.barrier is not None:
            notes.append(
                f"The jugfile stopped at {graph.barrier.kind} in {graph.barrier.where}: later tasks are "
                "not defined yet."
            )
        for note in filter(None, notes):
            text, table = f"{text}\n{note}", f"{table}<pre>{html.escape(note)}</pre>"
        return Rendered(text, table)


class CheckCommand(Command):
    """Say whether every task is complete (like `jug check`); returns True or False."""

    name = "check"

    def run(self, magics: Any, args: Any) -> bool:
        graph = magics.graph
        total = status_snapshot(magics, graph).total
        complete = total.complete == total.total and graph.barrier is None
        remaining = total.total - total.complete
        print(
            "All tasks complete."
            if complete
            else f"Not complete: {remaining} of {total.total} tasks remain"
            + (" (and the jugfile stops at a barrier)." if graph.barrier is not None else ".")
        )
        return complete


def _add_selection(parser: MagicArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--target", help="/regex/ (searched in the task name), or a task name as for --name.")
    group.add_argument("--name", help="Task name: module.fn or fn, with * wildcards (jug's --name).")
    group.add_argument("--pattern", help="Substring of the task name, or /regex/ (jug's --pattern).")


def _selection(args: Any) -> tuple[str | None, str | None]:
    """``(name, pattern)`` for jug's matcher from ``--target``/``--name``/``--pattern``."""
    target = args.target
    if target is not None:
        is_regex = len(target) > 2 and target.startswith("/") and target.endswith("/")
        return (None, target) if is_regex else (target, None)
    return args.name, args.pattern


class InvalidateCommand(Command):
    """Remove the results of the selected (or stale) tasks and of everything downstream of them."""

    name = "invalidate"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        _add_selection(parser, required=False)
        parser.add_argument(
            "--stale",
            action="store_true",
            help="Select the results computed by code that changed since (with --target etc.: "
            "only those of the matching task names).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be removed.")

    def run(self, magics: Any, args: Any) -> None:
        graph = magics.graph
        name, pattern = _selection(args)
        if not args.stale and name is None and pattern is None:
            raise UsageError(
                "%jug invalidate: say which tasks: --target PAT, --name NAME, --pattern TEXT or --stale."
            )
        matcher = task_ops.task_matcher(name, pattern) if (name or pattern) else None
        if args.stale:
            from .stale_commands import stale_selection

            selected, _ = stale_selection(magics, matcher)
        else:
            selected = [t for t in graph.tasks if matcher is not None and matcher(t.name)]
        if not selected:
            what = "stale result" if args.stale else "task"
            print(f"No {what} matches {name or pattern or 'the jugfile'!r}. Task names: {_names(graph)}.")
            return
        removal = task_ops.invalidate(graph.store, graph.tasks, selected, dry_run=args.dry_run)
        display(preformatted(_removal_table("Would invalidate" if args.dry_run else "Invalidated", removal)))


class CleanupCommand(Command):
    """Remove results that no task of the jugfile uses, and locks (like `jug cleanup`)."""

    name = "cleanup"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--locks-only",
            action="store_const",
            dest="mode",
            const="locks-only",
            help="Remove locks only, keep every result.",
        )
        group.add_argument(
            "--failed-only",
            action="store_const",
            dest="mode",
            const="failed-only",
            help="Remove the locks of failed tasks only.",
        )
        group.add_argument(
            "--keep-locks",
            action="store_const",
            dest="mode",
            const="keep-locks",
            help="Remove unused results only, keep every lock.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only list what would be removed (task names, counts)."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Clean up even though the jugfile stopped at a barrier (deletes valid results "
            "of tasks after it), or jugnb workers run on the jugdir (locks they hold are kept anyway).",
        )

    def run(self, magics: Any, args: Any) -> None:
        graph = magics.graph
        mode = args.mode or "all"
        if graph.barrier is not None and mode in ("all", "keep-locks") and not args.force:
            msg = (
                f"Refusing to clean up: the jugfile stopped at {graph.barrier.kind} in "
                f"{graph.barrier.where}, so "
                "the tasks after it are not defined yet and jug would delete their still-valid results. Run "
                "the tasks it waits for first, or use --locks-only / --failed-only, or --force."
            )
            raise UsageError(msg)
        try:
            removal = task_ops.cleanup(
                graph.store, graph.tasks, mode=mode, dry_run=args.dry_run, jugdir=graph.jugdir.spec,
                force=args.force,
            )  # fmt: skip
        except JugnbError as err:
            raise UsageError(str(err)) from None
        print("\n".join(removal_lines(removal, mode)))


class CountCommand(Command):
    """Count the tasks of each name (like `jug count`)."""

    name = "count"

    def run(self, magics: Any, args: Any) -> Rendered:
        counts = Counter(t.name for t in magics.graph.tasks)
        width = max((len(n) for n in counts), default=10)
        rows = [f"{n:<{width}}  {c:>8}" for n, c in sorted(counts.items())]
        rows.append(f"{'Total':<{width}}  {sum(counts.values()):>8}")
        return preformatted("\n".join(rows))


class GraphCommand(Command):
    """Draw the graph of task names with their status counts (needs graphviz's `dot`)."""

    name = "graph"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("--dot", action="store_true", help="Show the DOT source instead of the picture.")

    def run(self, magics: Any, args: Any) -> Any:
        graph = magics.graph
        source = _dot_source(graph, status_snapshot(magics, graph))
        dot = shutil.which("dot")
        if args.dot or dot is None:
            if dot is None and not args.dot:
                print(
                    "graphviz's `dot` is not installed (e.g. apt-get install graphviz); "
                    "here is the DOT source:"
                )
            return preformatted(source)
        svg = subprocess.run(
            [dot, "-Tsvg"], input=source, capture_output=True, text=True, check=True, timeout=60
        )
        return SVG(svg.stdout)


def _dot_source(graph: LoadedGraph, snapshot: StatusSnapshot) -> str:
    edges = set()
    for t in graph.tasks:
        for dep in t.dependencies():
            edges.add((task_ops.base_task(dep).name, t.name))
    lines = ["digraph tasks {", "  rankdir=LR; node [shape=box, fontname=Helvetica];"]
    for row in snapshot.rows:
        label = (
            f"{row.name}\\n{row.complete} complete · {row.active} active · {row.ready} ready · "
            f"{row.waiting} waiting · {row.failed} failed"
        )
        color = "palegreen" if row.complete == row.total else ("salmon" if row.failed else "lightyellow")
        lines.append(f'  "{row.name}" [label="{label}", style=filled, fillcolor={color}];')
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(edges)]
    return "\n".join([*lines, "}"]) + "\n"


class BrowseCommand(Command):
    """Browse the tasks: filter, preview values, assign, invalidate, retry, see tracebacks."""

    name = "browse"

    def run(self, magics: Any, args: Any) -> Any:
        magics.graph  # noqa: B018 - a jugfile must be loaded
        return magics.task_browser()


class ResetCommand(Command):
    """Forget every %%jugfile cell run so far and re-read the configuration."""

    name = "reset"

    def run(self, magics: Any, args: Any) -> None:
        magics.reset()
        print("Forgot every %%jugfile cell; run them again to rebuild the jugfile.")


class ConfigCommand(Command):
    """Show the effective configuration and where each value came from."""

    name = "config"

    def run(self, magics: Any, args: Any) -> Rendered:
        session = magics.session
        notebook, notebook_source = magics.notebook_setting()
        spec, jugdir_source = magics.jugdir_setting(session.project)
        rows = [
            ("notebook", str(notebook) if notebook else "(unknown)", notebook_source),
            (
                "module",
                session.project.module,
                "%config JugMagics.module" if magics.module else "notebook name",
            ),
            (
                "jugdir",
                str(session.jugdir),
                f"{jugdir_source}; configured as {redact(spec)!r}" if "%" in spec else jugdir_source,
            ),
            ("state folder", str(session.project.state_dir), "beside the notebook"),
            ("show_summary", str(magics.show_summary), "%config JugMagics.show_summary"),
        ]
        width = max(len(r[0]) for r in rows)
        text = "\n".join(f"{k:<{width}}  {v}  ({src})" for k, v, src in rows)
        table = "".join(
            f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td><td>{html.escape(src)}</td></tr>"
            for k, v, src in rows
        )
        return Rendered(text, f"<table>{table}</table>")


class HelpCommand(Command):
    """List the subcommands, or show one subcommand's options."""

    name = "help"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        parser.add_argument("topic", nargs="?", help="A subcommand.")

    def run(self, magics: Any, args: Any) -> Rendered:
        if args.topic:
            return preformatted(get(args.topic).parser().format_help())
        width = max(len(n) for n in _COMMANDS)
        lines = [f"  {n:<{width}}  {c.help}" for n, c in sorted(_COMMANDS.items())]
        return preformatted("%jug SUBCOMMAND [options]\n\n" + "\n".join(lines))


def _names(graph: LoadedGraph) -> str:
    return ", ".join(sorted({t.name for t in graph.tasks})) or "(none)"


def _removal_table(verb: str, removal: task_ops.Removal) -> str:
    if not removal.total:
        return f"{verb}: no results (none of the selected tasks or their dependents had one)."
    width = max(len(n) for n in removal.results)
    rows = [f"  {n:<{width}}  {c:>8}" for n, c in sorted(removal.results.items())]
    noun = "result" if removal.total == 1 else "results"
    return "\n".join([f"{verb} {removal.total} {noun}, downstream included:", *rows])
