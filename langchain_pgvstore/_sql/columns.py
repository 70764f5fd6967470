"""Typed columns: their definitions, indexes, staging, reads and registry record. Pure functions.

Types, `NOT NULL` and index methods come from closed tables keyed by the
declared type (`columns.COLUMN_TYPES`); names are `sql.Identifier`s. Text
columns use the "C" collation, so they order in code-point order, as the
jsonb filters order strings.
"""

from __future__ import annotations

import hashlib

from psycopg import abc, pq, sql
from psycopg.adapt import Transformer
from psycopg.postgres import types as pg_types

from ..columns import Column, Columns
from ..config import Table
from . import Frag

__all__ = [
    "column_definitions",
    "content_out",
    "create_column_indexes",
    "dumper",
    "index_kind",
    "metadata_out",
    "record_columns",
    "sql_type",
    "staging_definitions",
]

_TYPE: dict[str, sql.SQL] = {
    "text": sql.SQL('text COLLATE "C"'),
    "integer": sql.SQL("integer"),
    "bigint": sql.SQL("bigint"),
    "double precision": sql.SQL("double precision"),
    "numeric": sql.SQL("numeric"),
    "boolean": sql.SQL("boolean"),
    "date": sql.SQL("date"),
    "timestamptz": sql.SQL("timestamptz"),
    "uuid": sql.SQL("uuid"),
    "text[]": sql.SQL('text[] COLLATE "C"'),
    "jsonb": sql.SQL("jsonb"),
}
#: The cast a filter operand gets, so it compares as the column's type.
CAST: dict[str, sql.SQL] = {t: sql.SQL(t) for t in _TYPE}
_OID_NAME = {
    "integer": "int4",
    "bigint": "int8",
    "double precision": "float8",
    "boolean": "bool",
}
# How a value reads back into the metadata jsonb: numeric as text keeps every digit.
_OUT: dict[str, sql.SQL] = {"numeric": sql.SQL("{}::text")}
_GIN = frozenset({"text[]", "jsonb"})


def sql_type(column: Column) -> sql.SQL:
    """The column's SQL type (from the closed table)."""
    return _TYPE[column.type]


def _oid(column: Column) -> int:
    if column.type == "text[]":
        info = pg_types.get("text")
        assert info is not None
        return info.array_oid
    info = pg_types.get(_OID_NAME.get(column.type, column.type))
    assert info is not None
    return info.oid


def dumper(columns: Columns) -> abc.Transformer:
    """A psycopg transformer that writes the columns' values in binary COPY format.

    `jsonb` values are encoded by the caller (checked JSON text), so their
    slot is `text` here and the version byte is added around it.
    """
    tx = Transformer()
    oids = [
        pg_types.get("text").oid if c.type == "jsonb" else _oid(c)  # type: ignore[union-attr]
        for _, c in columns
    ]
    tx.set_dumper_types(oids, pq.Format.BINARY)
    return tx


def column_definitions(columns: Columns) -> sql.Composable:
    """`, "price" numeric NOT NULL, "tags" text[]` for CREATE TABLE (empty without columns)."""
    return sql.Composed(
        [
            sql.SQL(", {} {}{}").format(
                sql.Identifier(name),
                sql_type(c),
                sql.SQL("" if c.nullable else " NOT NULL"),
            )
            for name, c in columns
        ]
    )


def staging_definitions(columns: Columns) -> sql.Composable:
    """The staging table's columns for the typed values (nullable: checked in Python)."""
    return sql.Composed(
        [sql.SQL(", {} {}").format(sql.Identifier(name), sql_type(c)) for name, c in columns]
    )


def names(columns: Columns, prefix: str | None = None) -> list[sql.Composable]:
    """The columns' identifiers (qualified by `prefix`, e.g. `EXCLUDED`)."""
    if prefix is None:
        return [sql.Identifier(name) for name, _ in columns]
    return [sql.SQL("{}.{}").format(sql.SQL(prefix), sql.Identifier(n)) for n, _ in columns]


def index_kind(name: str) -> str:
    """The index kind of a typed column (see `Table.index_name`): stable, short, lower-case."""
    return "col_" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def create_column_indexes(table: Table) -> list[Frag]:
    """A btree index per indexed column (GIN for `text[]` and `jsonb`)."""
    out = []
    for name, c in table.columns:
        if not c.index:
            continue
        method = sql.SQL("gin" if c.type in _GIN else "btree")
        ops = sql.SQL(" jsonb_path_ops" if c.type == "jsonb" else "")
        out.append(
            Frag(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {} ({}{})").format(
                    sql.Identifier(table.index_name(index_kind(name))),
                    table.qualname,
                    method,
                    sql.Identifier(name),
                    ops,
                )
            )
        )
    return out


def content_out(table: Table, alias: str | None = None) -> sql.Composable:
    """The select-list item for a document's text (an existing table's may be NULL)."""
    ref = (
        table.content
        if alias is None
        else sql.SQL("{}.{}").format(sql.Identifier(alias), table.content)
    )
    if table.existing is None:
        return ref
    return sql.SQL("coalesce({}, '')").format(ref)


def metadata_out(table: Table, alias: str | None = None) -> sql.Composable:
    """The select-list item for a document's metadata: the jsonb with the declared fields in it.

    Field names are literals (checked identifiers): the select list must not
    take parameters, whose slots the cached statements reserve for filters.
    Nullable fields are left out when their column is NULL.
    """

    def ref(name: str) -> sql.Composable:
        ident = sql.Identifier(name)
        return ident if alias is None else sql.SQL("{}.{}").format(sql.Identifier(alias), ident)

    meta = ref(table.names.metadata)
    if table.existing is not None:
        # an existing table's metadata column may be nullable
        meta = sql.SQL("coalesce({}, '{{}}'::jsonb)").format(meta)
    if not table.columns:
        return meta
    required = []
    optional = []
    for name, c in table.columns:
        value = _OUT.get(c.type, sql.SQL("{}")).format(ref(name))
        pair = sql.SQL("{}, {}").format(sql.Literal(name), value)
        if c.nullable:
            optional.append(
                sql.SQL(
                    " || CASE WHEN {} IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object({}) END"
                ).format(ref(name), pair)
            )
        else:
            required.append(pair)
    parts: list[sql.Composable] = [sql.SQL("({}").format(meta)]
    if required:
        parts.append(sql.SQL(" || jsonb_build_object({})").format(sql.SQL(", ").join(required)))
    parts.extend(optional)
    parts.append(sql.SQL(") AS {}").format(sql.Identifier("metadata")))
    return sql.Composed(parts)


# -- the registry --------------------------------------------------------------


def record_columns(table: Table) -> Frag:
    """Record the collection's typed columns in its registry row."""
    from psycopg.types.json import Jsonb

    from ..columns import registry_json

    return Frag(
        sql.SQL("UPDATE {} SET typed_columns = %s WHERE collection = %s").format(table.registry),
        (Jsonb(registry_json(table.columns)), table.name),
    )
