"""Can a worker reproduce the kernel's task graph? A clean import of the jugfile, compared by task hash.

Workers import the jugfile snapshot in a fresh process. When the kernel's import used state that such a
process does not have (names from ordinary cells reached through ``__main__`` or ``get_ipython()``, modules
changed or reloaded in the kernel) or the jugfile builds arguments that change on every import (random
numbers, the time, set order under hash randomization), the workers compute other tasks than the notebook
shows, and store results under hashes the notebook never asks for. :func:`check_reproducible` imports the
snapshot the way a worker does (same interpreter, working directory, environment and store), compares the
task hashes with the kernel's, and explains any difference.

Run as ``python -m jugnb.session.reproduce SNAPSHOT`` (the jugdir on stdin, as workers get it), it prints one
JSON object: the tasks' names and hashes, whether the import stopped at a barrier, and the files of the
modules it imported (to know when the answer may change), or the import error named by cell and line.
Uses only the core and jug.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JugnbError
from ..workers.env import read_jugdir_from_stdin

_NOT_REPRODUCIBLE = (
    "Workers would not compute the tasks this notebook shows: a clean import of the jugfile, as a worker "
    "does it, gives {what}.\n{details}\nWhy: {why}\nNo worker was started."
)
_WHY_KERNEL = (
    "the kernel's import used state that a fresh process does not have{hints}. Put everything the "
    "jugfile needs in %%jugfile cells (or in modules beside the notebook), then run the cells again."
)
_WHY_RANDOM = (
    "two clean imports disagree with each other as well: the jugfile builds task arguments that change on "
    "every import (random numbers without a fixed seed, the time, set or dict order of strings under hash "
    "randomization, id()). Make them deterministic (a fixed seed, sorted(...))."
)
_CLEAN_FAILED = (
    "A clean import of the jugfile, as a worker does it, fails, although the kernel's succeeded: it depends "
    "on state only the kernel has{hints}.\n{error}\nNo worker was started."
)
_SHOWN = 5


@dataclass(frozen=True)
class CleanImport:
    """What a fresh process's import of a jugfile snapshot gave.

    Attributes
    ----------
    tasks : tuple of (str, str)
        Task name and hexadecimal hash, in definition order.
    barrier : bool
        Whether the import stopped at a barrier or bvalue.
    files : tuple of (str, int, int)
        Path, mtime (ns) and size of every module file the import loaded outside the standard library.
    error : str or None
        The import's error, named by cell and line, when it failed.
    """

    tasks: tuple[tuple[str, str], ...]
    barrier: bool
    files: tuple[tuple[str, int, int], ...]
    error: str | None = None

    def unchanged(self) -> bool:
        """Whether every module file the import loaded is still as it was."""
        return all(_stat(path) == (mtime, size) for path, mtime, size in self.files)


def clean_import(snapshot: Path, jugdir: str, cwd: Path, timeout: float) -> CleanImport:
    """Import ``snapshot`` in a fresh interpreter, as a worker does, and return its tasks.

    Parameters
    ----------
    snapshot : Path
        The jugfile snapshot.
    jugdir : str
        The jugdir (a redis URL's password goes through a pipe, never the command line).
    cwd : Path
        The working directory workers get (the kernel's).
    timeout : float
        Seconds to wait for the import.

    Raises
    ------
    subprocess.TimeoutExpired
        When the import takes longer than ``timeout`` (the process is killed).
    JugnbError
        When the process fails without a report (its output is quoted).
    """
    command = [sys.executable, "-m", "jugnb.session.reproduce", str(snapshot)]
    result = subprocess.run(
        command,
        cwd=cwd,
        input=os.fsencode(jugdir) + b"\n",  # a path's own bytes, as workers get it
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        stderr = result.stderr.decode("utf-8", "replace").strip()[-2000:]
        msg = f"The clean import of the jugfile failed without a report:\n{stderr}"
        raise JugnbError(msg, path=str(snapshot)) from None
    return CleanImport(
        tuple((n, h) for n, h in report["tasks"]),
        bool(report["barrier"]),
        tuple((p, m, s) for p, m, s in report["files"]),
        report.get("error"),
    )


class ReproducibilityCheck:
    """Check, before workers start, that they reproduce the kernel's graph; remember a graph that passed.

    The answer is kept while the snapshot, the kernel's hashes, the working directory, the environment and
    every module file the clean import loaded stay the same: then a later ``%jug execute`` costs a few
    ``stat`` calls instead of a fresh import.
    """

    def __init__(self) -> None:
        self._passed: tuple[str, CleanImport] | None = None

    def check(self, graph: Any, jugdir: str, cwd: Path, timeout: float) -> None:
        """Refuse when a clean import's tasks are not the kernel's; say which tasks differ, and why.

        Parameters
        ----------
        graph : LoadedGraph
            The kernel's graph (tasks hashed, jugfile with its cell map).
        jugdir : str
            The jugdir workers will use.
        cwd : Path
            Their working directory.
        timeout : float
            Seconds for each clean import.

        Raises
        ------
        JugnbError
            When the hashes differ or the clean import failed.
        subprocess.TimeoutExpired
            When the clean import takes longer than ``timeout``.
        """
        key = cache_key(graph, cwd)
        if self._passed is not None and self._passed[0] == key and self._passed[1].unchanged():
            return
        first = clean_import(graph.snapshot, jugdir, cwd, timeout)
        hints = _hints(graph.jugfile)
        if first.error is not None:
            raise JugnbError(_CLEAN_FAILED.format(hints=hints, error=first.error))
        kernel = [(t.name, t.hash().decode()) for t in graph.tasks]
        difference = differences(kernel, list(first.tasks), graph.barrier is not None or first.barrier)
        if difference is None:
            self._passed = (key, first)
            return
        # A second clean import tells arguments that change on every import from kernel-only state.
        second = clean_import(graph.snapshot, jugdir, cwd, timeout)
        why = _WHY_RANDOM if second.tasks != first.tasks else _WHY_KERNEL.format(hints=hints)
        what, details = difference
        raise JugnbError(_NOT_REPRODUCIBLE.format(what=what, details=details, why=why))


def differences(
    kernel: list[tuple[str, str]], clean: list[tuple[str, str]], barrier: bool
) -> tuple[str, str] | None:
    """Describe how two task lists differ (``None``: they agree).

    With ``barrier`` either import may have stopped earlier than the other (the store changed in between),
    so only the tasks both define are compared.

    Returns
    -------
    tuple of str or None
        A summary ("3 of 10 tasks with other hashes") and one line per differing task (the first few).
    """
    if barrier:
        common = min(len(kernel), len(clean))
        kernel, clean = kernel[:common], clean[:common]
    if kernel == clean:
        return None
    changed = [(k, c) for k, c in zip(kernel, clean, strict=False) if k != c]
    totals = Counter(name for name, _ in kernel)
    examples: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {}
    counts: Counter[str] = Counter()
    for k, c in changed:
        counts[k[0]] += 1
        examples.setdefault(k[0], (k, c))
    lines = []
    for name, count in counts.most_common(_SHOWN):
        (_, khash), (cname, chash) = examples[name]
        became = "" if cname == name else f" {cname}"
        lines.append(
            f"  {name}: {count} of {totals[name]} tasks differ (e.g. {khash[:12]} in the kernel, "
            f"{became.strip() + ' ' if became else ''}{chash[:12]} in a clean import)"
        )
    if len(counts) > _SHOWN:
        lines.append(f"  ... and {len(counts) - _SHOWN} more task names")
    what = f"{len(changed)} of {len(kernel)} tasks with other hashes"
    if len(kernel) != len(clean):
        what += f", and {len(clean)} tasks where the kernel has {len(kernel)}"
        extra = sorted({n for n, _ in (clean[len(kernel) :] or kernel[len(clean) :])})
        lines.append(f"  only in one of them: {', '.join(extra[:_SHOWN])}")
    return what, "\n".join(lines)


def _hints(jugfile: Any) -> str:
    """Name the jugfile lines that reach into the kernel (``__main__``, ``get_ipython``), if any."""
    found = []
    for node in ast.walk(ast.parse(jugfile.text)):
        if isinstance(node, ast.ImportFrom) and node.module == "__main__":
            found.append((node.lineno, "imports from __main__ (the notebook's namespace)"))
        elif isinstance(node, ast.Import) and any(a.name == "__main__" for a in node.names):
            found.append((node.lineno, "imports __main__ (the notebook's namespace)"))
        elif isinstance(node, ast.Name) and node.id == "get_ipython":
            found.append((node.lineno, "uses get_ipython() (the kernel)"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [(node.lineno, what) for what in _local_modules(node)]
    if not found:
        return ""
    return ": " + "; ".join(f"{jugfile.describe_line(line)} {what}" for line, what in sorted(found)[:_SHOWN])


def _local_modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    """Describe the user's own modules an import uses that this kernel had loaded (and may have changed)."""
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    installed = tuple(os.path.realpath(p) for p in (sys.base_prefix, sys.prefix))
    out = []
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and not os.path.realpath(path).startswith(installed):
            out.append(
                f"uses `{name}` ({path}) as this kernel has it: changes made to it in the kernel (assigned "
                "attributes, importlib.reload, an edit of the file since the kernel imported it) differ from "
                "what a fresh import gives"
            )
    return out


def _stat(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def cache_key(graph: Any, cwd: Path) -> str:
    """Digest what a clean import's result depends on besides module files (snapshot, hashes, cwd, env)."""
    digest = hashlib.sha1()
    for part in (str(graph.snapshot), str(cwd), repr(sorted(os.environ.items()))):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    for t in graph.tasks:
        digest.update(t.hash())
    return digest.hexdigest()


def _report(snapshot: str, jugdir: str) -> dict[str, Any]:
    """Import ``snapshot`` in this (fresh) process and describe the result."""
    import jug.jug
    from jug import task as jugtask

    from ..backends import select
    from .loader import quiet_import_log, snapshot_import_error

    store = select(jugdir).open()
    before = set(sys.modules)
    jug.jug._is_jug_running = True  # as in a worker: jugfiles may test jug.is_jug_running()
    try:
        with quiet_import_log():
            _, namespace = jug.jug.init(snapshot, store=store, on_error="propagate")
    except Exception as err:
        named = snapshot_import_error(err, snapshot, then="")
        text = str(named) if named is not err else f"{type(err).__name__}: {err}"
        return {"tasks": [], "barrier": False, "files": [], "error": text.strip()}
    tasks = [[t.name, t.hash().decode()] for t in jugtask.alltasks]
    stdlib = (os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix))
    files = []
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and not os.path.realpath(path).startswith(stdlib) and path != snapshot:
            stat = _stat(path)
            if stat is not None:
                files.append([path, *stat])
    return {"tasks": tasks, "barrier": bool(namespace.get("__jug__hasbarrier__")), "files": files}


def main(argv: list[str]) -> int:
    """``python -m jugnb.session.reproduce SNAPSHOT`` with the jugdir on stdin; print the JSON report."""
    report = _report(argv[0], read_jugdir_from_stdin())
    sys.stdout.write("\n" + json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
