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
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import PoolTimeout

from ._connection import Connector
from ._failures import connection_lost, timeout_error
from ._plan import Copy, Execute, Fetch, Plan, Step
from ._session import SessionState, local_plan, session_plan
from ._sql import Frag
from ._sql.settings import Settings

__all__ = ["Runner", "RunnerBase"]

T = TypeVar("T")
Rows = list[tuple[Any, ...]]
logger = logging.getLogger("langchain_pgvstore")

NO_SETTINGS = Settings()


def log_statement(frag: Frag) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("sql: %s", frag.as_string())


def in_transaction(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return (
        not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    )


def execute_plan(frag: Frag) -> Callable[[], Plan[int]]:
    def plan() -> Plan[int]:
        count: int = yield Execute(frag)
        return count

    return plan


def with_settings(settings: Settings, make_plan: Callable[[], Plan[T]]) -> Callable[[], Plan[T]]:
    def plan() -> Plan[T]:
        for frag in settings.local_frags():
            yield Execute(frag)
        return (yield from make_plan())

    return plan


class RunnerBase:
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
        return session_plan(state, NO_SETTINGS, None)

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


class Runner(RunnerBase):
    """Runs fragments and plans on a sync `ConnectionPool`."""

    def fetch(self, frag: Frag, *, binary: bool = False, settings: Settings = NO_SETTINGS) -> Rows:
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
        return self.run(execute_plan(frag), transaction=False)

    def run(self, make_plan: Callable[[], Plan[T]], *, transaction: bool = True) -> T:
        """Drive a plan on one connection, by default in one transaction.

        The plan is rebuilt if the call is retried.
        """
        settings = self._connector.call_settings(False)
        if settings:
            make_plan, transaction = with_settings(settings, make_plan), True
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
                    if in_transaction(conn):
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
    log_statement(step.frag)
    cursor = (
        psycopg.ClientCursor(conn)
        if getattr(step, "client", False)
        else conn.cursor(binary=getattr(step, "binary", False))
    )
    with cursor as cur:
        if isinstance(step, Copy):
            with cur.copy(step.frag.sql, step.frag.params or None) as copy:
                for chunk in step.chunks:
                    copy.write(chunk)
            return None
        cur.execute(step.frag.sql, step.frag.params or None, prepare=None if prepare else False)
        if isinstance(step, Fetch):
            return cur.fetchall()
        return cur.rowcount
