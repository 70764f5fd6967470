"""BM25 statistics: the per-collection objects that keep them exact. Pure builders.

Statistics (N, the total of `dl`, and `df` per lexeme) live in a per-collection
table of *signed deltas* written by statement-level AFTER triggers with
transition tables. Writers only ever INSERT delta rows, so they never wait on
each other's statistics and cannot deadlock or lose a count, whatever number of
statements their transactions run. A writer that wins a non-blocking
transaction-level advisory lock also folds the rows of the lexemes it touched
into one row each (compaction), which keeps the table small. Because the deltas
commit with the rows they describe, a query sees statistics that are exactly
those of the rows in its snapshot: freshness is exact, not eventual.

`tf` is the number of positions the tsvector keeps for a lexeme (at most 255;
a stripped tsvector has none and counts once), `dl` the sum of those over the
document (the generated column `tsv_len`). The query that uses them is in
`bm25_search.py`.
"""

from __future__ import annotations

import hashlib

from psycopg import sql

from ..config import MAX_TSVECTOR_CHARS, Table
from . import Frag

__all__ = [
    "LENGTH_COLUMN",
    "TERM_FREQUENCY",
    "bm25_ddl",
    "length_column",
    "statistics_table",
    "triggers",
    "compact_bm25",
    "drop_bm25",
    "recount_bm25",
    "stats_table",
]

LENGTH_COLUMN = sql.Identifier("tsv_len")

# Trigger names are per table, so they need no collection prefix.
_TRIGGERS = {
    "INSERT": sql.Identifier("pgvstore_bm25_insert"),
    "UPDATE": sql.Identifier("pgvstore_bm25_update"),
    "DELETE": sql.Identifier("pgvstore_bm25_delete"),
    "TRUNCATE": sql.Identifier("pgvstore_bm25_truncate"),
}
_NEW = sql.Identifier("pgvstore_new")
_OLD = sql.Identifier("pgvstore_old")

# tf of one unnested tsvector entry. A stripped tsvector has no positions;
# count such a lexeme once rather than zero times.
TERM_FREQUENCY = sql.SQL("coalesce(cardinality(u.positions), 1)")


def stats_table(table: Table) -> sql.Identifier:
    """The per-collection table of BM25 statistics deltas.

    Columns `(term, docs, tokens)`: for a lexeme, its change in document
    frequency and in total term frequency; for the empty term `''` (never a
    lexeme), the change in document count N and in total length. The current
    value of each is the sum of its rows.
    """
    return sql.Identifier(table.schema, table.index_name("bm25"))


def _name(table: Table, kind: str) -> sql.Identifier:
    return sql.Identifier(table.schema, table.index_name(kind))


def _length_function(table: Table) -> sql.Identifier:
    return _name(table, "bm25_len")


def _trigger_function(table: Table) -> sql.Identifier:
    return _name(table, "bm25_trg")


def _compaction_key(table: Table) -> int:
    # Distinct from `Table.lock_key()`, which serialises the store's DDL: a
    # writer that cannot take this key just skips compaction.
    digest = hashlib.sha1(f"pgvstore:bm25:{table.schema}.{table.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _contributions(
    table: Table, rows: sql.Identifier, sign: int, where: sql.Composable
) -> sql.Composed:
    """Signed (term, docs, tokens) rows contributed by the documents of `rows`."""
    s = sql.SQL("-") if sign < 0 else sql.SQL("")
    return sql.SQL(
        "SELECT u.lexeme, {s}1, {s}{tf} FROM {rows} AS r, unnest(r.{tsv}) AS u{where}"
        " UNION ALL SELECT '', {s}1, {s}r.{len} FROM {rows} AS r{where}"
    ).format(s=s, tf=TERM_FREQUENCY, rows=rows, tsv=table.tsv, len=LENGTH_COLUMN, where=where)


