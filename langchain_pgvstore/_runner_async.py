"""The async runner: `Runner`'s twin, differing only where it waits (see `_runner.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import PoolTimeout

from ._plan import Copy, Fetch, Plan, Step
from ._runner import (
    NO_SETTINGS,
    Rows,
    RunnerBase,
    execute_plan,
    in_transaction,
    log_statement,
    with_settings,
)
from ._sql import Frag
from ._sql.settings import Settings

__all__ = ["AsyncRunner"]

T = TypeVar("T")


class AsyncRunner(RunnerBase):
    """Runs fragments and plans on an `AsyncConnectionPool`; mirrors `Runner`."""

    _asynchronous = True

    async def fetch(
        self, frag: Frag, *, binary: bool = False, settings: Settings = NO_SETTINGS
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
        return await self.run(execute_plan(frag), transaction=False)

    async def run(self, make_plan: Callable[[], Plan[T]], *, transaction: bool = True) -> T:
        """Async `Runner.run`."""
        settings = self._connector.call_settings(True)
        if settings:
            make_plan, transaction = with_settings(settings, make_plan), True
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
    log_statement(step.frag)
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
