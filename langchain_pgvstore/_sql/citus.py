"""Citus: what the server is, distributing tables, and settings that reach the workers.

A distributed collection's table is sharded over the workers by `id`, or by
`tenant` when it is multi-tenant; the registry and the BM25 statistics are
reference tables (a copy on every node). Settings reach the workers only as
`SET LOCAL` with `citus.propagate_set_commands = 'local'`, inside a
transaction block: `set_config()` and session `SET` change the coordinator
alone. Pure builders.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from . import Frag

__all__ = [
    "distribute",
    "is_distributed",
    "make_reference_table",
    "progress",
    "server",
    "set_local",
    "shard_plans",
]


def server() -> Frag:
    """The server's version number, and Citus's version if it is installed (else NULL)."""
    return Frag(
        sql.SQL(
            "SELECT current_setting('server_version_num')::integer,"
            " (SELECT extversion FROM pg_extension WHERE extname = 'citus')"
        )
    )


def is_distributed(qualname: sql.Identifier) -> Frag:
    """Whether Citus knows the table (distributed or reference)."""
    return Frag(
        sql.SQL(
            "SELECT to_regclass('pg_dist_partition') IS NOT NULL AND EXISTS"
            " (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass(%s))"
        ),
        (qualname.as_string(None),),
    )


def distribute(qualname: sql.Identifier, column: str, shard_count: int | None) -> Frag:
    """Shard the table by `column` (colocated with the tables of the same shard count)."""
    if shard_count is None:
        return Frag(
            sql.SQL("SELECT create_distributed_table(%s, %s)"), (qualname.as_string(None), column)
        )
    return Frag(
        sql.SQL("SELECT create_distributed_table(%s, %s, shard_count => %s)"),
        (qualname.as_string(None), column, shard_count),
    )


def make_reference_table(qualname: sql.Identifier) -> Frag:
    """Copy the table to every node (for the registry and the statistics)."""
    return Frag(sql.SQL("SELECT create_reference_table(%s)"), (qualname.as_string(None),))


def set_local(values: Sequence[tuple[str, str]]) -> list[Frag]:
    """`SET LOCAL` statements that Citus passes on to the workers of the transaction.

    `SET` takes no parameters: names are identifiers (`hnsw.ef_search` as two),
    values literals; both come from the store's closed set of knobs, checked.
    """
    frags = [Frag(sql.SQL("SET LOCAL citus.propagate_set_commands = 'local'"))]
    for name, value in values:
        parts = [sql.Identifier(p) for p in name.split(".")]
        frags.append(
            Frag(sql.SQL("SET LOCAL {} = {}").format(sql.SQL(".").join(parts), sql.Literal(value)))
        )
    return frags


def shard_plans() -> Frag:
    """Show every shard's plan in EXPLAIN, not one task's."""
    return Frag(sql.SQL("SET LOCAL citus.explain_all_tasks = on"))


def progress() -> Frag:
    """Index build progress summed over the workers (the coordinator's view stays empty)."""
    return Frag(
        sql.SQL(
            "SELECT 'building index', 0, 0,"
            " coalesce(sum(split_part(result, '/', 1)::bigint), 0),"
            " coalesce(sum(split_part(result, '/', 2)::bigint), 0)"
            " FROM run_command_on_workers("
            "$$SELECT coalesce(sum(tuples_done), 0) || '/' || coalesce(sum(tuples_total), 0)"
            " FROM pg_stat_progress_create_index$$) WHERE success"
            " HAVING coalesce(sum(split_part(result, '/', 2)::bigint), 0) > 0"
        )
    )
