"""Builders for the record manager's table. Pure functions.

Times are the server's clock, `extract(epoch FROM clock_timestamp())`, as
double precision seconds: LangChain's indexing API compares them with the
time it read at the start of a run, so they must all come from one clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from . import Frag
from .side_tables import SideTable

__all__ = [
    "create_indexes",
    "create_table",
    "delete_keys",
    "exists",
    "list_keys",
    "server_time",
    "upsert",
]

_NOW = sql.SQL("extract(epoch FROM clock_timestamp())::double precision")


def create_table(table: SideTable) -> Frag:
    """The records table: one row per (namespace, key)."""
    return Frag(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "namespace text NOT NULL,"
            ' key text COLLATE "C" NOT NULL,'
            " group_id text,"
            " updated_at double precision NOT NULL,"
            " PRIMARY KEY (namespace, key))"
        ).format(table.qualname)
    )


def create_indexes(table: SideTable) -> list[Frag]:
    """Indexes for cleanup by source (`group_id`) and by age (`updated_at`)."""
    return [
        Frag(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (namespace, {})").format(
                table.index(column), table.qualname, sql.Identifier(column)
            )
        )
        for column in ("group_id", "updated_at")
    ]


def server_time() -> Frag:
    """The server's clock in seconds since the epoch."""
    return Frag(sql.SQL("SELECT {}").format(_NOW))


def upsert(
    table: SideTable,
    namespace: str,
    keys: Sequence[str],
    group_ids: Sequence[str | None],
    time_at_least: float | None,
) -> Frag:
    """Write records stamped with the server's clock, unless it is before `time_at_least`.

    One row comes back: the server time and the number of rows written (0
    when the clock check failed, in which case nothing was written). `keys`
    must be distinct.
    """
    floor = float("-inf") if time_at_least is None else float(time_at_least)
    return Frag(
        sql.SQL(
            "WITH now AS (SELECT {} AS t),"
            " written AS ("
            "INSERT INTO {} (namespace, key, group_id, updated_at)"
            " SELECT %s, u.key, u.group_id, now.t"
            " FROM unnest(%s::text[], %s::text[]) AS u(key, group_id), now"
            " WHERE now.t >= %s"
            " ON CONFLICT (namespace, key)"
            " DO UPDATE SET group_id = EXCLUDED.group_id, updated_at = EXCLUDED.updated_at"
            " RETURNING 1)"
            " SELECT now.t, (SELECT count(*) FROM written) FROM now"
        ).format(_NOW, table.qualname),
        (namespace, list(keys), list(group_ids), floor),
    )


def exists(table: SideTable, namespace: str, keys: Sequence[str]) -> Frag:
    """One boolean per requested key, in order."""
    return Frag(
        sql.SQL(
            "SELECT r.key IS NOT NULL FROM unnest(%s::text[]) WITH ORDINALITY AS k(key, ord)"
            " LEFT JOIN {} AS r ON r.namespace = %s AND r.key = k.key"
            " ORDER BY k.ord"
        ).format(table.qualname),
        (list(keys), namespace),
    )


def list_keys(
    table: SideTable,
    namespace: str,
    *,
    before: float | None,
    after: float | None,
    group_ids: Sequence[str] | None,
    limit: int | None,
) -> Frag:
    """Keys updated strictly before `before` / after `after`, in one of `group_ids`."""
    frag = Frag(
        sql.SQL("SELECT key FROM {} WHERE namespace = %s").format(table.qualname), (namespace,)
    )
    if before is not None:
        frag += Frag(sql.SQL(" AND updated_at < %s"), (float(before),))
    if after is not None:
        frag += Frag(sql.SQL(" AND updated_at > %s"), (float(after),))
    if group_ids:
        frag += Frag(sql.SQL(" AND group_id = ANY(%s::text[])"), (list(group_ids),))
    if limit is not None:
        frag += Frag(sql.SQL(" LIMIT %s"), (limit,))
    return frag


def delete_keys(table: SideTable, namespace: str, keys: Sequence[str]) -> Frag:
    """Delete records; missing keys are ignored."""
    return Frag(
        sql.SQL("DELETE FROM {} WHERE namespace = %s AND key = ANY(%s::text[])").format(
            table.qualname
        ),
        (namespace, list(keys)),
    )
