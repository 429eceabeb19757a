"""A loaded graph flattened to hex hashes, for :mod:`.classify`: names, dependency edges, results."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from ..session.tasks import task_hex


class TaskRef(NamedTuple):
    """A task by name and hex hash."""

    name: str
    hash: str

    def __str__(self) -> str:
        return f"{self.name} ({self.hash[:12]})"


@dataclass(frozen=True)
class TaskGraph:
    """The listed tasks as hashes, their names and dependency edges, and which have results."""

    listed: tuple[str, ...]  # per listed task (duplicates kept, as jug status counts them)
    names: Mapping[str, str]
    deps: Mapping[str, tuple[str, ...]]
    complete: frozenset[str]

    @classmethod
    def build(cls, tasks: Iterable[Any], complete: Collection[str]) -> TaskGraph:
        """Flatten ``tasks`` (``jug.Task`` objects); ``complete`` are the hex hashes with a result."""
        listed, names, deps = [], {}, {}
        for task in tasks:
            h = task_hex(task)
            listed.append(h)
            if h not in deps:
                names[h] = task.name
                deps[h] = tuple(dict.fromkeys(task_hex(d) for d in task.dependencies()))
        return cls(tuple(listed), names, deps, frozenset(complete))

    @cached_property
    def users(self) -> Mapping[str, tuple[str, ...]]:
        """Reverse edges: the tasks that use each task's result."""
        users: dict[str, list[str]] = defaultdict(list)
        for h, deps in self.deps.items():
            for d in deps:
                users[d].append(h)
        return {h: tuple(u) for h, u in users.items()}

    def downstream(self, sources: Iterable[str]) -> set[str]:
        """Every task that uses, directly or not, the result of one of ``sources`` (not the sources)."""
        found: set[str] = set()
        queue = list(sources)
        while queue:
            for user in self.users.get(queue.pop(), ()):
                if user not in found:
                    found.add(user)
                    queue.append(user)
        return found

    def nearest(self, start: str, wanted: Collection[str]) -> tuple[str, ...]:
        """Find the upstream tasks of ``start`` in ``wanted`` that no other task of ``wanted`` hides."""
        found, seen, queue = [], {start}, list(self.deps.get(start, ()))
        while queue:
            h = queue.pop()
            if h in seen:
                continue
            seen.add(h)
            if h in wanted:
                found.append(h)
            else:
                queue.extend(self.deps.get(h, ()))
        return tuple(sorted(found, key=lambda h: (self.names.get(h, ""), h)))

    def refs(self, hashes: Iterable[str]) -> tuple[TaskRef, ...]:
        """Name the tasks ``hashes``."""
        return tuple(TaskRef(self.names.get(h, "?"), h) for h in hashes)