def _deltas_into_vars(contributions: sql.Composable) -> sql.Composed:
    # Aggregate per term into the trigger function's three arrays. No lock is
    # taken per term, so the order is not needed for safety; sorting makes
    # the rows land in a deterministic order, in index order.
    return sql.SQL(
        "SELECT array_agg(term ORDER BY term), array_agg(docs ORDER BY term),"
        " array_agg(tokens ORDER BY term)"
        " INTO v_terms, v_docs, v_tokens"
        " FROM (SELECT d.term, sum(d.docs)::bigint AS docs, sum(d.tokens)::bigint AS tokens"
        " FROM ({contributions}) AS d(term, docs, tokens)"
        " GROUP BY d.term HAVING sum(d.docs) <> 0 OR sum(d.tokens) <> 0) AS g;"
    ).format(contributions=contributions)


def _trigger_body(table: Table) -> sql.Composed:
    stats = stats_table(table)
    key = sql.Literal(_compaction_key(table))
    none = sql.SQL("")

    # An UPDATE that leaves a row's tsvector as it was (a metadata-only change,
    # an upsert of identical content) contributes nothing: skip it before
    # unnesting instead of unnesting twice and cancelling out.
    def same_row(alias: sql.SQL) -> sql.Composed:
        # rows are matched by the whole key: in a multi-tenant collection an id
        # alone may name rows of several tenants
        return sql.SQL(" AND ").join(
            sql.SQL("{a}.{c} = r.{c}").format(a=alias, c=c) for c in table.key
        )

    changed_new = sql.SQL(
        " WHERE NOT EXISTS (SELECT 1 FROM {old} AS o WHERE {same} AND o.{tsv} = r.{tsv})"
    ).format(old=_OLD, same=same_row(sql.SQL("o")), tsv=table.tsv)
    changed_old = sql.SQL(
        " WHERE NOT EXISTS (SELECT 1 FROM {new} AS n WHERE {same} AND n.{tsv} = r.{tsv})"
    ).format(new=_NEW, same=same_row(sql.SQL("n")), tsv=table.tsv)
    update = sql.SQL("{} UNION ALL {}").format(
        _contributions(table, _NEW, +1, changed_new),
        _contributions(table, _OLD, -1, changed_old),
    )
    return sql.SQL(
        "DECLARE v_terms text[]; v_docs bigint[]; v_tokens bigint[];"
        " BEGIN"
        " IF TG_OP = 'TRUNCATE' THEN"
        # TRUNCATE holds an exclusive lock on the table, so no writer is
        # mid-flight; the advisory lock waits out a running compaction.
        " PERFORM pg_advisory_xact_lock({key}); DELETE FROM {stats}; RETURN NULL;"
        " ELSIF TG_OP = 'INSERT' THEN {ins}"
        " ELSIF TG_OP = 'DELETE' THEN {delete}"
        " ELSE {upd}"
        " END IF;"
        " IF v_terms IS NULL THEN RETURN NULL; END IF;"
        # Only the holder of the key deletes statistics rows, and the key is
        # only ever tried, never waited for, so writers never block each other
        # here. Rows appended by transactions still in flight are invisible to
        # the DELETE and survive it, so no count is lost. Under REPEATABLE READ
        # the DELETE could meet a row a finished compaction already removed
        # and fail with a serialization error, so such writers only append.
        " IF current_setting('transaction_isolation') = 'read committed'"
        " AND pg_try_advisory_xact_lock({key}) THEN"
        " WITH d AS (SELECT * FROM unnest(v_terms, v_docs, v_tokens) AS d(term, docs, tokens)),"
        " gone AS (DELETE FROM {stats} AS s WHERE s.term = ANY (v_terms)"
        " RETURNING s.term, s.docs, s.tokens)"
        " INSERT INTO {stats} (term, docs, tokens)"
        " SELECT a.term, sum(a.docs), sum(a.tokens)"
        " FROM (SELECT * FROM d UNION ALL SELECT * FROM gone) AS a"
        " GROUP BY a.term HAVING sum(a.docs) <> 0 ORDER BY a.term;"
        " ELSE"
        " INSERT INTO {stats} (term, docs, tokens)"
        " SELECT * FROM unnest(v_terms, v_docs, v_tokens);"
        " END IF;"
        " RETURN NULL;"
        " END"
    ).format(
        key=key,
        stats=stats,
        ins=_deltas_into_vars(_contributions(table, _NEW, +1, none)),
        delete=_deltas_into_vars(_contributions(table, _OLD, -1, none)),
        upd=_deltas_into_vars(update),
    )


