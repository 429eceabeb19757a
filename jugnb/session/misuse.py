"""Catch misused jug constructs while the kernel imports a jugfile, where the misuse is written.

jug accepts some constructs at import and fails only later, in a worker or in ``value()``, with a raw
``TypeError`` or ``AttributeError`` far from the line at fault: a ``Tasklet`` whose function is not callable
or whose base is not a task, a task (or a ``TaskGenerator``) given where a function is expected, a task as
the mapper, reducer or list of ``jug.mapreduce``. While :func:`jugnb.session.loader.load_jugfile` imports a
snapshot, :func:`construct_checks` makes ``Task``, ``Tasklet`` and ``jug.mapreduce`` check their arguments
as they are called, so the import fails at the offending line with :class:`ConstructError`, which the
loader maps back to the cell and line.

The kernel's import and ``jugnb``'s command line check (a cell is refused before any worker sees it);
workers and plain ``jug`` import the jugfile unchanged. Checking a task made from a plain function, or
``t[i]``, costs one type test.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Iterator
from typing import Any

from ..errors import JugnbError

_NOT_A_FUNCTION = "{where} was given {what} where a function is expected. {fix}"
_FIX_TASK = (
    "A task stands for its result, which is not callable: pass the function itself (e.g. `Task(f, x)`, "
    "`mapreduce.map(f, xs)`), and the task as an argument if its result is the input."
)
_FIX_GENERATOR = (
    "`{name}` is a TaskGenerator: call it (`{name}(x)` makes the task), or pass the plain function "
    "(`{name}.f`)."
)
_FIX_TASKLET_GENERATOR = (
    "A Tasklet's function runs each time its value is loaded and is never stored, so a TaskGenerator there "
    "would make a new task on every load: pass a plain function (`{name}.f`), or make a task with "
    "`{name}(t)`."
)
_FIX_OTHER = "Pass a function (defined with `def`, or a callable object)."
_NOT_A_TASK = (
    "Tasklet(base, f) was given {what} as its base, where a task is expected: a Tasklet applies `f` to the "
    "result of a task (e.g. `Tasklet(t, f)`, or `t[0]`). {fix}"
)
_NOT_A_LIST = (
    "jug.mapreduce.{function} was given {what} as its {role}, where a list is expected: jug splits the list "
    "into blocks of tasks while the jugfile is imported, before any task has run. {fix}"
)
_FIX_LIST_TASK = (
    "Pass a list (its items may be tasks: `[f(x) for x in xs]`); for a task whose result is the list, "
    "use `bvalue(t)` (the import stops there until it is computed), or one Task over the whole list."
)
_FIX_LIST_OTHER = "Pass a list or tuple of inputs."
#: Public jug.mapreduce functions -> (position, keyword) of their list argument.
_LIST_ARGUMENTS = {"map": (1, "sequence"), "currymap": (1, "sequence"), "mapreduce": (2, "inputs"),
                   "reduce": (1, "inputs")}  # fmt: skip
_NO_FUNCTION = (
    "Task() was given no function: write `Task(f, arguments...)`, or decorate `f` with TaskGenerator."
)
_TASKLET_ARITY = (
    "Tasklet(base, f) takes a task and a function (`Tasklet(t, f)` applies `f` to the result of `t`), "
    "but was given {given}."
)
_FIX_SWAPPED = "The arguments look swapped: the task comes first, then the function."
_FIX_BASE = "For a plain value, call `f(value)` directly, or make it a task with `Task(f, value)`."


class ConstructError(JugnbError):
    """A jug construct built with arguments that can only fail later (raised while the jugfile is imported).

    Not a ``TypeError``: jug's command line takes any ``TypeError`` for bad options and prints its usage.
    """


def describe(obj: Any) -> str:
    """Name ``obj`` for a message: which task, TaskGenerator or value it is."""
    from jug.task import Task, TaskGenerator, Tasklet

    if isinstance(obj, Task):
        return f"the task {obj.name} (a Task object)"
    if isinstance(obj, Tasklet):
        return "a Tasklet (a task's result, not a function)"
    if isinstance(obj, TaskGenerator):
        return f"the TaskGenerator {_generator_name(obj)}"
    text = repr(obj)
    return f"{type(obj).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _given(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return ", ".join(parts) if parts else "nothing"


def _generator_name(generator: Any) -> str:
    return str(getattr(generator.f, "__name__", "f"))


def check_function(obj: Any, where: str, *, in_tasklet: bool = False) -> None:
    """Raise :class:`ConstructError` unless ``obj`` can be the function of ``where``.

    Parameters
    ----------
    obj : object
        What was given as the function.
    where : str
        The construct, e.g. ``"Task(f, ...)"``, for the message.
    in_tasklet : bool
        ``obj`` is a Tasklet's function (a TaskGenerator there is a mistake too).

    Raises
    ------
    ConstructError
        If ``obj`` is a task, a Tasklet, not callable, or (``in_tasklet``) a TaskGenerator.
    """
    from jug.task import TaskGenerator, TaskletMixin

    if isinstance(obj, TaskletMixin):
        fix = _FIX_TASK
    elif isinstance(obj, TaskGenerator) and not in_tasklet:
        return  # jug's mapreduce unwraps TaskGenerators; Task() itself is checked before this
    elif isinstance(obj, TaskGenerator):
        fix = _FIX_TASKLET_GENERATOR.format(name=_generator_name(obj))
    elif not callable(obj):
        fix = _FIX_OTHER
    else:
        return
    raise ConstructError(_NOT_A_FUNCTION.format(where=where, what=describe(obj), fix=fix))


def check_task(f: Any, args: tuple[Any, ...]) -> None:
    """Check the arguments of ``Task(f, *args)`` (and those jug.mapreduce passes on).

    Raises
    ------
    ConstructError
        If ``f`` (or a mapper or reducer of ``jug.mapreduce``) is not a function.
    """
    from jug.task import TaskGenerator

    while isinstance(f, functools.partial):
        args = f.args + args
        f = f.func
    if isinstance(f, TaskGenerator):
        fix = _FIX_GENERATOR.format(name=_generator_name(f))
        raise ConstructError(_NOT_A_FUNCTION.format(where="Task(f, ...)", what=describe(f), fix=fix))
    check_function(f, "Task(f, ...)")
    try:
        checked = _mapreduce_roles().get(f, ())
    except TypeError:  # an unhashable callable object: not one of jug.mapreduce's functions
        checked = ()
    for position, role in checked:
        if position < len(args) and args[position] is not None:
            check_function(args[position], f"jug.mapreduce (its {role})")


def check_tasklet(base: Any, f: Any) -> None:
    """Check the arguments of ``Tasklet(base, f)``.

    Raises
    ------
    ConstructError
        If ``base`` is not a task or Tasklet, or ``f`` is not a plain function.
    """
    from jug.task import TaskletMixin

    if not isinstance(base, TaskletMixin):
        fix = _FIX_SWAPPED if isinstance(f, TaskletMixin) else _FIX_BASE
        raise ConstructError(_NOT_A_TASK.format(what=describe(base), fix=fix))
    check_function(f, "Tasklet(base, f)", in_tasklet=True)


def check_list(obj: Any, function: str, role: str) -> None:
    """Raise :class:`ConstructError` unless ``obj`` can be the list that ``jug.mapreduce.<function>`` splits.

    Raises
    ------
    ConstructError
        If ``obj`` is a task or has no length and indexing.
    """
    from jug.task import TaskletMixin

    if isinstance(obj, TaskletMixin):
        fix = _FIX_LIST_TASK
    elif not (hasattr(obj, "__len__") and hasattr(obj, "__getitem__")):
        fix = _FIX_LIST_OTHER
    else:
        return
    raise ConstructError(_NOT_A_LIST.format(function=function, what=describe(obj), role=role, fix=fix))


def _checked_mapreduce(name: str, original: Any) -> Any:
    position, keyword = _LIST_ARGUMENTS[name]

    @functools.wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position:
            check_list(args[position], name, keyword)
        elif keyword in kwargs:
            check_list(kwargs[keyword], name, keyword)
        return original(*args, **kwargs)

    return checked


@functools.cache
def _mapreduce_roles() -> dict[Any, tuple[tuple[int, str], ...]]:
    """jug.mapreduce's task functions -> (argument position, role) of the functions they will call."""
    from jug import mapreduce

    return {
        mapreduce._jug_map: ((0, "mapper"),),
        mapreduce._jug_map_curry: ((0, "mapper"),),
        mapreduce._jug_reduce: ((0, "reducer"),),
        mapreduce._jug_map_reduce: ((0, "reducer"), (1, "mapper")),
    }


