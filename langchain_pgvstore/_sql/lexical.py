"""The lexical leg of hybrid search: BM25 in plain PostgreSQL (fusion is in `fusion.py`).

Scoring (the Lucene variant, as in bm25s's default `method="lucene"`)::

    score(d, q) = sum over distinct lexemes t of q of
                  qtf(t) * idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * dl(d) / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

Lexemes come from `to_tsvector(ts_config, ...)` for both the documents and the
query, so stemming and stop words are PostgreSQL's. `tf` is the number of
positions the tsvector keeps for the lexeme, `dl` the sum of those over the
document, `qtf` the same count in the query (a repeated query word counts
again, as in bm25s and Lucene). A tsvector keeps at most 255 positions per
lexeme, and every word past position 16383 shares position 16383, so `tf`
saturates at 255 and repeats beyond the 16383rd word count once.

Statistics (N, the total of `dl`, and `df` per lexeme) live in a per-collection
table of *signed deltas* written by statement-level AFTER triggers with
transition tables. Writers only ever INSERT delta rows, so they never wait on
each other's statistics and cannot deadlock or lose a count, whatever number of
statements their transactions run. A writer that wins a non-blocking
transaction-level advisory lock also folds the rows of the lexemes it touched
into one row each (compaction), which keeps the table small. Because the deltas
commit with the rows they describe, a query sees statistics that are exactly
those of the rows in its snapshot: freshness is exact, not eventual.

N, df and avgdl are over the whole collection, not the filtered subset, as in
Lucene and Elasticsearch: a metadata filter changes which documents compete,
not how a term is weighted.

Every builder here is pure: it returns `Frag`s, and `as_string()` shows the SQL.
"""

from __future__ import annotations

import hashlib
import math

from psycopg import sql

from ..config import MAX_TSVECTOR_CHARS, Table
from ..errors import InputError
from . import Frag

__all__ = [
    "LENGTH_COLUMN",
    "compact_lexical",
    "drop_lexical",
    "keyword_search",
    "lexical_ddl",
    "or_tsquery",
    "recount_lexical",
    "stats_table",
]

#: Generated column holding `dl`, the number of token positions of `tsv`.
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
_TF = sql.SQL("coalesce(cardinality(u.positions), 1)")


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
    ).format(s=s, tf=_TF, rows=rows, tsv=table.tsv, len=LENGTH_COLUMN, where=where)


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
    changed_new = sql.SQL(
        " WHERE NOT EXISTS (SELECT 1 FROM {old} AS o WHERE o.{id} = r.{id} AND o.{tsv} = r.{tsv})"
    ).format(old=_OLD, id=table.id, tsv=table.tsv)
    changed_old = sql.SQL(
        " WHERE NOT EXISTS (SELECT 1 FROM {new} AS n WHERE n.{id} = r.{id} AND n.{tsv} = r.{tsv})"
    ).format(new=_NEW, id=table.id, tsv=table.tsv)
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


def lexical_ddl(table: Table, ts_config: str) -> list[Frag]:
    """Statements that add the BM25 leg to an existing collection table.

    Run them in one READ COMMITTED transaction, after `CREATE TABLE`.
    `ts_config` must be the configuration of the table's `tsv` column. They
    create the statistics table, an IMMUTABLE length function, the generated
    `tsv_len` column, set `tsv` to STORAGE MAIN, create the maintenance
    triggers, and finally count the rows already present, so they also work
    on a populated table (which `ADD COLUMN` rewrites). Every statement is
    idempotent.
    """
    stats = stats_table(table)
    length_fn = _length_function(table)
    trigger_fn = _trigger_function(table)
    config = sql.Literal(ts_config)
    statements = [
        sql.SQL(
            'CREATE TABLE IF NOT EXISTS {stats} (term text COLLATE "C" NOT NULL,'
            " docs bigint NOT NULL, tokens bigint NOT NULL)"
        ).format(stats=stats),
        sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {stats} (term)").format(
            index=sql.Identifier(table.index_name("bm25_term")), stats=stats
        ),
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
                .format(tf=_TF)
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
    return [Frag(s) for s in statements] + recount_lexical(table)


def recount_lexical(table: Table) -> list[Frag]:
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
                " SELECT u.lexeme, count(*), sum({tf}) FROM {table}, unnest({tsv}) AS u"
                " GROUP BY u.lexeme"
                " UNION ALL"
                " SELECT '', count(*), coalesce(sum({len}), 0) FROM {table} HAVING count(*) > 0"
                " ORDER BY 1"
            ).format(stats=stats, tf=_TF, table=table.qualname, tsv=table.tsv, len=LENGTH_COLUMN)
        ),
    ]