def bm25_ddl(table: Table, ts_config: str) -> list[Frag]:
    """Statements that add the BM25 leg to an existing collection table.

    Run them in one READ COMMITTED transaction, after `CREATE TABLE`.
    `ts_config` must be the configuration of the table's `tsv` column. They
    create the statistics table, an IMMUTABLE length function, the generated
    `tsv_len` column, set `tsv` to STORAGE MAIN, create the maintenance
    triggers, and finally count the rows already present, so they also work
    on a populated table (which `ADD COLUMN` rewrites). Every statement is
    idempotent. A distributed collection (Citus refuses triggers on it) takes
    `length_column` and `statistics_table` only, and its writes keep the
    statistics themselves (`bm25_writes.py`).
    """
    return (
        statistics_table(table)
        + length_column(table, ts_config)
        + triggers(table)
        + recount_bm25(table)
    )


def statistics_table(table: Table) -> list[Frag]:
    """The statistics table and its index on `term`."""
    stats = stats_table(table)
    return [
        Frag(
            sql.SQL(
                'CREATE TABLE IF NOT EXISTS {stats} (term text COLLATE "C" NOT NULL,'
                " docs bigint NOT NULL, tokens bigint NOT NULL)"
            ).format(stats=stats)
        ),
        Frag(
            sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {stats} (term)").format(
                index=sql.Identifier(table.index_name("bm25_term")), stats=stats
            )
        ),
    ]


def length_column(table: Table, ts_config: str) -> list[Frag]:
    """The IMMUTABLE length function, the generated `tsv_len` column, `tsv` kept inline."""
    length_fn = _length_function(table)
    config = sql.Literal(ts_config)
    statements = [
        # A generated column cannot read another generated column (tsv), nor
        # call a set-returning function, hence the function and the repeated
        # to_tsvector below.
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {fn}(tsvector) RETURNS integer"
            " LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS {body}"
        ).format(
            fn=length_fn,
            body=sql.Literal(
                sql.SQL("SELECT coalesce(sum({tf}), 0)::integer FROM unnest($1) AS u")
                .format(tf=TERM_FREQUENCY)
                .as_string(None)
            ),
        ),
        sql.SQL(
            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {len} integer"
            " GENERATED ALWAYS AS"
            " ({fn}(to_tsvector({config}::regconfig, left({content}, {tsv_chars})))) STORED"
        ).format(
            table=table.qualname,
            len=LENGTH_COLUMN,
            fn=length_fn,
            config=config,
            content=table.content,
            tsv_chars=sql.Literal(MAX_TSVECTOR_CHARS),
        ),
        # Every keyword query reads tsv for each candidate. With the default
        # EXTENDED storage a ~1.5 kB tsvector beside a 384-d embedding is moved
        # to the TOAST table, and each read costs an index lookup there; MAIN
        # keeps it in the heap unless the row cannot fit a page (measured on
        # SciFact: keyword query median 33 ms -> 22 ms). Affects rows written
        # from now on.
        sql.SQL("ALTER TABLE {table} ALTER COLUMN {tsv} SET STORAGE MAIN").format(
            table=table.qualname, tsv=table.tsv
        ),
    ]
    return [Frag(s) for s in statements]


