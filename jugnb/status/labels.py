"""Readable names for task instances: ``simulate(7, 1.5)``, ``mapreduce.map(scale), block 2 of 4``.

Every view that names one task (the task browser, failure lines, ``%jug why``, the panel's worker table)
uses this module, so a task reads the same everywhere. It imports jug only.

- :func:`task_label` is a short, one-line label. Long lists, dicts and strings are abbreviated, but
  scalars are never cut, and a dict keeps every key whose value is a scalar, so the values that tell the
  tasks of one function apart (a grid search's ``gamma=0.03``) stay visible.
- :func:`task_text` is the full text of a task's arguments, nothing abbreviated: what a filter searches.
- :func:`display_name` turns a task *name* (``jug.mapreduce._jug_map``) into what a user wrote
  (``mapreduce.map``); views that count tasks by name show it.
- :class:`GraphLabels` labels the tasks of one graph, adding what only the graph knows: the block number
  of a ``jug.mapreduce`` task among the blocks of its call.

Dependencies are labelled by what produced them: a task argument reads ``square(3)``; a Tasklet reads
``pair(2)[1]`` or ``plus1(add(…))``; a list of tasks reads ``[24 × square]``; ``CustomHash`` and
``timed_path`` show the wrapped value, ``NoHash`` shows its value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["GraphLabels", "argument_parts", "display_name", "labels_of", "task_label", "task_text"]

#: What jug's internal task functions are called in a jugfile (jug's own module path is noise there).
JUG_NAMES = {
    "jug.mapreduce._jug_map": "mapreduce.map",
    "jug.mapreduce._jug_map_curry": "mapreduce.currymap",
    "jug.mapreduce._jug_map_reduce": "mapreduce.mapreduce",
    "jug.mapreduce._jug_reduce": "mapreduce.reduce",
    "jug.utils._identity": "identity",
    "jug.utils.jug_execute": "jug_execute",
    "jug.compound.compound_task_execute": "CompoundTask",
}
# How many of a task's own leading arguments name the jug construct rather than its data (the mapper,
# the reducer); the rest (the inputs of one block) is what the block number replaces.
_CONSTRUCT_ARGS = {
    "mapreduce.map": 1, "mapreduce.currymap": 1, "mapreduce.mapreduce": 2, "mapreduce.reduce": 1,
}  # fmt: skip
_SCALARS = (int, float, complex, bool, type(None))
_SHORT = 24  # characters of a string or other repr kept in a label
_ITEMS = 4  # items of a list or tuple kept in a label
_DEPTH = 2  # nested task labels shown before `…`


def display_name(name: str, module: str | None = None) -> str:
    """Give the name a user wrote for a task name: jug's internals renamed, ``module``'s prefix dropped.

    Parameters
    ----------
    name : str
        A task name, ``"<module>.<function>"``.
    module : str, optional
        The jugfile's module name; its prefix is dropped (``"grid.cv_score"`` -> ``"cv_score"``).
        Without it every task's module is dropped except jug's and the standard library's.

    Returns
    -------
    str
    """
    if name in JUG_NAMES:
        return JUG_NAMES[name]
    head, _, tail = name.rpartition(".")
    if not head:
        return name
    if head == "builtins" or head == module:
        return tail
    return name if module is not None or head.split(".")[0] == "jug" else tail


def task_label(task: Any, width: int = 100, module: str | None = None) -> str:
    """Label a task instance in one line: ``"simulate(7, 1.5)"``, ``"cv_score({…}, gamma=0.03)"``.

    Parameters
    ----------
    task : jug.Task or Tasklet
    width : int
        Characters at most; longer labels are cut with ``"…"`` (scalars early in the list survive, as
        lists, dicts and strings are abbreviated first).
    module : str, optional
        The jugfile's module, whose prefix is dropped (see :func:`display_name`).

    Returns
    -------
    str
    """
    return _fit(_Labeller(module).label(task, _DEPTH), width)


def task_text(task: Any) -> str:
    """Give the full text of a task's name and arguments, nothing abbreviated (what a filter searches).

    Parameters
    ----------
    task : jug.Task or Tasklet

    Returns
    -------
    str
        ``repr`` of every argument, dependencies by their labels.
    """
    return _Labeller(None, full=True).label(task, _DEPTH + 1)


def argument_parts(task: Any, module: str | None = None) -> list[tuple[str, str]]:
    """Split a task's arguments into ``(column, text)`` pairs: ``("1", "7")``, ``("gamma", "0.03")``.

    Positional arguments are named by their 1-based position (``"1"``, ``"2"``...); keyword arguments by
    their keyword. A single dict argument whose keys are strings is spread into one column per key, so
    that a grid of parameter dicts reads as a table.
    """
    labeller = _Labeller(module)
    args = list(getattr(task, "args", ()))
    kwargs = dict(getattr(task, "kwargs", {}))
    parts: list[tuple[str, str]] = []
    for i, value in enumerate(args, start=1):
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            parts += [(k, labeller.value(v, 1)) for k, v in value.items()]
        else:
            parts.append((str(i), labeller.value(value, 1)))
    parts += [(k, labeller.value(v, 1)) for k, v in sorted(kwargs.items())]
    return parts


class GraphLabels:
    """Labels of the tasks of one graph, cached; mapreduce blocks numbered within their call.

    Parameters
    ----------
    tasks : sequence of jug.Task
        The graph, in definition order (``jug.task.alltasks`` order).
    module : str, optional
        The jugfile's module name, whose prefix labels drop.
    """

    def __init__(self, tasks: Sequence[Any], module: str | None = None) -> None:
        self.tasks, self.module = tasks, module
        self._blocks = _mapreduce_blocks(tasks)
        self._varying = _varying_keys(tasks)
        self._short: dict[int, str] = {}
        self._full: dict[int, str] = {}
        self._columns: dict[int, list[tuple[str, str]]] = {}

    def label(self, index: int, width: int = 100) -> str:
        """Label ``tasks[index]`` (see :func:`task_label`), with its block number for mapreduce."""
        found = self._short.get(index)
        if found is None:
            found = self._short[index] = self._with_block(index, width)
        return found

    def text(self, index: int) -> str:
        """Give the full text of ``tasks[index]`` (see :func:`task_text`), mapreduce blocks numbered."""
        found = self._full.get(index)
        if found is None:
            block = self._blocks.get(index)
            found = task_text(self.tasks[index])
            if block is not None:
                found = f"{self._with_block(index, 10**6)} {found}"
            self._full[index] = found
        return found

    def _with_block(self, index: int, width: int) -> str:
        task, block = self.tasks[index], self._blocks.get(index)
        if block is None:
            labeller = _Labeller(self.module, varying=self._varying.get(task.name, frozenset()))
            return _fit(labeller.label(task, _DEPTH), width)
        name, heads = _construct(task)
        labeller = _Labeller(self.module)
        head = ", ".join(labeller.value(a, 1) for a in heads)
        number, count = block
        return _fit(f"{name}({head}), block {number} of {count}", width)

    def columns(self, index: int) -> list[tuple[str, str]]:
        """Split ``tasks[index]``'s arguments into columns (see :func:`argument_parts`); blocks by number."""
        found = self._columns.get(index)
        if found is None:
            found = self._columns[index] = self._columns_of(index)
        return found

    def _columns_of(self, index: int) -> list[tuple[str, str]]:
        task, block = self.tasks[index], self._blocks.get(index)
        if block is None:
            return argument_parts(task, self.module)
        labeller = _Labeller(self.module)
        _, heads = _construct(task)
        parts = [(str(i), labeller.value(a, 1)) for i, a in enumerate(heads, start=1)]
        return [*parts, ("block", f"{block[0]} of {block[1]}")]


