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
        graph = magics.graph  # reloads past a cleared barrier and sets Task.store
        try:
            outdated_check(magics.session, graph, t)
            return task_ops.value(t, graph.jugdir)
        except JugnbError as err:
            raise UsageError(str(err)) from err

    def invalidate(t: Any) -> int:
        """Remove the result of task ``t`` and of every task downstream of it; return how many went."""
        graph = magics.graph
        try:
            task = task_ops.require_task(t)
            outdated_check(magics.session, graph, t, "invalidate")
        except JugnbError as err:
            raise UsageError(str(err)) from err
        removal = task_ops.invalidate(graph.store, graph.tasks, [task])
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
                    magics.shell.user_ns[name] = task_ops.value(obj, graph.jugdir)
                except JugnbError as err:
                    print(f"Not loaded `{name}`: {err}")

    return {
        "value": value,
        "invalidate": invalidate,
        "get_tasks": get_tasks,
        "get_filtered_tasks": get_filtered_tasks,
        "load_all": load_all,
    }


_OUTDATED = (
    "{function}() was given a task of an older definition of the jugfile: {name} (hash {short}) was defined "
    "before {why}, and the current jugfile has no task with that hash (its code, arguments or inputs "
    "changed). Its stored result, if any, is the old one. {instead}"
)


def outdated_check(session: Any, graph: Any, t: Any, function: str = "value") -> None:
    """Refuse tasks in ``t`` that an older definition of the jugfile made, saying what to use instead.

    Raises
    ------
    JugnbError
        Naming the first outdated task, why it is outdated and the current names to use.
    """
    from jug.task import Task

    for found in task_ops.tasks_in(t):
        task = task_ops.base_task(found)
        outdated = session.outdated(task) if isinstance(task, Task) else None
        if outdated is not None:
            why, held_by = outdated
            instead = _instead(graph, task.name, held_by)
            short = task.hash().decode()[:12]
            fields = {"function": function, "name": task.name, "short": short, "why": why, "instead": instead}
            raise JugnbError(_OUTDATED.format(**fields))


def _instead(graph: Any, task_name: str, held_by: str | None) -> str:
    """Say which current name to use: the one that held the task, else those holding tasks of its name."""
    names = graph.public_names()
    if held_by is not None and _holds_tasks(names.get(held_by)):
        return f"It was in `{held_by}`: use the current definition, e.g. `value({held_by})`."
    holders = [
        name
        for name, obj in names.items()
        if any(task_ops.base_task(x).name == task_name for x in task_ops.tasks_in(obj) if _is_task(x))
    ]
    if holders:
        uses = " or ".join(f"`value({name})`" for name in sorted(holders)[:5])
        return f"Use the current definition instead: {uses} (re-read the name after running its cell)."
    return f"The current jugfile has no task named {task_name}: `get_tasks()` lists the tasks it has."


def _is_task(obj: Any) -> bool:
    from jug.task import Task

    return isinstance(task_ops.base_task(obj), Task)


def _holds_tasks(obj: Any) -> bool:
    return next(task_ops.tasks_in(obj), None) is not None


def _per_name(counts: Any) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in sorted(counts.items())) or "none had results"
