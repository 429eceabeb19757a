"""Redis jugdirs: jug's own store and key names, with the password, database and errors that jug drops.

jug 2.7's ``redis_store`` (``jug/backends/redis_store.py``) reads only ``redis://host:port`` from the URL:

- the **database number is ignored**: ``redis://host:6379/3`` silently uses database 0;
- a URL with a **password** (``redis://:pw@host:6379/3``) does not match its pattern at all, so jug
  connects to ``localhost:6379``, database 0, without a password, whatever host was asked for.

jugnb therefore opens redis stores itself (:func:`open_redis_store`): an instance of jug's own
``redis_store`` class, so keys, values and locking are exactly jug's (``result:<hash>`` holds base64 of
jug's encoding, ``lock:<hash>`` is ``L`` or ``F``), whose client is configured from the whole URL. Results
are interchangeable with plain jug wherever plain jug reaches the same database: database 0 of a server
without a password. Workers, the CLI and the kernel all go through here; a database other than the one
asked for is never written.

Errors. A server that refuses connections, times out or is loading its data is retried (with a capped
backoff) for ``retry_for`` seconds from the first failure, so a restart on the same port is ridden out;
after that the client raises :class:`StoreUnreachable` (a :class:`~jugnb.errors.StoreError`, shown as a
``UsageError`` in the kernel) or, in *fatal* mode, :class:`StoreLost`, which is a ``BaseException`` so
that jug's execute loop does not take it for a failed task (it catches ``Exception``) and the worker or
CLI stops at once, keeping what is stored. A refused password is never retried. Messages name
``redis://host:port/db`` and never the password.

A ``GETSET`` of a lock whose reply was lost with the connection (the server may or may not have run it)
is ambiguous: an answer ``L`` after the retry may be our own lock. It is taken as acquired, so that the
task is not left locked forever by nobody; at worst the task runs twice, which a deterministic task
survives (redis-py's own retries would have read it as "held by someone else").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ConnectionError,
    RedisError,
    TimeoutError,
)
from redis.retry import Retry

from ..errors import StoreError, StoreUnreachable
from .redis_url import RedisURL

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds the kernel keeps retrying an unreachable server before a command fails (the cell waits).
KERNEL_RETRY = 2.0
_MAX_BACKOFF = 0.5
class StoreLost(BaseException):
    """:class:`StoreUnreachable` in fatal mode: escapes jug's ``except Exception`` so the process stops.

    Parameters
    ----------
    message : str
        What happened and what to do (no password).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class JugnbRedis(redis.Redis):
    """A redis client that retries for a while, then fails with a clear message and never the password.

    Parameters
    ----------
    url : RedisURL
    retry_for : float
        Seconds to keep retrying after a command first fails to reach the server.
    socket_timeout : float
        Seconds a reply may take (a stopped server is noticed after this long).

    Attributes
    ----------
    description : str
        ``redis://host:port/db``.
    fatal : bool
        Raise :class:`StoreLost` instead of :class:`StoreUnreachable` (workers, the CLI, ``--here``);
        once lost, every later command fails at once (jug would otherwise retry each task's lock).
    held_locks : set of str
        Hashes of the task locks this client took (or may have taken: the reply was lost) and has not
        deleted since; what a worker that lost its server leaves for the pool to release.
    """

    def __init__(self, url: RedisURL, *, retry_for: float, socket_timeout: float) -> None:
        super().__init__(
            host=url.host,
            port=url.port,
            db=url.db,
            username=url.username,
            password=url.password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=min(socket_timeout, 10.0),
            retry=Retry(NoBackoff(), 0),  # retried below, by time rather than by count
        )
        self.description = url.describe()
        self.retry_for = retry_for
        self.fatal = False
        self.held_locks: set[str] = set()
        self._lost: str | None = None
        self._fatal_thread: int | None = None  # fatal_errors(): one thread only (not the panel's poller)
        self._has_password = url.password is not None

    def __repr__(self) -> str:
        return f"JugnbRedis({self.description})"

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command, retrying while the server is unreachable (see the module docstring)."""
        ambiguous = [False]
        send = super().execute_command
        command, lock = str(args[0]).upper(), _lock_hash(args)
        try:
            result = self.retrying(lambda: send(*args, **options), ambiguous)  # type: ignore[no-untyped-call]
        except BaseException:
            if lock is not None and command == "GETSET":
                self.held_locks.add(lock)  # it may have been taken before the connection dropped
            raise
        if lock is None:
            return result
        if command == "GETSET":
            if ambiguous[0] and result == b"L":
                log.warning("the lock of %s was set while the connection dropped: taking it as ours", lock)
                result = None
            if result is None:
                self.held_locks.add(lock)
        elif command in ("DEL", "SET"):  # released, or kept on purpose as a failed mark
            self.held_locks.discard(lock)
        return result

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        """Return a pipeline whose ``execute`` retries like single commands (jugnb pipelines only read)."""
        return _RetryingPipeline(self, transaction, shard_hint)

    def retrying(self, call: Callable[[], T], ambiguous: list[bool] | None = None) -> T:
        """Run ``call``, retrying connection failures for :attr:`retry_for` seconds.

        Parameters
        ----------
        call : callable
        ambiguous : list of one bool, optional
            Set to ``True`` when a failure may have happened after the command reached the server.

        Raises
        ------
        StoreUnreachable, StoreLost
            When the time is up, or at once for a refused login (``fatal`` chooses which).
        """
        if self._lost is not None and self._is_fatal():
            raise StoreLost(self._lost)
        deadline, delay = None, 0.05
        while True:
            try:
                return call()
            except (AuthenticationError, AuthorizationError) as err:
                raise self._failure(self._login_message(err)) from None
            except (ConnectionError, TimeoutError) as err:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.retry_for
                    log.info("%s unreachable (%s); retrying for %g s", self.description, err, self.retry_for)
                if ambiguous is not None and not _before_sending(err):
                    ambiguous[0] = True
                if now >= deadline:
                    raise self._failure(self._unreachable_message(err)) from None
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, _MAX_BACKOFF)

    def _is_fatal(self) -> bool:
        return self.fatal or self._fatal_thread == threading.get_ident()

    def _failure(self, message: str) -> BaseException:
        if self._is_fatal():
            self._lost = message
            return StoreLost(message)
        return StoreUnreachable(message, path=self.description)

    def _unreachable_message(self, err: RedisError) -> str:
        return (
            f"the redis server {self.description} is unreachable ({type(err).__name__}: {err}); retried for "
            f"{self.retry_for:g} s. Start it (or check the host and port of the jugdir) and run again: "
            "results stored so far are kept."
        )

    def _login_message(self, err: RedisError) -> str:
        if not self._has_password:
            return (
                f"the redis server {self.description} needs a password: give it in the jugdir, "
                "redis://:PASSWORD@host:port/db (best in a jugrc file or a profile, not in the notebook)."
            )
        return f"the redis server {self.description} refused the login: {err} Check the jugdir's password."


class _RetryingPipeline(Pipeline):
    """A pipeline that re-sends its whole stack while the server is unreachable."""

    def __init__(self, client: JugnbRedis, transaction: bool, shard_hint: Any) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, shard_hint)
        self._client = client

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Execute the queued commands (re-queued for each attempt: a failed attempt clears them)."""
        stack = list(self.command_stack)

        def attempt() -> list[Any]:
            self.command_stack = list(stack)
            return super(_RetryingPipeline, self).execute(raise_on_error)

        return self._client.retrying(attempt)


