"""Running tasks inside the kernel itself: ``%jug execute --here`` and ``%jug run TASK``.

Both use jug's own ``execution_loop`` and ``Task.run``, so locking, hashing and storing are jug's. Running in
the kernel blocks the cell but is interruptible (jug's loop releases the lock it holds on the way out), and an
exception keeps its traceback so that ``%debug`` works on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.spec import running_tasks
from ..errors import JugnbError
from .kernel import NotebookSession


@dataclass(frozen=True)
class ExecuteOptions:
    """jug execute's options that jugnb passes on (``--name``, ``--pattern``, ``--keep-going``, ...)."""

    name: str | None = None
    pattern: str | None = None
    keep_going: bool = False
    keep_failed: bool = False
    aggressive_unload: bool = False
    debug: bool = False

    def jug_options(self) -> Any:
        """Return a jug ``Options`` for ``execution_loop``: jug's defaults, these overrides, no waiting."""
        from jug.options import Options, default_options

        options = Options(default_options)
        options.execute_name = self.name
        options.execute_pattern = self.pattern
        options.execute_keep_going = self.keep_going
        options.execute_keep_failed = self.keep_failed
        options.aggressive_unload = self.aggressive_unload
        options.debug = self.debug
        options.pdb = False
        # In the kernel nothing else runs the dependencies we would wait for: never wait.
        options.execute_nr_wait_cycles = 0
        options.execute_wait_cycle_time = 0.0
        return options

    def worker_args(self) -> list[str]:
        """Return the same options as ``jug execute`` command-line arguments."""
        args = []
        if self.name is not None:
            args += ["--name", self.name]
        if self.pattern is not None:
            args += ["--pattern", self.pattern]
        flags = {
            "--keep-going": self.keep_going,
            "--keep-failed": self.keep_failed,
            "--aggressive-unload": self.aggressive_unload,
            "--debug": self.debug,
        }
        return args + [flag for flag, on in flags.items() if on]


def execute_here(session: NotebookSession, options: ExecuteOptions) -> Counter[str]:
    """Run the loaded graph's runnable tasks in this process, reloading past barriers, until none is left.

    Returns
    -------
    Counter
        Tasks executed per task name.

    Raises
    ------
    JugnbError
        If no jugfile is loaded.
    Exception
        A task's exception, with its traceback (unless ``keep_going``).
    """
    from jug.hooks import register_hook
    from jug.jug import execution_loop

    if session.graph is None:
        raise JugnbError("No jugfile loaded yet: run a %%jugfile cell first.")
    executed: Counter[str] = Counter()

    def count(task: Any) -> None:
        executed.update([task.name])

    register_hook("execute.task-executed1", count)
    try:
        with running_tasks(session.graph.store):
            while True:
                before = sum(executed.values())
                execution_loop(list(session.graph.tasks), options.jug_options())
                progressed = sum(executed.values()) > before
                if not (progressed and session.reload_if_barrier_cleared()):
                    return executed
    finally:
        _unregister_hook("execute.task-executed1", count)


def _unregister_hook(name: str, function: Any) -> None:
    # jug's hook registry has no unregister function; its list is the only handle.
    from jug.hooks.register import _hooks

    hooks = _hooks.get(name, [])
    if function in hooks:
        hooks.remove(function)


def find_task(tasks: Sequence[Any], spec: str) -> Any:
    """Return the task that ``spec`` names: a hash prefix (at least 6 hex digits) or ``name`` / ``name[i]``.

    Raises
    ------
    JugnbError
        If nothing or more than one task matches, listing candidates.
    """
    if len(spec) >= 6 and all(c in "0123456789abcdef" for c in spec):
        found = [t for t in tasks if t.hash().decode().startswith(spec)]
    else:
        name, _, index = spec.partition("[")
        same = [t for t in tasks if t.name == name or t.name.rsplit(".", 1)[-1] == name]
        if index:
            position = int(index.rstrip("]"))
            found = same[position : position + 1]
        else:
            found = same
    if len(found) == 1:
        return found[0]
    if not found:
        raise JugnbError(f"No task matches {spec!r}: give a hash prefix or a task name, e.g. `score[3]`.")
    raise JugnbError(
        f"{len(found)} tasks match {spec!r}: add an index (`{spec}[0]` .. `{spec}[{len(found) - 1}]`)."
    )


def run_task(task: Any, *, save: bool = False) -> Any:
    """Run one task in this process (its dependencies must be complete) and return its value.

    Raises
    ------
    JugnbError
        If a dependency has no result yet.
    Exception
        Whatever the task raises, with its traceback (so ``%debug`` can inspect it).
    """
    if not task.can_run():
        waiting = [d for d in task.dependencies() if not d.can_load()]
        raise JugnbError(f"{task!r} cannot run yet: {len(waiting)} of its dependencies have no result.")
    if not save:
        return task.run(save=False)
    with running_tasks(task.store):
        return task.run(save=True)
