"""Errors that jugnb raises for user mistakes.

Every error names the file, cell and line at fault when it knows them, quotes the offending source and says
what to do next. The CLI prints ``str(err)`` and exits 2; the magics turn it into IPython's ``UsageError``,
which hides the traceback. Anything that is not a :class:`JugnbError` is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class JugnbError(Exception):
    """A user mistake that jugnb can explain.

    Parameters
    ----------
    message : str
        Full, actionable message (already names the location).
    path : str, optional
        File at fault (a notebook, a jugfile, a jugdir).
    cell : str, optional
        Human description of the cell at fault, e.g. ``"cell 4 (id 1a2b3c)"``.
    line : int, optional
        1-based line within that cell (the ``%%jugfile`` line is line 1) or file.
    """

    def __init__(
        self, message: str, *, path: str | None = None, cell: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.cell = cell
        self.line = line

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling (errors cross from workers).
        return (_rebuild, (type(self), self.message, self.path, self.cell, self.line))


def _rebuild(
    cls: type[JugnbError], message: str, path: str | None, cell: str | None, line: int | None
) -> JugnbError:
    err = cls.__new__(cls)
    JugnbError.__init__(err, message, path=path, cell=cell, line=line)
    return err


class NotebookError(JugnbError):
    """The notebook file is missing, unreadable, or not a valid notebook."""


class NoJugfileCellsError(JugnbError):
    """The notebook has no ``%%jugfile`` cells, so it defines no jugfile."""


class CellError(JugnbError):
    """A ``%%jugfile`` cell cannot be part of a jugfile (magic, shell escape, syntax error, bad arguments)."""


class ModuleNameError(JugnbError):
    """The notebook's module name is invalid or would shadow an importable module."""


class StateDirError(JugnbError):
    """jugnb's state folder cannot be written (read-only folder, a file in the way): it can be moved."""


class ForeignFileError(JugnbError):
    """jugnb refuses to overwrite a file it did not generate."""


class JugfileImportError(JugnbError):
    """Importing the jugfile raised an exception (location mapped back to the cell)."""


class StoreError(JugnbError):
    """The jugdir or store cannot be used (bad spec, server unreachable, wrong password)."""


class StoreUnreachable(StoreError):
    """A redis server could not be reached (or refused the login) within the retry time."""


class WorkerError(JugnbError):
    """Worker processes cannot be started, found or stopped as asked."""
