"""The two thin runners that execute fragments and plans: the only sync/async twin.

Each runner borrows a pooled connection, makes sure pgvector's types are
registered on it, runs a query or drives a plan, and turns connection-level
failures into typed errors (`_failures`). A call that fails because a pooled
connection went stale (the server restarted) is retried once on a fresh
connection: every statement the store sends is idempotent (upserts, deletes by
key, reads), and a failed transaction wrote nothing.

A connection of the store's own pool is closed instead of reused when a call
was interrupted (a cancelled task) or left it outside a clean idle state: its
session settings are then unknown. How settings reach the server, and why
that never leaves a statement half-prepared, is in `_session.py`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector, register_vector_async
from psycopg_pool import PoolTimeout

from ._connection import Connector
from ._failures import connection_lost, timeout_error
from ._plan import Copy, Execute, Fetch, Phase, Plan, Step
from ._session import SessionState, local_plan, session_plan
from ._sql import Frag
from ._sql.settings import Settings

__all__ = ["AsyncRunner", "Runner"]

T = TypeVar("T")
Rows = list[tuple[Any, ...]]
logger = logging.getLogger("langchain_pgvstore")

_NO_SETTINGS = Settings()


def _log(frag: Frag) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("sql: %s", frag.as_string())


def _in_transaction(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return (
        not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    )


def _execute_plan(frag: Frag) -> Callable[[], Plan[int]]:
    def plan() -> Plan[int]:
        count: int = yield Execute(frag)
        return count

    return plan


def _with_settings(settings: Settings, make_plan: Callable[[], Plan[T]]) -> Callable[[], Plan[T]]:
    def plan() -> Plan[T]:
        for frag in settings.local_frags():
            yield Execute(frag)
        return (yield from make_plan())

    return plan


class _Base:
    """What both runners share: the connector and each own connection's settings."""

    _asynchronous = False

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._sessions: weakref.WeakKeyDictionary[Any, SessionState] = weakref.WeakKeyDictionary()

    def _query_plan(
        self, conn: Any, query: Fetch, settings: Settings
    ) -> tuple[Plan[Rows] | None, bool]:
        """The plan for a query with settings on `conn` (None when the query can go
        alone), and whether it runs in a pipeline, where nothing is prepared."""
        if not self._connector.owns(self._asynchronous):
            settings = self._connector.call_settings(self._asynchronous).merged(settings)
            if not settings:
                return None, False
            return local_plan(settings, query), True
        state = self._sessions.get(conn)
        if state is None:
            if not settings:
                return None, False
            state = self._sessions[conn] = SessionState()
        if state.idle(settings):
            return None, False
        return session_plan(state, settings, query), False

    def _restore_plan(self, conn: Any) -> Plan[Rows] | None:
        """Put back the session settings an earlier search changed, before other work."""
        state = self._sessions.get(conn)
        if state is None or not state.changed():
            return None
        return session_plan(state, _NO_SETTINGS, None)

    def _failed(self, error: psycopg.Error, conn: Any, attempt: int) -> BaseException | None:
        """The error to raise for a failed call, or None to retry it."""
        timeout = timeout_error(error)
        if timeout is not None:
            return timeout
        if not connection_lost(error, conn):
            return error
        if attempt == 2 or conn is None:
            return self._connector.unavailable(error)
        return None

    def _discard(self, conn: Any, error: BaseException) -> bool:
        """Whether a connection of the store's own pool on which a call failed must be
        closed rather than reused (a lent pool checks its connections itself)."""
        if not self._connector.owns(self._asynchronous):
            return False
        if not isinstance(error, Exception) or conn.broken:
            self._sessions.pop(conn, None)
            return True
        return bool(conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)


