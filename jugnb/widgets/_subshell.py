"""Let widget buttons work while another cell runs: route their comm messages to a kernel subshell.

Why this is needed: a button click reaches the kernel as a ``comm_msg`` on the shell channel. ipykernel
handles shell messages one at a time on the main thread, so while a cell runs (``time.sleep``, a long
computation, ``%jug wait``) the click waits in the queue until the cell ends. ipykernel 7.4 only dispatches
comm messages concurrently when the running cell is *async* and awaiting.

What ipykernel ≥ 7 offers (JEP 91, kernel subshells): a shell-channel thread receives every shell message and
forwards it to the main shell or to a subshell thread; for ``comm_msg``/``comm_close`` it asks the target comm
(``BaseComm._reply_subshell_for``) which subshell should get it. We create one subshell for jugnb's widgets
(on the shell-channel thread, where ipykernel creates its own) and make our widgets' comms answer with its id,
so their messages are handled on that subshell's thread while the main thread is busy.

This uses ipykernel internals (``shell_channel_thread.manager._create_subshell`` and
``_reply_subshell_for``), so every step is feature-detected: on an older ipykernel, in terminal IPython or
without a kernel, :func:`route_to_subshell` returns ``False`` and the widgets work as usual, between cells
only. Callbacks of routed widgets run on the subshell thread: they must be thread-safe (jugnb's only set
traits, signal workers, or touch the store).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_subshell_id: str | None = None
_failed = False
#: Seconds to wait for the shell-channel thread to create the subshell.
CREATE_TIMEOUT = 5.0


def kernel() -> Any:
    """Return the running ipykernel ``Kernel`` instance, or ``None`` (never imports ipykernel itself)."""
    module = sys.modules.get("ipykernel.kernelbase")
    if module is None or not module.Kernel.initialized():
        return None
    return module.Kernel.instance()


def _supported(k: Any) -> bool:
    thread = getattr(k, "shell_channel_thread", None)
    manager = getattr(thread, "_manager", None)
    return manager is not None and hasattr(manager, "_create_subshell") and hasattr(thread, "io_loop")


def jugnb_subshell() -> str | None:
    """Id of jugnb's widget subshell, created on first use; ``None`` where subshells are unavailable."""
    global _subshell_id, _failed
    with _lock:
        if _subshell_id is not None or _failed:
            return _subshell_id
        k = kernel()
        if k is None or not _supported(k):
            _failed = True
            return None
        _subshell_id = _create(k)
        _failed = _subshell_id is None
        return _subshell_id


def _create(k: Any) -> str | None:
    thread = k.shell_channel_thread
    made: list[str] = []
    ready = threading.Event()

    def create() -> None:  # runs on the shell-channel thread, as ipykernel's own create_subshell does
        try:
            made.append(thread.manager._create_subshell())
        except Exception:  # an ipykernel whose internals moved: fall back to main-thread handling
            log.debug("could not create a subshell for jugnb's widgets", exc_info=True)
        finally:
            ready.set()

    thread.io_loop.add_callback(create)
    if not ready.wait(CREATE_TIMEOUT) or not made:
        return None
    return made[0]


def route_to_subshell(widgets: Iterable[Any]) -> bool:
    """Have the frontend's messages to ``widgets`` handled on jugnb's subshell thread.

    Parameters
    ----------
    widgets : iterable of ipywidgets.Widget
        Widgets whose messages (clicks, value changes) must be handled while a cell runs.

    Returns
    -------
    bool
        Whether the messages are routed (``False``: no kernel, or a kernel without subshells).
    """
    subshell = jugnb_subshell()
    if subshell is None:
        return False
    routed = False
    for widget in widgets:
        comm = getattr(widget, "comm", None)
        if comm is not None and hasattr(comm, "_reply_subshell_for"):
            # An instance attribute shadows the method ipykernel looks up with getattr.
            comm._reply_subshell_for = _Router(subshell)
            routed = True
    return routed


class _Router:
    """``_reply_subshell_for(data, default)`` that always answers jugnb's subshell."""

    def __init__(self, subshell: str) -> None:
        self.subshell = subshell

    def __call__(self, data: Any, default: Any) -> str:
        return self.subshell
