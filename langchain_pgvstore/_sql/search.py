"""Search builders: nearest neighbours, plain and filtered. Pure functions.

The settings a search runs with are built in `settings.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from ..config import Distance, Table, VectorType
from . import Frag, operator, type_name
from .columns import metadata_out

__all__ = [
    "Quantized",
    "explain",
    "filtered_knn",
    "ids_and_distances",
    "knn",
    "ranked_documents",
]


def query_vector(vector: object, vector_type: VectorType) -> Frag:
    """The query vector as a typed parameter."""
    return Frag(sql.SQL("CAST(%s AS {})").format(type_name(vector_type)), (vector,))


def _select(table: Table, dist: Frag, with_embedding: bool) -> Frag:
    columns = Frag(
        sql.SQL("SELECT {}, {}, {}, ").format(table.id, table.content, metadata_out(table))
    )
    columns += dist + Frag(sql.SQL(" AS distance"))
    if with_embedding:
        columns += Frag(sql.SQL(", {}").format(table.embedding))
    return columns + Frag(sql.SQL(" FROM {} WHERE ").format(table.qualname))


def _distance(table: Table, distance: Distance, vector_type: VectorType, vector: object) -> Frag:
    qvec = query_vector(vector, vector_type)
    return Frag(sql.SQL("{} {} ").format(table.embedding, operator(distance))) + qvec


# Adding zero hides the distance from the planner's index matching: the rows
# matching the filter are scanned (through the GIN index when it helps) and
# sorted exactly, instead of walking the ANN graph.
def _unindexed(dist: Frag) -> Frag:
    return Frag(sql.SQL("(")) + dist + Frag(sql.SQL(") + 0"))


def _hamming(table: Table, vector_type: VectorType, vector: object, dimensions: int) -> Frag:
    """Hamming distance between the binary-quantized row and query vectors."""
    bits = sql.SQL("::bit({})").format(sql.Literal(int(dimensions)))
    return (
        Frag(sql.SQL("binary_quantize({}){} <~> binary_quantize(").format(table.embedding, bits))
        + query_vector(vector, vector_type)
        + Frag(sql.SQL("){}").format(bits))
    )


def knn(
    table: Table,
    distance: Distance,
    vector_type: VectorType,
    vector: object,
    k: int,
    where: Frag,
    *,
    with_embedding: bool = False,
    exact: bool = False,
    quantized: Quantized | None = None,
) -> Frag:
    """The `k` rows nearest to `vector` among those matching `where`.

    Rows: `(id, content, metadata, distance[, embedding])`. The ORDER BY is the
    bare distance expression, the shape an HNSW or IVFFlat index can serve;
    `exact=True` orders by an expression no index serves, for exact results.
    With `quantized`, the binary-quantized index picks `pool` candidates by
    Hamming distance and they are re-ranked by the exact distance.
    """
    dist = _distance(table, distance, vector_type, vector)
    head = _select(table, dist, with_embedding) + where
    if quantized is not None and not exact:
        inner = (
            head
            + Frag(sql.SQL(" ORDER BY "))
            + _hamming(table, vector_type, vector, quantized.dimensions)
            + Frag(sql.SQL(" LIMIT %s"), (quantized.pool,))
        )
        return (
            Frag(sql.SQL("SELECT * FROM ("))
            + inner
            + Frag(sql.SQL(") AS candidates ORDER BY distance LIMIT %s"), (k,))
        )
    order = _unindexed(dist) if exact else dist
    return head + Frag(sql.SQL(" ORDER BY ")) + order + Frag(sql.SQL(" LIMIT %s"), (k,))


@dataclass(frozen=True, slots=True)
class Quantized:
    """Search through a binary-quantized index: `pool` candidates re-ranked exactly."""

    dimensions: int
    pool: int


def filtered_knn(
    table: Table,
    distance: Distance,
    vector_type: VectorType,
    vector: object,
    k: int,
    where: Frag,
    exact_below: int,
    *,
    with_embedding: bool = False,
    quantized: Quantized | None = None,
) -> Frag:
    """Filtered nearest neighbours that never under-return, in one statement.

    A filtered walk of the ANN graph finds few of the matching rows when the
    filter is selective, and a plain post-filter can return fewer than `k`
    rows. So the statement first counts the matches, reading at most
    `exact_below + 1` of them, and then runs exactly one of two branches (the
    other is cut by a one-time filter and never executed):

    - at most `exact_below` matches: an exact scan of the matching rows;
    - more: the ANN index scan, which with iterative scans enabled keeps
      walking the graph until `k` matching rows are found.

    The union is sorted by distance, which also restores the order of a
    `relaxed_order` iterative scan.
    """
    args = (table, distance, vector_type, vector, k, where)
    exact = knn(*args, with_embedding=with_embedding, exact=True)
    ann = knn(*args, with_embedding=with_embedding, quantized=quantized)
    count = (
        Frag(
            sql.SQL(
                "WITH matches AS MATERIALIZED (SELECT count(*) AS n FROM (SELECT 1 FROM {} WHERE "
            ).format(table.qualname)
        )
        + where
        + Frag(sql.SQL(" LIMIT %s) s)"), (exact_below + 1,))
    )

    # Each branch is a materialized CTE: the final ORDER BY then really sorts,
    # rather than merging inputs the planner wrongly believes are ordered (a
    # relaxed_order index scan is only roughly ordered). The gate above the
    # branch's LIMIT becomes a one-time filter: the branch not taken never runs.
    def branch(name: str, query: Frag, test: sql.SQL) -> Frag:
        return (
            Frag(sql.SQL(", {} AS MATERIALIZED (SELECT * FROM (").format(sql.Identifier(name)))
            + query
            + Frag(
                sql.SQL(") AS b WHERE (SELECT n FROM matches) {} %s)").format(test),
                (exact_below,),
            )
        )

    return (
        count
        + branch("exact", exact, sql.SQL("<="))
        + branch("ann", ann, sql.SQL(">"))
        + Frag(sql.SQL(" SELECT * FROM exact UNION ALL SELECT * FROM ann ORDER BY distance"))
    )


def ids_and_distances(nearest: Frag) -> Frag:
    """`(id, distance)` of a nearest-neighbour query's rows: a ranked leg for fusion."""
    return Frag(sql.SQL("SELECT id, distance FROM (")) + nearest + Frag(sql.SQL(") v"))


def ranked_documents(table: Table, ranked: Frag, scope: Frag | None = None) -> Frag:
    """Join ranked `(id, score)` rows to their documents, keeping the ranking.

    Rows: `(id, content, metadata, score)`, best first, ties by id. `scope`
    (the tenant predicate of a multi-tenant collection) picks the row among
    those sharing the id.
    """
    on = Frag(sql.SQL(") AS r JOIN {} AS d ON d.{} = r.id").format(table.qualname, table.id))
    if scope is not None:
        on += Frag(sql.SQL(" AND d.")) + scope
    return (
        Frag(
            sql.SQL("SELECT d.{}, d.{}, {}, r.score FROM (").format(
                table.id, table.content, metadata_out(table, "d")
            )
        )
        + ranked
        + on
        + Frag(sql.SQL(' ORDER BY r.score DESC, r.id COLLATE "C"'))
    )


def explain(query: Frag, *, analyze: bool) -> Frag:
    """The server's plan for `query`; with `analyze`, run it and add timings and buffers."""
    options = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ")
    return Frag(options) + query