def compact_lexical(table: Table) -> list[Frag]:
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


def drop_lexical(table: Table) -> list[Frag]:
    """Statements that remove everything `lexical_ddl` created; idempotent.

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


def or_tsquery(ts_config: str, query: str) -> Frag:
    """A tsquery matching documents that contain ANY lexeme of `query`.

    It is built from the text form of the query's stripped tsvector, `'a' 'b'`,
    which quotes each lexeme exactly as tsquery input expects; joining with `|`
    and casting keeps the lexemes verbatim (`to_tsquery` would stem them a
    second time). Lexemes never contain spaces, so the separator cannot occur
    inside one. The expression is immutable: with bound parameters the planner
    folds it to a constant and estimates its selectivity from the column
    statistics. A query without lexemes gives the empty tsquery, which matches
    nothing.
    """
    return Frag(
        sql.SQL(
            "replace(strip(to_tsvector(%s::regconfig, %s))::text, ''' ''', ''' | ''')::tsquery"
        ),
        (ts_config, query),
    )


def _check_k(k: int, what: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"{what} must be a positive integer, got {k!r}")


def _check_finite(value: float, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and lo <= number <= hi):
        raise InputError(f"{what} must be in [{lo}, {hi}], got {value!r}")
    return number


def keyword_search(
    table: Table,
    query: str,
    k: int,
    where: Frag,
    *,
    ts_config: str,
    k1: float = 1.2,
    b: float = 0.75,
) -> Frag:
    """Top `k` rows `(id, score)` by BM25, best first, ties by id.

    A document matches if it contains any lexeme of `query`; candidates come
    from the GIN index on `tsv` and are then restricted by `where` (a boolean
    expression over the table's columns, e.g. `Frag(sql.SQL("TRUE"))`). The
    statistics are those of the whole collection.
    """
    _check_k(k)
    k1 = _check_finite(k1, "k1", 0.0, math.inf)
    b = _check_finite(b, "b", 0.0, 1.0)
    head = Frag(
        sql.SQL(
            # The query's lexemes and their counts, computed once.
            "WITH q AS MATERIALIZED (SELECT u.lexeme AS term, {tf}::float8 AS qtf"
            " FROM unnest(to_tsvector(%s::regconfig, %s)) AS u),"
            # Statistics of those lexemes and of the collection ('').
            " s AS (SELECT st.term, sum(st.docs)::float8 AS docs, sum(st.tokens)::float8 AS tokens"
            " FROM {stats} AS st"
            " WHERE st.term = ANY (ARRAY(SELECT term FROM q) || ''::text)"
            " GROUP BY st.term),"
            " c AS (SELECT coalesce(max(docs) FILTER (WHERE term = ''), 0) AS n,"
            " max(tokens) FILTER (WHERE term = '') / max(docs) FILTER (WHERE term = '') AS avgdl,"
            " %s::float8 AS k1, %s::float8 AS b"
            " FROM s),"
            " w AS (SELECT q.term, q.qtf * ln(1 + (c.n - s.docs + 0.5) / (s.docs + 0.5)) AS weight"
            " FROM q JOIN s ON s.term = q.term CROSS JOIN c),"
            " hits AS (SELECT {id} AS id, {tsv} AS tsv, {len} AS dl FROM {table}"
            " WHERE {tsv} @@ "
        ).format(
            tf=_TF,
            stats=stats_table(table),
            id=table.id,
            tsv=table.tsv,
            len=LENGTH_COLUMN,
            table=table.qualname,
        ),
        (ts_config, query, k1, b),
    )
    tail = Frag(
        sql.SQL(
            ")),"
            # Keep only the query's lexemes before unnesting: setweight marks
            # them (weight A) and ts_filter drops the rest, both in C, which is
            # much cheaper than unnesting a whole document. The join with w is
            # what guarantees correctness either way.
            " scored AS (SELECT h.id, sum(w.weight * t.tf"
            " / (t.tf + c.k1 * (1 - c.b + c.b * h.dl / c.avgdl))) AS score"
            " FROM hits AS h CROSS JOIN c"
            " CROSS JOIN LATERAL (SELECT u.lexeme, {tf}::float8 AS tf"
            " FROM unnest(ts_filter(setweight(h.tsv, 'A', (SELECT array_agg(term) FROM q)),"
            " '{{a}}')) AS u) AS t"
            " JOIN w ON w.term = t.lexeme"
            " GROUP BY h.id)"
            ' SELECT id, score FROM scored ORDER BY score DESC NULLS LAST, id COLLATE "C" LIMIT %s'
        ).format(tf=_TF),
        (k,),
    )
    return head + or_tsquery(ts_config, query) + Frag(sql.SQL(" AND (")) + where + tail
