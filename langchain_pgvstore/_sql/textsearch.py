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


def candidates(k: int) -> int:
    """How many rows the filtered search takes from the index before filtering them."""
    return max(10 * k, 100)


def keyword_search(table: Table, query: object, k: int, where: Frag | None) -> Frag:
    """Top `k` rows `(id, score)` by BM25 (higher is better), best first, ties by id.

    Without a filter (`where` None) the index scan answers directly. With one
    (a boolean expression over the table's columns; in a multi-tenant
    collection it holds the tenant), the index's best `candidates(k)` rows are
    taken unfiltered and the filter is applied to them: if at least `k` pass,
    or the index had fewer candidates than that (it returned every matching
    row), they are the answer. Otherwise, and only then, every row the filter
    admits is scored (`<@>` outside an index scan still takes the corpus
    statistics from the index) and the best `k` kept, so a selective filter
    never returns fewer than `k` rows when `k` match. Filtering inside the
    ordered index scan is avoided: how far that scan goes past its limit is
    the extension's choice.

    The scores are the index's, over the whole collection (as in
    `bm25_search.py`: a filter changes which rows compete, not the weights),
    on `bm25_search.py`'s scale.
    """
    bm25 = Frag(
        sql.SQL("{content} <@> to_bm25query(%s, %s)").format(content=table.content),
        (query, index_name(table)),
    )
    # the index's score carries BM25's (k1 + 1) factor, which `bm25_search.py`'s
    # (Lucene's) leaves out: divided here, the two backends' scores agree
    scale = Frag(sql.SQL(") / %s::float8"), (1 + BM25_K1,))
    order = Frag(sql.SQL(' ORDER BY score DESC, id COLLATE "C" LIMIT %s'), (k,))
    if where is None:
        return (
            Frag(sql.SQL("SELECT {id} AS id, -(").format(id=table.id))
            + bm25
            + scale
            + Frag(sql.SQL(" AS score FROM {table} ORDER BY ").format(table=table.qualname))
            + bm25
            + Frag(sql.SQL(" LIMIT %s"), (k,))
        )
    n = candidates(k)
    top = (
        Frag(sql.SQL("WITH top AS MATERIALIZED (SELECT {id} AS id, -(").format(id=table.id))
        + bm25
        + scale
        + Frag(sql.SQL(" AS score, coalesce(("))
        + where
        + Frag(sql.SQL("), false) AS ok FROM {table} ORDER BY ").format(table=table.qualname))
        + bm25
        + Frag(sql.SQL(" LIMIT %s),"), (n,))
        # the candidates are enough: k of them pass, or the index had no more
        + Frag(
            sql.SQL(
                " enough AS (SELECT count(*) FILTER (WHERE ok) >= %s OR count(*) < %s AS yes"
                " FROM top)"
            ),
            (k, n),
        )
    )
    exact = (
        Frag(sql.SQL(" SELECT id, score FROM (SELECT {id} AS id, -(").format(id=table.id))
        + bm25
        + scale
        + Frag(sql.SQL(" AS score FROM {table} WHERE ").format(table=table.qualname))
        + where
        + Frag(sql.SQL(") AS e WHERE score > 0 AND NOT (SELECT yes FROM enough)"))
    )
    return (
        top
        + Frag(
            sql.SQL(
                " SELECT id, score FROM (SELECT id, score FROM top"
                " WHERE ok AND (SELECT yes FROM enough) UNION ALL"
            )
        )
        + exact
        + Frag(sql.SQL(") AS r"))
        + order
    )
