"""The parts of a redis jugdir URL, parsed without the redis package (which only a redis store needs).

``redis://[[user]:password@]host[:port][/db]``; the password may instead come from the environment
variable :data:`PASSWORD_VARIABLE`. jug 2.7 itself drops the password and the database number.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field

from ..errors import StoreError

__all__ = ["PASSWORD_VARIABLE", "WORKER_RETRY", "RedisURL"]

#: Seconds workers and the CLI keep retrying (ride out a server restart), unless configured otherwise.
WORKER_RETRY = 60.0

_URL = re.compile(
    r"^redis:(?://(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?"
    r"(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])?(?::(?P<port>\d+))?(?:/(?P<db>\d*))?/?)?$"
)
_FORM = "redis://[:PASSWORD@]HOST[:PORT][/DB]"
#: Environment variable holding the redis password for a jugdir URL without one (never passed to workers).
PASSWORD_VARIABLE = "JUGNB_REDIS_PASSWORD"


@dataclass(frozen=True)
class RedisURL:
    """The parts of a redis jugdir.

    Attributes
    ----------
    host : str
    port : int
    db : int
        Database number (``/3``); 0 when absent.
    username : str or None
    password : str or None
        Never shown in ``repr`` or :meth:`describe`.
    """

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, spec: str) -> RedisURL:
        """Parse ``redis://[[user]:password@]host[:port][/db]`` (``redis:`` alone: localhost:6379, db 0).

        Raises
        ------
        StoreError
            For anything else, naming the accepted form (the password is not repeated).
        """
        match = _URL.match(spec)
        if match is None:
            # Not repeated: a malformed URL may hold a password where redact() cannot find it.
            msg = f"the redis jugdir is malformed: use {_FORM}, e.g. redis://localhost:6379/0."
            raise StoreError(msg)
        parts = match.groupdict()
        return cls(
            host=(parts["host"] or "localhost").strip("[]"),
            port=int(parts["port"] or 6379),
            db=int(parts["db"] or 0),
            username=urllib.parse.unquote(parts["user"]) if parts["user"] else None,
            password=urllib.parse.unquote(parts["password"])
            if parts["password"]
            else os.environ.get(PASSWORD_VARIABLE) or None,
        )

    def describe(self) -> str:
        """``redis://host:port/db``: what messages and widgets show (no user name, no password)."""
        return f"redis://{self.host}:{self.port}/{self.db}"
