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

from ..errors import ModuleNameError
from .jugfile import atomic_write, module_name_for

STATE_DIR_NAME = ".jugnb"

_SHADOWS = (
    "The module name `{name}` (from {source}) would shadow the importable module `{name}`{origin}: jug "
    "registers the jugfile as sys.modules['{name}'], which would break every import of it. Rename the "
    "notebook, or pick another module name with `{flag} {example}`."
)
_NOT_IDENTIFIER = (
    "`{name}` is not a valid module name: use letters, digits and underscores, not starting with a digit."
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

    @classmethod
    def for_notebook(cls, notebook: Path, module: str | None = None, *, flag: str = "--name") -> Project:
        """Project of ``notebook``; ``module`` overrides the name derived from its file stem.

        Raises
        ------
        ModuleNameError
            If the module name is not an identifier or would shadow an importable module; the message
            names ``flag`` as the way to choose another.
        """
        folder = notebook.resolve().parent
        name = module if module is not None else module_name_for(notebook.stem)
        check_module_name(name, folder=folder, source=notebook.name, flag=flag)
        return cls(folder, name, notebook.name)

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
        """Jugnb's own folder beside the notebook (created with a ``.gitignore`` on first use)."""
        return self.folder / STATE_DIR_NAME

    def snapshot(self, text: str) -> Path:
        """Write ``text`` as an immutable jugfile snapshot and return its path (idempotent)."""
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        path = self.state_dir / "jugfiles" / digest / f"{self.module}.py"
        if not path.exists():
            self.ensure_state_dir()
            atomic_write(path, text)
        return path

    def ensure_state_dir(self) -> Path:
        """Create the state folder with a ``.gitignore`` that keeps all of it out of version control."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ignore = self.state_dir / ".gitignore"
        if not ignore.exists():
            atomic_write(ignore, "# jugnb's state: snapshots, worker logs and records. Never commit it.\n*\n")
        return self.state_dir


def check_module_name(name: str, *, folder: Path, source: str, flag: str) -> None:
    """Refuse module names that are not identifiers or that shadow an importable module.

    The notebook's own folder, the working directory and jugnb's state folder are not searched: the
    exported ``<module>.py`` itself lives there.

    Raises
    ------
    ModuleNameError
        With a message that says how to choose another name (``flag``).
    """
    if not name.isidentifier():
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
