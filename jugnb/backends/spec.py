"""Jugdir specifications: resolution, kinds, and password redaction.

A jugdir is what jug's ``--jugdir`` takes (see ``jug.backends.select``): a folder path (file store),
``file_keepalive:PATH``, ``redis://[:password@]host:port/db``, ``dict_store`` or ``dict_store:FILE``.
jugnb resolves folder paths to absolute ones (jug builds lock paths from the string as given, and workers
may run elsewhere) and never shows a redis password: every message and repr goes through :func:`redact`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .redis_url import PASSWORD_VARIABLE

# Greedy up to the last "@" before any "/": a raw "@" in a password (it should be %40) is hidden whole.
_PASSWORD = re.compile(r"^(?P<scheme>redis(?:s)?:(?://)?)(?P<user>[^:@/]*):(?P<password>[^/]*)@")


def redact(spec: str) -> str:
    """``spec`` with any redis password replaced by ``***`` (``redis://:s3cret@h:6379`` -> ``redis://:***@h:6379``)."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", spec)


def redact_text(text: str, spec: str) -> str:
    """``text`` with the password of ``spec`` (if any) replaced by ``***`` wherever it appears."""
    match = _PASSWORD.match(spec)
    if match and match["password"]:
        text = text.replace(match["password"], "***")
    return text




def with_env_password(spec: str) -> str:
    """Return ``spec`` with ``$JUGNB_REDIS_PASSWORD`` put in when it is a redis URL without a password.

    Workers never get the variable in their environment; the full URL reaches them through a pipe.
    """
    import urllib.parse

    secret = os.environ.get(PASSWORD_VARIABLE)
    if not secret or not spec.startswith("redis://") or _PASSWORD.match(spec) or "@" in spec.split("/")[2]:
        return spec
    return f"redis://:{urllib.parse.quote(secret, safe='')}@{spec[len('redis://') :]}"


def child_environment(**extra: str) -> dict[str, str]:
    """Return the environment for a worker: without the redis password variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_VARIABLE}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Jugdir:
    """A resolved jugdir.

    Attributes
    ----------
    spec : str
        The string jug gets (``--jugdir``), with folder paths made absolute.
    kind : str
        ``"file"``, ``"file_keepalive"``, ``"redis"``, ``"dict_store"`` (in memory) or ``"dict_store_file"``.
    """

    spec: str
    kind: str

    def __str__(self) -> str:
        return redact(self.spec)

    @property
    def path(self) -> Path | None:
        """The folder of a file or file_keepalive store (``None`` otherwise)."""
        if self.kind in ("file", "file_keepalive"):
            return Path(self.spec.removeprefix("file_keepalive:"))
        return None

    def __repr__(self) -> str:
        # The dataclass repr would show spec, password and all.
        return f"Jugdir({str(self)!r}, kind={self.kind!r})"

    def open(self, *, fatal: bool = False, retry_for: float | None = None) -> Any:
        """Open the jug store; redis through :func:`~jugnb.backends.redis_store.open_redis_store`.

        Parameters
        ----------
        fatal : bool
            Redis: a server lost later raises :class:`jugnb.backends.redis_store.StoreLost` (workers, the
            CLI).
        retry_for : float, optional
            Redis: seconds to retry an unreachable server (default: the kernel's short wait).

        Raises
        ------
        StoreError
            If the store cannot be opened (redis unreachable or refusing the password, an unreadable
            ``dict_store:FILE``), with the password redacted.
        """
        return open_store(self.spec, fatal=fatal, retry_for=retry_for)


def open_store(spec: str, *, fatal: bool = False, retry_for: float | None = None) -> Any:
    """Open the jug store for a jugdir string, as ``jug.backends.select`` would but for redis's URL parts.

    Raises
    ------
    StoreError
        As :meth:`Jugdir.open`.
    """
    if kind_of(spec) == "redis":
        try:
            from .redis_store import open_redis_store
        except ImportError:
            msg = "a redis jugdir needs the redis package: pip install 'jugnb[redis]'."
            raise StoreError(msg) from None
        return open_redis_store(spec, retry_for=retry_for, fatal=fatal)
    from jug.backends import select

    try:
        store = select(spec)
    except Exception as err:  # an unreadable dict_store:FILE raises UnpicklingError, EOFError, ...
        msg = f"cannot open the jugdir {redact(spec)}: {redact_text(str(err), spec)}"
        raise StoreError(msg, path=redact(spec)) from None
    if kind_of(spec) == "dict_store_file":
        atexit.register(_save_at_exit, weakref.ref(store))
    return store


def _save_at_exit(ref: weakref.ref[Any]) -> None:
    # jug's own save, dict_store.__del__ at interpreter exit, fails (`open` is gone by then) with a
    # traceback on stderr: save while everything still works, and leave __del__ nothing to do.
    store = ref()
    if store is not None:
        save_dict_store(store)
        store.backend = None


@contextlib.contextmanager
def running_tasks(store: Any) -> Iterator[None]:
    """Run jug's execute loop on ``store`` in this process (the kernel), safely for the store.

    Redis: a server lost for longer than the retry time stops the loop at once (instead of failing every
    task in turn) and raises :class:`jugnb.backends.redis_store.StoreUnreachable`. ``dict_store:FILE``: saved
    afterwards, whatever happened.
    """
    guard: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if getattr(store, "redis", None) is not None:
        from .redis_store import fatal_errors

        guard = fatal_errors(store)
    try:
        with guard:
            yield
    finally:
        save_dict_store(store)


def save_dict_store(store: Any) -> bool:
    """Write a ``dict_store:FILE`` store's contents to FILE now, atomically; return whether it has a FILE.

    jug writes FILE only in ``dict_store.close()`` (also its ``__del__``), non-atomically, and then forgets
    FILE; at interpreter exit ``open`` is already gone and the write fails: ``jug execute --jugdir
    dict_store:FILE`` loses every result. jugnb saves explicitly after each operation that changes it.
    """
    from jug.backends.dict_store import dict_store

    backend = getattr(store, "backend", None)
    if type(store) is not dict_store or backend is None:
        return False
    import pickle

    write_atomically(Path(backend), pickle.dumps(store.store))
    return True


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and a rename: a crash leaves the old file.

    The file gets the mode a plain ``open()`` would give it (0666 less the umask), not mkstemp's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@functools.cache
def _umask() -> int:
    # Reading the umask means setting it, so read it once; the two calls are back to back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def kind_of(spec: str) -> str:
    """Return the kind of store a jugdir string selects, following ``jug.backends.select``."""
    if spec.startswith("redis:"):
        return "redis"
    if spec == "dict_store":
        return "dict_store"
    if spec.startswith("dict_store:"):
        return "dict_store_file"
    if spec.startswith("file_keepalive:"):
        return "file_keepalive"
    return "file"


def resolve_jugdir(spec: str, *, jugfile: Path, base: Path) -> Jugdir:
    """Expand ``%(jugfile)s``/``%(date)s`` as jug does and make folder paths absolute.

    Parameters
    ----------
    spec : str
        The jugdir as configured.
    jugfile : Path
        The jugfile path that ``%(jugfile)s`` refers to (its ``.py`` is dropped, as jug does).
    base : Path
        Folder that relative paths are relative to (the working directory, as for jug).

    Raises
    ------
    StoreError
        If the spec has an unknown ``%(...)s`` placeholder.
    """
    try:
        spec = spec % {"date": datetime.now().strftime("%Y-%m-%d"), "jugfile": str(jugfile)[: -len(".py")]}
    except (KeyError, ValueError, TypeError) as err:
        msg = f"jugdir {redact(spec)}: bad placeholder ({err}); only %(jugfile)s and %(date)s are known."
        raise StoreError(msg) from None
    kind = kind_of(spec)
    if kind == "file":
        spec = str((base / spec).resolve())
    elif kind in ("file_keepalive", "dict_store_file"):
        prefix, _, rest = spec.partition(":")
        spec = f"{prefix}:{(base / rest).resolve()}"
    return Jugdir(spec, kind)


def absolute_jugdir(jugdir: str, cwd: Path) -> str:
    """``jugdir`` with a relative file store folder made absolute against ``cwd`` (jug's meaning of it).

    jug builds lock paths from the jugdir string, and workers and kernels must agree on them.
    """
    kind = kind_of(jugdir)
    if kind not in ("file", "file_keepalive"):
        return jugdir
    prefix = "file_keepalive:" if kind == "file_keepalive" else ""
    return prefix + os.path.normpath(cwd / jugdir[len(prefix) :])