def triggers(table: Table) -> list[Frag]:
    """The statement-level triggers that keep the statistics of an ordinary table."""
    trigger_fn = _trigger_function(table)
    statements = [
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS {body}"
        ).format(fn=trigger_fn, body=sql.Literal(_trigger_body(table).as_string(None))),
    ]
    # Transition tables allow one event per trigger, hence four triggers.
    for event, referencing in (
        ("INSERT", sql.SQL(" REFERENCING NEW TABLE AS {}").format(_NEW)),
        ("UPDATE", sql.SQL(" REFERENCING OLD TABLE AS {} NEW TABLE AS {}").format(_OLD, _NEW)),
        ("DELETE", sql.SQL(" REFERENCING OLD TABLE AS {}").format(_OLD)),
        ("TRUNCATE", sql.SQL("")),
    ):
        statements.append(
            sql.SQL("DROP TRIGGER IF EXISTS {trigger} ON {table}").format(
                trigger=_TRIGGERS[event], table=table.qualname
            )
        )
        statements.append(
            sql.SQL(
                "CREATE TRIGGER {trigger} AFTER {event} ON {table}{referencing}"
                " FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"
            ).format(
                trigger=_TRIGGERS[event],
                event=sql.SQL(event),
                table=table.qualname,
                referencing=referencing,
                fn=trigger_fn,
            )
        )
    return [Frag(s) for s in statements]


def recount_bm25(table: Table) -> list[Frag]:
    """Rebuild the statistics from the rows (two statements; one READ COMMITTED transaction).

    The first takes the collection's compaction lock, so that the second's
    snapshot, taken after it, sees every finished compaction (which is why the
    transaction must not be REPEATABLE READ: its snapshot would predate the
    lock). Writers running meanwhile keep appending deltas the rebuild cannot
    see, which is correct.
    """
    stats = stats_table(table)
    return [
        Frag(
            sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(_compaction_key(table)))
        ),
        Frag(
            sql.SQL(
                "WITH gone AS (DELETE FROM {stats})"
                " INSERT INTO {stats} (term, docs, tokens)"
                " SELECT u.lexeme, count(*), sum({tf}) FROM {table} AS c, unnest(c.{tsv}) AS u"
                " GROUP BY u.lexeme"
                " UNION ALL"
                " SELECT '', count(*), coalesce(sum({len}), 0) FROM {table} HAVING count(*) > 0"
                " ORDER BY 1"
            ).format(
                stats=stats,
                tf=TERM_FREQUENCY,
                table=table.qualname,
                tsv=table.tsv,
                len=LENGTH_COLUMN,
            )
        ),
    ]


def compact_bm25(table: Table) -> list[Frag]:
    """Fold every term's delta rows into one row (two statements; one READ COMMITTED transaction).

    Writers compact the terms they touch when they can; this catches up after
    heavy concurrent ingest. It waits for, and then excludes, other compactions.
    """
    stats = stats_table(table)
    return [
        Frag(
            sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(_compaction_key(table)))
        ),
        Frag(
            sql.SQL(
                "WITH gone AS (DELETE FROM {stats} RETURNING term, docs, tokens)"
                " INSERT INTO {stats} (term, docs, tokens)"
                " SELECT term, sum(docs), sum(tokens) FROM gone"
                " GROUP BY term HAVING sum(docs) <> 0 ORDER BY term"
            ).format(stats=stats)
        ),
    ]


def drop_bm25(table: Table) -> list[Frag]:
    """Statements that remove everything `bm25_ddl` created; idempotent.

    Best run after the collection's table is dropped. If the table still
    exists, dropping the functions with CASCADE also removes its triggers and
    its `tsv_len` column.
    """
    return [
        Frag(sql.SQL("DROP FUNCTION IF EXISTS {}() CASCADE").format(_trigger_function(table))),
        Frag(
            sql.SQL("DROP FUNCTION IF EXISTS {}(tsvector) CASCADE").format(_length_function(table))
        ),
        Frag(sql.SQL("DROP TABLE IF EXISTS {}").format(stats_table(table))),
    ]
