"""Run one jug subcommand on a notebook, as ``jug`` would run it on the notebook's exported jugfile.

Run as ``python -m jugnb.jugrun SUBCOMMAND [NOTEBOOK.ipynb | JUGFILE.py] [--module NAME] [jug options...]``
(``jugnb SUBCOMMAND ...`` starts it). For a notebook it exports the jugfile to a snapshot in jugnb's state
folder, then lets jug parse its options (command line, jugrc files, defaults) with the *exported* path
(``notebooks/grid_search.py``) as the jugfile, so ``--jugdir`` defaults, ``%(jugfile)s`` and relative
paths mean exactly what they mean for ``jug SUBCOMMAND notebooks/grid_search.py``. The code jug imports is
the snapshot, which has the same file name (hence module name and task hashes). The user's files are never
written. A ``.py`` jugfile is passed straight through.

It runs in its own process because jug's option parsing rewrites ``sys.argv``, sets the root logger's level
and installs signal handlers. Uses only the core and jug.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import JugnbError
from .export import export_notebook
from .project import Project


def main(argv: list[str]) -> int:
    """Run ``argv`` (``[SUBCOMMAND, ...]``); return the exit code jug would exit with (2 for jugnb errors)."""
    try:
        snapshot, jug_argv = resolve(argv)
        return run_jug(snapshot, jug_argv)
    except JugnbError as err:
        print(f"jugnb: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the snapshot cannot be written (read-only folder, a file named .jugnb, ...)
        where = err.filename or "jugnb's state folder"
        msg = f"cannot write the jugfile snapshot in {where}: {err.strerror or err}."
        print(f"jugnb: error: {msg}", file=sys.stderr)
        return 2


def resolve(argv: list[str]) -> tuple[str | None, list[str]]:
    """Export a notebook named in ``argv`` and rewrite ``argv`` for jug.

    Returns
    -------
    snapshot : str or None
        Path of the jugfile jug should import (``None``: the one jug finds itself).
    jug_argv : list of str
        ``argv`` with the notebook replaced by its exported path and ``--module`` removed.

    Raises
    ------
    JugnbError
        For a bad notebook or module name.
    """
    module, argv = _pop_module_option(argv)
    position = _jugfile_position(argv)
    if position is None or not argv[position].endswith(".ipynb"):
        if module is not None:
            raise JugnbError("--module only applies to a notebook (.ipynb), not to a .py jugfile.")
        return None, argv
    notebook = Path(argv[position])
    project = Project.for_notebook(notebook, module, flag="--module")
    snapshot = project.snapshot(export_notebook(notebook).text)
    exported = notebook.with_name(f"{project.module}.py")
    return str(snapshot), [*argv[:position], str(exported), *argv[position + 1 :]]


def _pop_module_option(argv: list[str]) -> tuple[str | None, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--module", default=None)
    known, rest = parser.parse_known_args(argv)
    # parse_known_args reorders nothing among the unknown arguments, so jug sees them as given.
    return known.module, rest


def _jugfile_position(argv: list[str]) -> int | None:
    """Index of jug's positional jugfile argument in ``argv`` (jug's own parser tells option values apart)."""
    from jug.options import build_parser

    if not argv:
        return None
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = subparsers.choices.get(argv[0])
    if parser is None:
        return None
    takes_value = {
        flag for action in parser._actions if action.nargs is None for flag in action.option_strings
    }
    skip = False
    for index, arg in enumerate(argv[1:], start=1):
        if skip:
            skip = False
        elif arg == "--":
            return index + 1 if index + 1 < len(argv) else None
        elif arg.startswith("-"):
            skip = arg in takes_value
        else:
            return index
    return None


def run_jug(snapshot: str | None, argv: list[str]) -> int:
    """Parse ``argv`` like ``jug`` and run the subcommand, importing ``snapshot`` when given.

    Returns
    -------
    int
        The subcommand's exit code, as ``jug`` would exit.
    """
    import jug.jug
    from jug.options import parse
    from jug.subcommands import cmdapi

    dry = argv[:1] == ["execute"] and "--dry-run" in argv
    options = parse([a for a in argv if a != "--dry-run"] if dry else argv)
    exported = options.jugfile
    if snapshot is not None:
        options.jugfile = snapshot
    jug.jug._is_jug_running = True  # what `jug` sets: jugfiles may test jug.is_jug_running()
    if options.subcommand == "execute" and snapshot is not None:
        from .cli_execute import dry_run, install_recorder

        if dry:
            print(dry_run(snapshot, options.jugdir))
            return 0
        install_recorder(snapshot, options.jugdir)
    elif dry:
        raise JugnbError("--dry-run needs a notebook (.ipynb): jugnb execute NOTEBOOK.ipynb --dry-run.")
    store = jugspace = None
    try:
        # The subcommands that jug.jug.main lets import the jugfile themselves.
        if options.subcommand not in ("demo", "install-skills", "status", "execute", "webstatus", "test-jug"):
            on_error = "propagate" if options.pdb else "exit"
            store, jugspace = jug.jug.init(options.jugfile, options.jugdir, on_error=on_error)
        if options.subcommand == "graph":
            # graph writes <jugfile>.dot (and .png) beside the jugfile: beside the notebook, as for plain jug.
            options.jugfile = exported
        retval = cmdapi.run(options.subcommand, options=options, store=store, jugspace=jugspace)
    finally:
        if store is not None:
            store.close()
    return int(retval or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
