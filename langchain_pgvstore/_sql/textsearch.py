"""BM25 keyword search on a `pg_textsearch` index (`full_text="pg_textsearch"`). Pure builders.

`pg_textsearch` is a PostgreSQL extension with a BM25 index access method:
`CREATE INDEX ... USING bm25 (content) WITH (text_config, k1, b)` keeps the
postings and the corpus statistics, and `content <@> to_bm25query(query,
index)` is the negated BM25 score of a row, which an ordered index scan
answers top-k first (block-max WAND). The index is built with the store's
BM25 parameters (k1=1.2, b=0.75) and the collection's text-search
configuration, so its ranking agrees with the plain-SQL BM25 of
`bm25_search.py` (measured: docs/performance.md).

The index name is passed to `to_bm25query` as a parameter: a schema-qualified,
quoted name (`"schema"."name"`) that the extension resolves like a regclass.
"""

from __future__ import annotations

from psycopg import sql

from ..config import Table
from . import Frag

__all__ = [
    "BM25_B",
    "BM25_K1",
    "EXTENSION",
    "create_extension",
    "create_index",
    "extension_state",
    "index_kind",
    "index_name",
    "keyword_search",
]

#: The extension, as `CREATE EXTENSION` and `pg_available_extensions` name it.
EXTENSION = "pg_textsearch"
#: The BM25 parameters the index is built with: the store's defaults (`_options.py`).
BM25_K1 = 1.2
BM25_B = 0.75
#: The index's kind in `Table.index_name` (`<collection>_<hash>_textsearch`).
index_kind = "textsearch"


def index_name(table: Table) -> str:
    """The index as `to_bm25query` takes it: schema-qualified and quoted."""
    return table.index(index_kind).as_string(None)


def extension_state() -> Frag:
    """One row: the installed and the available version of `pg_textsearch` (either may be
    NULL), and whether the server preloads its library (it must, to create the extension)."""
    return Frag(
        sql.SQL(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = %s),"
            " (SELECT default_version FROM pg_available_extensions WHERE name = %s),"
            " %s = ANY (string_to_array(replace(current_setting('shared_preload_libraries'),"
            " ' ', ''), ','))"
        ),
        (EXTENSION, EXTENSION, EXTENSION),
    )


def create_extension() -> Frag:
    """Install `pg_textsearch` in the current database."""
    return Frag(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(EXTENSION)))


def create_index(table: Table, ts_config: str) -> Frag:
    """The BM25 index over `content`, with the collection's configuration and the store's
    k1 and b. DDL takes no parameters: the configuration was checked against `pg_ts_config`
    and the numbers are constants."""
    return Frag(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {index} ON {table} USING bm25 ({content})"
            " WITH (text_config = {config}, k1 = {k1}, b = {b})"
        ).format(
            index=sql.Identifier(table.index_name(index_kind)),
            table=table.qualname,
            content=table.content,
            config=sql.Literal(ts_config),
            k1=sql.Literal(BM25_K1),
            b=sql.Literal(BM25_B),
        )
    )


def keyword_search(table: Table, query: object, k: int, where: Frag | None) -> Frag:
    """Top `k` rows `(id, score)` by BM25 (higher is better), best first, ties by id.

    The rows come from the index's ordered scan, `WHERE where ORDER BY content
    <@> q LIMIT k`; `where` is a boolean expression over the table's columns
    (in a multi-tenant collection it holds the tenant), None for none. Only
    the `k` rows found are scored (scoring a row tokenizes its text, so the
    scan's candidates are never scored). How far a filtered index scan goes
    past its first candidates is the extension's choice: when it returns fewer
    than `k` rows, every row the filter admits is scored instead (`<@>`
    outside an index scan still takes the corpus statistics from the index)
    and the best `k` kept, so a filter never returns fewer than `k` rows when
    `k` match. That exact pass costs a tokenization per filtered row: it is
    cheap for a selective filter, which is when the scan runs short. A row
    without any of the query's terms scores 0 and is never returned (a scan
    may yield such rows after the matching ones).

    The scores are the index's, over the whole collection (as in
    `bm25_search.py`: a filter changes which rows compete, not the weights),
    on `bm25_search.py`'s scale.
    """
    bm25 = Frag(
        sql.SQL("{content} <@> to_bm25query(%s, %s)").format(content=table.content),
        (query, index_name(table)),
    )
    # The index's score carries BM25's (k1 + 1) factor, which `bm25_search.py`'s
    # (Lucene's) leaves out: divided here, the two backends' scores agree. It is
    # computed beside the ordered scan (measured cheaper than scoring its rows
    # afterwards) and read, never computed again, by `score > 0` and the result:
    # scoring a row tokenizes its text.
    score = Frag(sql.SQL("-(")) + bm25 + Frag(sql.SQL(") / %s::float8 AS score"), (1 + BM25_K1,))
    order = Frag(sql.SQL(' WHERE score > 0 ORDER BY score DESC, id COLLATE "C" LIMIT %s'), (k,))
    scan = (
        Frag(sql.SQL("SELECT {id} AS id, ").format(id=table.id))
        + score
        + Frag(sql.SQL(" FROM {table}").format(table=table.qualname))
        + (Frag(sql.SQL(" WHERE ")) + where if where is not None else Frag(sql.SQL("")))
        + Frag(sql.SQL(" ORDER BY "))
        + bm25
        + Frag(sql.SQL(" LIMIT %s"), (k,))
    )
    if where is None:
        return Frag(sql.SQL("SELECT id, score FROM (")) + scan + Frag(sql.SQL(") AS s")) + order
    exact = (
        Frag(sql.SQL("SELECT id, score FROM (SELECT {id} AS id, ").format(id=table.id))
        + score
        + Frag(sql.SQL(" FROM {table} WHERE ").format(table=table.qualname))
        + where
        + Frag(sql.SQL(") AS e WHERE (SELECT count(*) FROM scan) < %s"), (k,))
    )
    return (
        Frag(sql.SQL("WITH scan AS MATERIALIZED ("))
        + scan
        + Frag(
            sql.SQL(
                ") SELECT id, score FROM (SELECT id, score FROM scan"
                " WHERE (SELECT count(*) FROM scan) = %s UNION ALL "
            ),
            (k,),
        )
        + exact
        # not flattened: `score > 0` must not be pushed into the exact pass's scan
        + Frag(sql.SQL(" OFFSET 0) AS r"))
        + order
    )
