"""``%jug`` subcommands that act on the graph's tasks: check, invalidate, cleanup, count, graph, browse, ...

The table they register in, and the :class:`~.command.Command` base class, are in :mod:`.command`.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections import Counter
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import SVG, display

from ..backends.spec import redact
from ..errors import JugnbError
from ..session import tasks as task_ops
from ..session.loader import LoadedGraph
from ..status.labels import JUG_NAMES, display_name
from ..status.reader import StatusSnapshot
from ..workers.cleanupguard import removal_lines
from .command import _COMMANDS, Command, add_selection, get, selection, status_snapshot
from .stale_commands import stale_selection
from .views import Rendered, preformatted


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


class InvalidateCommand(Command):
    """Remove the results of the selected (or stale) tasks and of everything downstream of them."""

    name = "invalidate"

    def add_arguments(self, parser: MagicArgumentParser) -> None:
        add_selection(parser, required=False)
        parser.add_argument(
            "--stale",
            action="store_true",
            help="Select the results computed by code that changed since (with --target etc.: "
            "only those of the matching task names).",
        )
        parser.add_argument(
            "--hash",
            help="The one task with this hash (its first 6+ hex digits), e.g. one whose result cannot be "
            "loaded.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be removed.")

    def run(self, magics: Any, args: Any) -> None:
        graph = magics.graph
        name, pattern = selection(args)
        if not args.stale and name is None and pattern is None and args.hash is None:
            raise UsageError(
                "%jug invalidate: say which tasks: --target PAT, --name NAME, --pattern TEXT, --hash HEX or "
                "--stale."
            )
        matcher = task_ops.task_matcher(name, pattern) if (name or pattern) else None
        if args.hash is not None:
            selected = [_task_by_hash(graph, args.hash)]
        elif args.stale:
            selected, _ = stale_selection(magics, matcher)
        else:
            selected = [t for t in graph.tasks if matcher is not None and matcher(t.name)]
        if not selected:
            what = "stale result" if args.stale else "task"
            print(f"No {what} matches {name or pattern or 'the jugfile'!r}. Task names: {_names(graph)}.")
            return
        removal = task_ops.invalidate(graph.store, graph.tasks, selected, dry_run=args.dry_run)
        display(preformatted(_removal_table("Would invalidate" if args.dry_run else "Invalidated", removal)))


def _task_by_hash(graph: LoadedGraph, prefix: str) -> Any:
    from ..session.inkernel import find_task

    if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix.lower()):
        raise UsageError(f"--hash {prefix!r}: give at least 6 hex digits of the task's hash.")
    return find_task(graph.tasks, prefix.lower())


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
        source = _dot_source(graph, status_snapshot(magics, graph), magics.session.project.module)
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


def _dot_source(graph: LoadedGraph, snapshot: StatusSnapshot, module: str | None = None) -> str:
    edges = set()
    for t in graph.tasks:
        for dep in t.dependencies():
            edges.add((task_ops.base_task(dep).name, t.name))
    lines = ["digraph tasks {", "  rankdir=LR; node [shape=box, fontname=Helvetica];"]
    for row in snapshot.rows:
        label = (
            f"{display_name(row.name, module)}\\n{row.complete} complete · {row.active} active · "
            f"{row.ready} ready · {row.waiting} waiting · {row.failed} failed"
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
            ("state folder", str(session.project.state_dir), magics.state_dir_source()),
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
    shown = {JUG_NAMES.get(n, n): c for n, c in removal.results.items()}  # mapreduce.map, not _jug_map
    width = max(len(n) for n in shown)
    rows = [f"  {n:<{width}}  {c:>8}" for n, c in sorted(shown.items())]
    noun = "result" if removal.total == 1 else "results"
    return "\n".join([f"{verb} {removal.total} {noun}, downstream included:", *rows])
