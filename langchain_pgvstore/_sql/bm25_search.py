"""BM25 keyword search in plain PostgreSQL. Pure builders.

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

N, df and avgdl come from the statistics `bm25_schema.py` keeps, over the
whole collection, not the filtered subset, as in Lucene and Elasticsearch: a
metadata filter changes which documents compete, not how a term is weighted.
"""

from __future__ import annotations

from psycopg import sql

from ..config import Table
from . import Frag
from .bm25_schema import LENGTH_COLUMN, TERM_FREQUENCY, stats_table
from .ids import id_text

__all__ = ["keyword_search", "or_tsquery"]


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
    statistics are those of the whole collection. `k`, `k1` and `b` were
    checked by the caller (`_options.py`).
    """
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
            tf=TERM_FREQUENCY,
            stats=stats_table(table),
            id=id_text(table),
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
        ).format(tf=TERM_FREQUENCY),
        (k,),
    )
    return head + or_tsquery(ts_config, query) + Frag(sql.SQL(" AND (")) + where + tail
