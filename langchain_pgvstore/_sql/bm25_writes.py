"""BM25 statistics kept by the writes themselves, for collections distributed by Citus.

Citus refuses triggers on a distributed table, so the statement that writes
rows also writes their statistics deltas, in a data-modifying CTE: the merge
returns each changed row's old and new tsvector (PostgreSQL 18's `RETURNING
old.*, new.*`), a delete returns the deleted rows', and the deltas go into the
statistics table (a reference table) in the same statement. The old values
are those of the row the statement itself locked and replaced, so concurrent
writers cannot make them wrong, and the deltas commit with the rows. Each
statement ends in `SELECT 1 FROM` the written rows, so its row count is the
number of rows it wrote. Pure builders.
"""

from __future__ import annotations

from psycopg import sql

from ..config import Table
from . import Frag, dml
from .bm25_schema import LENGTH_COLUMN, TERM_FREQUENCY, stats_table

__all__ = ["delete_with_statistics", "merge_with_statistics"]


def _deltas(table: Table, changed: sql.Composable) -> sql.Composed:
    """`d AS (INSERT ... )` writing the signed deltas of the rows in CTE `m`.

    `m` has `old_tsv`, `old_len`, `new_tsv`, `new_len` (NULL for the side a row
    does not have); `changed` restricts to rows whose tsvector changed.
    """
    return sql.SQL(
        "d AS (INSERT INTO {stats} (term, docs, tokens)"
        " SELECT term, sum(docs), sum(tokens) FROM ("
        " SELECT u.lexeme AS term, 1 AS docs, {tf} AS tokens"
        " FROM m, unnest(m.new_tsv) AS u WHERE m.new_tsv IS NOT NULL AND {changed}"
        " UNION ALL SELECT u.lexeme, -1, -{tf}"
        " FROM m, unnest(m.old_tsv) AS u WHERE m.old_tsv IS NOT NULL AND {changed}"
        " UNION ALL SELECT '', (m.new_tsv IS NOT NULL)::int - (m.old_tsv IS NOT NULL)::int,"
        " coalesce(m.new_len, 0) - coalesce(m.old_len, 0) FROM m WHERE {changed}"
        ") AS x GROUP BY term HAVING sum(docs) <> 0 OR sum(tokens) <> 0)"
    ).format(stats=stats_table(table), tf=TERM_FREQUENCY, changed=changed)


def merge_with_statistics(table: Table, tenant: str | None = None) -> Frag:
    """`dml.merge_staging`, with the statistics deltas of the rows it writes."""
    merge = dml.merge_staging(table, tenant)
    returning = sql.SQL(
        " RETURNING old.{tsv} AS old_tsv, old.{len} AS old_len,"
        " new.{tsv} AS new_tsv, new.{len} AS new_len"
    ).format(tsv=table.tsv, len=LENGTH_COLUMN)
    changed = sql.SQL("m.old_tsv IS DISTINCT FROM m.new_tsv")
    return (
        Frag(sql.SQL("WITH m AS ("))
        + merge
        + Frag(returning + sql.SQL("), ") + _deltas(table, changed) + sql.SQL(" SELECT 1 FROM m"))
    )


def delete_with_statistics(table: Table, where: Frag) -> Frag:
    """Delete the rows matching `where`, with the statistics deltas of what it deleted.

    A plain `DELETE`: Citus refuses the row-locking subquery of `dml.delete_where`
    across shards, and resolves the rare deadlock with a concurrent upsert itself.
    """
    return (
        Frag(sql.SQL("WITH m AS (DELETE FROM {} WHERE ").format(table.qualname))
        + where
        + Frag(
            sql.SQL(
                " RETURNING {tsv} AS old_tsv, {len} AS old_len,"
                " NULL::tsvector AS new_tsv, NULL::integer AS new_len), "
            ).format(tsv=table.tsv, len=LENGTH_COLUMN)
            + _deltas(table, sql.SQL("true"))
            + sql.SQL(" SELECT 1 FROM m")
        )
    )
