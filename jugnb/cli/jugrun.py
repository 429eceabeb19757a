"""Run one jug subcommand on a notebook, as ``jug`` would run it on the notebook's exported jugfile.

Run as ``python -m jugnb.cli.jugrun SUBCOMMAND [NOTEBOOK.ipynb | JUGFILE.py] [--module NAME] [jug
options...]``
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
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..backends import persist, select, store_lost_errors
from ..errors import JugfileImportError, JugnbError
from ..notebook.export import export_notebook
from ..notebook.jugfile import Jugfile
from ..notebook.project import Project
from ..session.loader import import_error, quiet_import_log, raised_importing
from ..session.misuse import construct_checks
from .exitcodes import JUG_FAILED, REFUSED
from .status import JUG_STATES, refuse_cache, run_status
from .stores import install_saver, left_locks, open_store_for_jug, refuse_in_memory

#: Environment variable: seconds to keep retrying an unreachable redis server (default 60).


def main(argv: list[str]) -> int:
    """Run ``argv`` (``[SUBCOMMAND, ...]``); return jug's exit code, or one of :mod:`jugnb.cli.exitcodes`."""
    jugrc, argv = _pop_jugrc_option(argv)
    jobs = None
    try:
        if argv[:1] == ["execute"]:
            from .parallel import pop_jobs

            try:
                jobs, argv = pop_jobs(argv)
            except ValueError as err:
                raise JugnbError(str(err)) from None
        snapshot, jug_argv, jugfile = resolve(argv)
        shown = _named_jugfile(argv)
    except JugnbError as err:
        print(f"jugnb: error: {err}", file=sys.stderr)
        return REFUSED
    except OSError as err:  # the snapshot cannot be written (read-only folder, a file named .jugnb, ...)
        where = err.filename or "jugnb's state folder"
        msg = f"cannot write the jugfile snapshot in {where}: {err.strerror or err}."
        print(f"jugnb: error: {msg}", file=sys.stderr)
        return REFUSED
    try:
        with _import_errors_named(snapshot, jugfile):
            return run_jug(snapshot, jug_argv, jobs, jugrc=jugrc, shown=shown)
    except JugnbError as err:
        print(f"jugnb: error: {err}", file=sys.stderr)
        # An exception raised by the jugfile's import is jug's condition: jug exits 1 for it.
        return JUG_FAILED if isinstance(err, JugfileImportError) else REFUSED
    except BrokenPipeError:  # `jugnb status NB.ipynb | head`: the reader left, as for any Unix command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def resolve(argv: list[str]) -> tuple[str | None, list[str], Jugfile | None]:
    """Export a notebook named in ``argv`` and rewrite ``argv`` for jug.

    Returns
    -------
    snapshot : str or None
        Path of the jugfile jug should import (``None``: the one jug finds itself).
    jug_argv : list of str
        ``argv`` with the notebook replaced by its exported path and ``--module`` removed.
    jugfile : Jugfile or None
        The notebook's assembled jugfile (to name the cell of an import error).

    Raises
    ------
    JugnbError
        For a bad notebook or module name, or a file that is neither ``.ipynb`` nor ``.py``.
    """
    (module, state_dir), argv = _pop_jugnb_options(argv)
    position = _jugfile_position(argv)
    if position is not None and Path(argv[position]).suffix not in (".ipynb", ".py"):
        # jug would import any file as Python: a data or text file fails in every worker, task by task.
        msg = (
            f"{argv[position]!r} is neither a notebook (.ipynb) nor a jugfile (.py): jugnb {argv[0]} takes "
            "one of those (rename a Python jugfile to end in .py)."
        )
        raise JugnbError(msg)
    if position is None or not argv[position].endswith(".ipynb"):
        given = [
            flag for flag, value in (("--module", module), ("--state-dir", state_dir)) if value is not None
        ]
        if given:
            raise JugnbError(f"{given[0]} only applies to a notebook (.ipynb), not to a .py jugfile.")
        return None, argv, None
    notebook = Path(argv[position])
    project = Project.for_notebook(notebook, module, flag="--module", state_root=state_dir)
    jugfile = export_notebook(notebook)
    snapshot = project.snapshot(jugfile.text)
    # Modules beside the notebook import from any working directory, as modules beside a jugfile do when
    # jug runs in its folder (jug.init puts the working directory first; this folder comes next).
    if str(project.folder) not in sys.path:
        sys.path.insert(0, str(project.folder))
        # `jugnb execute`'s workers import the jugfile in processes of their own: the same folder for them.
        inherited = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(project.folder), *([inherited] if inherited else [])])
    exported = notebook.with_name(f"{project.module}.py")
    return str(snapshot), [*argv[:position], str(exported), *argv[position + 1 :]], jugfile