def _before_sending(err: RedisError) -> bool:
    """Whether the failure happened before the command could reach the server (safe to repeat)."""
    return isinstance(err, BusyLoadingError) or "connecting to" in str(err)


def _lock_hash(args: tuple[Any, ...]) -> str | None:
    """Return the task hash when the command's key is a jug lock (``lock:<hash>``)."""
    key = args[1] if len(args) > 1 else b""
    key = key.encode() if isinstance(key, str) else key
    if isinstance(key, bytes) and key.startswith(b"lock:"):
        return key[len(b"lock:") :].decode("ascii", "replace")
    return None


def redis_client(
    spec: str, *, retry_for: float | None = None, socket_timeout: float | None = None
) -> JugnbRedis:
    """Return a client for the database that ``spec`` names (nothing is sent yet).

    Parameters
    ----------
    spec : str
        ``redis://[:password@]host[:port][/db]``.
    retry_for : float, optional
        Seconds to retry an unreachable server (default :data:`KERNEL_RETRY`).
    socket_timeout : float, optional
        Seconds a reply may take; default ``max(5, retry_for)``.

    Raises
    ------
    StoreError
        If ``spec`` is not a redis URL that jugnb understands.
    """
    retry = KERNEL_RETRY if retry_for is None else retry_for
    timeout = socket_timeout if socket_timeout is not None else max(5.0, retry)
    return JugnbRedis(RedisURL.parse(spec), retry_for=retry, socket_timeout=timeout)


