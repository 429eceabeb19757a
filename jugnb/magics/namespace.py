"""The functions ``%load_ext jugnb`` puts in the notebook namespace, as ``jug shell`` does.

``value``, ``invalidate`` (recursive), ``get_tasks``, ``get_filtered_tasks`` and ``load_all`` act on the
notebook's current graph, whichever jugfile version is loaded when they are called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError

from ..errors import JugnbError
from ..session import tasks as task_ops


def shell_functions(magics: Any) -> dict[str, Callable[..., Any]]:
    """Return the namespace functions bound to ``magics`` (a :class:`~jugnb.magics.JugMagics`)."""

    def value(t: Any) -> Any:
        """Load the result of a task, or of a list/dict/tuple of tasks (like jug's ``value``)."""
        magics.graph  # noqa: B018 - reloads past a cleared barrier and sets Task.store
        try:
            return task_ops.value(t)
        except JugnbError as err:
            raise UsageError(str(err)) from err

    def invalidate(t: Any) -> int:
        """Remove the result of task ``t`` and of every task downstream of it; return how many went."""
        graph = magics.graph
        removal = task_ops.invalidate(graph.store, graph.tasks, [t])
        print(f"Invalidated {removal.total} results ({_per_name(removal.results)}).")
        return removal.total

    def get_tasks() -> list[Any]:
        """Every task of the loaded graph, in definition order (a new list)."""
        return list(magics.graph.tasks)

    def get_filtered_tasks(
        loadable: bool = False, failed: bool = False, available: bool = False
    ) -> list[Any]:
        """Return the complete (``loadable``), failed and/or ready (``available``) tasks, like jug shell."""
        selected = []
        for t in magics.graph.tasks:
            if (loadable and t.can_load()) or (failed and t.is_failed()) or (available and t.can_run()):
                selected.append(t)
        return selected

    def load_all() -> None:
        """Replace every task-valued public name of the jugfile in the notebook by its loaded value."""
        graph = magics.graph
        for name, obj in graph.public_names().items():
            if _holds_tasks(obj):
                try:
                    magics.shell.user_ns[name] = task_ops.value(obj)
                except JugnbError as err:
                    print(f"Not loaded `{name}`: {err}")

    return {
        "value": value,
        "invalidate": invalidate,
        "get_tasks": get_tasks,
        "get_filtered_tasks": get_filtered_tasks,
        "load_all": load_all,
    }


def _holds_tasks(obj: Any) -> bool:
    return next(task_ops.tasks_in(obj), None) is not None


def _per_name(counts: Any) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in sorted(counts.items())) or "none had results"
