"""Row-level builders: staging + merge for ingest, deletes, reads. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from ..config import Table, VectorType
from . import Frag, type_name

__all__ = [
    "STAGING",
    "copy_into_staging",
    "copy_into_table",
    "count_rows",
    "count_staged_changes",
    "create_staging",
    "delete_ids",
    "delete_where",
    "get_by_ids",
    "get_where",
    "has_more_rows_than",
    "is_empty",
    "lock_for_load",
    "merge_staging",
]

#: The per-transaction staging table binary COPY writes into.
STAGING = sql.Identifier("pgvstore_staging")


def create_staging(vector_type: VectorType, dimensions: int) -> Frag:
    """A temporary table that disappears at commit or rollback."""
    return Frag(
        sql.SQL(
            "CREATE TEMPORARY TABLE {} (ord integer NOT NULL, id text NOT NULL,"
            " content text NOT NULL, metadata jsonb NOT NULL, embedding {}({}) NOT NULL)"
            " ON COMMIT DROP"
        ).format(STAGING, type_name(vector_type), sql.Literal(int(dimensions)))
    )


def copy_into_staging() -> Frag:
    return Frag(
        sql.SQL(
            "COPY {} (ord, id, content, metadata, embedding) FROM STDIN (FORMAT BINARY)"
        ).format(STAGING)
    )


def merge_staging(table: Table) -> Frag:
    """Upsert the staged rows; for an id staged twice the later one wins.

    Rows are merged in id order so concurrent upserts lock rows in the same
    order and cannot deadlock each other. A row whose content, metadata and
    embedding are all unchanged is left alone: rewriting it would leave a dead
    row version and insert the same vector into the ANN graph again, which is
    most of an upsert's cost.
    """
    return Frag(
        sql.SQL(
            "INSERT INTO {tbl} AS t ({id}, {content}, {metadata}, {embedding})"
            " SELECT DISTINCT ON (id) id, content, metadata, embedding FROM {stage}"
            " ORDER BY id, ord DESC"
            " ON CONFLICT ({id}) DO UPDATE SET {content} = EXCLUDED.{content},"
            " {metadata} = EXCLUDED.{metadata}, {embedding} = EXCLUDED.{embedding},"
            " {updated} = now()"
            " WHERE (t.{content}, t.{metadata}, t.{embedding})"
            " IS DISTINCT FROM (EXCLUDED.{content}, EXCLUDED.{metadata}, EXCLUDED.{embedding})"
        ).format(
            tbl=table.qualname,
            id=table.id,
            content=table.content,
            metadata=table.metadata,
            embedding=table.embedding,
            updated=table.updated_at,
            stage=STAGING,
        )
    )


def count_staged_changes(table: Table) -> Frag:
    """How many staged rows the merge would write: new ids, and ids whose content,
    metadata or embedding differ from the stored row (the merge's own test)."""
    return Frag(
        sql.SQL(
            "SELECT count(*) FROM (SELECT DISTINCT ON (id) id, content, metadata, embedding"
            " FROM {stage} ORDER BY id, ord DESC) s LEFT JOIN {tbl} t ON t.{id} = s.id"
            " WHERE (t.{content}, t.{metadata}, t.{embedding})"
            " IS DISTINCT FROM (s.content, s.metadata, s.embedding)"
        ).format(
            stage=STAGING,
            tbl=table.qualname,
            id=table.id,
            content=table.content,
            metadata=table.metadata,
            embedding=table.embedding,
        )
    )


def copy_into_table(table: Table) -> Frag:
    """Binary COPY straight into the collection table (it must be empty and locked)."""
    return Frag(
        sql.SQL("COPY {} ({}, {}, {}, {}) FROM STDIN (FORMAT BINARY)").format(
            table.qualname, table.id, table.content, table.metadata, table.embedding
        )
    )


def lock_for_load(table: Table) -> Frag:
    """Keep other writers out until commit; readers are not blocked."""
    return Frag(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table.qualname))


def is_empty(table: Table) -> Frag:
    return Frag(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(table.qualname))


def has_more_rows_than(table: Table, n: int) -> Frag:
    """Whether the table holds more than `n` rows, reading at most n + 1 of them."""
    return Frag(
        sql.SQL("SELECT count(*) > %s FROM (SELECT 1 FROM {} LIMIT %s) s").format(table.qualname),
        (n, n + 1),
    )


def count_rows(table: Table, where: Frag | None = None) -> Frag:
    """The number of rows (matching `where`)."""
    frag = Frag(sql.SQL("SELECT count(*) FROM {}").format(table.qualname))
    if where is None:
        return frag
    return frag + Frag(sql.SQL(" WHERE ")) + where


def _locked_in_id_order(table: Table, where: Frag) -> Frag:
    """`DELETE` whose rows are locked in id order first.

    A bare `DELETE ... WHERE` locks rows in physical order, so against an
    upsert (which locks in id order) on overlapping ids it could deadlock.
    """
    return (
        Frag(
            sql.SQL("DELETE FROM {tbl} WHERE {id} IN (SELECT {id} FROM {tbl} WHERE ").format(
                tbl=table.qualname, id=table.id
            )
        )
        + where
        + Frag(sql.SQL(" ORDER BY {} FOR UPDATE)").format(table.id))
    )


def delete_ids(table: Table, ids: Sequence[str], where: Frag | None = None) -> Frag:
    """Delete the rows with these ids (that also match `where`)."""
    match = Frag(sql.SQL("{} = ANY(%s)").format(table.id), (list(ids),))
    if where is not None:
        match += Frag(sql.SQL(" AND (")) + where + Frag(sql.SQL(")"))
    return _locked_in_id_order(table, match)


def delete_where(table: Table, where: Frag) -> Frag:
    return _locked_in_id_order(table, where)


def _select_docs(table: Table) -> sql.Composed:
    return sql.SQL("SELECT {}, {}, {} FROM {}").format(
        table.id, table.content, table.metadata, table.qualname
    )


def get_by_ids(table: Table, ids: Sequence[str]) -> Frag:
    return Frag(_select_docs(table) + sql.SQL(" WHERE {} = ANY(%s)").format(table.id), (list(ids),))


def get_where(table: Table, where: Frag, limit: int | None, offset: int) -> Frag:
    """A page of documents matching a filter, in id order so pages are stable."""
    frag = Frag(_select_docs(table) + sql.SQL(" WHERE ")) + where
    frag += Frag(sql.SQL(" ORDER BY {}").format(table.id))
    if limit is not None:
        frag += Frag(sql.SQL(" LIMIT %s"), (limit,))
    if offset:
        frag += Frag(sql.SQL(" OFFSET %s"), (offset,))
    return frag
