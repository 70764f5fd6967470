"""SQL of the importers: reading a source table in key order, and the checkpoint table.

Source tables belong to other libraries (langchain-postgres' `PGVector` and
`PGVectorStore`), so every name comes from the caller or the catalog and goes
through `sql.Identifier`. The checkpoint table lives in the destination
database, next to the store's registry. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from . import Frag

__all__ = [
    "CHECKPOINT_TABLE",
    "ImportKey",
    "SourceTable",
    "count_rows",
    "create_checkpoints",
    "pgvector_collection",
    "pgvector_collection_names",
    "read_batch",
    "read_checkpoint",
    "relation_oid",
    "save_checkpoint",
    "table_columns",
    "try_advisory_lock",
    "utc_session",
]

#: the destination-side table that records how far each import got
CHECKPOINT_TABLE = "pgvstore_imports"


@dataclass(frozen=True, slots=True)
class SourceTable:
    """Where a source's rows are and which columns hold what.

    `key` is a unique column the rows are read in order of (keyset
    pagination); `ids` are the columns the document id is taken from, the
    first that is not NULL (PGVector's older layout keeps the caller's id in
    `custom_id` and falls back to its `uuid`). `scope` restricts the rows to
    one value of a column (PGVector's `collection_id`).
    """

    schema: str
    name: str
    key: str
    ids: tuple[str, ...]
    content: str
    embedding: str
    metadata_json: str | None = None
    metadata_columns: tuple[str, ...] = ()
    scope: str | None = None

    @property
    def qualname(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def table_columns(schema: str, table: str) -> Frag:
    """Columns of a table or view: name, type name, type as written, type oid, type
    modifier (a vector's dimensions), whether a single-column unique index covers it.
    No rows when the relation does not exist."""
    return Frag(
        sql.SQL(
            "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod), a.atttypid,"
            " a.atttypmod,"
            " EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid"
            " AND i.indisunique AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum"
            " AND i.indpred IS NULL)"
            " FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
            " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
            " AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum"
        ),
        (schema, table),
    )


def pgvector_collection(schema: str, name: str) -> Frag:
    """The uuid of the `PGVector` collection with a given name (one row per match: the
    older layout does not make names unique)."""
    return Frag(
        sql.SQL("SELECT uuid::text FROM {} WHERE name = %s ORDER BY uuid").format(
            sql.Identifier(schema, "langchain_pg_collection")
        ),
        (name,),
    )


def pgvector_collection_names(schema: str, limit: int = 20) -> Frag:
    """Some collection names, for an error message that says what there is."""
    return Frag(
        sql.SQL("SELECT name FROM {} ORDER BY name LIMIT %s").format(
            sql.Identifier(schema, "langchain_pg_collection")
        ),
        (limit,),
    )


def relation_oid(schema: str, table: str) -> Frag:
    """The table's oid (no row if it does not exist): a dropped and re-created table gets
    a new one, so a checkpoint taken before cannot be mistaken for progress into it."""
    return Frag(
        sql.SQL(
            "SELECT c.oid FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s"
        ),
        (schema, table),
    )


def _where(source: SourceTable, scope_value: str | None, after: str | None) -> Frag:
    conditions: list[Frag] = []
    if source.scope is not None:
        conditions.append(
            Frag(sql.SQL("{} = %s").format(sql.Identifier(source.scope)), (scope_value,))
        )
    if after is not None:
        # the key travels as text and the server casts it back to the key's type
        conditions.append(Frag(sql.SQL("{} > %s").format(sql.Identifier(source.key)), (after,)))
    if not conditions:
        return Frag(sql.SQL(""))
    return Frag(sql.SQL(" WHERE ")) + Frag(
        sql.SQL(" AND ").join(c.sql for c in conditions),
        tuple(p for c in conditions for p in c.params),
    )


def count_rows(source: SourceTable, scope_value: str | None = None) -> Frag:
    """How many rows the source holds (in its scope)."""
    return Frag(sql.SQL("SELECT count(*) FROM {}").format(source.qualname)) + _where(
        source, scope_value, None
    )


def read_batch(
    source: SourceTable, limit: int, after: str | None = None, scope_value: str | None = None
) -> Frag:
    """The next `limit` rows after key `after`, in key order.

    Columns: key as text, id as text, content, the JSON metadata column (or
    NULL), each metadata column as `jsonb` (dates, numerics, arrays and uuids
    become JSON the way PostgreSQL writes them), the embedding.
    """
    ids = [sql.SQL("{}::text").format(sql.Identifier(c)) for c in source.ids]
    id_expr = ids[0] if len(ids) == 1 else sql.SQL("coalesce({})").format(sql.SQL(", ").join(ids))
    columns: list[sql.Composable] = [
        sql.SQL("{}::text").format(sql.Identifier(source.key)),
        id_expr,
        sql.Identifier(source.content),
        sql.Identifier(source.metadata_json) if source.metadata_json else sql.SQL("NULL"),
        *(sql.SQL("to_jsonb({})").format(sql.Identifier(c)) for c in source.metadata_columns),
        sql.Identifier(source.embedding),
    ]
    head = Frag(sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(columns), source.qualname))
    tail = Frag(sql.SQL(" ORDER BY {} LIMIT %s").format(sql.Identifier(source.key)), (limit,))
    return head + _where(source, scope_value, after) + tail


@dataclass(frozen=True, slots=True)
class ImportKey:
    """One import: into which collection (and tenant of a multi-tenant one, else ''),
    from which source. The checkpoint table lives in the collection's schema."""

    schema: str
    collection: str
    tenant: str
    source: str

    @property
    def checkpoints(self) -> sql.Identifier:
        return sql.Identifier(self.schema, CHECKPOINT_TABLE)


def create_checkpoints(key: ImportKey) -> Frag:
    """The table recording, per destination collection, tenant and source, how far an
    import got."""
    return Frag(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "collection text NOT NULL,"
            " tenant text NOT NULL,"
            " source text NOT NULL,"
            " table_oid oid NOT NULL,"
            " last_key text,"
            " done bigint NOT NULL,"
            " total bigint NOT NULL,"
            " finished boolean NOT NULL DEFAULT false,"
            " started_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (collection, tenant, source))"
        ).format(key.checkpoints)
    )


def read_checkpoint(key: ImportKey) -> Frag:
    """table_oid, last_key, done, finished of one import (no row: never started)."""
    return Frag(
        sql.SQL(
            "SELECT table_oid, last_key, done, finished FROM {}"
            " WHERE collection = %s AND tenant = %s AND source = %s"
        ).format(key.checkpoints),
        (key.collection, key.tenant, key.source),
    )


def save_checkpoint(
    key: ImportKey, *, last_key: str | None, done: int, total: int, finished: bool
) -> Frag:
    """Record the import's position against the collection's table as it is now (its
    oid, looked up in the same statement); `started_at` is kept from the first batch.
    Writes nothing when the collection's table does not exist."""
    return Frag(
        sql.SQL(
            "INSERT INTO {} AS c"
            " (collection, tenant, source, table_oid, last_key, done, total, finished)"
            " SELECT %s, %s, %s, r.oid, %s, %s, %s, %s FROM pg_catalog.pg_class r"
            " JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
            " WHERE n.nspname = %s AND r.relname = %s"
            " ON CONFLICT (collection, tenant, source) DO UPDATE SET"
            " table_oid = EXCLUDED.table_oid, last_key = EXCLUDED.last_key,"
            " done = EXCLUDED.done, total = EXCLUDED.total, finished = EXCLUDED.finished,"
            " updated_at = now()"
        ).format(key.checkpoints),
        (
            key.collection,
            key.tenant,
            key.source,
            last_key,
            done,
            total,
            finished,
            key.schema,
            key.collection,
        ),
    )


def try_advisory_lock(key: int) -> Frag:
    """Take the session-level lock that keeps two runs of one import apart (true if taken)."""
    return Frag(sql.SQL("SELECT pg_try_advisory_lock(%s)"), (key,))


def utc_session() -> Frag:
    """Set the session's time zone to UTC: dates and timestamps read as JSON come out
    the same on every run."""
    return Frag(sql.SQL("SELECT set_config('TimeZone', 'UTC', false)"))
