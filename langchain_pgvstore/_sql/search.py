"""Search builders: nearest neighbours and transaction-local query settings. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg import sql

from ..config import Distance, Table, VectorType
from ..errors import ConfigError
from . import Frag

__all__ = ["Quantized", "SearchSettings", "filtered_knn", "knn", "settings_frags"]

IterativeScan = Literal["off", "relaxed_order", "strict_order"]


def query_vector(vector: object, vector_type: VectorType) -> Frag:
    """The query vector as a typed parameter."""
    return Frag(sql.SQL("CAST(%s AS {})").format(vector_type.sql_type), (vector,))


def _select(table: Table, dist: Frag, with_embedding: bool) -> Frag:
    columns = Frag(sql.SQL("SELECT {}, {}, {}, ").format(table.id, table.content, table.metadata))
    columns += dist + Frag(sql.SQL(" AS distance"))
    if with_embedding:
        columns += Frag(sql.SQL(", {}").format(table.embedding))
    return columns + Frag(sql.SQL(" FROM {} WHERE ").format(table.qualname))


def _distance(table: Table, distance: Distance, vector_type: VectorType, vector: object) -> Frag:
    qvec = query_vector(vector, vector_type)
    return Frag(sql.SQL("{} {} ").format(table.embedding, distance.operator)) + qvec


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


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """Per-call index knobs; applied with `set_config(..., true)`, so transaction-local."""

    ef_search: int | None = None
    probes: int | None = None
    iterative_scan: IterativeScan | None = None
    max_scan_tuples: int | None = None
    statement_timeout: float | None = None
    custom_plan: bool = False
    min_ef_search: int | None = None
    index_scan: bool = False

    def __post_init__(self) -> None:
        if self.statement_timeout is not None and not (
            isinstance(self.statement_timeout, (int, float))
            and not isinstance(self.statement_timeout, bool)
            and self.statement_timeout > 0
        ):
            raise ConfigError(
                "statement_timeout must be a positive number of seconds,"
                f" got {self.statement_timeout!r}"
            )
        if self.ef_search is not None and not (
            isinstance(self.ef_search, int) and 1 <= self.ef_search <= 1000
        ):
            raise ConfigError(f"ef_search must be an integer in [1, 1000], got {self.ef_search!r}")
        if self.probes is not None and not (
            isinstance(self.probes, int) and 1 <= self.probes <= 32768
        ):
            raise ConfigError(f"probes must be an integer in [1, 32768], got {self.probes!r}")
        if self.iterative_scan is not None and self.iterative_scan not in (
            "off",
            "relaxed_order",
            "strict_order",
        ):
            raise ConfigError(
                f"iterative_scan must be one of off, relaxed_order, strict_order,"
                f" got {self.iterative_scan!r}"
            )
        if self.max_scan_tuples is not None and not (
            isinstance(self.max_scan_tuples, int) and self.max_scan_tuples >= 1
        ):
            raise ConfigError(
                f"max_scan_tuples must be a positive integer, got {self.max_scan_tuples!r}"
            )

    @property
    def empty(self) -> bool:
        return (
            self.ef_search is None
            and self.probes is None
            and self.iterative_scan is None
            and self.max_scan_tuples is None
            and self.statement_timeout is None
            and not self.custom_plan
            and self.min_ef_search is None
            and not self.index_scan
        )


def settings_frags(settings: SearchSettings) -> list[Frag]:
    """`set_config` calls for the knobs that are set (values are parameters)."""
    pairs: list[tuple[str, str]] = []
    if settings.ef_search is not None:
        pairs.append(("hnsw.ef_search", str(settings.ef_search)))
    if settings.probes is not None:
        pairs.append(("ivfflat.probes", str(settings.probes)))
    if settings.iterative_scan is not None:
        pairs.append(("hnsw.iterative_scan", settings.iterative_scan))
        # IVFFlat has no strict ordering mode
        ivf = "off" if settings.iterative_scan == "off" else "relaxed_order"
        pairs.append(("ivfflat.iterative_scan", ivf))
    if settings.max_scan_tuples is not None:
        pairs.append(("hnsw.max_scan_tuples", str(settings.max_scan_tuples)))
    if settings.custom_plan:
        # the filtered statement's plan depends on its parameters (the filter's
        # selectivity); a cached generic plan chose a parallel sequential scan
        pairs.append(("plan_cache_mode", "force_custom_plan"))
        # its exact branch is cut at run time: do not start workers for it
        pairs.append(("max_parallel_workers_per_gather", "0"))
        # every sort left in it is unavoidable except the one that would replace
        # the ANN index scan: with statistics missing or stale the planner would
        # otherwise sort all matches when the filter is broad
        pairs.append(("enable_sort", "off"))
    if settings.index_scan:
        # pgvector's cost estimate grows with ef_search and probes: at high values
        # the planner reads the whole table instead, 1.3-3.3x slower than the
        # index on 5,000-10,000 rows (benchmarks/indexes.py)
        pairs.append(("enable_seqscan", "off"))
    if settings.statement_timeout is not None:
        pairs.append(("statement_timeout", str(max(1, round(settings.statement_timeout * 1000)))))
    frags = [Frag(sql.SQL("SELECT set_config(%s, %s, true)"), pair) for pair in pairs]
    if settings.min_ef_search is not None:
        # an HNSW scan returns at most ef_search rows: raise it to the rows asked
        # for, keeping a larger value configured on the server or set above.
        # Until a session first uses pgvector its library is not loaded and
        # hnsw.ef_search does not exist (current_setting would raise): read it
        # with missing_ok and fall back to pgvector's default, 40; pgvector
        # adopts the placeholder value when the scan loads it.
        frags.append(
            Frag(
                sql.SQL(
                    "SELECT set_config('hnsw.ef_search', greatest(coalesce(nullif("
                    "current_setting('hnsw.ef_search', true), '')::integer, 40), %s)::text, true)"
                ),
                (settings.min_ef_search,),
            )
        )
    return frags
