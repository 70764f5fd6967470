"""Turning the `connection=` argument into connection pools.

A store accepts a DSN, a psycopg `ConnectionPool` or `AsyncConnectionPool`, or
None for the embedded server. Pools the store creates are its own to close;
a pool the caller passes in stays open after `close()`. When only one kind of
pool was given, the other kind is created on demand from its conninfo, so sync
and async methods both work on every store.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo as _conninfo
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ._sql import Frag
from .errors import ConfigError, DatabaseUnavailableError

__all__ = ["APPLICATION_NAME", "Connector", "PoolOptions", "describe_dsn", "normalise_dsn"]

#: `application_name` of the store's connections, to find them in pg_stat_activity.
APPLICATION_NAME = "langchain-pgvstore"

#: psycopg_pool retries a lost connection with exponential backoff (1, 2, 4 ... s, for
#: up to 5 minutes), and callers wait for that schedule even once the server is back.
#: Give up after this long and start over at once (`_reconnect_again`), so that an
#: attempt is never more than about a second away.
RECONNECT_TIMEOUT = 2.0


def normalise_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs (`postgresql+psycopg://`) as plain libpq ones."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgresql+asyncpg://"):
        if dsn.startswith(prefix):
            return "postgresql://" + dsn[len(prefix) :]
    if dsn.startswith("postgres+psycopg://"):
        return "postgresql://" + dsn[len("postgres+psycopg://") :]
    return dsn


def describe_dsn(dsn: str) -> str:
    """`host=… port=… dbname=… user=…` of a DSN: everything but the password."""
    try:
        params = _conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparseable connection string"
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    parts = [f"host={host}", f"port={port}"]
    for key in ("dbname", "user"):
        if params.get(key):
            parts.append(f"{key}={params[key]}")
    return " ".join(parts)


# libpq quotes a connection string it cannot parse whole in its error message,
# so a password it could not parse out must be masked by its position
_URI_PASSWORD = re.compile(r"(://[^/?#@]*?:)[^@/?#]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|\S*)")


def _redact(message: str, dsn: str) -> str:
    try:
        password = _conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    message = _URI_PASSWORD.sub(r"\1***@", message)
    return _KEYWORD_PASSWORD.sub(r"\1***", message)


def _reconnect_again(pool: Any) -> Any:
    # called by psycopg_pool when it gives up reconnecting: check() starts again now
    return None if pool.closed else pool.check()


def statement_timeout_setting(ms: int) -> Frag:
    """Transaction-local `statement_timeout`, in milliseconds."""
    return Frag(sql.SQL("SELECT set_config('statement_timeout', %s, true)"), (str(int(ms)),))


def _pool_conninfo(conninfo: object) -> str:
    # A pool may compute its conninfo per connection; the store then cannot
    # derive a twin pool from it, and says so if an async/sync twin is needed.
    return conninfo if isinstance(conninfo, str) else ""


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """Sizing of the pools a store creates itself."""

    min_size: int = 1
    max_size: int = 10
    timeout: float = 30.0
    connect_timeout: float = 10.0
    statement_timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_size, int) or self.max_size < 1:
            raise ConfigError(f"pool_size must be a positive integer, got {self.max_size!r}")
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ConfigError(f"pool_timeout must be a positive number, got {self.timeout!r}")
        if self.statement_timeout is not None and not (
            isinstance(self.statement_timeout, (int, float)) and self.statement_timeout > 0
        ):
            raise ConfigError(
                f"statement_timeout must be a positive number of seconds,"
                f" got {self.statement_timeout!r}"
            )

    @property
    def statement_timeout_ms(self) -> int | None:
        if self.statement_timeout is None:
            return None
        return max(1, round(self.statement_timeout * 1000))


class Connector:
    """Holds the sync and async pools of one store, creating them lazily."""

    def __init__(
        self,
        connection: str | ConnectionPool[Any] | AsyncConnectionPool[Any] | None,
        options: PoolOptions,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._options = options
        self._sync: ConnectionPool[Any] | None = None
        self._async: AsyncConnectionPool[Any] | None = None
        self._owns_sync = True
        self._owns_async = True
        self._sync_lock = threading.Lock()
        self._async_lock = asyncio.Lock()
        self._embedded = False
        if connection is None:
            from .server import embedded_dsn

            self._dsn = embedded_dsn(data_dir)
            self._embedded = True
        elif isinstance(connection, str):
            if not connection.strip():
                raise ConfigError("connection string must not be empty")
            self._dsn = normalise_dsn(connection)
            try:
                _conninfo.conninfo_to_dict(self._dsn)
            except psycopg.ProgrammingError as e:
                raise ConfigError(
                    f"invalid connection string: {_redact(str(e), self._dsn)}"
                ) from None
        elif isinstance(connection, ConnectionPool):
            self._sync, self._owns_sync = connection, False
            self._dsn = _pool_conninfo(connection.conninfo)
        elif isinstance(connection, AsyncConnectionPool):
            self._async, self._owns_async = connection, False
            self._dsn = _pool_conninfo(connection.conninfo)
        else:
            raise ConfigError(
                "connection must be a DSN string, a psycopg_pool.ConnectionPool or"
                f" AsyncConnectionPool, or None; got {type(connection).__name__}"
            )
        self.description = describe_dsn(self._dsn)
        self._closed = False

    @property
    def dsn(self) -> str:
        """The DSN pools are made from (may contain a password: never log it)."""
        return self._dsn

    @property
    def embedded(self) -> bool:
        return self._embedded

    @property
    def _open_timeout(self) -> float:
        # how long a new pool may take to make its first connection
        return min(self._options.connect_timeout, self._options.timeout)

    def _pool_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(self._options.connect_timeout)),
            "application_name": APPLICATION_NAME,
        }
        if self._options.statement_timeout_ms is not None:
            # set once per connection: no extra statement per call
            kwargs["options"] = f"-c statement_timeout={self._options.statement_timeout_ms}"
        return {
            "conninfo": self._dsn,
            "min_size": self._options.min_size,
            "max_size": self._options.max_size,
            "timeout": self._options.timeout,
            "reconnect_timeout": RECONNECT_TIMEOUT,
            "reconnect_failed": _reconnect_again,
            "kwargs": kwargs,
        }

    def call_settings(self, asynchronous: bool) -> list[Frag]:
        """Settings every call must apply itself: the store's statement timeout on a pool
        the caller passed in (pools the store creates carry it in their connection options)."""
        owned = self._owns_async if asynchronous else self._owns_sync
        ms = self._options.statement_timeout_ms
        if owned or ms is None:
            return []
        return [statement_timeout_setting(ms)]

    def _check_derivable(self, kind: str) -> None:
        if self._closed:
            raise DatabaseUnavailableError("the store is closed")
        if not self._dsn:
            raise ConfigError(
                f"this store was given a pool with a computed conninfo; pass a {kind} too"
                " (or a DSN) to use these methods"
            )

    def sync_pool(self) -> ConnectionPool[Any]:
        if self._sync is not None:
            return self._sync
        # several threads may make their first call at once: one pool, not several
        with self._sync_lock:
            return self._open_sync_pool()

    def _open_sync_pool(self) -> ConnectionPool[Any]:
        if self._sync is None:
            self._check_derivable("ConnectionPool")
            pool: ConnectionPool[Any] = ConnectionPool(
                open=False, name="pgvstore", **self._pool_kwargs()
            )
            try:
                # Wait for the first connection so a bad DSN fails now, with its cause,
                # instead of as a pool timeout on the first query.
                pool.open(wait=True, timeout=self._open_timeout)
            except PoolTimeout as e:
                pool.close()
                raise self.unavailable(self.probe() or e) from e
            self._sync = pool
        return self._sync

    async def async_pool(self) -> AsyncConnectionPool[Any]:
        if self._async is not None:
            return self._async
        async with self._async_lock:
            return await self._open_async_pool()

    async def _open_async_pool(self) -> AsyncConnectionPool[Any]:
        if self._async is None:
            self._check_derivable("AsyncConnectionPool")
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                open=False, name="pgvstore-async", **self._pool_kwargs()
            )
            try:
                await pool.open(wait=True, timeout=self._open_timeout)
            except PoolTimeout as e:
                await pool.close()
                raise self.unavailable(await self.aprobe() or e) from e
            self._async = pool
        return self._async

    def _connect_kwargs(self) -> dict[str, Any]:
        self._check_derivable("DSN")
        kwargs: dict[str, Any] = dict(self._pool_kwargs()["kwargs"])
        return kwargs

    def connect(self) -> psycopg.Connection[Any]:
        """A connection outside the pools, for work whose settings must not outlive it."""
        try:
            return psycopg.connect(self._dsn, **self._connect_kwargs())
        except psycopg.OperationalError as e:
            raise self.unavailable(e) from e

    async def aconnect(self) -> psycopg.AsyncConnection[Any]:
        """Async `connect`."""
        try:
            return await psycopg.AsyncConnection.connect(self._dsn, **self._connect_kwargs())
        except psycopg.OperationalError as e:
            raise self.unavailable(e) from e

    def unavailable(self, error: BaseException) -> DatabaseUnavailableError:
        """A typed error naming the server (never the password) and the cause."""
        return DatabaseUnavailableError(
            f"cannot reach PostgreSQL at {self.description}: {_redact(str(error), self._dsn)}"
        )

    def probe(self) -> BaseException | None:
        """Connect once, outside the pool, to learn why the pool cannot connect."""
        try:
            with psycopg.connect(
                self._dsn, connect_timeout=max(1, int(self._options.connect_timeout))
            ):
                return None
        except psycopg.Error as e:
            return e

    async def aprobe(self) -> BaseException | None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=max(1, int(self._options.connect_timeout))
            )
        except psycopg.Error as e:
            return e
        await conn.close()
        return None

    def close(self) -> None:
        """Close the pools this store created; an async pool needs `aclose()`."""
        self._closed = True
        if self._sync is not None and self._owns_sync:
            self._sync.close()
        self._sync = None

    async def aclose(self) -> None:
        self._closed = True
        if self._async is not None and self._owns_async:
            await self._async.close()
        self._async = None
        if self._sync is not None and self._owns_sync:
            self._sync.close()
        self._sync = None

    def __repr__(self) -> str:
        return f"Connector({self.description})"
