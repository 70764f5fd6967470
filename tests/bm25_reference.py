"""A plain-Python BM25, the oracle for `langchain_pgvstore._sql.lexical.keyword_search`.

Tokenisation is not reimplemented: documents and queries are bags of lexemes
with counts, read from PostgreSQL's own `to_tsvector` output (`fetch_docs`,
`fetch_query`). Everything else (N, df, avgdl, idf, the score) is computed
here from those bags, independently of the SQL.

Scoring is the Lucene variant (bm25s's default `method="lucene"`):

    idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))
    score(d) = sum over query lexemes t in d of
               qtf(t) * idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import psycopg
from psycopg import sql

Bag = Mapping[str, int]


def fetch_docs(conn: psycopg.Connection, table: sql.Composable) -> dict[str, Counter[str]]:
    """Every row's lexemes and their counts (positions kept by the tsvector)."""
    docs: dict[str, Counter[str]] = {}
    rows = conn.execute(
        sql.SQL(
            "SELECT t.id, u.lexeme, coalesce(cardinality(u.positions), 1)"
            " FROM {} AS t LEFT JOIN LATERAL unnest(t.tsv) AS u ON true"
        ).format(table)
    ).fetchall()
    for id_, lexeme, tf in rows:
        bag = docs.setdefault(id_, Counter())
        if lexeme is not None:
            bag[lexeme] += tf
    return docs


def fetch_query(conn: psycopg.Connection, ts_config: str, query: str) -> Counter[str]:
    """The query's lexemes and their counts, as `to_tsvector` sees them."""
    rows = conn.execute(
        "SELECT u.lexeme, coalesce(cardinality(u.positions), 1)"
        " FROM unnest(to_tsvector(%s::regconfig, %s)) AS u",
        (ts_config, query),
    ).fetchall()
    return Counter({lexeme: tf for lexeme, tf in rows})


def statistics(docs: Mapping[str, Bag]) -> dict[str, tuple[int, int]]:
    """`term -> (df, total tf)`, plus `'' -> (N, total length)`, as the stats table holds them."""
    out: dict[str, tuple[int, int]] = {}
    for bag in docs.values():
        for term, tf in bag.items():
            df, ctf = out.get(term, (0, 0))
            out[term] = (df + 1, ctf + tf)
    if docs:
        out[""] = (len(docs), sum(sum(bag.values()) for bag in docs.values()))
    return out


def scores(
    docs: Mapping[str, Bag], query: Bag, k1: float = 1.2, b: float = 0.75
) -> dict[str, float]:
    """BM25 score of every document that contains at least one query lexeme."""
    n = len(docs)
    if n == 0:
        return {}
    avgdl = sum(sum(bag.values()) for bag in docs.values()) / n
    df = Counter(term for bag in docs.values() for term in bag)
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in query if df[t] > 0}
    out: dict[str, float] = {}
    for id_, bag in docs.items():
        dl = sum(bag.values())
        total = 0.0
        matched = False
        for term, qtf in query.items():
            tf = bag.get(term, 0)
            if tf:
                matched = True
                total += qtf * idf[term] * tf / (tf + k1 * (1 - b + b * dl / avgdl))
        if matched:
            out[id_] = total
    return out


def top_k(
    docs: Mapping[str, Bag], query: Bag, k: int, k1: float = 1.2, b: float = 0.75
) -> list[tuple[str, float]]:
    """The `k` best `(id, score)`, score descending, ties by id."""
    ranked = sorted(scores(docs, query, k1, b).items(), key=lambda item: (-item[1], item[0]))
    return ranked[:k]
