"""The nearest-neighbour statement for one search: which query shape, which settings.

Pure: `StoreCore._search` builds it once per shape (k, filter text, options)
and caches it with a slot for the query vector.
"""

from __future__ import annotations

from ._options import SearchOptions
from ._schema import CollectionSpec
from ._sql import Frag
from ._sql.existing import embedded_only
from ._sql.filters import TRUE
from ._sql.search import Quantized, counted_knn, filtered_knn, knn
from ._sql.settings import Settings, search_settings
from ._statements import VECTOR
from .config import HNSWIndex

__all__ = ["HNSW_DEFAULT_EF_SEARCH", "nearest_statement", "quantized_pool"]

#: pgvector's default `hnsw.ef_search`: an HNSW scan returns at most this many rows.
HNSW_DEFAULT_EF_SEARCH = 40


def nearest_statement(
    spec: CollectionSpec,
    k: int,
    where: Frag,
    options: SearchOptions,
    with_embedding: bool,
    exact_below: int | None,
) -> tuple[Frag, Settings]:
    """The nearest-neighbour statement of one search shape (the query vector a slot),
    and the settings it runs with.

    Unfiltered: the plain `ORDER BY distance LIMIT k`. With a filter (and an
    index, or none configured: one may have been built since): `filtered_knn`,
    which chooses between an exact scan of the matches and the ANN walk from the
    planner's statistics (in a multi-tenant or distributed collection, or one with
    typed columns, `counted_knn`, which counts them), with iterative scans so the graph walk
    goes on until `k` matching rows are found.
    A binary-quantized index picks a candidate pool by Hamming distance,
    re-ranked exactly.
    """
    filtered = where is not TRUE
    if spec.table.existing is not None:
        # an existing table's rows wait for their embedding with NULL there: an ANN
        # index leaves them out, an exact scan must be told to
        where = embedded_only(spec.table, where)
    args = (spec.table, spec.distance, spec.vector_type, VECTOR, k, where)
    exact = options.exact
    quantized = None if exact else quantized_pool(spec, k, options)
    ef_search = options.ef_search
    if quantized is not None:
        # the graph must hand over the whole candidate pool, not ef_search rows
        ef_search = min(1000, max(ef_search or HNSW_DEFAULT_EF_SEARCH, quantized.pool))
    ef_floor = None
    iterative = options.iterative_scan
    # a store configured with index=None may still search an ANN index: one that
    # create_index() built after a bulk load, or one built by hand; its statements
    # must not under-return then, so they are written as if it had one
    maybe_hnsw = spec.index is None or isinstance(spec.index, HNSWIndex)
    if (
        maybe_hnsw
        and quantized is None
        and not exact
        and (k > HNSW_DEFAULT_EF_SEARCH or (ef_search or k) < k)
    ):
        ef_floor = min(1000, k)
        if k > 1000 and iterative is None:
            # past ef_search's ceiling only an iterative scan yields more rows
            iterative = "strict_order"
    tuned = (
        ef_search is not None
        or options.probes is not None
        or iterative is not None
        or options.max_scan_tuples is not None
        or options.statement_timeout is not None
        or ef_floor is not None
    )
    if exact or not filtered:
        query = knn(*args, with_embedding=with_embedding, exact=exact, quantized=quantized)
        # a caller who tunes the index wants the index, not a sequential scan
        index_scan = spec.index is not None and not exact and tuned
        filtered_plan, generic_plan = False, True
    else:
        threshold = options.exact_search_threshold
        table = spec.table
        # the statistics describe neither one tenant's rows nor a distributed table's,
        # and the estimate samples only `metadata`, where declared columns are not
        by_cost = (
            not table.multi_tenant
            and table.distribution is None
            and not table.columns
            and table.existing is None
        )
        query = (filtered_knn if by_cost else counted_knn)(
            *args,
            exact_below if threshold is None else threshold,
            with_embedding=with_embedding,
            quantized=quantized,
        )
        # when the filter matches many rows the graph walk continues until k
        # of them are found, instead of returning what the first pass saw
        iterative = iterative or "relaxed_order"
        index_scan, filtered_plan, generic_plan = False, True, by_cost
    settings = search_settings(
        ef_search=ef_search,
        probes=options.probes,
        iterative_scan=iterative,
        max_scan_tuples=options.max_scan_tuples,
        statement_timeout_s=options.statement_timeout,
        filtered_plan=filtered_plan,
        generic_plan=generic_plan,
        index_scan=index_scan,
        ef_search_at_least=ef_floor,
    )
    return query, settings


def quantized_pool(spec: CollectionSpec, k: int, options: SearchOptions) -> Quantized | None:
    index = spec.index
    if not isinstance(index, HNSWIndex) or index.quantization != "binary":
        return None
    assert spec.dimensions is not None
    pool = options.rerank_pool or index.rerank_pool or max(40, 4 * k)
    return Quantized(spec.dimensions, max(pool, k))
