r"""Fingerprints of the code a task runs: its function plus everything in the jugfile that function uses.

jug hashes a task's function by its name only (``module.function``) and its arguments by value, so an
edited function keeps serving the results of the old code. A :class:`Fingerprint` is what jugnb records
with each result to notice that, and to show what changed.

What counts
-----------
A task's fingerprint covers, read from the jugfile's *source* (nothing is executed):

- its function, normalised: parsed, docstrings removed, jug's own decorators (``@TaskGenerator``,
  ``@return_tuple(n)``, ``@CompoundTaskGenerator``, imported from ``jug``) removed, then printed back with
  ``ast.unparse``. Comments, docstrings and formatting therefore do not count;
- transitively, every function, class and lambda of the jugfile it reads (through global names, directly or
  through others), the module-level assignments of the names it reads (the normalised statements, and in
  turn the names *they* read: ``N = 2 * K`` follows ``K``), and the import statements binding the names it
  reads (``from math import sqrt``);
- the jugfile code in its **arguments** that jug does not hash by content: jug pickles a function argument,
  which records only its module and name, so an edited mapper of ``jug.mapreduce`` (whose tasks are named
  ``jug.mapreduce._jug_map``, ``_jug_map_reduce``, ``_jug_reduce``) would keep its old results exactly as
  an edited task function does. Functions, classes, instances of jugfile classes and ``TaskGenerator``\s
  found in the arguments (also inside lists, tuples, sets, dicts, ``functools.partial`` and Tasklets) count.
  So does the function of a Tasklet argument (``Tasklet(t, f)``, ``Tasklet(t, lambda r: g(r))``): it is
  applied when the value is loaded, never stored. Tasks among the arguments do not count: their own
  fingerprints do (see :mod:`jugnb.staleness.classify`, "depends on stale").
- a method task (``Task(obj.method)``, named ``module.method``) counts its whole class.

What does not count
-------------------
- **Imported code**: libraries and your own helper modules. Only the import statement binding a name counts,
  not the code behind it. Upgrading a library or editing ``helpers.py`` never makes a result stale.
- Values: a constant counts by the source of its assignment, not by its value. Values read at import time
  from files, the environment or the clock (``DATA = os.environ["DATA"]``) would otherwise make results look
  stale on another host or another day, and kernel and workers would disagree after a barrier.
- Module-level statements that mutate an object without binding a name (``PARAMS.append(3)``); names
  reached only dynamically (``globals()["f"]``, ``getattr(module, name)``).
- A ``CompoundTaskGenerator``'s function cannot be told from its stored result once it has run (jug then
  no longer calls it), so every compound task's fingerprint covers all the jugfile's compound functions.

The digest is the SHA-1 of a version tag and the normalised source, so a fingerprint store can keep old
sources by digest and show a unified diff between the recorded code and the current code. Normalisation
uses ``ast.unparse``, whose output is stable across Python versions far more than ``ast.dump``'s is.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import FingerprintBlobs, select
from ..session.tasks import task_hex
from .codeindex import CodeIndex

log = logging.getLogger(__name__)

#: Bumped whenever normalisation changes (every recorded fingerprint then differs from the current ones).
VERSION = 1
_TAG = f"jugnb fingerprint v{VERSION}\n"
_ATOMS = (str, bytes, int, float, complex, bool, type(None), range, slice)
_ATOM_TYPES = frozenset(_ATOMS)


@dataclass(frozen=True)
class Fingerprint:
    """The code a task runs, normalised.

    Attributes
    ----------
    digest : str
        SHA-1 (40 hex digits) of :data:`VERSION` and ``source``.
    source : str
        Normalised source: imports, assignments, then the task's own functions, then the functions and
        classes they use, in a stable order (see the module docstring). Empty when no jugfile code is run.
    parts : tuple of str
        Names of the jugfile functions, classes, lambdas (``"<lambda>"``), constants and imported names
        included, in the order of ``source``.
    """

    digest: str
    source: str
    parts: tuple[str, ...]

    @classmethod
    def of(cls, source: str, parts: Sequence[str]) -> Fingerprint:
        """Make the fingerprint of a normalised ``source``."""
        digest = hashlib.sha1((_TAG + source).encode("utf-8")).hexdigest()
        return cls(digest, source, tuple(parts))


def fingerprints(jugfile_text: str, namespace: Mapping[str, Any]) -> dict[str, Fingerprint]:
    """Fingerprints of the jugfile's functions, keyed by the task name jug would give them.

    Parameters
    ----------
    jugfile_text : str
        The jugfile's source (exactly the file jug imported).
    namespace : mapping
        The imported module's globals (``LoadedGraph.namespace``); only ``__name__`` and the compound task
        generators in it are used.

    Returns
    -------
    dict of str to Fingerprint
        ``"module.function"`` for every module-level function, ``"module.method"`` for every method (the
        whole class counts), the compound tasks (``jug.compound.compound_task_execute`` included). A task
        whose function is not in the jugfile (``jug.mapreduce._jug_map``) depends on its arguments: use
        :class:`TaskFingerprinter` for those.

    Raises
    ------
    SyntaxError
        If ``jugfile_text`` does not parse.
    """
    return TaskFingerprinter(jugfile_text, namespace).by_name()


class TaskFingerprinter:
    """Fingerprints of tasks of one jugfile, following their function arguments (see module docstring).

    Parameters
    ----------
    jugfile_text : str
        The jugfile's source, as imported.
    namespace : mapping
        The imported module's globals.

    Raises
    ------
    SyntaxError
        If ``jugfile_text`` does not parse.
    """

    def __init__(self, jugfile_text: str, namespace: Mapping[str, Any]) -> None:
        from jug.compound import compound_task_execute

        self._index = CodeIndex(jugfile_text, str(namespace["__name__"]))
        self._module = self._index.module
        self._compound_execute = compound_task_execute
        self._cache: dict[frozenset[str], Fingerprint] = {}
        self._resolutions: dict[Any, frozenset[str]] = {}
        self._compound = frozenset(self._index.compound | self._compound_generators(namespace))

    @classmethod
    def for_namespace(cls, namespace: Mapping[str, Any]) -> TaskFingerprinter:
        """Make the fingerprinter of a module imported by ``jug.init``, reading its source from ``__file__``.

        Raises
        ------
        OSError
            If the jugfile cannot be read.
        """
        return cls(Path(namespace["__file__"]).read_text(encoding="utf-8"), namespace)

    def __call__(self, task: Any) -> Fingerprint:
        """Fingerprint ``task`` (a ``jug.Task``); an empty fingerprint when it runs no jugfile code."""
        roots = self.roots(task)
        found = self._cache.get(roots)
        if found is None:
            found = self._cache[roots] = Fingerprint.of(*self._index.closure(roots))
        return found

    def for_tasks(self, tasks: Iterable[Any]) -> dict[str, Fingerprint]:
        """Fingerprints of ``tasks`` keyed by hex task hash (Tasklets are skipped: they are not stored)."""
        return {task_hex(t): self(t) for t in tasks if hasattr(t, "args")}

    def roots(self, task: Any) -> frozenset[str]:
        """Names of the jugfile bindings whose code ``task`` runs directly (its function and arguments)."""
        own = self._resolved(task.f)
        if task.f is self._compound_execute or own & self._compound:
            return self._compound  # see the module docstring
        arguments = [*task.args, *task.kwargs.values()]
        if all(type(a) in _ATOM_TYPES for a in arguments):
            return own  # the common case, kept fast for graphs of 100k tasks
        return own | self._scan(arguments)

    def by_name(self) -> dict[str, Fingerprint]:
        """Fingerprints keyed by task name (see :func:`fingerprints`)."""
        roots: dict[str, set[str]] = {}
        for key, bindings in self._index.bindings.items():
            if any(b.kind == "def" for b in bindings):
                roots.setdefault(f"{self._module}.{key}", set()).add(key)
        for method, classes in self._index.methods.items():
            if method.startswith("__"):
                continue  # __init__ and friends are never task functions
            roots.setdefault(f"{self._module}.{method}", set()).update(classes)
        if self._compound:
            for name in [*self._compound, "<compound>"]:
                roots[f"{self._module}.{name}"] = set(self._compound)
            roots["jug.compound.compound_task_execute"] = roots.pop(f"{self._module}.<compound>")
        return {name: Fingerprint.of(*self._index.closure(keys)) for name, keys in sorted(roots.items())}

    def _compound_generators(self, namespace: Mapping[str, Any]) -> set[str]:
        """Functions wrapped by ``CompoundTaskGenerator`` at run time (``g = CompoundTaskGenerator(f)``)."""
        from jug import compound

        found: set[str] = set()
        for value in namespace.values():
            code = getattr(value, "__code__", None)
            wrapper = code is not None and code.co_filename == compound.__file__
            if wrapper and callable(getattr(value, "f", None)):
                found |= self._resolve(value.f)
        return found

    def _resolved(self, obj: Any) -> frozenset[str]:
        """:meth:`_resolve`, remembered per function (most tasks share a few)."""
        try:
            return self._resolutions[obj]
        except KeyError:
            found = self._resolutions[obj] = self._resolve(obj)
            return found
        except TypeError:  # unhashable (a bound method of an unhashable instance)
            return self._resolve(obj)

    def _resolve(self, obj: Any) -> frozenset[str]:
        """Find the jugfile bindings behind a callable, class or instance (none for anything else)."""
        if isinstance(obj, functools.partial):
            return self._resolve(obj.func) | self._scan([*obj.args, *obj.keywords.values()])
        if getattr(obj, "_jug_is_task_generator", False):
            return self._resolve(obj.f)
        obj = getattr(obj, "__func__", obj)  # bound and class methods
        if not callable(obj) or not hasattr(obj, "__qualname__"):
            obj = type(obj)  # an instance: its class's code runs
        if getattr(obj, "__module__", None) != self._module:
            return frozenset()
        head = obj.__qualname__.split(".")[0]  # f, Class (of Class.method), f (of f.<locals>.g)
        if head.startswith("<"):  # a lambda (or comprehension) at module level
            return self._index.lambdas_for(obj.__code__) if hasattr(obj, "__code__") else frozenset()
        return frozenset([head]) if head in self._index.bindings else frozenset()

    def _scan(self, values: list[Any]) -> frozenset[str]:
        """Jugfile code among task arguments, stopping at Tasks (their own fingerprints count)."""
        from jug.task import Task, Tasklet

        found: set[str] = set()
        seen: set[int] = set()
        while values:
            value = values.pop()
            if isinstance(value, _ATOMS) or isinstance(value, Task) or id(value) in seen:
                continue
            seen.add(id(value))  # cycles, and one object passed twice (jug's hashing also walks all of it)
            if isinstance(value, Tasklet):
                found |= self._resolved(value.f)
                values.append(value.base)
            elif isinstance(value, (list, tuple, set, frozenset)):
                values.extend(value)
            elif isinstance(value, dict):
                values.extend([*value.keys(), *value.values()])
            elif not hasattr(value, "__jug_hash__"):  # Tasklet-like views, CustomHash: hashed by jug
                found |= self._resolved(value)
        return frozenset(found)


class FingerprintStore:
    """Normalised sources by digest, kept with a jugdir's records so that old code can be diffed.

    Workers save the fingerprint of each task they run (:meth:`save`); ``%jug why`` loads the recorded one
    (:meth:`load`) to show what changed. Content-addressed: a digest's entry never changes once written.
    Where they are kept is the backend's (:meth:`jugnb.backends.Backend.fingerprint_blobs`: files beside a
    folder jugdir, outside it, where ``jug cleanup`` would delete them; a hash in redis).

    Parameters
    ----------
    blobs : FingerprintBlobs
    """

    def __init__(self, blobs: FingerprintBlobs) -> None:
        self.blobs = blobs

    def __repr__(self) -> str:
        return f"FingerprintStore({self.blobs!r})"

    @staticmethod
    def for_jugdir(jugdir: str, store: Any = None) -> FingerprintStore:
        """Open the fingerprint store of ``jugdir`` (a ``--jugdir`` string; folder paths absolute).

        Parameters
        ----------
        jugdir : str
        store : jug store, optional
            The open store of ``jugdir``; a redis store's client is shared (same retries and errors).

        Raises
        ------
        StoreError
            For an in-memory ``dict_store``, which keeps no records either, or a bad redis URL.
        """
        return FingerprintStore(select(jugdir).fingerprint_blobs(store))

    def save(self, fingerprint: Fingerprint) -> None:
        """Keep ``fingerprint``'s source (nothing happens when its digest is stored already)."""
        self.blobs.save(fingerprint.digest, fingerprint.source, fingerprint.parts)

    def load(self, digest: str) -> Fingerprint | None:
        """Load the fingerprint with this digest; ``None`` when it was never saved (or is damaged)."""
        raw = self.blobs.load(digest)
        if raw is None:
            return None
        found = Fingerprint.of(*raw)
        if found.digest != digest:
            log.warning("fingerprint %s: stored source does not match its digest; ignoring it", digest)
            return None
        return found

    def close(self) -> None:
        """Release connections."""
        self.blobs.close()
