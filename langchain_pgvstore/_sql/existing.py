"""Existing tables: what the catalog says about one, the columns adoption adds, the backfill.

Pure builders. An existing table is the user's: the store reads its columns
under the names the user gave (`config.ColumnNames`), adds only what adoption
was asked for, and never drops, renames or retypes a user column.
"""

from __future__ import annotations

from psycopg import sql

from ..config import Table, VectorType
from . import Frag, type_name
from .ddl import tsv_expression
from .dml import STAGING
from .filters import TRUE
from .ids import id_cast, id_text

__all__ = [
    "add_content_hash",
    "add_embedding",
    "add_metadata",
    "add_tsv",
    "count_pending",
    "describe_columns",
    "embedded_only",
    "pending_batch",
    "record_existing",
    "update_embeddings",
]


def describe_columns(table: Table) -> Frag:
    """Each column of the table: name, type (`format_type`), NOT NULL, generated, and
    whether a unique index without predicate covers exactly that column."""
    return Frag(
        sql.SQL(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " a.attgenerated <> '', EXISTS (SELECT FROM pg_index i WHERE i.indrelid = a.attrelid"
            " AND i.indisunique AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum"
            " AND i.indpred IS NULL AND i.indexprs IS NULL)"
            " FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0"
            " AND NOT a.attisdropped ORDER BY a.attnum"
        ),
        (table.qualname.as_string(None),),
    )


def add_embedding(table: Table, vector_type: VectorType, dimensions: int) -> Frag:
    """A nullable vector column: rows wait there for the backfill (no table rewrite)."""
    return Frag(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}({})").format(
            table.qualname, table.embedding, type_name(vector_type), sql.Literal(int(dimensions))
        )
    )


def add_metadata(table: Table) -> Frag:
    """The jsonb column for fields that have no column of their own (a constant
    default: no table rewrite)."""
    return Frag(
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} jsonb NOT NULL DEFAULT '{{}}'::jsonb"
        ).format(table.qualname, table.metadata)
    )


def add_content_hash(table: Table) -> Frag:
    """The record of the content each row's embedding was made from (no table rewrite)."""
    return Frag(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} bytea").format(
            table.qualname, table.content_hash
        )
    )


def add_tsv(table: Table, ts_config: str) -> Frag:
    """The generated tsvector of full text: computed for every row, so PostgreSQL
    rewrites the table under an ACCESS EXCLUSIVE lock (adoption reports it)."""
    return Frag(
        sql.SQL("ALTER TABLE {} ADD COLUMN {} tsvector GENERATED ALWAYS AS ({}) STORED").format(
            table.qualname, table.tsv, tsv_expression(table, ts_config)
        )
    )


def _pending(table: Table) -> sql.Composable:
    """Rows whose embedding is missing, or (when the table records it) was made from
    other content than the row holds now. A row without content has nothing to embed."""
    missing = sql.SQL("{} IS NOT NULL AND ({} IS NULL").format(table.content, table.embedding)
    if table.names.content_hash is None:
        return missing + sql.SQL(")")
    return missing + sql.SQL(" OR {} IS DISTINCT FROM sha256(convert_to({}, 'UTF8')))").format(
        table.content_hash, table.content
    )


def pending_batch(table: Table, size: int, after: str | None) -> Frag:
    """The next `size` pending rows `(id, content)` after id `after`, in id order.

    Walking the ids forward means one run reads each row once, even a row
    whose update lost a race with the application (it stays pending for the
    next run)."""
    frag = Frag(
        sql.SQL("SELECT {}, {} FROM {} WHERE ").format(
            id_text(table), table.content, table.qualname
        )
        + _pending(table)
    )
    if after is not None:
        frag += Frag(sql.SQL(" AND {} > %s{}").format(table.id, id_cast(table)), (after,))
    return frag + Frag(sql.SQL(" ORDER BY {} LIMIT %s").format(table.id), (size,))


def count_pending(table: Table) -> Frag:
    """How many rows wait for an embedding."""
    return Frag(sql.SQL("SELECT count(*) FROM {} WHERE ").format(table.qualname) + _pending(table))


def update_embeddings(table: Table) -> Frag:
    """Write the staged embeddings into their rows, where the content is still the
    content that was embedded: a row the application changed meanwhile keeps
    waiting (it is pending again). The row count is how many rows were written."""
    stamp = (
        sql.SQL("")
        if table.names.content_hash is None
        else sql.SQL(", {} = sha256(convert_to(s.content, 'UTF8'))").format(table.content_hash)
    )
    return Frag(
        sql.SQL(
            "UPDATE {tbl} AS t SET {embedding} = s.embedding{stamp}"
            " FROM (SELECT DISTINCT ON (id) id, content, embedding FROM {stage}"
            " ORDER BY id, ord DESC) AS s WHERE t.{id} = s.id{cast} AND t.{content} = s.content"
        ).format(
            tbl=table.qualname,
            embedding=table.embedding,
            stamp=stamp,
            stage=STAGING,
            id=table.id,
            cast=id_cast(table),
            content=table.content,
        )
    )


def record_existing(table: Table) -> Frag:
    """Record an adopted table's column names in its registry row."""
    from psycopg.types.json import Jsonb

    assert table.existing is not None
    return Frag(
        sql.SQL("UPDATE {} SET existing_table = %s WHERE collection = %s").format(table.registry),
        (Jsonb(table.existing.as_json()), table.name),
    )


def embedded_only(table: Table, where: Frag) -> Frag:
    """`where`, restricted to the rows that have an embedding."""
    present = Frag(sql.SQL("{} IS NOT NULL").format(table.embedding))
    if where is TRUE:
        return present
    return present + Frag(sql.SQL(" AND (")) + where + Frag(sql.SQL(")"))