_CLI_THEN = "Fix the cell, save the notebook, and run the command again."


@contextlib.contextmanager
def _import_errors_named(snapshot: str | None, jugfile: Jugfile | None) -> Iterator[None]:
    """Turn an exception raised while jug imports the notebook's jugfile into an error naming the cell.

    jug's ``init`` prints the traceback of an import failure and exits, unless asked to propagate it (which
    ``execute`` and ``status`` only do with ``--pdb``); here it always propagates, and the traceback's
    frames in the snapshot are mapped back to the cells. Exceptions raised by tasks pass through unchanged.
    """
    if snapshot is None or jugfile is None:
        yield
        return
    import jug
    import jug.jug
    import jug.subcommands.execute as execute_command

    original = jug.jug.init

    def init(*args: Any, **kwargs: Any) -> Any:
        kwargs["on_error"] = "propagate"
        return original(*args, **kwargs)

    # The names jug's subcommands call it by: execute imported it, status calls jug.init.
    jug.init = jug.jug.init = execute_command.init = init
    try:
        with quiet_import_log(), construct_checks():  # misused constructs named by cell, as in the kernel
            yield
    except Exception as err:
        if not raised_importing(err, snapshot):
            raise
        raise import_error(err, jugfile, Path(snapshot), "", then=_CLI_THEN) from None
    finally:
        jug.init = jug.jug.init = execute_command.init = original


def _pop_jugnb_options(argv: list[str]) -> tuple[tuple[str | None, str | None], list[str]]:
    """Take jugnb's own ``--module`` and ``--state-dir`` out of ``argv``; return their values and the rest."""
    parser = argparse.ArgumentParser(prog="jugnb", add_help=False, allow_abbrev=False)
    parser.add_argument("--module", default=None)
    parser.add_argument("--state-dir", default=None)
    known, rest = parser.parse_known_args(argv)
    # parse_known_args reorders nothing among the unknown arguments, so jug sees them as given.
    return (known.module, known.state_dir), rest


def _pop_jugrc_option(argv: list[str]) -> tuple[str | None, list[str]]:
    """Remove jugnb's ``--jugrc FILE`` (jug's options from FILE instead of the jugrc files it would find)."""
    parser = argparse.ArgumentParser(prog="jugnb", add_help=False, allow_abbrev=False)
    parser.add_argument("--jugrc", default=None)
    known, rest = parser.parse_known_args(argv)
    return known.jugrc, rest


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


