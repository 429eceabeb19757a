"""Static check of a jugfile for names that only the notebook's ordinary cells define.

Workers import the jugfile alone, so a task function that uses a name defined in an ordinary cell works in
the kernel's namespace at most, and fails with ``NameError`` in every worker. pyflakes finds the undefined
names; this module keeps those used inside functions and says which function uses them.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from dataclasses import dataclass

from pyflakes import checker, messages

from .jugfile import Jugfile


@dataclass(frozen=True)
class ForeignName:
    """A name used in a jugfile function but not defined in the jugfile.

    Attributes
    ----------
    function : str
        The function using it.
    name : str
        The undefined name.
    where : str
        Cell and line, e.g. ``"%%jugfile cell 2, line 4"``.
    in_notebook : bool
        Whether the notebook's namespace defines it (in an ordinary cell).
    """

    function: str
    name: str
    where: str
    in_notebook: bool

    def __str__(self) -> str:
        origin = "defined only in an ordinary cell" if self.in_notebook else "not defined anywhere"
        return (
            f"{self.where}: function `{self.function}` uses `{self.name}`, {origin}: workers import only the "
            f"%%jugfile cells and will fail with NameError. Define `{self.name}` in a %%jugfile cell."
        )


def foreign_names(jugfile: Jugfile, notebook_names: Collection[str]) -> list[ForeignName]:
    """Names used inside the jugfile's functions that the jugfile does not define.

    Parameters
    ----------
    jugfile : Jugfile
    notebook_names : collection of str
        Names in the notebook's namespace (to tell "ordinary cell" from "nowhere").

    Returns
    -------
    list of ForeignName
        One per (function, name), in line order.
    """
    tree = ast.parse(jugfile.text)
    functions = _function_spans(tree)
    found: dict[tuple[str, str], ForeignName] = {}
    for message in checker.Checker(tree, filename="<jugfile>").messages:
        if not isinstance(message, messages.UndefinedName):
            continue
        name = message.message_args[0]
        function = _enclosing(functions, message.lineno)
        if function is None or (function, name) in found:
            continue
        where = jugfile.describe_line(message.lineno)
        found[(function, name)] = ForeignName(function, name, where, name in notebook_names)
    return list(found.values())


def _function_spans(tree: ast.AST) -> list[tuple[int, int, str]]:
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            name = getattr(node, "name", "<lambda>")
            spans.append((node.lineno, node.end_lineno or node.lineno, name))
    return spans


def _enclosing(spans: list[tuple[int, int, str]], lineno: int) -> str | None:
    inside = [s for s in spans if s[0] <= lineno <= s[1]]
    # The innermost function is the one that starts last.
    return max(inside)[2] if inside else None
