"""The two thin runners that execute fragments and plans: the only sync/async twin.

Each runner borrows a pooled connection, makes sure pgvector's types are
registered on it, runs a query or drives a plan inside one transaction, and
turns connection-level failures into typed errors. A call that fails because
a pooled connection went stale (the server restarted) is retried once on a
fresh connection: every statement the store sends is idempotent (upserts,
deletes by key, reads), and a failed transaction wrote nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector, register_vector_async
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from ._sql import Frag
from ._steps import Copy, Execute, Fetch, Plan, Step
from .connection import Connector
from .errors import QueryTimeoutError

__all__ = ["AsyncRunner", "Runner"]

T = TypeVar("T")
logger = logging.getLogger("langchain_pgvstore")


def _connection_lost(error: BaseException, conn: psycopg.BaseConnection[Any] | None) -> bool:
    if isinstance(error, pg_errors.QueryCanceled):
        return False
    if conn is not None and conn.broken:
        return True
    sqlstate = getattr(error, "sqlstate", None) or ""
    return isinstance(error, psycopg.OperationalError) and (
        sqlstate.startswith(("08", "57P")) or not sqlstate
    )


def _timeout(error: BaseException) -> QueryTimeoutError:
    return QueryTimeoutError(f"statement timed out: {str(error).strip()}")


def _log(frag: Frag) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("sql: %s", frag.as_string())


class Runner:
    """Runs fragments and plans on a sync `ConnectionPool`."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    def fetch(
        self, frag: Frag, *, binary: bool = False, settings: Sequence[Frag] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one query. Without settings: a single round trip, no transaction.

        With settings (`set_config(..., true)` calls), they and the query are
        pipelined up to one Sync: an implicit transaction, so the settings end
        with it, in two round trips (an explicit BEGIN/COMMIT costs three more).
        """
        settings = [*self._connector.call_settings(False), *settings]
        if not settings:  # the common search: one statement, no plan to drive
            step = Fetch(frag, binary)
            rows: list[tuple[Any, ...]] = self._call(
                lambda conn: _perform(conn, step), transaction=False
            )
            return rows
        plan = _query_plan(frag, binary, settings)
        return self._call(lambda conn: self._drive(conn, plan()), transaction=False, pipeline=True)

    def execute(self, frag: Frag) -> int:
        """Run one statement; returns its row count."""
        return self.run(_execute_plan(frag), transaction=False)

    def run(self, make_plan: Callable[[], Plan[T]], *, transaction: bool = True) -> T:
        """Drive a plan on one connection, by default in one transaction.

        The plan is rebuilt if the call is retried.
        """
        settings = self._connector.call_settings(False)
        if settings:
            make_plan, transaction = _with_settings(settings, make_plan), True
        return self._call(lambda conn: self._drive(conn, make_plan()), transaction=transaction)

    def run_dedicated(self, make_plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        """Drive a plan on a connection of its own, closed afterwards (index builds)."""
        try:
            with self._connector.connect() as conn:
                _register(conn)
                if transaction:
                    with conn.transaction():
                        return self._drive(conn, make_plan())
                return self._drive(conn, make_plan())
        except pg_errors.QueryCanceled as e:
            raise _timeout(e) from e
        except psycopg.OperationalError as e:
            if _connection_lost(e, None):
                raise self._connector.unavailable(e) from e
            raise

    def _call(
        self,
        work: Callable[[psycopg.Connection[Any]], T],
        *,
        transaction: bool,
        pipeline: bool = False,
    ) -> T:
        """Run `work` on a pooled connection, retried once if the connection was stale.

        `work` drives a freshly built plan on each attempt.
        """
        for attempt in (1, 2):
            pool = self._connector.sync_pool()
            conn: psycopg.Connection[Any] | None = None
            try:
                # getconn/putconn rather than pool.connection(): connections are in
                # autocommit and every transaction here is a block of its own, so the
                # context manager's commit-on-exit is a no-op that costs a search ~10 µs
                conn = pool.getconn()
                try:
                    if conn.adapters.types.get("vector") is None:
                        _register(conn)
                    if transaction:
                        with conn.transaction():
                            return work(conn)
                    # pipelined, the statements up to the Sync at its end form one
                    # implicit transaction: no BEGIN/COMMIT round trips
                    with conn.pipeline() if pipeline else nullcontext():
                        return work(conn)
                finally:
                    pool.putconn(conn)
            except PoolTimeout as e:
                cause = self._connector.probe()
                if cause is not None:
                    raise self._connector.unavailable(cause) from e
                raise QueryTimeoutError(
                    f"no pooled connection became free within {pool.timeout:g} s"
                    f" (pool max_size={pool.max_size})"
                ) from e
            except pg_errors.QueryCanceled as e:
                raise _timeout(e) from e
            except psycopg.Error as e:
                if not _connection_lost(e, conn):
                    raise
                if attempt == 2 or conn is None:
                    raise self._connector.unavailable(e) from e
                pool.check()
        raise AssertionError("unreachable")

    @staticmethod
    def _drive(conn: psycopg.Connection[Any], plan: Plan[T]) -> T:
        try:
            step: Step = next(plan)
            while True:
                step = plan.send(_perform(conn, step))
        except StopIteration as stop:
            result: T = stop.value
            return result


def _query_plan(
    frag: Frag, binary: bool, settings: Sequence[Frag]
) -> Callable[[], Plan[list[tuple[Any, ...]]]]:
    def plan() -> Plan[list[tuple[Any, ...]]]:
        for setting in settings:
            yield Execute(setting)
        rows: list[tuple[Any, ...]] = yield Fetch(frag, binary)
        return rows

    return plan


def _execute_plan(frag: Frag) -> Callable[[], Plan[int]]:
    def plan() -> Plan[int]:
        count: int = yield Execute(frag)
        return count

    return plan


def _with_settings(
    settings: Sequence[Frag], make_plan: Callable[[], Plan[T]]
) -> Callable[[], Plan[T]]:
    def plan() -> Plan[T]:
        for setting in settings:
            yield Execute(setting)
        return (yield from make_plan())

    return plan


def _register(conn: psycopg.Connection[Any]) -> None:
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        # pgvector not installed yet: provisioning creates it, later borrows register
        pass


def _perform(conn: psycopg.Connection[Any], step: Step) -> Any:
    _log(step.frag)
    with conn.cursor(binary=getattr(step, "binary", False)) as cur:
        if isinstance(step, Copy):
            with cur.copy(step.frag.sql, step.frag.params or None) as copy:
                for chunk in step.chunks:
                    copy.write(chunk)
            return None
        cur.execute(step.frag.sql, step.frag.params or None)
        if isinstance(step, Fetch):
            return cur.fetchall()
        return cur.rowcount


class AsyncRunner:
    """Runs fragments and plans on an `AsyncConnectionPool`; mirrors `Runner`."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def fetch(
        self, frag: Frag, *, binary: bool = False, settings: Sequence[Frag] = ()
    ) -> list[tuple[Any, ...]]:
        """Async `Runner.fetch`."""
        settings = [*self._connector.call_settings(True), *settings]
        if not settings:
            step = Fetch(frag, binary)
            rows: list[tuple[Any, ...]] = await self._call(
                lambda conn: _aperform(conn, step), transaction=False
            )
            return rows
        plan = _query_plan(frag, binary, settings)
        return await self._call(
            lambda conn: self._drive(conn, plan()), transaction=False, pipeline=True
        )

    async def execute(self, frag: Frag) -> int:
        """Async `Runner.execute`."""
        return await self.run(_execute_plan(frag), transaction=False)

    async def run(self, make_plan: Callable[[], Plan[T]], *, transaction: bool = True) -> T:
        """Async `Runner.run`."""
        settings = self._connector.call_settings(True)
        if settings:
            make_plan, transaction = _with_settings(settings, make_plan), True
        return await self._call(
            lambda conn: self._drive(conn, make_plan()), transaction=transaction
        )

    async def run_dedicated(self, make_plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        """Async `Runner.run_dedicated`."""
        try:
            async with await self._connector.aconnect() as conn:
                await _aregister(conn)
                if transaction:
                    async with conn.transaction():
                        return await self._drive(conn, make_plan())
                return await self._drive(conn, make_plan())
        except pg_errors.QueryCanceled as e:
            raise _timeout(e) from e
        except psycopg.OperationalError as e:
            if _connection_lost(e, None):
                raise self._connector.unavailable(e) from e
            raise

    async def _call(
        self,
        work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
        *,
        transaction: bool,
        pipeline: bool = False,
    ) -> T:
        """Async `Runner._call`."""
        for attempt in (1, 2):
            pool = await self._connector.async_pool()
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await pool.getconn()
                try:
                    if conn.adapters.types.get("vector") is None:
                        await _aregister(conn)
                    if transaction:
                        async with conn.transaction():
                            return await work(conn)
                    async with conn.pipeline() if pipeline else nullcontext():
                        return await work(conn)
                finally:
                    await pool.putconn(conn)
            except PoolTimeout as e:
                cause = await self._connector.aprobe()
                if cause is not None:
                    raise self._connector.unavailable(cause) from e
                raise QueryTimeoutError(
                    f"no pooled connection became free within {pool.timeout:g} s"
                    f" (pool max_size={pool.max_size})"
                ) from e
            except pg_errors.QueryCanceled as e:
                raise _timeout(e) from e
            except psycopg.Error as e:
                if not _connection_lost(e, conn):
                    raise
                if attempt == 2 or conn is None:
                    raise self._connector.unavailable(e) from e
                await pool.check()
        raise AssertionError("unreachable")

    @staticmethod
    async def _drive(conn: psycopg.AsyncConnection[Any], plan: Plan[T]) -> T:
        try:
            step: Step = next(plan)
            while True:
                step = plan.send(await _aperform(conn, step))
        except StopIteration as stop:
            result: T = stop.value
            return result


async def _aregister(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError:
        pass


async def _aperform(conn: psycopg.AsyncConnection[Any], step: Step) -> Any:
    _log(step.frag)
    async with conn.cursor(binary=getattr(step, "binary", False)) as cur:
        if isinstance(step, Copy):
            async with cur.copy(step.frag.sql, step.frag.params or None) as copy:
                for chunk in step.chunks:
                    await copy.write(chunk)
            return None
        await cur.execute(step.frag.sql, step.frag.params or None)
        if isinstance(step, Fetch):
            return await cur.fetchall()
        return cur.rowcount