def open_redis_store(spec: str, *, retry_for: float | None = None, fatal: bool = False) -> Any:
    """Open jug's ``redis_store`` on the database ``spec`` names, with its password; check it answers.

    A server that does not answer now is retried for at most :data:`KERNEL_RETRY` seconds (most likely a
    wrong host or port); ``retry_for`` (default :data:`KERNEL_RETRY`) applies to every later command.

    Returns
    -------
    jug.backends.redis_store.redis_store
        jug's own class (status readers and jug recognise it), with a :class:`JugnbRedis` client.

    Raises
    ------
    StoreUnreachable
        If the server does not answer ``PING`` or refuses the login (also when ``fatal``).
    StoreError
        If ``spec`` cannot be parsed.
    """
    from jug.backends.redis_store import redis_store

    client = redis_client(spec, retry_for=retry_for)
    wanted = client.retry_for
    client.retry_for = min(wanted, KERNEL_RETRY)
    try:
        client.ping()
    except RedisError as err:  # e.g. "DB index is out of range"
        client.close()
        msg = f"the redis server {client.description} cannot be used: {type(err).__name__}: {err}"
        raise StoreError(msg, path=client.description) from None
    except BaseException:
        client.close()
        raise
    client.retry_for, client.fatal = wanted, fatal
    store = redis_store.__new__(redis_store)  # its __init__ would parse the URL and drop db and password
    store.redis = client
    return store


def client_for(spec: str, store: Any = None) -> tuple[JugnbRedis, bool]:
    """Return the client of ``store`` when it is an open jugnb redis store of ``spec``, else a new one.

    Returns
    -------
    client : JugnbRedis
    owned : bool
        Whether the client is new (its user closes it) rather than the store's.

    Raises
    ------
    StoreError
        If ``spec`` cannot be parsed.
    """
    client = getattr(store, "redis", None)
    if isinstance(client, JugnbRedis):
        return client, False
    return redis_client(spec), True


@contextlib.contextmanager
def fatal_errors(store: Any) -> Iterator[None]:
    """Inside the block, a lost redis server raises :class:`StoreLost`; it becomes :class:`StoreUnreachable`.

    For running jug's execute loop in the kernel (``%jug execute --here``): the loop must stop at once
    rather than fail every task in turn, and the kernel must get an ordinary error. Other stores: no-op.
    """
    client = getattr(store, "redis", None)
    if not isinstance(client, JugnbRedis):
        yield
        return
    client._fatal_thread = threading.get_ident()  # the panel's poller thread keeps ordinary errors
    try:
        yield
    except StoreLost as lost:
        raise StoreUnreachable(lost.message, path=client.description) from None
    finally:
        client._fatal_thread, client._lost = None, None