class Runner(_Base):
    """Runs fragments and plans on a sync `ConnectionPool`."""

    def fetch(self, frag: Frag, *, binary: bool = False, settings: Settings = _NO_SETTINGS) -> Rows:
        """Run one query with `settings`: a single statement when the connection
        already has them, else one pipeline (settings, then the query)."""
        query = Fetch(frag, binary)

        def work(conn: psycopg.Connection[Any]) -> Rows:
            plan, pipelined = self._query_plan(conn, query, settings)
            if plan is None:
                rows: Rows = _perform(conn, query)
                return rows
            if not pipelined:
                return self._drive(conn, plan)
            with conn.pipeline():
                return self._drive(conn, plan, prepare=False)

        # the query's own plan restores what it does not set
        return self._call(work, transaction=False, restore_session=False)

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
        except psycopg.Error as e:
            error = self._failed(e, None, 2)
            if error is None or error is e:
                raise
            raise error from e

    def _call(
        self,
        work: Callable[[psycopg.Connection[Any]], T],
        *,
        transaction: bool,
        restore_session: bool = True,
    ) -> T:
        """Run `work` on a pooled connection, retried once if the connection was stale."""
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
                    restore = self._restore_plan(conn) if restore_session else None
                    if restore is not None:
                        self._drive(conn, restore)
                    if transaction:
                        with conn.transaction():
                            return work(conn)
                    result = work(conn)
                    if _in_transaction(conn):
                        # a lent pool without autocommit: end the implicit transaction
                        # psycopg began, rather than leave the pool to roll it back
                        conn.commit()
                    return result
                except BaseException as exc:
                    if self._discard(conn, exc):
                        conn.close()
                    raise
                finally:
                    pool.putconn(conn)
            except PoolTimeout as e:
                cause = self._connector.probe()
                raise (
                    self._connector.unavailable(cause)
                    if cause
                    else self._connector.no_connection(pool)
                ) from e
            except psycopg.Error as e:
                error = self._failed(e, conn, attempt)
                if error is e:
                    raise
                if error is not None:
                    raise error from e
                pool.check()
        raise AssertionError("unreachable")

    @staticmethod
    def _drive(conn: psycopg.Connection[Any], plan: Plan[T], prepare: bool = True) -> T:
        try:
            step: Step = next(plan)
            while True:
                step = plan.send(_perform(conn, step, prepare))
        except StopIteration as stop:
            result: T = stop.value
            return result


def _register(conn: psycopg.Connection[Any]) -> None:
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        # pgvector not installed yet: provisioning creates it, later borrows register
        pass


def _perform(conn: psycopg.Connection[Any], step: Step, prepare: bool = True) -> Any:
    if isinstance(step, Phase):
        return None
    _log(step.frag)
    with conn.cursor(binary=getattr(step, "binary", False)) as cur:
        if isinstance(step, Copy):
            with cur.copy(step.frag.sql, step.frag.params or None) as copy:
                for chunk in step.chunks:
                    copy.write(chunk)
            return None
        cur.execute(step.frag.sql, step.frag.params or None, prepare=None if prepare else False)
        if isinstance(step, Fetch):
            return cur.fetchall()
        return cur.rowcount


class AsyncRunner(_Base):
    """Runs fragments and plans on an `AsyncConnectionPool`; mirrors `Runner`."""

    _asynchronous = True

    async def fetch(
        self, frag: Frag, *, binary: bool = False, settings: Settings = _NO_SETTINGS
    ) -> Rows:
        """Async `Runner.fetch`."""
        query = Fetch(frag, binary)

        async def work(conn: psycopg.AsyncConnection[Any]) -> Rows:
            plan, pipelined = self._query_plan(conn, query, settings)
            if plan is None:
                rows: Rows = await _aperform(conn, query)
                return rows
            if not pipelined:
                return await self._drive(conn, plan)
            async with conn.pipeline():
                return await self._drive(conn, plan, prepare=False)

        return await self._call(work, transaction=False, restore_session=False)

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
        except psycopg.Error as e:
            error = self._failed(e, None, 2)
            if error is None or error is e:
                raise
            raise error from e

    async def _call(
        self,
        work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
        *,
        transaction: bool,
        restore_session: bool = True,
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
                    restore = self._restore_plan(conn) if restore_session else None
                    if restore is not None:
                        await self._drive(conn, restore)
                    if transaction:
                        async with conn.transaction():
                            return await work(conn)
                    result = await work(conn)
                    if _in_transaction(conn):
                        await conn.commit()
                    return result
                except BaseException as exc:
                    if self._discard(conn, exc):
                        await conn.close()
                    raise
                finally:
                    await pool.putconn(conn)
            except PoolTimeout as e:
                cause = await self._connector.aprobe()
                raise (
                    self._connector.unavailable(cause)
                    if cause
                    else self._connector.no_connection(pool)
                ) from e
            except psycopg.Error as e:
                error = self._failed(e, conn, attempt)
                if error is e:
                    raise
                if error is not None:
                    raise error from e
                await pool.check()
        raise AssertionError("unreachable")

    @staticmethod
    async def _drive(conn: psycopg.AsyncConnection[Any], plan: Plan[T], prepare: bool = True) -> T:
        try:
            step: Step = next(plan)
            while True:
                step = plan.send(await _aperform(conn, step, prepare))
        except StopIteration as stop:
            result: T = stop.value
            return result


async def _aregister(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError:
        pass


async def _aperform(conn: psycopg.AsyncConnection[Any], step: Step, prepare: bool = True) -> Any:
    if isinstance(step, Phase):
        return None
    _log(step.frag)
    async with conn.cursor(binary=getattr(step, "binary", False)) as cur:
        if isinstance(step, Copy):
            async with cur.copy(step.frag.sql, step.frag.params or None) as copy:
                for chunk in step.chunks:
                    await copy.write(chunk)
            return None
        await cur.execute(
            step.frag.sql, step.frag.params or None, prepare=None if prepare else False
        )
        if isinstance(step, Fetch):
            return await cur.fetchall()
        return cur.rowcount