def run_jug(
    snapshot: str | None,
    argv: list[str],
    jobs: int | None = None,
    *,
    jugrc: str | None = None,
    shown: str | None = None,
) -> int:
    """Parse ``argv`` like ``jug`` and run the subcommand, importing ``snapshot`` when given.

    ``execute`` on a store that processes can share runs ``jobs`` jugnb workers (:mod:`jugnb.cli.parallel`);
    ``status`` prints jugnb's table (:mod:`jugnb.cli.status`) unless ``--jug-states`` asks for jug's.
    ``jugrc`` names a jugrc file read instead of the ones jug finds (``jugnb submit`` keeps a redis
    jugdir's password there, with mode 0600, out of the command line and the environment). ``shown`` names
    the notebook (or jugfile) as the user gave it, in the commands that notes suggest.

    Returns
    -------
    int
        The subcommand's exit code, as ``jug`` would exit.
    """
    import jug.jug
    from jug.options import parse
    from jug.subcommands import cmdapi

    dry = argv[:1] in (["execute"], ["cleanup"]) and "--dry-run" in argv
    force = argv[:1] == ["cleanup"] and "--force" in argv
    jug_states = argv[:1] == ["status"] and JUG_STATES in argv
    drop = {"--dry-run"} if dry else set()
    drop |= {"--force"} if force else set()
    drop |= {JUG_STATES} if jug_states else set()
    argv = [a for a in argv if a not in drop] if drop else argv
    if jugrc is None:
        options = parse(argv)
    else:
        with open(jugrc, encoding="utf-8") as handle:
            options = parse(argv, optionsfile=handle)
    exported = options.jugfile
    if snapshot is not None:
        options.jugfile = snapshot
    jug.jug._is_jug_running = True  # what `jug` sets: jugfiles may test jug.is_jug_running()
    jugdir = options.jugdir
    if options.subcommand == "execute" and not dry:
        refuse_in_memory(jugdir)
    opened = open_store_for_jug(jugdir)
    if opened is not None:
        options.jugdir = opened  # jug uses a store object as is (jug.options.set_jugdir)
    store = jugspace = None
    try:
        if options.subcommand == "execute" and snapshot is not None:
            from .execute import dry_run, install_recorder

            if dry:
                selection = (options.execute_name, options.execute_pattern)
                print(dry_run(snapshot, jugdir, opened, selection))
                return 0
            install_recorder(snapshot, jugdir, opened)
        elif dry and options.subcommand == "execute":
            raise JugnbError("--dry-run needs a notebook (.ipynb): jugnb execute NOTEBOOK.ipynb --dry-run.")
        if options.subcommand == "execute" and select(jugdir).supports_workers:
            from . import parallel

            _warn_password_in_argv(argv)
            jugfile = snapshot if snapshot is not None else options.jugfile
            return parallel.run(jugfile, jugdir, opened, argv, _jugfile_position(argv), jobs, options)
        if jobs is not None:
            msg = "-j/--jobs needs a store that processes share (a folder or redis), not a dict_store."
            raise JugnbError(msg)
        if opened is not None and options.subcommand == "execute":
            install_saver(opened)
        if options.subcommand == "status" and not jug_states:
            from jug import task as jugtask

            refuse_cache(options)
            on_error = "propagate" if options.pdb or snapshot is not None else "exit"
            store, jugspace = jug.jug.init(options.jugfile, options.jugdir, on_error=on_error)
            name = shown or exported
            return run_status(store, list(jugtask.alltasks), jugdir, options.short, name)
        # The subcommands that jug.jug.main lets import the jugfile themselves.
        if options.subcommand not in ("demo", "install-skills", "status", "execute", "webstatus", "test-jug"):
            on_error = "propagate" if options.pdb or snapshot is not None else "exit"
            store, jugspace = jug.jug.init(options.jugfile, options.jugdir, on_error=on_error)
        if options.subcommand == "cleanup":
            return _cleanup(store, options, jugdir, dry, force)
        if options.subcommand == "graph":
            # graph writes <jugfile>.dot (and .png) beside the jugfile: beside the notebook, as for plain jug.
            options.jugfile = exported
        retval = cmdapi.run(options.subcommand, options=options, store=store, jugspace=jugspace)
        if options.subcommand == "status":
            _status_lock_notes(jugdir, opened)
    except store_lost_errors() as lost:
        raise JugnbError(str(lost) + left_locks(opened, jugdir)) from None
    finally:
        if opened is not None:
            persist(opened)  # before jug's close(), which writes non-atomically, then forgets FILE
        if store is not None:
            store.close()
    return int(retval or 0)


def _named_jugfile(argv: list[str]) -> str | None:
    """Return the notebook or jugfile as ``argv`` names it (``None``: jug's default ``jugfile.py``)."""
    rest = _pop_jugnb_options(argv)[1]
    position = _jugfile_position(rest)
    return rest[position] if position is not None else None


def _cleanup(store: Any, options: Any, jugdir: str, dry: bool, force: bool) -> int:
    """Run ``cleanup`` keeping the locks of running jugnb workers, logging what it removed."""
    from jug import task as jugtask

    from ..session.tasks import cleanup
    from ..workers.cleanupguard import removal_lines

    mode = (
        "locks-only" if options.cleanup_locks_only
        else "failed-only" if options.cleanup_failed_only
        else "keep-locks" if options.cleanup_keep_locks
        else "all"
    )  # fmt: skip
    removal = cleanup(store, list(jugtask.alltasks), mode=mode, dry_run=dry, jugdir=jugdir, force=force)
    print("\n".join(removal_lines(removal, mode, jug_words=True)))
    return 0


def _status_lock_notes(jugdir: str, opened: Any) -> None:
    """After jug's status table: who holds the locks that no live jugnb worker holds (lost, plain jug)."""
    from jug import task as jugtask
    from jug.backends import select as jug_select

    from ..workers.lockowners import lock_notes

    if not select(jugdir).supports_workers:
        return
    store = opened if opened is not None else jug_select(jugdir)
    names = {t.hash().decode("ascii"): str(t.name) for t in jugtask.alltasks}
    lines = lock_notes(jugdir, store, names)
    if lines:
        print("\n".join(lines))


def _warn_password_in_argv(argv: list[str]) -> None:
    """Say once that a redis password given on the command line is visible to every local user."""
    from ..backends.spec import redact

    if any(redact(a.split("=", 1)[-1]) != a.split("=", 1)[-1] for a in argv):
        print(
            "jugnb: warning: the redis password in --jugdir is visible to every user of this host (`ps`). "
            "Put the jugdir in a jugrc file with mode 0600 ([main] jugdir = redis://:PASSWORD@host:port/db), "
            "or leave the password out of the URL and set JUGNB_REDIS_PASSWORD (see docs/guide.md).",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
