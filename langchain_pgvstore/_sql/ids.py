"""Ids in statements: the store's ids are text; an existing table's key may be an integer
or a uuid, read as text and compared after casting the text to the key's type."""

from __future__ import annotations

from psycopg import sql

from ..config import Table

__all__ = ["id_array", "id_cast", "id_text"]

_CAST = {
    "smallint": sql.SQL("::smallint"),
    "integer": sql.SQL("::integer"),
    "bigint": sql.SQL("::bigint"),
    "uuid": sql.SQL("::uuid"),
}
_ARRAY = {
    "smallint": sql.SQL("::smallint[]"),
    "integer": sql.SQL("::integer[]"),
    "bigint": sql.SQL("::bigint[]"),
    "uuid": sql.SQL("::uuid[]"),
}


def id_text(table: Table, alias: str | None = None) -> sql.Composable:
    """The id column (of `alias`) as text."""
    ref = table.id if alias is None else sql.SQL("{}.{}").format(sql.Identifier(alias), table.id)
    if table.names.id_type is None:
        return ref
    return sql.SQL("{}::text").format(ref)


def id_cast(table: Table) -> sql.Composable:
    """What turns a text id (a parameter, a staged id) into the key's type: nothing for text."""
    return sql.SQL("") if table.names.id_type is None else _CAST[table.names.id_type]


def id_array(table: Table) -> sql.Composable:
    """The cast of a text[] parameter of ids to an array of the key's type."""
    return sql.SQL("") if table.names.id_type is None else _ARRAY[table.names.id_type]