def _varying_keys(tasks: Sequence[Any]) -> dict[str, frozenset[str]]:
    """Per task name, the keys of dict arguments whose values differ between the tasks of that name."""
    seen: dict[str, dict[str, set[str]]] = {}
    for task in tasks:
        values = seen.setdefault(getattr(task, "name", ""), {})
        for arg in (*getattr(task, "args", ()), *getattr(task, "kwargs", {}).values()):
            if isinstance(arg, dict):
                for key, value in arg.items():
                    values.setdefault(str(key), set()).add(repr(value)[:200])
    return {name: frozenset(k for k, v in keys.items() if len(v) > 1) for name, keys in seen.items()}


def _construct(task: Any) -> tuple[str, tuple[Any, ...]]:
    """Name the jug.mapreduce construct of a block task, and the function arguments it was given."""
    name = display_name(task.name)
    heads = tuple(task.args[: _CONSTRUCT_ARGS[name]])
    if name == "mapreduce.mapreduce" and heads[1] is None:
        return "mapreduce.reduce", heads[:1]  # jug's reduce() is a mapreduce without a mapper
    return name, heads


def _mapreduce_blocks(tasks: Sequence[Any]) -> dict[int, tuple[int, int]]:
    """``index -> (block number, blocks)`` for jug.mapreduce tasks.

    The blocks of one call are consecutive tasks of one construct with the same function argument(s),
    all as long as the first but the last; a task that takes an earlier block as input (the next level
    of a reduce) starts a new call.
    """
    found: dict[int, tuple[int, int]] = {}
    run: list[int] = []

    def close() -> None:
        for number, i in enumerate(run, start=1):
            found[i] = (number, len(run))
        run.clear()

    for i, task in enumerate(tasks):
        name = JUG_NAMES.get(getattr(task, "name", ""))
        if name not in _CONSTRUCT_ARGS:
            close()
            continue
        if run and not _continues(tasks, run, task, _CONSTRUCT_ARGS[name]):
            close()
        run.append(i)
    close()
    return found


