"""The store of a jug subcommand run by jugnb: opened by jugnb where jug would open it wrongly.

jug's own ``select`` drops a redis URL's password and database and never saves a ``dict_store:FILE`` that
a process is killed in; jugnb opens those stores itself (:meth:`jugnb.backends.Backend.open_for_jug`) and
hands jug the open store. Also: refusing in-memory stores for ``execute``, and what a lost redis server may
have left locked.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..backends import persist, select
from ..errors import JugnbError

#: Environment variable: seconds a jug subcommand retries an unreachable redis server (default 60).
RETRY_VARIABLE = "JUGNB_STORE_RETRY"


def refuse_in_memory(jugdir: Any) -> None:
    """Refuse to ``execute`` into a store that lives in this process's memory only.

    Raises
    ------
    JugnbError
        For a store that keeps nothing after the process exits (``dict_store``): jug would compute every
        task, then lose every result.
    """
    if isinstance(jugdir, str) and not select(jugdir).persistent:
        msg = (
            f"--jugdir {jugdir} keeps results in the memory of this one process: `execute` would compute "
            "every task and lose every result when it exits, and no other command could see them. Use a "
            "folder (the default <module>.jugdata), dict_store:FILE (saved to FILE), or redis://HOST:PORT/DB."
        )
        raise JugnbError(msg)


def left_locks(store: Any, jugdir: str) -> str:
    """Say which task locks a lost redis server may still hold for this process, and how to clear them."""
    held = select(jugdir).held_locks(store) if store is not None else []
    if not held:
        return ""
    shown = ", ".join(h[:12] for h in held)
    return (
        f"\n{len(held)} task lock(s) this process held may remain ({shown}): once the server is back and no "
        "other worker runs, `jugnb cleanup NOTEBOOK.ipynb --locks-only` removes them."
    )


def open_store_for_jug(jugdir: str) -> Any:
    """Open the stores jug gets wrong (redis: password, database; ``dict_store:FILE``: saving), else ``None``.

    Redis is opened in fatal mode: a server lost for longer than ``$JUGNB_STORE_RETRY`` seconds (default
    60) stops the command with a message instead of failing every task in turn.

    Raises
    ------
    StoreError
        If the store cannot be opened.
    """
    retry = os.environ.get(RETRY_VARIABLE)
    return select(jugdir).open_for_jug(float(retry) if retry else None)


def install_saver(store: Any, every: float = 5.0) -> None:
    """Save a ``dict_store:FILE`` after a task when ``every`` seconds have passed since the last save.

    So that a killed ``execute`` loses at most the last few seconds of work (jug would lose all of it).
    """
    from jug.hooks import register_hook

    last = [time.monotonic()]

    def save(_task: Any) -> None:
        if time.monotonic() - last[0] >= every:
            persist(store)
            last[0] = time.monotonic()

    if getattr(store, "backend", None) is not None:
        register_hook("execute.task-executed1", save)
