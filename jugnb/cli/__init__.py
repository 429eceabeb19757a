"""The ``jugnb`` command: ``export`` and every jug subcommand on a notebook.

:func:`main` is the console entry point; each jug subcommand runs in a child process
(``python -m jugnb.cli.jugrun``), and :mod:`.execute` is what ``jugnb execute`` adds to jug's execute.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
