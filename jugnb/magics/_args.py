"""Option groups shared by the magics, as decorators (like ``script_args`` in IPython's script magics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.magic_arguments import argument

from ..notebook.jugfile import JUGFILE_CELL_OPTIONS

F = TypeVar("F", bound=Callable[..., Any])


def jugfile_cell_args(func: F) -> F:
    """Return the ``%%jugfile`` line's options, declared once in :data:`~.jugfile.JUGFILE_CELL_OPTIONS`.

    ``jugnb export`` parses the same options from saved notebooks, so the two cannot drift apart.
    """
    for option in reversed(JUGFILE_CELL_OPTIONS):
        func = argument(*option.flags, **option.kwargs)(func)
    return func