@contextlib.contextmanager
def construct_checks() -> Iterator[None]:
    """Make ``Task``, ``Tasklet`` and ``jug.mapreduce`` check their arguments while the block runs."""
    from jug import mapreduce
    from jug.task import Task, Tasklet, TaskletMixin, _getitem

    task_init, tasklet_init = Task.__init__, Tasklet.__init__
    originals = {name: getattr(mapreduce, name) for name in _LIST_ARGUMENTS}
    roles = _mapreduce_roles()

    # Fast paths first (a plain function, `t[i]`): checking must not slow down big jugfiles' imports.
    def checked_task_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if not args:
            raise ConstructError(_NO_FUNCTION)
        f = args[0]
        if type(f) is not types.FunctionType or f in roles:
            check_task(f, args[1:])
        task_init(self, *args, **kwargs)

    def checked_tasklet_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) + len(kwargs) != 2 or not set(kwargs) <= {"base", "f"}:
            raise ConstructError(_TASKLET_ARITY.format(given=_given(args, kwargs)))
        base, f = (*args, *(kwargs[k] for k in ("base", "f") if k in kwargs))
        if type(f) is not _getitem or not isinstance(base, TaskletMixin):
            check_tasklet(base, f)
        tasklet_init(self, base, f)

    Task.__init__ = checked_task_init
    Tasklet.__init__ = checked_tasklet_init
    for name, original in originals.items():
        setattr(mapreduce, name, _checked_mapreduce(name, original))
    try:
        yield
    finally:
        Task.__init__ = task_init
        Tasklet.__init__ = tasklet_init
        for name, original in originals.items():
            setattr(mapreduce, name, original)
