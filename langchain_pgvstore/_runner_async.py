"""The async runner: `Runner`'s twin, differing only where it waits (see `_runner.py`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
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
    aregister,
    execute_plan,
    in_transaction,
    log_sql,
    with_settings,
)
from ._sql import Frag
from ._sql.settings import Settings

__all__ = ["AsyncRunner"]

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


class AsyncRunner(RunnerBase):
    """Runs fragments and plans on an `AsyncConnectionPool`; mirrors `Runner`."""

    _asynchronous = True

    async def fetch(
        self, frag: Frag, *, binary: bool = False, settings: Settings = NO_SETTINGS
    ) -> Rows:
        """Async `Runner.fetch`."""
        query = Fetch(frag, binary)
        return await self._call(
            lambda conn: self._query(conn, query, settings),
            transaction=False,
            restore_session=False,
        )

    async def fetch_replica(
        self, frag: Frag, probe: Probe, *, binary: bool = False, settings: Settings = NO_SETTINGS
    ) -> ReplicaRead[Rows]:
        """Async `Runner.fetch_replica`."""
        query = Fetch(frag, binary)
        work = self._replica(probe, lambda conn: self._query(conn, query, settings))
        return await self._call(work, transaction=False, restore_session=False)

    async def _query(
        self, conn: psycopg.AsyncConnection[Any], query: Fetch, settings: Settings
    ) -> Rows:
        plan, pipelined = self._query_plan(conn, query, settings)
        if plan is None:
            rows: Rows = await _aperform(conn, query)
            return rows
        if not pipelined:
            return await self._drive(conn, plan)
        async with conn.pipeline():
            return await self._drive(conn, plan, prepare=False)

    def _replica(
        self, probe: Probe, then: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
    ) -> Callable[[psycopg.AsyncConnection[Any]], Awaitable[ReplicaRead[T]]]:
        """Async `Runner._replica`."""

        async def work(conn: psycopg.AsyncConnection[Any]) -> ReplicaRead[T]:
            state = None
            if self._probe_needed(conn, probe):
                state = self._probed(conn, (await _aperform(conn, REPLICA_STATE))[0])
                if not probe.accepts(state):
                    return ReplicaRead(None, False, state)
            return ReplicaRead(await then(conn), True, state)

        return work

    async def execute(self, frag: Frag) -> int:
        """Async `Runner.execute`."""
        return await self.run(execute_plan(frag), transaction=False)

    async def run(self, make_plan: Callable[[], Plan[T]], *, transaction: bool = True) -> T:
        """Async `Runner.run`."""
        settings = self._connector.call_settings(True)
        if settings:
            make_plan, transaction = with_settings(settings, make_plan), True
        return await self._call(
            lambda conn: self._drive(conn, make_plan()), transaction=transaction
        )

    async def run_marked(self, make_plan: Callable[[], Plan[T]]) -> tuple[T, int]:
        """Async `Runner.run_marked`."""
        settings = self._connector.call_settings(True)
        if settings:
            make_plan = with_settings(settings, make_plan)

        async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[T, int]:
            async with conn.transaction():
                result = await self._drive(conn, make_plan())
            return result, int((await _aperform(conn, COMMIT_LSN))[0][0])

        return await self._call(work, transaction=False)

    async def run_replica(self, make_plan: Callable[[], Plan[T]], probe: Probe) -> ReplicaRead[T]:
        """Async `Runner.run_replica`."""
        work = self._replica(probe, lambda conn: self._drive(conn, make_plan()))
        return await self._call(work, transaction=False)

    async def run_dedicated(self, make_plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        """Async `Runner.run_dedicated`."""
        try:
            async with await self._connector.aconnect() as conn:
                await aregister(conn)
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
        connector = self._connector
        deadline = 0.0
        for attempt in (1, 2):
            pool = await connector.async_pool()
            if connector.down:  # one connection attempt decides: fail now, or refill
                connector.revive(await connector.aprobe())
                await pool.check()
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                deadline = deadline or time.monotonic() + pool.timeout
                conn = await pool.getconn(max(0.0, deadline - time.monotonic()))
                try:
                    if conn.adapters.types.get("vector") is None:
                        await aregister(conn)
                    restore = self._restore_plan(conn) if restore_session else None
                    if restore is not None:
                        await self._drive(conn, restore)
                    if transaction:
                        async with conn.transaction():
                            return await work(conn)
                    result = await work(conn)
                    if in_transaction(conn):
                        await conn.commit()
                    return result
                except BaseException as exc:
                    if self._discard(conn, exc):
                        await conn.close()
                    raise
                finally:
                    await pool.putconn(conn)
            except PoolTimeout as e:
                raise connector.timed_out(pool, await connector.aprobe()) from e
            except psycopg.Error as e:
                error = self._failed(e, conn, attempt)
                if error is e:
                    raise
                if error is not None:
                    raise error from e
                lost = connector.lost(await connector.aprobe())
                if lost is not None:
                    raise lost from e
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


async def _aperform(conn: psycopg.AsyncConnection[Any], step: Step, prepare: bool = True) -> Any:
    if isinstance(step, Phase):
        return None
    log_sql(step.frag)
    cursor = (
        psycopg.AsyncClientCursor(conn)
        if getattr(step, "client", False)
        else conn.cursor(binary=getattr(step, "binary", False))
    )
    async with cursor as cur:
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
