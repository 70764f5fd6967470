"""Side tables: the byte store's and the record manager's tables, connections, provisioning.

A side table is a plain table next to the collections. A `SideTableDB` takes
the same `connection=` argument as `PGVStore` (a DSN, a psycopg pool, or None
for the embedded server), runs fragments through the store's runners, and
creates its table on first use: idempotently, under an advisory lock, so that
several processes starting at once do not race.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeAlias

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from . import _validate as check
from ._connection import Connector, PoolOptions
from ._plan import Execute, Fetch, Plan
from ._runner import Runner
from ._runner_async import AsyncRunner
from ._sql import Frag, catalog
from ._sql.ddl import advisory_xact_lock, create_schema
from ._sql.side_tables import SideTable
from .errors import InputError

__all__ = ["Connection", "SideTableDB", "check_keys", "check_text", "ensure_plan"]

Connection: TypeAlias = str | ConnectionPool[Any] | AsyncConnectionPool[Any] | None
Row = tuple[Any, ...]


def check_text(value: object, what: str) -> str:
    """`value` as a str fit for a text column (no NUL, no lone surrogate)."""
    return check.pg_text(value, what)


def check_keys(keys: Sequence[str]) -> list[str]:
    """A list of valid keys (a lone string is refused: it would be a list of characters)."""
    if isinstance(keys, str):
        raise InputError("keys must be a list of strings, not a single string")
    return [check_text(k, "key") for k in keys]


def ensure_plan(table: SideTable, ddl: Sequence[Frag]) -> Plan[None]:
    """Create the table (and its schema) unless it exists; `ddl` must be idempotent."""
    schema_exists, table_exists = (
        yield Fetch(catalog.schema_and_relation_exist(table.schema, table.name))
    )[0]
    if table_exists:
        return
    yield Execute(advisory_xact_lock(table.lock_key()))
    if not schema_exists:
        # checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
        yield Execute(create_schema(table.schema))
    for frag in ddl:
        yield Execute(frag)


class SideTableDB:
    """A side table's connection pools and runners; provisions the table on first use."""

    def __init__(
        self,
        table: SideTable,
        ddl: Sequence[Frag],
        connection: Connection,
        *,
        pool_size: int,
        pool_timeout: float,
        statement_timeout: float | None,
        data_dir: str | os.PathLike[str] | None,
    ) -> None:
        self.table = table
        self._ddl = tuple(ddl)
        self._connector = Connector(
            connection,
            PoolOptions(
                min_size=1,
                max_size=pool_size,
                timeout=pool_timeout,
                statement_timeout=statement_timeout,
            ),
            data_dir,
        )
        self._db = Runner(self._connector)
        self._adb = AsyncRunner(self._connector)
        self._ready = False

    @property
    def description(self) -> str:
        """`host=… port=… dbname=…` of the server, without the password."""
        return self._connector.description

    def _ensure_plan(self) -> Plan[None]:
        return ensure_plan(self.table, self._ddl)

    def ensure(self) -> None:
        """Create the table unless this object already knows it exists."""
        if not self._ready:
            self._db.run(self._ensure_plan)
            self._ready = True

    async def aensure(self) -> None:
        """Async `ensure`."""
        if not self._ready:
            await self._adb.run(self._ensure_plan)
            self._ready = True

    def fetch(self, frag: Frag) -> list[Row]:
        """Run a query on the (provisioned) table."""
        self.ensure()
        return self._db.fetch(frag)

    async def afetch(self, frag: Frag) -> list[Row]:
        """Async `fetch`."""
        await self.aensure()
        return await self._adb.fetch(frag)

    def execute(self, frag: Frag) -> int:
        """Run a statement on the (provisioned) table; returns its row count."""
        self.ensure()
        return self._db.execute(frag)

    async def aexecute(self, frag: Frag) -> int:
        """Async `execute`."""
        await self.aensure()
        return await self._adb.execute(frag)

    def fetch_unprovisioned(self, frag: Frag) -> list[Row]:
        """Run a query that does not touch the table (the server clock)."""
        return self._db.fetch(frag)

    async def afetch_unprovisioned(self, frag: Frag) -> list[Row]:
        """Async `fetch_unprovisioned`."""
        return await self._adb.fetch(frag)

    def close(self) -> None:
        """Close the pools this object created (a pool passed in stays open)."""
        self._connector.close()

    async def aclose(self) -> None:
        """Close the pools this object created, async ones included."""
        await self._connector.aclose()
