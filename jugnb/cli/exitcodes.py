"""The exit codes of the ``jugnb`` command, one table for every subcommand.

The rule: when jugnb can hand the notebook's jugfile to jug, ``jugnb SUBCOMMAND NOTEBOOK.ipynb`` exits with
the code ``jug SUBCOMMAND <module>.py`` exits with on the exported file (jug's codes for jug's conditions).
Code 2 is for what stops jugnb before jug runs, or what jugnb refuses. docs/guide.md shows :data:`EXIT_CODES`
as a table; tests/test_exitcodes.py checks the table, the guide and the behaviour against each other.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Success: the command did what was asked (``status``/``check``: every task is complete).
OK = 0
#: jug's own code for jug's conditions: a task failed, ``status``/``check`` found tasks not complete,
#: or the jugfile raised an exception while it was imported (jugnb names the cell and line).
JUG_FAILED = 1
#: jugnb stopped before jug ran, or refused: a usage error, a missing or invalid notebook, a file that is
#: neither ``.ipynb`` nor ``.py``, no ``%%jugfile`` cells, a cell that is not plain Python, a module name
#: that cannot be used, an unusable state folder or store, ``execute`` into an in-memory ``dict_store``.
REFUSED = 2


@dataclass(frozen=True)
class ExitCode:
    """One row of the exit code table.

    Attributes
    ----------
    code : int
        The process exit code.
    commands : str
        The subcommands it applies to.
    meaning : str
        When it is returned (Markdown, as shown in the guide).
    """

    code: int
    commands: str
    meaning: str


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(OK, "all", "success; `status`, `check` and `sleep-until`: every task is complete"),
    ExitCode(
        JUG_FAILED,
        "jug subcommands",
        "jug's own code: a task failed (`execute`), tasks are not complete (`status`, `check`), or the "
        "jugfile raised an exception while being imported (the message names the cell and line)",
    ),
    ExitCode(
        REFUSED,
        "all",
        "`jugnb: error: …` with what to do: bad arguments, a missing or invalid notebook, a file that is "
        "neither `.ipynb` nor `.py`, no `%%jugfile` cells, a cell that is not plain Python (syntax error, "
        "IPython magic), a module name that cannot be used, a state folder or store that cannot be used, "
        "`execute` into an in-memory `dict_store`",
    ),
)
