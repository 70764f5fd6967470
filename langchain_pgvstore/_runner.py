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
that never leaves a statement half-prepared, is in `_session.py`; what both
runners share and decide, in `_runner_base.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import PoolTimeout

from ._plan import Copy, Fetch, Phase, Plan, Step
from ._routing import Probe, ReplicaRead
from ._runner_base import (
    COMMIT_LSN,
    NO_SETTINGS,
    REPLICA_STATE,
    RunnerBase,
    execute_plan,
    in_transaction,
    log_sql,
    register,
    with_settings,
)
from ._sql import Frag
from ._sql.settings import Settings

__all__ = ["Runner"]

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


class Runner(RunnerBase):
    """Runs fragments and plans on a sync `ConnectionPool`."""

    def fetch(self, frag: Frag, *, binary: bool = False, settings: Settings = NO_SETTINGS) -> Rows:
        """Run one query with `settings`: a single statement when the connection
        already has them, else one pipeline (settings, then the query)."""
        query = Fetch(frag, binary)
        # the query's own plan restores what it does not set
        return self._call(
            lambda conn: self._query(conn, query, settings),
            transaction=False,
            restore_session=False,
        )

    def fetch_replica(
        self, frag: Frag, probe: Probe, *, binary: bool = False, settings: Settings = NO_SETTINGS
    ) -> ReplicaRead[Rows]:
        """`fetch` on a standby whose connection passes `probe` first (else not served)."""
        query = Fetch(frag, binary)
        work = self._replica(probe, lambda conn: self._query(conn, query, settings))
        return self._call(work, transaction=False, restore_session=False)

    def _query(self, conn: psycopg.Connection[Any], query: Fetch, settings: Settings) -> Rows:
        plan, pipelined = self._query_plan(conn, query, settings)
        if plan is None:
            rows: Rows = _perform(conn, query)
            return rows
        if not pipelined:
            return self._drive(conn, plan)
        with conn.pipeline():
            return self._drive(conn, plan, prepare=False)

    def _replica(
        self, probe: Probe, then: Callable[[psycopg.Connection[Any]], T]
    ) -> Callable[[psycopg.Connection[Any]], ReplicaRead[T]]:
        """Work that runs `probe` on its connection when needed, then `then` if it passed."""

        def work(conn: psycopg.Connection[Any]) -> ReplicaRead[T]:
            state = None
            if self._probe_needed(conn, probe):
                state = self._probed(conn, _perform(conn, REPLICA_STATE)[0])
                if not probe.accepts(state):
                    return ReplicaRead(None, False, state)
            return ReplicaRead(then(conn), True, state)

        return work

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

    def run_marked(self, make_plan: Callable[[], Plan[T]]) -> tuple[T, int]:
        """`run` in one transaction, then, on the same connection, the WAL position
        after its commit (the write's token for read-your-writes)."""
        settings = self._connector.call_settings(False)
        if settings:
            make_plan = with_settings(settings, make_plan)

        def work(conn: psycopg.Connection[Any]) -> tuple[T, int]:
            with conn.transaction():
                result = self._drive(conn, make_plan())
            return result, int(_perform(conn, COMMIT_LSN)[0][0])

        return self._call(work, transaction=False)

    def run_replica(self, make_plan: Callable[[], Plan[T]], probe: Probe) -> ReplicaRead[T]:
        """A read-only plan on a standby whose connection passes `probe` first."""
        work = self._replica(probe, lambda conn: self._drive(conn, make_plan()))
        return self._call(work, transaction=False)

    def run_dedicated(self, make_plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        """Drive a plan on a connection of its own, closed afterwards (index builds)."""
        try:
            with self._connector.connect() as conn:
                register(conn)
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
        connector = self._connector
        deadline = 0.0
        for attempt in (1, 2):
            pool = connector.sync_pool()
            if connector.down:  # one connection attempt decides: fail now, or refill
                connector.revive(connector.probe())
                pool.check()
            conn: psycopg.Connection[Any] | None = None
            try:
                # getconn/putconn rather than pool.connection(): connections are in
                # autocommit and every transaction here is a block of its own, so the
                # context manager's commit-on-exit is a no-op that costs a search ~10 µs
                # a retry waits for what is left of the pool timeout, not for all of it
                deadline = deadline or time.monotonic() + pool.timeout
                conn = pool.getconn(max(0.0, deadline - time.monotonic()))
                try:
                    if conn.adapters.types.get("vector") is None:
                        register(conn)
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
                raise connector.timed_out(pool, connector.probe()) from e
            except psycopg.Error as e:
                error = self._failed(e, conn, attempt)
                if error is e:
                    raise
                if error is not None:
                    raise error from e
                lost = connector.lost(connector.probe())
                if lost is not None:
                    raise lost from e
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


def _perform(conn: psycopg.Connection[Any], step: Step, prepare: bool = True) -> Any:
    if isinstance(step, Phase):
        return None
    log_sql(step.frag)
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
