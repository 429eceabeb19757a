"""Jugdir specifications: resolution, kinds, and password redaction.

A jugdir is what jug's ``--jugdir`` takes (see ``jug.backends.select``): a folder path (file store),
``file_keepalive:PATH``, ``redis://[:password@]host:port/db``, ``dict_store`` or ``dict_store:FILE``.
jugnb resolves folder paths to absolute ones (jug builds lock paths from the string as given, and workers
may run elsewhere) and never shows a redis password: every message and repr goes through :func:`redact`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import StoreError

_PASSWORD = re.compile(r"^(?P<scheme>redis(?:s)?:(?://)?)(?P<user>[^:@/]*):(?P<password>[^@/]*)@")


def redact(spec: str) -> str:
    """``spec`` with any redis password replaced by ``***`` (``redis://:s3cret@h:6379`` -> ``redis://:***@h:6379``)."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", spec)


def redact_text(text: str, spec: str) -> str:
    """``text`` with the password of ``spec`` (if any) replaced by ``***`` wherever it appears."""
    match = _PASSWORD.match(spec)
    if match and match["password"]:
        text = text.replace(match["password"], "***")
    return text


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
        if self.kind == "file":
            return Path(self.spec)
        if self.kind == "file_keepalive":
            return Path(self.spec[len("file_keepalive:") :])
        return None

    @property
    def shareable(self) -> bool:
        """Whether other processes (workers) see the same results: false for an in-memory ``dict_store``."""
        return self.kind != "dict_store"

    def open(self) -> Any:
        """Open the jug store (``jug.backends.select``).

        Raises
        ------
        StoreError
            If the store cannot be opened (e.g. redis unreachable or refusing the password), with the
            password redacted.
        """
        from jug.backends import select

        try:
            return select(self.spec)
        except Exception as err:  # redis raises ConnectionError, AuthenticationError, ...
            msg = f"cannot open the jugdir {self}: {redact_text(str(err), self.spec)}"
            raise StoreError(msg, path=str(self)) from None


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
