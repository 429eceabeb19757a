"""The ``%%jugfile`` cell magic and the ``%jug`` line magic.

Configuration (``%config JugMagics.<name> = ...`` in a notebook, or ``c.JugMagics.<name>`` in an IPython
profile's ``ipython_config.py``)::

    c.JugMagics.jugdir = "redis://localhost:6379/0"  # default: jugrc's [main] jugdir, else <module>.jugdata
    c.JugMagics.module = "my_analysis"                # default: the notebook's file stem as an identifier
    c.JugMagics.notebook = "analysis.ipynb"           # default: what the frontend reveals
    c.JugMagics.state_dir = "~/.cache/jugnb"          # default: jugrc's [jugnb] state_dir, else .jugnb
    c.JugMagics.show_summary = True                   # one-line summary after each %%jugfile cell
    c.JugMagics.auto_invalidate_stale = False         # invalidate stale results after each %%jugfile cell

Precedence for the jugdir: ``%config``/profile > jugrc files (jug's own lookup) > ``<module>.jugdata`` beside
the notebook. ``%jug config`` shows the effective values and where each came from.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Float, Unicode, observe

from ..backends.spec import redact, resolve_jugdir
from ..errors import JugnbError
from ..notebook.jugfile import Fragment
from ..notebook.lint import foreign_names
from ..notebook.project import Project, jugrc_state_dir, resolve_state_root
from ..session.kernel import NotebookSession
from ..session.loader import LoadedGraph
from ..session.reproduce import ReproducibilityCheck
from . import (  # noqa: F401 - they register their subcommands
    commands,
    failure_commands,
    job_commands,
    stale_commands,
    status_command,
    worker_commands,
)
from ._args import jugfile_cell_args
from .command import forget_status, get, status_reader, summary_line
from .namespace import shell_functions


@magics_class
class JugMagics(Magics):
    """Define a notebook's jug task graph in ``%%jugfile`` cells and work with it through ``%jug``."""

    shell: Any  # never None here: load_ipython_extension registers the magics on a shell

    jugdir = Unicode(
        None,
        allow_none=True,
        help="The jugdir (jug's --jugdir: a folder, file_keepalive:PATH, redis://[:password@]host:port/db, "
        "dict_store or dict_store:FILE). None: jugrc's [main] jugdir, else <module>.jugdata beside the "
        "notebook.",
    ).tag(config=True)
    module = Unicode(
        None,
        allow_none=True,
        help="Module name of the jugfile (names the tasks). None: from the notebook's name.",
    ).tag(config=True)
    notebook = Unicode(
        None,
        allow_none=True,
        help="Path of the notebook. None: found from the frontend (JPY_SESSION_NAME, VS Code's "
        "__vsc_ipynb_file__); without either the module is `jugfile` in the working directory.",
    ).tag(config=True)
    state_dir = Unicode(
        None,
        allow_none=True,
        help="Folder for jugnb's state (jugfile snapshots, worker logs and heartbeats), one subfolder per "
        "notebook folder, e.g. when the notebook's folder is read-only. None: jugrc's [jugnb] state_dir, "
        "else .jugnb beside the notebook.",
    ).tag(config=True)
    clean_import_timeout = Float(
        60.0,
        help="Seconds for the check, before %jug execute starts workers, that a clean import of the jugfile "
        "(as a worker does it) gives the kernel's task hashes. 0 skips the check. When it takes longer, "
        "the workers start with a warning.",
    ).tag(config=True)
    show_summary = Bool(True, help="Print a one-line summary after each %%jugfile cell.").tag(config=True)
    auto_invalidate_stale = Bool(
        False,
        help="After each %%jugfile cell, invalidate results computed by code that changed since (and "
        "everything "
        "downstream of them), and say what was removed. Off: stale results are only reported.",
    ).tag(config=True)

    @classmethod
    def class_get_trait_help(cls, trait: Any, inst: Any = None, helptext: str | None = None) -> str:
        """Return a trait's help for ``%config JugMagics``, with any redis password in its value hidden."""
        text = str(super().class_get_trait_help(trait, inst, helptext))
        value = getattr(inst, trait.name, None) if inst is not None else None
        return text.replace(value, redact(value)) if isinstance(value, str) and value else text

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._session: NotebookSession | None = None
        self._cell_id: str | None = None
        self._bound: dict[str, Any] = {}
        # Outdated tasks, shared by every session of this kernel: they survive `%jug reset`.
        self._retired: dict[bytes, tuple[str, str | None]] = {}
        self._pool: Any = None
        self.reproducibility = ReproducibilityCheck()
        self.panel: Any = None  # the last progress panel shown
        self._status_reader: Any = None
        self._cell_serial = 0
        if shell is not None:
            shell.events.register("pre_run_cell", self._remember_cell_id)
            shell.user_ns.update(shell_functions(self))

    @observe("jugdir", "module", "notebook", "state_dir")
    def _configuration_changed(self, change: Any) -> None:
        # The session is built from these once; a change must not be silently ignored.
        if self._session is None:
            return
        if self._session.graph is None:
            self._session = None  # nothing loaded yet: the next cell uses the new setting
            return
        print(
            f"JugMagics.{change['name']} changed: it applies after `%jug reset` and running the %%jugfile "
            "cells again (the loaded jugfile keeps its module and jugdir until then)."
        )

    @property
    def session(self) -> NotebookSession:
        """The notebook's session, created on first use from the configuration."""
        if self._session is None:
            self._session = self._new_session()
        return self._session

    @property
    def graph(self) -> LoadedGraph:
        """The loaded graph, reloaded first when a barrier it stopped at has cleared.

        Raises
        ------
        UsageError
            If no ``%%jugfile`` cell has run yet.
        """
        session = self.session
        if session.graph is None:
            raise UsageError("No jugfile loaded yet: run a %%jugfile cell first.")
        self._reload_past_barrier()
        return session.graph

    @magic_arguments()
    @jugfile_cell_args
    @cell_magic
    def jugfile(self, line: str, cell: str) -> None:
        """Add this cell to the notebook's jugfile, then import the jugfile through jug.

        The cell is Python that plain ``jug`` can import (no magics or ``!`` shell escapes). Re-running a cell
        replaces its previous version (cells are identified by the frontend's cell id, or by ``--name``).
        The module's public names (tasks, functions, values) are then bound in the notebook.

        Examples
        --------
        In [1]: %%jugfile --name double
           ...: from jug import TaskGenerator
           ...: @TaskGenerator
           ...: def double(x):
           ...:     return 2 * x
           ...: results = [double(i) for i in range(10)]
        jugfile: 10 tasks (double ×10) · 10 ready · jugdir jugfile.jugdata
        """
        args = parse_argstring(self.jugfile, line)
        fragment = Fragment(cell, cell_id=self._cell_id, name=args.name)
        try:
            graph, ordinal = self.session.run_fragment(fragment)
        except JugnbError as err:
            raise UsageError(str(err)) from err
        self._bind(graph)
        for warning in foreign_names(graph.jugfile, self.shell.user_ns):
            print(f"Warning: {warning}")
        redefined = self.session.redefinitions(ordinal)
        if redefined:
            print(
                f"Warning: this cell has no cell id or --name, so it was added as %%jugfile cell {ordinal}, "
                f"and it defines {', '.join(redefined)} again after an earlier cell. If it is an edited "
                "version of that cell, label both with `%%jugfile --name LABEL` (then a re-run replaces it), "
                "or `%jug reset` and run the cells again."
            )
        if self.auto_invalidate_stale:
            self.run_subcommand("invalidate", ["--stale"])
        if self.show_summary and not args.quiet:
            try:
                print(summary_line(self, graph))
            except JugnbError as err:  # e.g. the redis server went away since the store was opened
                msg = f"The jugfile is loaded ({len(graph.tasks)} tasks) but its status cannot be read: {err}"
                raise UsageError(msg) from err

    @magic_arguments()
    @argument(
        "subcommand", nargs="?", default="help", help="One of the subcommands below; `help` lists them."
    )
    @argument(
        "arguments", nargs="...", help="The subcommand's arguments; `%%jug help SUBCOMMAND` shows them."
    )
    @line_magic
    def jug(self, line: str) -> Any:
        """Run a jug subcommand on the notebook's jugfile: ``%jug SUBCOMMAND [options]``.

        ``%jug help`` lists the subcommands and ``%jug help SUBCOMMAND`` shows one's options.

        Examples
        --------
        In [2]: %jug status
        In [3]: %jug invalidate --name score --dry-run
        In [4]: %jug cleanup --dry-run
        """
        # POSIX quoting, as in a shell: `--pattern "a b"` is one value, `--name ""` an empty one; and
        # `# ...` after the command is a comment, as after Python code (`%jug execute -j 2  # two workers`).
        try:
            words = shlex.split(line, comments=True)
        except ValueError as err:  # an unclosed quote
            raise UsageError(f"%jug {line}: {err}.") from None
        args = self.jug.parser.parse_args(words)
        return self.run_subcommand(args.subcommand, args.arguments)

    @line_magic("%jugfile")  # type: ignore[arg-type]  # IPython types the name-taking form badly
    def misplaced_jugfile(self, line: str) -> None:
        """Explain a ``%%jugfile`` that is not the first line of its cell.

        IPython runs a cell magic only from the cell's first line; anywhere else ``%%jugfile`` reaches
        IPython as a line magic named ``%jugfile``, which this is, so the user gets a fix instead of IPython's
        "Line magic function not found".
        """
        msg = (
            "`%%jugfile` must be the first line of the cell (IPython's rule for cell magics), but this cell "
            "has a comment or code above it. Move `%%jugfile` to the top of the cell."
        )
        raise UsageError(msg)

    def run_subcommand(self, name: str, argv: list[str]) -> Any:
        """Run ``%jug NAME ARGV...``; jugnb's errors become ``UsageError`` (shown without a traceback)."""
        command = get(name)
        options = command.parser().parse_args(argv)
        try:
            return command.run(self, options)
        except JugnbError as err:
            raise UsageError(str(err)) from err

    def show_progress(self, pool: Any) -> None:
        """Display the live progress panel for the loaded graph and ``pool`` (``None``: records only)."""
        from ..widgets import progress_panel
        from .stale_commands import current_staleness

        session = self.session
        panel = progress_panel(
            lambda: session.graph,  # runs on the poller's thread: never reloads
            pool,
            parent=self,
            title=session.project.module,
            reader=lambda graph: status_reader(self, graph),
            staleness=lambda graph, _snapshot: {
                r.name: r.stale for r in current_staleness(self, graph).report.rows
            },
            on_barrier_cleared=self._schedule_reload,
        )
        self.shell.configurables.append(panel.poller)
        self.panel = panel
        from .job_commands import add_jobs_section

        add_jobs_section(self, panel)
        panel.display()

    def task_browser(self) -> Any:
        """Return a :class:`~jugnb.widgets.TaskBrowser` on the loaded graph and the notebook namespace."""
        from ..widgets import TaskBrowser

        return TaskBrowser(
            lambda: self.session.graph,
            namespace=self.shell.user_ns,
            run_in_kernel=lambda task: self.run_subcommand("run", [task.hash().decode()]),
        )

    def _schedule_reload(self) -> None:
        # The poller runs on its own thread; jug's import must happen on the kernel's main thread.
        kernel = getattr(self.shell, "kernel", None)
        if kernel is not None:
            kernel.io_loop.add_callback(self._reload_past_barrier)

    def reset(self) -> None:
        """Forget every fragment and the loaded graph, and re-read the configuration (``%jug reset``)."""
        self._unbind()
        if self._session is not None:
            self._session.reset()  # its tasks become outdated: value() of them says so
        self._session = None

    def close(self) -> None:
        """Stop background activity (``%unload_ext jugnb``); workers keep running."""
        self.shell.events.unregister("pre_run_cell", self._remember_cell_id)
        if "jugnb.widgets.poller" in sys.modules:
            sys.modules["jugnb.widgets.poller"].StatusPoller.stop_all()

    def _remember_cell_id(self, info: Any) -> None:
        self._cell_id = getattr(info, "cell_id", None)
        self._cell_serial += 1  # failures are shown once per cell

    def _reload_past_barrier(self) -> None:
        try:
            if self.session.reload_if_barrier_cleared() and self.session.graph is not None:
                self._bind(self.session.graph)
        except JugnbError as err:
            raise UsageError(str(err)) from err

    def _bind(self, graph: LoadedGraph) -> None:
        names = graph.public_names()
        self._unbind(keep=names)
        self.shell.user_ns.update(names)
        self._bound = names
        forget_status(self)

    def _unbind(self, keep: dict[str, Any] | None = None) -> None:
        # Remove names an earlier import bound that are gone now, unless the user rebound them.
        user_ns = self.shell.user_ns
        for name, obj in self._bound.items():
            if (keep is None or name not in keep) and user_ns.get(name) is obj:
                del user_ns[name]
        self._bound = {}

    def _new_session(self) -> NotebookSession:
        try:
            project = self._project()
            spec, _ = self.jugdir_setting(project)
            return NotebookSession(
                project,
                resolve_jugdir(spec, jugfile=project.export_path, base=Path.cwd()),
                retired=self._retired,
            )
        except JugnbError as err:
            raise UsageError(str(err)) from err

    def _project(self) -> Project:
        notebook, _ = self.notebook_setting()
        root = self.state_dir if self.state_dir is not None else jugrc_state_dir()
        if notebook is None:
            return Project(
                Path.cwd(), self.module or "jugfile", "an IPython session", resolve_state_root(root)
            )
        return Project.for_notebook(
            notebook, self.module, flag="%config JugMagics.module =", state_root=root
        )  # the hint quotes the name

    def state_dir_source(self) -> str:
        """Where the state folder's location came from (for ``%jug config``)."""
        if self.state_dir is not None:
            return "%config JugMagics.state_dir"
        return "a jugrc file ([jugnb] state_dir)" if jugrc_state_dir() else "beside the notebook"

    def notebook_setting(self) -> tuple[Path | None, str]:
        """Return the notebook's path (or ``None``) and where it came from."""
        if self.notebook:
            return Path(self.notebook), "%config JugMagics.notebook"
        vscode = self.shell.user_ns.get("__vsc_ipynb_file__")
        if vscode:
            return Path(vscode), "VS Code (__vsc_ipynb_file__)"
        session_name = os.environ.get("JPY_SESSION_NAME")
        if session_name:
            path = Path(session_name)
            # Jupyter Server may give a path relative to its root; the kernel runs in the notebook's folder.
            return (path if path.is_absolute() else Path.cwd() / path.name), "Jupyter (JPY_SESSION_NAME)"
        return None, "not revealed by the frontend"

    def jugdir_setting(self, project: Project) -> tuple[str, str]:
        """Return the configured jugdir (before ``%(jugfile)s`` expansion) and where it came from."""
        if self.jugdir:
            return self.jugdir, "%config JugMagics.jugdir (or an IPython profile)"
        from jug.options import default_options, read_configuration_file

        jugrc = read_configuration_file(default_options=default_options)
        configured = getattr(jugrc, "jugdir", None)
        if configured is not None and configured != default_options.jugdir:
            return str(configured), "a jugrc file"
        return "%(jugfile)s.jugdata", "default (<module>.jugdata beside the notebook)"
