"""jugnb: run Jug task graphs from Jupyter notebooks.

``%load_ext jugnb`` registers the ``%%jugfile`` and ``%jug`` magics; the ``jugnb`` command runs a saved
notebook's jugfile with every jug subcommand. Importing this package does not import IPython.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["TaskBrowser", "__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register jugnb's magics on ``ipython`` (called by ``%load_ext jugnb``)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop jugnb's pollers; workers keep running and can be re-attached (``%unload_ext jugnb``)."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import jugnb` (the CLI, the workers) never imports ipywidgets.
    if name == "TaskBrowser":
        from .widgets import TaskBrowser

        return TaskBrowser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
