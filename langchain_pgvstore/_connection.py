"""Turning the `connection=` argument into connection pools.

A store accepts a DSN, a psycopg `ConnectionPool` or `AsyncConnectionPool`, or
None for the embedded server. Pools the store creates are its own to close;
a pool the caller passes in stays open after `close()`. When only one kind of
pool was given, the other kind is created on demand from its conninfo, so sync
and async methods both work on every store.

Before the store opens a pool it connects once by itself. A failure no retry
can fix (wrong password, no such database or role, unknown host) is raised at
once, without the pool's retries and log lines; a failure that may pass
(connection refused during a restart, too many connections) is retried until
`pool_timeout`.

When the server goes away later, the same rules hold, and an outage costs one
wait, not one per call. A call that loses its connection connects once by
itself: a permanent failure is raised at once; a passing one is waited out
within `pool_timeout` while the pool reconnects (at most about a second
apart). Once the pool has failed to reconnect for `RECONNECT_TIMEOUT` with no
call waiting, or a call has waited out its whole timeout, the server counts as
down: the pool stops trying (no log line per attempt), and each call makes a
single connection attempt, failing at once with `DatabaseUnavailableError`
until one succeeds; the first call after the server is back then refills the
pool and goes on. A read endpoint (`patient=False`) never waits: its reads fail
over to another server instead.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from . import _validate as check
from ._dsn import ParsedDSN, parse_dsn
from ._failures import permanent_connect_error
from ._sql.settings import Settings, statement_timeout
from .errors import ConfigError, DatabaseUnavailableError, QueryTimeoutError

__all__ = ["APPLICATION_NAME", "Connector", "PoolOptions"]

#: `application_name` of the store's connections, to find them in pg_stat_activity.
APPLICATION_NAME = "langchain-pgvstore"

#: psycopg_pool retries a lost connection with exponential backoff (1, 2, 4 ... s, for
#: up to 5 minutes), and callers wait for that schedule even once the server is back.
#: Give up after this long and, while a call waits, start over at once
#: (`Connector._reconnect_failed`), so that an attempt is never more than about a
#: second away.
RECONNECT_TIMEOUT = 2.0
#: How long one connection attempt may take before it counts as failed.
CONNECT_TIMEOUT = 5.0


def _pool_conninfo(conninfo: object) -> str:
    # A pool may compute its conninfo per connection; the store then cannot
    # derive a twin pool from it, and says so if an async/sync twin is needed.
    return conninfo if isinstance(conninfo, str) else ""


def _backoff(timeout: float) -> Iterator[float]:
    """Pauses between connection attempts (0.1 s doubling to 1 s) until `timeout` is spent."""
    deadline = time.monotonic() + timeout
    pause = 0.1
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        yield min(pause, left)
        pause = min(1.0, pause * 2)


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """Sizing of the pools a store creates itself; checked when the store is made."""

    min_size: int = 1
    max_size: int = 10
    timeout: float = 30.0
    statement_timeout: float | None = None

    def __post_init__(self) -> None:
        check.positive_int(self.max_size, "pool_size", ConfigError, maximum=10_000)
        check.positive_number(self.timeout, "pool_timeout", ConfigError)
        if self.statement_timeout is not None:
            check.positive_number(self.statement_timeout, "statement_timeout", ConfigError)

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
        *,
        patient: bool = True,
    ) -> None:
        self._options = options
        #: wait out a passing failure within the pool timeout (False: fail at once)
        self.patient = patient
        #: the server was found unreachable: each call tries one connection first
        self.down = False
        self._sync: ConnectionPool[Any] | None = None
        self._async: AsyncConnectionPool[Any] | None = None
        self._owns_sync = True
        self._owns_async = True
        self._sync_lock = threading.Lock()
        self._async_lock = asyncio.Lock()
        self._data_dir = data_dir
        self._embedded = connection is None
        dsn = ""
        if connection is None:
            dsn = ""  # the embedded server starts on first use
        elif isinstance(connection, str):
            dsn = connection
        elif isinstance(connection, ConnectionPool):
            self._sync, self._owns_sync = connection, False
            dsn = _pool_conninfo(connection.conninfo)
        elif isinstance(connection, AsyncConnectionPool):
            self._async, self._owns_async = connection, False
            dsn = _pool_conninfo(connection.conninfo)
        else:
            raise ConfigError(
                "connection must be a DSN string, a psycopg_pool.ConnectionPool or"
                f" AsyncConnectionPool, or None; got {type(connection).__name__}"
            )
        self._parsed: ParsedDSN | None = parse_dsn(dsn) if dsn else None
        self._closed = False

    # -- what the store knows about its connection ----------------------------------

    @property
    def parsed(self) -> ParsedDSN:
        """The checked DSN; starts the embedded server when that is the connection."""
        if self._parsed is None:
            if not self._embedded:
                raise ConfigError(
                    "this store was given a pool with a computed conninfo; pass a pool of"
                    " the other kind too (or a DSN) to use these methods"
                )
            from .server import embedded_dsn

            self._parsed = parse_dsn(embedded_dsn(self._data_dir))
        return self._parsed

    @property
    def dsn(self) -> str:
        """The DSN pools are made from (may contain a password: never log it)."""
        return self.parsed.dsn

    @property
    def description(self) -> str:
        """`host=… port=… dbname=… user=…`, never the password."""
        if self._parsed is None:
            return "the embedded server" if self._embedded else "a caller's pool"
        return self._parsed.description

    @property
    def embedded(self) -> bool:
        return self._embedded

    def owns(self, asynchronous: bool) -> bool:
        """Whether the pool of this kind was created by the store (not lent to it)."""
        return self._owns_async if asynchronous else self._owns_sync

    def call_settings(self, asynchronous: bool) -> Settings:
        """Settings every call must apply itself: the store's statement timeout on a pool
        the caller lent (pools the store creates carry it in their connection options)."""
        ms = self._options.statement_timeout
        if self.owns(asynchronous) or ms is None:
            return Settings()
        return Settings((statement_timeout(ms),))

    # -- errors ---------------------------------------------------------------------

    def unavailable(self, error: BaseException) -> DatabaseUnavailableError:
        """A typed error naming the server (never the password) and the cause."""
        text = str(error).strip() or type(error).__name__
        if self._parsed is not None:
            text = self._parsed.redact(text)
        return DatabaseUnavailableError(f"cannot reach PostgreSQL at {self.description}: {text}")

    def no_connection(self, pool: ConnectionPool[Any] | AsyncConnectionPool[Any]) -> Exception:
        """The error for a pool that had no free connection in time (server reachable)."""
        return QueryTimeoutError(
            f"no pooled connection became free within {pool.timeout:g} s"
            f" (pool max_size={pool.max_size})"
        )

    # -- making connections -----------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(min(CONNECT_TIMEOUT, self._options.timeout))),
            "application_name": APPLICATION_NAME,
        }
        if self._options.statement_timeout_ms is not None:
            # set once per connection: no extra statement per call
            kwargs["options"] = f"-c statement_timeout={self._options.statement_timeout_ms}"
        return kwargs

    def _pool_kwargs(self) -> dict[str, Any]:
        return {
            "conninfo": self.dsn,
            "min_size": self._options.min_size,
            "max_size": self._options.max_size,
            "timeout": self._options.timeout,
            "reconnect_timeout": RECONNECT_TIMEOUT,
            "reconnect_failed": self._reconnect_failed,
            "kwargs": self._connect_kwargs(),
        }

    def _reconnect_failed(self, pool: Any) -> Any:
        """psycopg_pool gave up reconnecting: start over while a call waits for a
        connection, else leave the server down until a call comes (no retry loop,
        no log line per attempt meanwhile)."""
        if pool.closed:
            return None
        if pool.get_stats().get("requests_waiting"):
            return pool.check()
        self.down = True
        return None

    # -- outages --------------------------------------------------------------------------

    def lost(self, cause: BaseException | None) -> DatabaseUnavailableError | None:
        """After a call lost its connection and connected once by itself (`cause`: why
        that failed, or None): the error to raise now, or None to retry the call."""
        if cause is None:
            self.down = False
            return None
        if permanent_connect_error(cause) or not self.patient:
            self.down = True
            return self.unavailable(cause)
        return None  # passing: the retry waits for the pool within pool_timeout

    def revive(self, cause: BaseException | None) -> None:
        """After a call on a server that was down connected once by itself (`cause`: why
        that failed): raise at once, or return (the server is back: refill the pool)."""
        if cause is not None:
            raise self.unavailable(cause)
        self.down = False

    def timed_out(self, pool: Any, cause: BaseException | None) -> Exception:
        """The error for a call the pool gave no connection in time (`cause`: why a
        connection of our own failed then, or None when the server is only busy)."""
        self.down = cause is not None
        return self.unavailable(cause) if cause is not None else self.no_connection(pool)

    @property
    def _patience(self) -> float:
        # one attempt (and at most one more at once) for a read endpoint
        return self._options.timeout if self.patient else 0.01

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseUnavailableError("the store is closed")

    def first_connect(self) -> None:
        """Connect once, outside any pool: raise a permanent failure now, wait out a
        passing one for up to `pool_timeout` (a read endpoint does not wait)."""
        error: Exception | None = None
        for pause in _backoff(self._patience):
            try:
                with psycopg.connect(self.dsn, **self._connect_kwargs()):
                    return
            except psycopg.Error as e:
                if permanent_connect_error(e):
                    raise self.unavailable(e) from None
                error = e
            time.sleep(pause)
        raise self.unavailable(error or TimeoutError("no connection")) from None

    async def afirst_connect(self) -> None:
        """Async `first_connect`."""
        error: Exception | None = None
        for pause in _backoff(self._patience):
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, **self._connect_kwargs())
            except psycopg.Error as e:
                if permanent_connect_error(e):
                    raise self.unavailable(e) from None
                error = e
            else:
                await conn.close()
                return
            await asyncio.sleep(pause)
        raise self.unavailable(error or TimeoutError("no connection")) from None

    def sync_pool(self) -> ConnectionPool[Any]:
        if self._sync is not None:
            return self._sync
        # several threads may make their first call at once: one pool, not several
        with self._sync_lock:
            if self._sync is None:
                self._check_open()
                self.first_connect()
                pool: ConnectionPool[Any] = ConnectionPool(
                    open=False, name="pgvstore", **self._pool_kwargs()
                )
                try:
                    pool.open(wait=True, timeout=self._options.timeout)
                except PoolTimeout:
                    pool.close()
                    raise self.unavailable(TimeoutError("the pool made no connection")) from None
                self._sync = pool
            return self._sync

    async def async_pool(self) -> AsyncConnectionPool[Any]:
        if self._async is not None:
            return self._async
        async with self._async_lock:
            if self._async is None:
                self._check_open()
                await self.afirst_connect()
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    open=False, name="pgvstore-async", **self._pool_kwargs()
                )
                try:
                    await pool.open(wait=True, timeout=self._options.timeout)
                except PoolTimeout:
                    await pool.close()
                    raise self.unavailable(TimeoutError("the pool made no connection")) from None
                self._async = pool
            return self._async

    def connect(self) -> psycopg.Connection[Any]:
        """A connection outside the pools, for work whose settings must not outlive it."""
        self._check_open()
        try:
            return psycopg.connect(self.dsn, **self._connect_kwargs())
        except psycopg.OperationalError as e:
            raise self.unavailable(e) from None

    async def aconnect(self) -> psycopg.AsyncConnection[Any]:
        """Async `connect`."""
        self._check_open()
        try:
            return await psycopg.AsyncConnection.connect(self.dsn, **self._connect_kwargs())
        except psycopg.OperationalError as e:
            raise self.unavailable(e) from None

    def probe(self) -> BaseException | None:
        """Connect once, outside the pool, to learn why the pool cannot connect (None:
        it can, or a lent pool computes its conninfo and there is nothing to try)."""
        if self._parsed is None and not self._embedded:
            return None
        try:
            with psycopg.connect(self.dsn, **self._connect_kwargs()):
                return None
        except psycopg.Error as e:
            return e

    async def aprobe(self) -> BaseException | None:
        """Async `probe`."""
        if self._parsed is None and not self._embedded:
            return None
        try:
            conn = await psycopg.AsyncConnection.connect(self.dsn, **self._connect_kwargs())
        except psycopg.Error as e:
            return e
        await conn.close()
        return None

    # -- closing ------------------------------------------------------------------------

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