def _continues(tasks: Sequence[Any], run: list[int], task: Any, heads: int) -> bool:
    first, last = tasks[run[0]], tasks[run[-1]]
    if last.name != task.name or len(last.args) != len(task.args):
        return False
    if any(a is not b for a, b in zip(last.args[:heads], task.args[:heads], strict=True)):
        return False
    if _length(last.args[-1]) < _length(first.args[-1]):
        return False  # the block before was a call's short last block
    members = {id(tasks[i]) for i in run}
    return not any(id(v) in members for v in _items(task.args[-1]))


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


class _Labeller:
    """Formats values and tasks; ``full`` keeps everything (for filtering), else abbreviates."""

    def __init__(self, module: str | None, full: bool = False, varying: frozenset[str] = frozenset()) -> None:
        self.module, self.full, self.varying = module, full, varying

    def label(self, task: Any, depth: int) -> str:
        from jug.task import Task, TaskletMixin

        if isinstance(task, Task):
            name = display_name(task.name, self.module)
            if depth <= 0:
                return f"{name}(…)" if task.args or task.kwargs else f"{name}()"
            if name == "CompoundTask":
                return f"CompoundTask of {self.value(task.args[0], depth - 1)}"
            args = [self.value(a, depth - 1) for a in task.args]
            args += [f"{k}={self.value(v, depth - 1)}" for k, v in sorted(task.kwargs.items())]
            return f"{name}({', '.join(args)})"
        if isinstance(task, TaskletMixin):
            return self._tasklet(task, depth)
        return self.value(task, depth)

    def _tasklet(self, tasklet: Any, depth: int) -> str:
        base = getattr(tasklet, "base", None)
        f = getattr(tasklet, "f", None)
        kind = type(tasklet).__name__
        if kind == "block_access":  # what jug.mapreduce.map returns
            blocks = tasklet.blocks
            mapper = self.value(blocks[0].args[0], 1) if blocks else ""
            return f"mapreduce.map({mapper})"
        if kind == "block_access_slice":
            stride = f":{tasklet.stride}" if tasklet.stride != 1 else ""
            return f"{self._tasklet(base, depth)}[{tasklet.start}:{tasklet.stop}{stride}]"
        inner = self.label(base, depth) if base is not None else "?"
        if f is not None and type(f).__name__ == "_getitem":
            return f"{inner}[{self.value(f.slice, 1)}]"
        return f"{_function_name(f)}({inner})"

    def value(self, value: Any, depth: int) -> str:
        from jug.task import TaskletMixin

        if isinstance(value, TaskletMixin):
            text = self.label(value, depth)
            # A dependency with a long label reads as its function: the outer task's own values matter.
            return text if self.full or len(text) <= _SHORT else self.label(value, 0)
        if isinstance(value, (list, tuple)):
            return self._sequence(value, depth)
        if isinstance(value, dict):
            return self._dict(value, depth)
        if type(value).__name__ == "CustomHash" and hasattr(value, "obj"):
            return self.value(value.obj, depth)  # timed_path(p) / CustomHash(x, h): the value the task gets
        if type(value).__name__ == "NoHash" and hasattr(value, "obj"):
            return self.value(value.obj, depth)
        if callable(value) and hasattr(value, "__name__"):
            return _function_name(value)
        text = repr(value)
        if self.full or isinstance(value, _SCALARS) or len(text) <= _SHORT:
            return text
        return text[: _SHORT - 2] + "…" + text[-1:] if isinstance(value, str) else text[: _SHORT - 1] + "…"

    def _sequence(self, items: list[Any] | tuple[Any, ...], depth: int) -> str:
        from jug.task import TaskletMixin

        opening, closing = ("[", "]") if isinstance(items, list) else ("(", ")")
        tasks = [v for v in items if isinstance(v, TaskletMixin)]
        if not self.full and len(tasks) == len(items) > _ITEMS:
            names = dict.fromkeys(_dependency_name(t, self.module) for t in tasks)
            return f"{opening}{len(items)} × {' | '.join(names)}{closing}"
        shown = items if self.full or len(items) <= _ITEMS else items[: _ITEMS - 1]
        parts = [self.value(v, depth) for v in shown]
        if len(shown) < len(items):
            parts.append(f"… {len(items)} items")
        comma = "," if isinstance(items, tuple) and len(items) == 1 else ""
        return f"{opening}{', '.join(parts)}{comma}{closing}"

    def _dict(self, items: dict[Any, Any], depth: int) -> str:
        pairs = list(items.items())
        if not self.full and len(pairs) > _ITEMS:
            # Keys whose values differ between the tasks of one function first, then other scalars: they
            # are what tells one parameter set from the next.
            varying = [(k, v) for k, v in pairs if k in self.varying]
            scalars = [(k, v) for k, v in pairs if _is_scalar(v) and k not in self.varying]
            pairs = (varying + scalars)[: max(_ITEMS, len(varying))] or pairs[:_ITEMS]
        parts = [f"{self.value(k, depth)}: {self.value(v, depth)}" for k, v in pairs]
        if len(pairs) < len(items):
            parts.append(f"… {len(items)} keys")
        return "{" + ", ".join(parts) + "}"


def _is_scalar(value: Any) -> bool:
    return isinstance(value, _SCALARS) or (isinstance(value, str) and len(value) <= _SHORT)


def _dependency_name(task: Any, module: str | None) -> str:
    while not hasattr(task, "name") and hasattr(task, "base"):
        task = task.base
    return display_name(getattr(task, "name", type(task).__name__), module)


def _function_name(f: Any) -> str:
    inner = getattr(f, "f", None)  # a TaskGenerator or a CompoundTaskGenerator
    name = getattr(f, "__name__", None) or getattr(inner, "__name__", None)
    return name if isinstance(name, str) else type(f).__name__


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def labels_of(tasks: Iterable[Any], module: str | None = None) -> list[str]:
    """Label several tasks of one graph (mapreduce blocks numbered); see :class:`GraphLabels`."""
    graph = GraphLabels(list(tasks), module)
    return [graph.label(i) for i in range(len(graph.tasks))]
