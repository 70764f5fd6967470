"""Builders for the key-value table behind `PostgresByteStore`. Pure functions.

Keys use the "C" collation: they compare byte by byte, so a key prefix is a
range of the primary key's btree, and `yield_keys(prefix=...)` pages through
it with index range scans whatever the database's default collation.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from . import Frag
from .side_tables import SideTable

__all__ = ["create_table", "keys_page", "mdelete", "mget", "mset", "prefix_upper_bound"]

_MAX_CODEPOINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def create_table(table: SideTable) -> Frag:
    """The key-value table; `created_at` is when the current value was written."""
    return Frag(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "namespace text NOT NULL,"
            ' key text COLLATE "C" NOT NULL,'
            " value bytea NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (namespace, key))"
        ).format(table.qualname)
    )


def mget(table: SideTable, namespace: str, keys: Sequence[str]) -> Frag:
    """One row per requested key, in order (duplicates included): the value or NULL."""
    return Frag(
        sql.SQL(
            "SELECT kv.value FROM unnest(%s::text[]) WITH ORDINALITY AS k(key, ord)"
            " LEFT JOIN {} AS kv ON kv.namespace = %s AND kv.key = k.key"
            " ORDER BY k.ord"
        ).format(table.qualname),
        (list(keys), namespace),
    )


def mset(table: SideTable, namespace: str, keys: Sequence[str], values: Sequence[bytes]) -> Frag:
    """Upsert key-value pairs; `keys` must be distinct (one row may be written once)."""
    return Frag(
        sql.SQL(
            "INSERT INTO {} (namespace, key, value)"
            " SELECT %s, u.key, u.value FROM unnest(%s::text[], %s::bytea[]) AS u(key, value)"
            " ON CONFLICT (namespace, key)"
            " DO UPDATE SET value = EXCLUDED.value, created_at = now()"
        ).format(table.qualname),
        (namespace, list(keys), list(values)),
    )


def mdelete(table: SideTable, namespace: str, keys: Sequence[str]) -> Frag:
    """Delete keys; missing keys are ignored."""
    return Frag(
        sql.SQL("DELETE FROM {} WHERE namespace = %s AND key = ANY(%s::text[])").format(
            table.qualname
        ),
        (namespace, list(keys)),
    )


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`.

    With byte-wise ("C") ordering of UTF-8 text, code-point order is byte
    order, so bumping the last code point that can be bumped gives the bound.
    None when there is none (the prefix is all U+10FFFF, or empty).
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if last in _SURROGATES:  # PostgreSQL text cannot hold surrogates
            last = _SURROGATES.stop
        if last <= _MAX_CODEPOINT:
            return "".join(chars) + chr(last)
    return None


def keys_page(
    table: SideTable, namespace: str, prefix: str | None, after: str | None, limit: int
) -> Frag:
    """Up to `limit` keys in key order: those after `after`, starting with `prefix`."""
    parts = [
        Frag(
            sql.SQL("SELECT key FROM {} WHERE namespace = %s").format(table.qualname), (namespace,)
        )
    ]
    if after is not None:
        parts.append(Frag(sql.SQL(" AND key > %s"), (after,)))
    if prefix:
        if after is None:
            parts.append(Frag(sql.SQL(" AND key >= %s"), (prefix,)))
        upper = prefix_upper_bound(prefix)
        if upper is not None:
            parts.append(Frag(sql.SQL(" AND key < %s"), (upper,)))
        else:
            parts.append(Frag(sql.SQL(" AND starts_with(key, %s)"), (prefix,)))
    parts.append(Frag(sql.SQL(" ORDER BY key LIMIT %s"), (limit,)))
    frag = parts[0]
    for part in parts[1:]:
        frag += part
    return frag
