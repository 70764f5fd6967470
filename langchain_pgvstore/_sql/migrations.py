"""Schema versions and the statements that upgrade an older schema. Pure builders.

The registry's own version is the table's comment (`pgvstore registry N`),
so it changes in the same transaction as the DDL it describes; a registry
without one was made before versions were recorded and is version 1. A
collection's version is its registry row's `schema_version`. The steps that
upgrade them are in `_upgrade.py`; `docs/schema.md` lists them.
"""

from __future__ import annotations

import re

from psycopg import sql

from ..config import REGISTRY_TABLE, Table
from . import Frag
from .bm25_schema import LENGTH_COLUMN

__all__ = [
    "REGISTRY_STEPS",
    "bound_full_text",
    "drop_length_column",
    "full_text_state",
    "parse_registry_version",
    "registry_state",
    "set_collection_version",
    "set_registry_version",
]

_COMMENT = re.compile(r"pgvstore registry (\d+)")


def _registry_text(table: Table) -> str:
    return sql.Identifier(table.schema, REGISTRY_TABLE).as_string(None)


def registry_state(table: Table) -> Frag:
    """One row: whether the schema's registry exists, and its comment (its version)."""
    return Frag(
        sql.SQL("SELECT to_regclass(%s) IS NOT NULL, obj_description(to_regclass(%s), 'pg_class')"),
        (_registry_text(table), _registry_text(table)),
    )


def parse_registry_version(comment: object) -> int:
    """The version a registry's comment records; 1 for a registry without one."""
    found = _COMMENT.fullmatch(comment) if isinstance(comment, str) else None
    return int(found.group(1)) if found else 1


def set_registry_version(table: Table, version: int) -> Frag:
    """Record the registry's version (COMMENT takes no parameters: a literal of an int)."""
    return Frag(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            sql.Identifier(table.schema, REGISTRY_TABLE),
            sql.Literal(f"pgvstore registry {int(version)}"),
        )
    )


def _registry_v2(table: Table) -> list[Frag]:
    registry = sql.Identifier(table.schema, REGISTRY_TABLE)
    return [
        Frag(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS multi_tenant boolean NOT NULL"
                " DEFAULT false"
            ).format(registry)
        ),
        Frag(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS distribution text").format(registry)),
    ]


def _registry_v3(table: Table) -> list[Frag]:
    # each collection's typed columns (`columns=`), NULL for the collections without
    registry = sql.Identifier(table.schema, REGISTRY_TABLE)
    return [
        Frag(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS typed_columns jsonb").format(registry)
        )
    ]


def _registry_v4(table: Table) -> list[Frag]:
    # an adopted existing table's column names, NULL for the store's own tables
    registry = sql.Identifier(table.schema, REGISTRY_TABLE)
    return [
        Frag(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS existing_table jsonb").format(registry)
        )
    ]


#: Registry upgrades: (version reached, what it adds, its idempotent statements).
#: A new registry column is one more entry here and in `ddl.create_registry`.
REGISTRY_STEPS = (
    (2, "multi_tenant and distribution columns", _registry_v2),
    (3, "typed_columns column", _registry_v3),
    (4, "existing_table column", _registry_v4),
)


def set_collection_version(table: Table, version: int) -> Frag:
    """Record that the collection's objects are those of schema `version`."""
    return Frag(
        sql.SQL("UPDATE {} SET schema_version = %s WHERE collection = %s").format(table.registry),
        (version, table.name),
    )


def full_text_state(table: Table) -> Frag:
    """One row: the `tsv` and `tsv_len` expressions (NULL if absent), and the BM25 trigger count.

    The statistics table's existence is asked separately (`catalog.relation_exists`).
    """
    qualname = table.qualname.as_string(None)
    return Frag(
        sql.SQL(
            "SELECT (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
            " JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = to_regclass(%s) AND a.attname = 'tsv' AND NOT a.attisdropped),"
            " (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
            " JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = to_regclass(%s) AND a.attname = 'tsv_len' AND NOT a.attisdropped),"
            " (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s)"
            " AND tgname LIKE 'pgvstore\\_bm25\\_%%' AND NOT tgisinternal)"
        ),
        (qualname, qualname, qualname),
    )


def bound_full_text(table: Table, ts_config: str) -> Frag:
    """Full text over the first `MAX_TSVECTOR_CHARS` characters, as new collections have it.

    `SET EXPRESSION` (PostgreSQL 17+) rewrites the table under an ACCESS
    EXCLUSIVE lock and rebuilds its indexes: this is a step for
    `upgrade_schema()`, never an implicit one.
    """
    from .ddl import tsv_expression

    return Frag(
        sql.SQL("ALTER TABLE {tbl} ALTER COLUMN {tsv} SET EXPRESSION AS ({expr})").format(
            tbl=table.qualname, tsv=table.tsv, expr=tsv_expression(table, ts_config)
        )
    )


def drop_length_column(table: Table) -> Frag:
    """Drop an unbounded `tsv_len` (cheap: no rewrite); `bm25_ddl` adds it back bounded."""
    return Frag(
        sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(table.qualname, LENGTH_COLUMN)
    )
