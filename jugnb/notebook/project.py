"""Where a notebook's jugfile, jugdir and jugnb's own state live.

For ``notebooks/grid_search.ipynb`` (module ``grid_search``):

- ``notebooks/grid_search.py``: the exported jugfile (``jugnb export``), exactly what plain jug runs;
- ``notebooks/grid_search.jugdata``: the default jugdir, the one ``jug execute notebooks/grid_search.py``
  uses, so results are shared with plain jug;
- ``notebooks/.jugnb/``: jugnb's state folder (ignored by git through its own ``.gitignore``): jugfile
  snapshots that workers and the CLI import, worker logs and state files.

Snapshots are content-addressed (``.jugnb/jugfiles/<sha1[:12]>/<module>.py``): a file never changes once
written, so a worker keeps importing the code it started with while the kernel moves on to a new version.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModuleNameError, StateDirError
from .jugfile import atomic_write, is_module_name, module_name_for

STATE_DIR_NAME = ".jugnb"

_SHADOWS = (
    "The module name `{name}` (from {source}) would shadow the importable module `{name}`{origin}: jug "
    "registers the jugfile as sys.modules['{name}'], which would break every import of it. Rename the "
    "notebook, or pick another module name with `{flag} {example}`."
)
_NOT_IDENTIFIER = (
    "`{name}` is not a valid module name: use letters, digits and underscores, not starting with a digit "
    "(hyphens may join such words, as in `run-simple-create-file`)."
)


@dataclass(frozen=True)
class Project:
    """A notebook's module name and the paths derived from it.

    Attributes
    ----------
    folder : Path
        Absolute folder of the notebook (the working directory when the notebook is unknown).
    module : str
        Module name of the jugfile; jug names tasks ``<module>.<function>``.
    source_name : str
        Notebook file name written in the jugfile's header (``"grid_search.ipynb"``).
    """

    folder: Path
    module: str
    source_name: str
    state_root: Path | None = None

    @classmethod
    def for_notebook(
        cls,
        notebook: Path,
        module: str | None = None,
        *,
        flag: str = "--name",
        state_root: str | Path | None = None,
    ) -> Project:
        """Project of ``notebook``; ``module`` overrides the name derived from its file stem.

        Parameters
        ----------
        notebook : Path
            The ``.ipynb`` file.
        module : str, optional
            Module name (default: from the file stem).
        flag : str
            How the user picks another module name, for messages.
        state_root : str or Path, optional
            Where jugnb's state folders go instead of ``.jugnb`` beside the notebook (default: the jugrc
            files' ``[jugnb] state_dir``, else none).

        Raises
        ------
        ModuleNameError
            If the module name is not valid or would shadow an importable module; the message names
            ``flag`` as the way to choose another. Also when the notebook's name cannot be read as UTF-8
            text in this process (a C/POSIX locale with Python's UTF-8 mode off).
        """
        _check_decodable(notebook)
        folder = notebook.resolve().parent
        name = module if module is not None else module_name_for(notebook.stem)
        check_module_name(name, folder=folder, source=notebook.name, flag=flag)
        root = state_root if state_root is not None else jugrc_state_dir()
        return cls(folder, name, notebook.name, resolve_state_root(root))

    @property
    def export_path(self) -> Path:
        """Default path of ``jugnb export``: ``<folder>/<module>.py``."""
        return self.folder / f"{self.module}.py"

    @property
    def default_jugdir(self) -> Path:
        """Default jugdir: ``<folder>/<module>.jugdata``."""
        return self.folder / f"{self.module}.jugdata"

    @property
    def state_dir(self) -> Path:
        """Jugnb's own folder: ``.jugnb`` beside the notebook, or one per notebook folder in ``state_root``.

        Created with a ``.gitignore`` on first use. Under a configured root, each notebook folder gets its
        own subfolder (``<folder name>-<digest of its path>``), so one root serves every project.
        """
        if self.state_root is None:
            return self.folder / STATE_DIR_NAME
        digest = hashlib.sha1(os.fsencode(self.folder)).hexdigest()[:10]
        return self.state_root / f"{self.folder.name}-{digest}"

    def snapshot(self, text: str) -> Path:
        """Write ``text`` as an immutable jugfile snapshot and return its path (idempotent).

        Raises
        ------
        StateDirError
            When the state folder cannot be written (a read-only notebook folder, a file in the way).
        """
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        path = self.state_dir / "jugfiles" / digest / f"{self.module}.py"
        if not _holds(path, text):  # missing, or edited by hand: the name says what it must hold
            try:
                self.ensure_state_dir()
                atomic_write(path, text)
            except OSError as err:
                where = err.filename or self.state_dir
                msg = _UNWRITABLE.format(where=where, why=err.strerror or err)
                raise StateDirError(msg, path=str(where)) from None
        return path

    def ensure_state_dir(self) -> Path:
        """Create the state folder with a ``.gitignore`` that keeps all of it out of version control."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ignore = self.state_dir / ".gitignore"
        if not ignore.exists():
            atomic_write(ignore, "# jugnb's state: snapshots, worker logs and records. Never commit it.\n*\n")
        return self.state_dir


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


def jugrc_state_dir() -> str | None:
    """Return the ``state_dir`` of the ``[jugnb]`` section of jug's configuration files, if set.

    jug reads its jugrc files (``~/.config/jugrc``, ``.jugrc`` up to the git root, ...) with every section,
    so ``[jugnb] state_dir = PATH`` arrives as the option ``jugnb_state_dir``.
    """
    from jug.options import default_options, read_configuration_file

    value = getattr(read_configuration_file(default_options=default_options), "jugnb_state_dir", None)
    return str(value) if value else None


def resolve_state_root(root: str | Path | None) -> Path | None:
    """Make a configured state root absolute (``~`` expanded; relative to the working directory)."""
    return None if root is None or str(root) == "" else Path(os.path.expanduser(root)).absolute()


_UNWRITABLE = (
    "jugnb cannot write its state folder ({where}: {why}). Move it: `--state-dir DIR` on the command line, "
    "`%config JugMagics.state_dir = 'DIR'` in the notebook, or `state_dir = DIR` in the [jugnb] section of "
    "a jugrc file. For a read-only notebook folder, also put the jugdir elsewhere (--jugdir, "
    "JugMagics.jugdir)."
)
_UNDECODABLE = (
    "The notebook's path {name!r} is not ASCII, and this process reads file names as {encoding} (a C or "
    "POSIX locale with Python's UTF-8 mode off), so jugnb cannot give it the module name, task names and "
    "files that every other process gives it. Run with PYTHONUTF8=1 (for a kernel: add it to the env of "
    "its kernel spec, kernel.json) or a UTF-8 locale (LANG=C.UTF-8), or rename the notebook."
)


def _check_decodable(notebook: Path) -> None:
    """Refuse a notebook path this process cannot pass to the filesystem, or whose name it cannot read."""
    try:
        notebook.name.encode("utf-8")  # the name makes the module name: undecodable bytes fail here
        os.fsencode(notebook)  # non-ASCII text (from configuration) under an ASCII encoding fails here
    except UnicodeEncodeError:
        text = str(notebook).encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")
        encoding = sys.getfilesystemencoding()
        raise ModuleNameError(_UNDECODABLE.format(name=text, encoding=encoding)) from None


def check_module_name(name: str, *, folder: Path, source: str, flag: str) -> None:
    """Refuse module names that are not identifiers or that shadow an importable module.

    The notebook's own folder, the working directory and jugnb's state folder are not searched: the
    exported ``<module>.py`` itself lives there.

    Raises
    ------
    ModuleNameError
        With a message that says how to choose another name (``flag``).
    """
    if not is_module_name(name):
        raise ModuleNameError(_NOT_IDENTIFIER.format(name=name))
    origin = _importable_origin(name, excluded={str(folder), os.getcwd(), ""})
    if origin is not None:
        where = f" ({origin})" if origin != "built-in" else " (built in)"
        example = "'OTHER_NAME'" if flag.startswith("%config") else "OTHER_NAME"  # %config evaluates Python
        raise ModuleNameError(
            _SHADOWS.format(name=name, source=source, origin=where, flag=flag, example=example)
        )


def _importable_origin(name: str, excluded: set[str]) -> str | None:
    if name in sys.builtin_module_names:
        return "built-in"
    if name in sys.stdlib_module_names:
        return "the standard library"
    path = [
        p for p in sys.path if os.path.abspath(p or ".") not in {os.path.abspath(e or ".") for e in excluded}
    ]
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None:
        return None
    return (
        spec.origin or (spec.submodule_search_locations and list(spec.submodule_search_locations)[0]) or name
    )
