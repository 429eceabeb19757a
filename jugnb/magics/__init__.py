"""IPython side of jugnb: the ``%%jugfile`` and ``%jug`` magics (``%load_ext jugnb``)."""

from __future__ import annotations

from typing import Any

from .jugmagics import JugMagics

__all__ = ["JugMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register :class:`JugMagics` (``%load_ext jugnb``); loading twice keeps the first instance."""
    if ipython.magics_manager.registry.get("JugMagics") is None:
        ipython.register_magics(JugMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop background pollers; workers keep running and can be re-attached after ``%load_ext jugnb``."""
    magics = ipython.magics_manager.registry.get("JugMagics")
    if magics is not None:
        magics.close()
