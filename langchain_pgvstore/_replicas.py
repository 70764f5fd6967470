"""A store's read endpoints: their pools, the course of each read, the last write's position.

`ReadReplicas` holds one `Connector` and one pair of runners per endpoint given
in `read_connections` (a DSN, a pool, or a multi-host DSN counted as one
endpoint), the `Router` that tracks their health, and, with read-your-writes,
the commit position of the store's latest write. `read` and `aread` drive the
course `_routing.read_course` decides; they differ only in `await`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._connection import Connector, PoolOptions
from ._routing import (
    Pause,
    Probe,
    ReadRoute,
    ReplicaRead,
    Router,
    TryReplica,
    WriteToken,
    read_course,
)
from ._runner import Runner
from ._runner_async import AsyncRunner
from .errors import ConfigError, DatabaseUnavailableError

__all__ = ["ReadConnections", "ReadReplicas", "read_replicas"]

T = TypeVar("T")
Connection = str | ConnectionPool[Any] | AsyncConnectionPool[Any]
#: what `read_connections=` accepts: one endpoint, a list of them, or None
ReadConnections = Connection | Sequence[Connection] | None
#: what makes a read try another server: the endpoint is down, or it cancelled the read
#: to apply WAL (a recovery conflict, SQLSTATE 40001)
_ELSEWHERE = (DatabaseUnavailableError, pg_errors.SerializationFailure)


def _endpoints(read_connections: object) -> list[Connection]:
    if isinstance(read_connections, (str, ConnectionPool, AsyncConnectionPool)):
        return [read_connections]
    if not isinstance(read_connections, Sequence):
        raise ConfigError(
            "read_connections must be a DSN, a psycopg pool, or a list of them;"
            f" got {type(read_connections).__name__}"
        )
    return list(read_connections)


def read_replicas(
    read_connections: object,
    options: PoolOptions,
    *,
    embedded: bool,
    read_your_writes: bool,
    read_wait: float,
    max_replica_lag: float | None,
) -> ReadReplicas | None:
    """The store's read endpoints, or None when reads go to the primary only."""
    if read_connections is None:
        return None
    endpoints = _endpoints(read_connections)
    if not endpoints:
        return None
    if embedded:
        raise ConfigError(
            "read_connections need connection= to be the primary's DSN or pool;"
            " the embedded server has no replicas"
        )
    connectors = [Connector(c, options, patient=False) for c in endpoints]
    return ReadReplicas(connectors, read_your_writes, read_wait, max_replica_lag)


class ReadReplicas:
    """The read endpoints of one store and the position its reads must have replayed."""

    def __init__(
        self,
        connectors: list[Connector],
        read_your_writes: bool,
        read_wait: float,
        max_replica_lag: float | None,
    ) -> None:
        self.connectors = connectors
        self._sync = [Runner(c) for c in connectors]
        self._async = [AsyncRunner(c) for c in connectors]
        self.router = Router([c.description for c in connectors], max_replica_lag)
        self.read_your_writes = read_your_writes
        self.read_wait = read_wait
        self._written: int | None = None
        self._lock = threading.Lock()

    # -- the store's writes ------------------------------------------------------------

    def wrote(self, lsn: int) -> None:
        """A write through the store committed at `lsn`."""
        with self._lock:
            if self._written is None or lsn > self._written:
                self._written = lsn

    @property
    def last_write(self) -> WriteToken | None:
        written = self._written
        return None if written is None else WriteToken(written)

    def _target(self, route: ReadRoute) -> int | None:
        """The replay position a read on this route needs, if any."""
        needed = [route.after.lsn] if route.after is not None else []
        if self.read_your_writes and self._written is not None:
            needed.append(self._written)
        return max(needed) if needed else None

    # -- reads -------------------------------------------------------------------------

    def read(
        self,
        route: ReadRoute,
        on_replica: Callable[[Runner, Probe], ReplicaRead[T]],
        on_primary: Callable[[], T],
    ) -> T:
        """Run a read where its course says: a replica that passes its probe, or the primary."""
        course = read_course(self.router, self._target(route), self.read_wait, time.monotonic)
        outcome: Any = None
        while True:
            try:
                step = course.send(outcome)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if isinstance(step, TryReplica):
                try:
                    outcome = on_replica(self._sync[step.index], step.probe)
                except _ELSEWHERE as e:
                    outcome = e
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
                outcome = None
            else:
                outcome = on_primary()

    async def aread(
        self,
        route: ReadRoute,
        on_replica: Callable[[AsyncRunner, Probe], Awaitable[ReplicaRead[T]]],
        on_primary: Callable[[], Awaitable[T]],
    ) -> T:
        """Async `read`."""
        course = read_course(self.router, self._target(route), self.read_wait, time.monotonic)
        outcome: Any = None
        while True:
            try:
                step = course.send(outcome)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if isinstance(step, TryReplica):
                try:
                    outcome = await on_replica(self._async[step.index], step.probe)
                except _ELSEWHERE as e:
                    outcome = e
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
                outcome = None
            else:
                outcome = await on_primary()

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        for connector in self.connectors:
            connector.close()

    async def aclose(self) -> None:
        for connector in self.connectors:
            await connector.aclose()
