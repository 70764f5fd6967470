"""A LangChain `RecordManager` on PostgreSQL, for `index()` / `aindex()`.

LangChain's indexing API remembers which document hashes it wrote, from which
source, and when, so that a re-run skips unchanged documents and removes the
chunks of changed or deleted sources. `PostgresRecordManager` keeps those
records in a table next to the collections (default `public.pgvstore_records`),
stamped with the database server's clock. Every method is one SQL statement;
the async ones are native.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langchain_core.indexing import RecordManager
from typing_extensions import override

from . import _validate as check
from ._closing import Closing
from ._side_tables import Connection, SideTableDB, check_keys, check_text
from ._sql import Frag, records
from ._sql.side_tables import SideTable
from .errors import ConfigError, InputError

__all__ = ["PostgresRecordManager"]


def _records(
    keys: Sequence[str], group_ids: Sequence[str | None] | None
) -> tuple[list[str], list[str | None]]:
    """Validated keys and group ids; a key given twice keeps its last group id."""
    key_list = check_keys(keys)
    if group_ids is None:
        groups: list[str | None] = [None] * len(key_list)
    else:
        if isinstance(group_ids, str):
            raise InputError("group_ids must be a list, not a single string")
        groups = [None if g is None else check_text(g, "group id") for g in group_ids]
        if len(groups) != len(key_list):
            raise InputError(f"got {len(key_list)} keys but {len(groups)} group ids")
    merged = dict(zip(key_list, groups, strict=True))
    return list(merged), list(merged.values())


def _check_written(row: tuple[Any, ...], time_at_least: float | None) -> None:
    server_time = float(row[0])
    if time_at_least is not None and server_time < time_at_least:
        raise InputError(
            f"time_at_least={time_at_least!r} is later than the database server's clock"
            f" ({server_time!r}); nothing was written. Pass a time read with get_time();"
            " if it came from there, the server's clock went backwards"
        )


def _check_limit(limit: int | None) -> None:
    if limit is not None:
        check.positive_int(limit, "limit", maximum=check.INT8_MAX)


class PostgresRecordManager(Closing, RecordManager):
    """Records of LangChain's indexing API in a PostgreSQL table.

    Setup:
        The table `(namespace, key, group_id, updated_at double precision)`, with
        primary key (namespace, key) and indexes on (namespace, group_id) and
        (namespace, updated_at), is created by `create_schema()` or on first use,
        idempotently, under an advisory lock.

    Instantiate:
        ```python
        from langchain_core.indexing import index
        from langchain_pgvstore import PGVStore
        from langchain_pgvstore.record_manager import PostgresRecordManager

        store = PGVStore(embeddings, connection=dsn, collection="docs")
        records = PostgresRecordManager("pgvstore/docs", connection=dsn)
        index(docs, records, store, cleanup="incremental", source_id_key="source",
              key_encoder="sha256")
        ```

    Use one namespace per collection: the namespace is what `index()` cleans up in.

    Times come from the server's clock (`clock_timestamp()`), never the client's,
    so several machines indexing into one database agree on what is stale.

    Args:
        namespace: the records' partition; usually names the collection.
        connection: a DSN, a psycopg `ConnectionPool` / `AsyncConnectionPool`, or
            None for the embedded server (as for `PGVStore`).
        schema: schema of the table (created if missing).
        table: table name.
        pool_size: maximum connections in each pool this object creates.
        pool_timeout: seconds to wait for a free pooled connection.
        statement_timeout: seconds any one statement may run.
        data_dir: data directory of the embedded server (with `connection=None`).
    """

    def __init__(
        self,
        namespace: str,
        *,
        connection: Connection = None,
        schema: str = "public",
        table: str = "pgvstore_records",
        pool_size: int = 5,
        pool_timeout: float = 30.0,
        statement_timeout: float | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        check.pg_text(namespace, "namespace", ConfigError)
        super().__init__(namespace)
        side = SideTable(schema, table, "records")
        self._db = SideTableDB(
            side,
            [records.create_table(side), *records.create_indexes(side)],
            connection,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            statement_timeout=statement_timeout,
            data_dir=data_dir,
        )

    def __repr__(self) -> str:
        side = self._db.table
        return (
            f"PostgresRecordManager(namespace={self.namespace!r},"
            f" table={side.schema}.{side.name}, {self._db.description})"
        )

    @override
    def create_schema(self) -> None:
        """Create the records table and its indexes if they do not exist."""
        self._db.ensure()

    @override
    async def acreate_schema(self) -> None:
        """Async `create_schema`."""
        await self._db.aensure()

    @override
    def get_time(self) -> float:
        """The database server's clock, in seconds since the epoch."""
        return float(self._db.fetch_unprovisioned(records.server_time())[0][0])

    @override
    async def aget_time(self) -> float:
        """Async `get_time`."""
        return float((await self._db.afetch_unprovisioned(records.server_time()))[0][0])

    def _upsert(
        self,
        keys: Sequence[str],
        group_ids: Sequence[str | None] | None,
        time_at_least: float | None,
    ) -> Frag | None:
        key_list, groups = _records(keys, group_ids)
        if not key_list:
            return None
        return records.upsert(self._db.table, self.namespace, key_list, groups, time_at_least)

    @override
    def update(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        """Upsert records stamped with the server's clock.

        Raises `InputError` (a `ValueError`), writing nothing, when the server's
        clock is earlier than `time_at_least`, or keys and group ids differ in number.
        """
        frag = self._upsert(keys, group_ids, time_at_least)
        if frag is not None:
            _check_written(self._db.fetch(frag)[0], time_at_least)

    @override
    async def aupdate(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        """Async `update`."""
        frag = self._upsert(keys, group_ids, time_at_least)
        if frag is not None:
            _check_written((await self._db.afetch(frag))[0], time_at_least)

    @override
    def exists(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key has a record, in order."""
        key_list = check_keys(keys)
        if not key_list:
            return []
        rows = self._db.fetch(records.exists(self._db.table, self.namespace, key_list))
        return [bool(r[0]) for r in rows]

    @override
    async def aexists(self, keys: Sequence[str]) -> list[bool]:
        """Async `exists`."""
        key_list = check_keys(keys)
        if not key_list:
            return []
        rows = await self._db.afetch(records.exists(self._db.table, self.namespace, key_list))
        return [bool(r[0]) for r in rows]

    def _list(
        self,
        before: float | None,
        after: float | None,
        group_ids: Sequence[str] | None,
        limit: int | None,
    ) -> Frag:
        _check_limit(limit)
        if isinstance(group_ids, str):
            raise InputError("group_ids must be a list, not a single string")
        groups = None if group_ids is None else [check_text(g, "group id") for g in group_ids]
        return records.list_keys(
            self._db.table,
            self.namespace,
            before=before,
            after=after,
            group_ids=groups,
            limit=limit,
        )

    @override
    def list_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Keys updated before `before` / after `after` (exclusive), in `group_ids`.

        As in LangChain's own record managers, an empty `group_ids` does not filter.
        """
        rows = self._db.fetch(self._list(before, after, group_ids, limit))
        return [str(r[0]) for r in rows]

    @override
    async def alist_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Async `list_keys`."""
        rows = await self._db.afetch(self._list(before, after, group_ids, limit))
        return [str(r[0]) for r in rows]

    @override
    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete records; missing keys are fine."""
        key_list = check_keys(keys)
        if key_list:
            self._db.execute(records.delete_keys(self._db.table, self.namespace, key_list))

    @override
    async def adelete_keys(self, keys: Sequence[str]) -> None:
        """Async `delete_keys`."""
        key_list = check_keys(keys)
        if key_list:
            await self._db.aexecute(records.delete_keys(self._db.table, self.namespace, key_list))

    def close(self) -> None:
        """Close the connection pools this object opened (a pool you passed in stays open)."""
        self._db.close()

    async def aclose(self) -> None:
        """Close the pools this object opened, async ones included."""
        await self._db.aclose()
