"""Row-level builders: staging + merge for ingest, deletes, reads. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from ..columns import Columns
from ..config import Table, VectorType
from . import Frag, type_name
from .columns import content_out, metadata_out, names, staging_definitions
from .ids import id_array, id_cast, id_text

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


def create_staging(vector_type: VectorType, dimensions: int, columns: Columns = ()) -> Frag:
    """A temporary table that disappears at commit or rollback (with the typed `columns`)."""
    return Frag(
        sql.SQL(
            "CREATE TEMPORARY TABLE {} (ord integer NOT NULL, id text NOT NULL,"
            " content text NOT NULL, metadata jsonb NOT NULL, embedding {}({}) NOT NULL{})"
            " ON COMMIT DROP"
        ).format(
            STAGING,
            type_name(vector_type),
            sql.Literal(int(dimensions)),
            staging_definitions(columns),
        )
    )


def copy_into_staging(columns: Columns = ()) -> Frag:
    return Frag(
        sql.SQL(
            "COPY {} (ord, id, content, metadata, embedding{}) FROM STDIN (FORMAT BINARY)"
        ).format(STAGING, _typed(columns))
    )


def _typed(columns: Columns, prefix: str | None = None) -> sql.Composable:
    """`, a, b` (each qualified by `prefix`): the typed columns after the fixed ones."""
    return sql.Composed([sql.SQL(", {}").format(n) for n in names(columns, prefix)])


def _tenant_value(table: Table, tenant: str | None) -> tuple[sql.Composable, tuple[object, ...]]:
    """The select-list item and parameter that put `tenant` into a new row."""
    if not table.multi_tenant:
        return sql.SQL(""), ()
    assert tenant is not None, "the store binds a tenant before it writes a multi-tenant row"
    return sql.SQL("%s::text, "), (tenant,)


def _insert_columns(table: Table) -> sql.Composed:
    fixed = [*table.key, table.content, table.metadata, table.embedding]
    return sql.SQL(", ").join(fixed + names(table.columns))


def merge_staging(table: Table, tenant: str | None = None) -> Frag:
    """Upsert the staged rows (into `tenant`'s rows); for an id staged twice the later wins.

    Rows are merged in id order so concurrent upserts lock rows in the same
    order and cannot deadlock each other. A row whose content, metadata and
    embedding are all unchanged is left alone: rewriting it would leave a dead
    row version and insert the same vector into the ANN graph again, which is
    most of an upsert's cost. The timestamp is computed in the select list
    (Citus refuses a volatile function in `DO UPDATE SET`); it is the
    transaction's time either way.
    """
    value, params = _tenant_value(table, tenant)
    stamp = _stamp_column(table)
    into = [*table.key, table.content, table.metadata, table.embedding, *names(table.columns)]
    values = [
        sql.SQL("id{}, content, metadata, embedding").format(id_cast(table)),
        *names(table.columns),
    ]
    changed = [table.content, table.metadata, table.embedding, *names(table.columns)]
    if stamp is not None:
        into.append(stamp)
        values.append(_stamp_value(table))
        changed.append(stamp)
    return Frag(
        sql.SQL(
            "INSERT INTO {tbl} AS t ({into})"
            " SELECT DISTINCT ON (id) {tenant}{values}"
            " FROM {stage} ORDER BY id, ord DESC"
            " ON CONFLICT ({key}) DO UPDATE SET {set}"
            " WHERE (t.{content}, t.{metadata}, t.{embedding}{t_typed})"
            " IS DISTINCT FROM (EXCLUDED.{content}, EXCLUDED.{metadata}, EXCLUDED.{embedding}"
            "{x_typed})"
        ).format(
            tbl=table.qualname,
            into=sql.SQL(", ").join(into),
            tenant=value,
            values=sql.SQL(", ").join(values),
            stage=STAGING,
            key=sql.SQL(", ").join(table.key),
            set=sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(c, c) for c in changed),
            t_typed=_typed(table.columns, "t"),
            x_typed=_typed(table.columns, "EXCLUDED"),
            content=table.content,
            metadata=table.metadata,
            embedding=table.embedding,
        ),
        params,
    )


def _stamp_column(table: Table) -> sql.Identifier | None:
    """The column a merge stamps: `updated_at`, or an existing table's content hash
    (the record that the row's embedding is that of its content: `_sql/existing.py`)."""
    if table.existing is None:
        return table.updated_at
    return table.content_hash if table.names.content_hash is not None else None


def _stamp_value(table: Table) -> sql.Composable:
    if table.existing is None:
        return sql.SQL("now()")
    return sql.SQL("sha256(convert_to(content, 'UTF8'))")


def count_staged_changes(table: Table, tenant: str | None = None) -> Frag:
    """How many staged rows the merge would write: new ids, and ids whose content,
    metadata or embedding differ from the stored row (the merge's own test)."""
    same_tenant = (
        sql.SQL(" AND t.{} = %s").format(table.tenant) if table.multi_tenant else sql.SQL("")
    )
    return Frag(
        sql.SQL(
            "SELECT count(*) FROM (SELECT DISTINCT ON (id) id, content, metadata, embedding{typed}"
            " FROM {stage} ORDER BY id, ord DESC) s"
            " LEFT JOIN {tbl} t ON t.{id} = s.id{cast}{tenant}"
            " WHERE (t.{content}, t.{metadata}, t.{embedding}{t_typed})"
            " IS DISTINCT FROM (s.content, s.metadata, s.embedding{s_typed})"
        ).format(
            typed=_typed(table.columns),
            t_typed=_typed(table.columns, "t"),
            s_typed=_typed(table.columns, "s"),
            stage=STAGING,
            tbl=table.qualname,
            id=table.id,
            cast=id_cast(table),
            tenant=same_tenant,
            content=table.content,
            metadata=table.metadata,
            embedding=table.embedding,
        ),
        _tenant_value(table, tenant)[1],
    )


def copy_into_table(table: Table) -> Frag:
    """Binary COPY straight into the collection table (it must be empty and locked).

    Columns: `tenant` (multi-tenant collections), id, content, metadata, embedding.
    """
    return Frag(
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            table.qualname, _insert_columns(table)
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


def _locked_in_key_order(table: Table, where: Frag) -> Frag:
    """`DELETE` whose rows are locked in key order first.

    A bare `DELETE ... WHERE` locks rows in physical order, so against an
    upsert (which locks in id order) on overlapping ids it could deadlock. The
    rows are named by the whole key: in a multi-tenant collection an id alone
    names a row of every tenant that has it.
    """
    key = sql.SQL(", ").join(table.key)
    return (
        Frag(
            sql.SQL("DELETE FROM {tbl} WHERE ({key}) IN (SELECT {key} FROM {tbl} WHERE ").format(
                tbl=table.qualname, key=key
            )
        )
        + where
        + Frag(sql.SQL(" ORDER BY {} FOR UPDATE)").format(key))
    )


def delete_ids(table: Table, ids: Sequence[str], where: Frag | None = None) -> Frag:
    """Delete the rows with these ids (that also match `where`, e.g. the tenant)."""
    match = Frag(
        sql.SQL("{} = ANY(%s{})").format(table.id, id_array(table)), (table.names.fitting(ids),)
    )
    if where is not None:
        match += Frag(sql.SQL(" AND (")) + where + Frag(sql.SQL(")"))
    return delete_where(table, match)


def delete_where(table: Table, where: Frag) -> Frag:
    """Delete the rows matching `where`; the statement's row count is how many.

    On a distributed collection the statement also writes the statistics
    deltas (`bm25_writes.py`: no triggers there); without full text it is a
    plain `DELETE` (Citus refuses `FOR UPDATE` across shards, and each shard
    locks its own rows).
    """
    if table.distribution is not None:
        if not table.has_full_text:
            return Frag(sql.SQL("DELETE FROM {} WHERE ").format(table.qualname)) + where
        from .bm25_writes import delete_with_statistics

        return delete_with_statistics(table, where)
    return _locked_in_key_order(table, where)


def _select_docs(table: Table) -> sql.Composed:
    return sql.SQL("SELECT {}, {}, {} FROM {}").format(
        id_text(table), content_out(table), metadata_out(table), table.qualname
    )


def get_by_ids(table: Table, ids: Sequence[str], where: Frag | None = None) -> Frag:
    """The rows with these ids (that also match `where`, e.g. the tenant)."""
    frag = Frag(
        _select_docs(table) + sql.SQL(" WHERE {} = ANY(%s{})").format(table.id, id_array(table)),
        (table.names.fitting(ids),),
    )
    if where is not None:
        frag += Frag(sql.SQL(" AND (")) + where + Frag(sql.SQL(")"))
    return frag


def tenants(table: Table) -> Frag:
    """Each tenant of a multi-tenant collection and how many rows it holds."""
    return Frag(
        sql.SQL("SELECT {t}, count(*) FROM {tbl} GROUP BY {t} ORDER BY {t}").format(
            t=table.tenant, tbl=table.qualname
        )
    )


def tenant_is(table: Table, tenant: str) -> Frag:
    """The predicate that keeps one tenant's rows."""
    return Frag(sql.SQL("{} = %s").format(table.tenant), (tenant,))


def get_where(table: Table, where: Frag, limit: int | None, offset: int) -> Frag:
    """A page of documents matching a filter, in id order so pages are stable."""
    frag = Frag(_select_docs(table) + sql.SQL(" WHERE ")) + where
    frag += Frag(sql.SQL(" ORDER BY {}").format(table.id))
    if limit is not None:
        frag += Frag(sql.SQL(" LIMIT %s"), (limit,))
    if offset:
        frag += Frag(sql.SQL(" OFFSET %s"), (offset,))
    return frag
