"""Search builders: nearest neighbours, plain and filtered. Pure functions.

The settings a search runs with are built in `settings.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from ..config import Distance, Table, VectorType
from . import Frag, operator, type_name
from .columns import content_out, metadata_out
from .ids import id_cast, id_text

__all__ = [
    "Quantized",
    "explain",
    "counted_knn",
    "filtered_knn",
    "ids_and_distances",
    "matches_estimate",
    "knn",
    "ranked_documents",
]


def query_vector(vector: object, vector_type: VectorType) -> Frag:
    """The query vector as a typed parameter."""
    return Frag(sql.SQL("CAST(%s AS {})").format(type_name(vector_type)), (vector,))


def _select(table: Table, dist: Frag, with_embedding: bool) -> Frag:
    columns = Frag(
        sql.SQL("SELECT {}, {}, {}, ").format(
            _id_out(table), content_out(table), metadata_out(table)
        )
    )
    columns += dist + Frag(sql.SQL(" AS distance"))
    if with_embedding:
        columns += Frag(sql.SQL(", {}").format(table.embedding))
    return columns + Frag(sql.SQL(" FROM {} WHERE ").format(table.qualname))


def _id_out(table: Table, alias: str | None = None) -> sql.Composable:
    """The select-list item for the id: text named `id` whatever an existing table calls
    it (the statements around a nearest-neighbour query refer to it by that name)."""
    if table.existing is None:
        return id_text(table, alias)
    return sql.SQL("{} AS id").format(id_text(table, alias))


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


def matches_estimate(table: Table, where: Frag) -> Frag:
    """One row `(n, rows)`: how many rows are estimated to match `where`, and how many
    the table holds, from the planner's statistics (no row before the first ANALYZE).

    `where` (an expression over `metadata` only) is evaluated on the column's
    sample in `pg_stats`: its most common values, weighted by their frequency,
    and its histogram bounds for the rest (without the first and last, the
    extremes, as PostgreSQL's own estimator does), scaled by `reltuples`. Any
    filter the compiler makes can be estimated this way, comparisons included,
    where the planner itself has no statistics and guesses. Reading and
    parsing the sample takes a fraction of a millisecond; counting the
    matches can take tens.
    """
    m = table.metadata
    return (
        Frag(
            sql.SQL(
                "SELECT c.reltuples * (mcv.matched + (1 - s.null_frac - mcv.total)"
                " * coalesce((SELECT avg(CASE WHEN "
            )
        )
        + where
        + Frag(
            sql.SQL(
                " THEN 1 ELSE 0 END) FROM unnest(h.b[2:cardinality(h.b) - 1]) AS x({m})), 0))"
                " AS n, c.reltuples AS rows"
                " FROM pg_stats s JOIN pg_namespace n ON n.nspname = s.schemaname"
                " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename"
                " CROSS JOIN LATERAL (SELECT s.histogram_bounds::text::jsonb[] AS b OFFSET 0) h"
                " CROSS JOIN LATERAL (SELECT coalesce(sum(x.f) FILTER (WHERE "
            ).format(m=m)
        )
        + where
        + Frag(
            sql.SQL(
                "), 0) AS matched, coalesce(sum(x.f), 0) AS total FROM unnest("
                "s.most_common_vals::text::jsonb[], s.most_common_freqs) AS x({m}, f)) mcv"
                " WHERE s.schemaname = %s AND s.tablename = %s AND s.attname = %s"
                " AND c.reltuples >= 0"
            ).format(m=m),
            (table.schema, table.name, table.names.metadata),
        )
    )


#: Without statistics (a table never analysed), the exact scan stops after this many rows.
UNKNOWN_THRESHOLD = 2_000


def filtered_knn(
    table: Table,
    distance: Distance,
    vector_type: VectorType,
    vector: object,
    k: int,
    where: Frag,
    exact_below: int | None,
    *,
    with_embedding: bool = False,
    quantized: Quantized | None = None,
) -> Frag:
    """Filtered nearest neighbours chosen by estimated cost, never under-returning.

    A walk of the ANN graph is fast when many rows match and slow when few do
    (it visits about k / selectivity rows); an exact scan of the matching rows
    costs in proportion to their number. The crossing point grows with the
    table: the statement takes the threshold `T = sqrt(4 k N)` for a table of N
    rows (2,000 for k=10 at 100,000 rows; `exact_below` when given) and
    decides from the planner's statistics (`matches_estimate`), not by counting:

    - estimated at most T matches: the matching rows are read (through the
      GIN index when it helps) with their distances, at most T + 1 of them. If
      that was all of them, the `k` nearest are exact (recall 1). If not, the
      scan stops there and the ANN walk runs. An estimate is only good to one
      histogram bucket (1/99 of the table), so the exact attempt is also made
      for estimates up to one bucket above T: a wrong attempt costs at most T
      rows read, while a graph walk over a selective filter costs thousands
      and can miss neighbours (from about 400,000 rows a bucket is larger than
      T, and a filter matching 0.1 % of a million rows is estimated at one
      bucket: walked, it found 8 of the 10 nearest). Before the table was
      ever analysed there is no estimate, and the exact attempt stops after
      2,000 rows;
    - otherwise, or after a stopped exact scan: the ANN index scan, which with
      iterative scans keeps walking the graph until `k` matching rows are
      found; if it still returns fewer (the filter matches fewer than `k`
      rows, or `max_scan_tuples` ran out), an exact scan of the matches answers.

    Each branch is a materialized CTE whose gate becomes a one-time filter:
    a branch not taken never runs. The final sort restores the order of a
    `relaxed_order` iterative scan.
    """
    args = (table, distance, vector_type, vector, k, where)
    exact = knn(*args, with_embedding=with_embedding, exact=True)
    ann = knn(*args, with_embedding=with_embedding, quantized=quantized)
    dist = _distance(table, distance, vector_type, vector)
    embedding = sql.SQL(", d.{}").format(table.embedding) if with_embedding else sql.SQL("")
    return (
        Frag(sql.SQL("WITH est AS MATERIALIZED (SELECT e.n, e.rows FROM (SELECT) AS one"))
        + Frag(sql.SQL(" LEFT JOIN LATERAL ("))
        + matches_estimate(table, where)
        + Frag(
            sql.SQL(
                ") AS e ON true), limits AS MATERIALIZED (SELECT x.cap, x.n IS NULL"
                " OR x.n <= x.cap + x.rows / 99"
                " AS try FROM (SELECT est.n, est.rows, CASE WHEN est.n IS NULL"
                " THEN coalesce(%s::bigint, %s)"
                " ELSE coalesce(%s::bigint, greatest(%s, ceil(sqrt(4 * %s * est.rows))::bigint))"
                " END AS cap FROM est) AS x)"
                ", cand AS MATERIALIZED (SELECT * FROM (SELECT {} AS id, "
            ).format(id_text(table)),
            (exact_below, UNKNOWN_THRESHOLD, exact_below, k, k),
        )
        + dist
        + Frag(sql.SQL(" AS distance FROM {} WHERE ").format(table.qualname))
        + where
        + Frag(
            sql.SQL(
                " LIMIT (SELECT cap + 1 FROM limits)) AS c WHERE (SELECT try FROM limits))"
                ", done AS MATERIALIZED (SELECT CASE WHEN NOT (SELECT try FROM limits)"
                " THEN false ELSE (SELECT count(*) FROM cand) <= (SELECT cap FROM limits) END"
                " AS done), ann AS MATERIALIZED (SELECT * FROM ("
            )
        )
        + ann
        + Frag(
            sql.SQL(
                ") AS b WHERE NOT (SELECT done FROM done))"
                ", fallback AS MATERIALIZED (SELECT * FROM ("
            )
        )
        + exact
        + Frag(
            sql.SQL(
                ") AS b WHERE NOT (SELECT done FROM done) AND (SELECT count(*) FROM ann) < %s)"
                " SELECT {id}, {content}, {metadata}, c.distance{embedding} FROM"
                " (SELECT * FROM cand WHERE (SELECT done FROM done) ORDER BY distance LIMIT %s) c"
                " JOIN {table} d ON d.{key} = c.id{cast}"
                " UNION ALL SELECT * FROM ann WHERE (SELECT count(*) FROM ann) >= %s"
                " UNION ALL SELECT * FROM fallback ORDER BY distance"
            ).format(
                id=_id_out(table, "d"),
                key=table.id,
                cast=id_cast(table),
                content=content_out(table, "d"),
                metadata=metadata_out(table, "d"),
                embedding=embedding,
                table=table.qualname,
            ),
            (k, k, k),
        )
    )


def counted_knn(
    table: Table,
    distance: Distance,
    vector_type: VectorType,
    vector: object,
    k: int,
    where: Frag,
    exact_below: int | None,
    *,
    with_embedding: bool = False,
    quantized: Quantized | None = None,
) -> Frag:
    """`filtered_knn` for a table whose statistics do not describe the rows a search
    sees: a tenant's rows in a multi-tenant collection (`pg_stats` describes every
    tenant's metadata together), or a Citus-distributed table (whose statistics live
    on the workers). The matches are counted instead, at most `exact_below + 1` of
    them (`UNKNOWN_THRESHOLD` by default), and exactly one branch runs: an exact
    scan of at most `exact_below` matches, else the ANN walk with iterative scans.
    """
    below = UNKNOWN_THRESHOLD if exact_below is None else exact_below
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
        + Frag(sql.SQL(" LIMIT %s) s)"), (below + 1,))
    )

    # Each branch is a materialized CTE: the final ORDER BY then really sorts (a
    # relaxed_order index scan is only roughly ordered); its gate becomes a
    # one-time filter, so the branch not taken never runs.
    def branch(name: str, query: Frag, test: sql.SQL) -> Frag:
        return (
            Frag(sql.SQL(", {} AS MATERIALIZED (SELECT * FROM (").format(sql.Identifier(name)))
            + query
            + Frag(sql.SQL(") AS b WHERE (SELECT n FROM matches) {} %s)").format(test), (below,))
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
    on = Frag(
        sql.SQL(") AS r JOIN {} AS d ON d.{} = r.id{}").format(
            table.qualname, table.id, id_cast(table)
        )
    )
    if scope is not None:
        on += Frag(sql.SQL(" AND d.")) + scope
    return (
        Frag(
            sql.SQL("SELECT {}, {}, {}, r.score FROM (").format(
                id_text(table, "d"), content_out(table, "d"), metadata_out(table, "d")
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
