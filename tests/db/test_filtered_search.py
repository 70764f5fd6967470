"""Filtered ANN search never under-returns; filters work in every entry point."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_pgvstore import FilterError, InputError
from tests.fix_db import unique_name

DIM = 32
ROWS = 20_000


@pytest.fixture(scope="module")
def big(make_module_store):
    """20,000 clustered vectors with flags matching 10%, 1% and 0.1% of rows."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(50, DIM))
    vecs = centres[rng.integers(0, 50, ROWS)] + 0.3 * rng.normal(size=(ROWS, DIM))
    flags = {"p10": 0.1, "p1": 0.01, "p01": 0.001}
    draws = {k: rng.random(ROWS) < p for k, p in flags.items()}
    metas = [{k: True for k in flags if draws[k][i]} | {"n": i} for i in range(ROWS)]
    store = make_module_store(DIM, collection=unique_name("big"), bulk_rebuild_rows=5_000)
    store.add_embeddings(
        [f"r{i}" for i in range(ROWS)], vecs, metas, ids=[str(i) for i in range(ROWS)]
    )
    queries = centres[:20] + 0.3 * rng.normal(size=(20, DIM))
    return store, queries


def recall(store, queries, filt, **kwargs) -> tuple[float, int]:
    hits, fewest = [], 10
    for q in queries:
        got = [
            d.id for d in store.similarity_search_by_vector(list(q), k=10, filter=filt, **kwargs)
        ]
        truth = [
            d.id for d in store.similarity_search_by_vector(list(q), k=10, filter=filt, exact=True)
        ]
        fewest = min(fewest, len(got))
        hits.append(len(set(got) & set(truth)) / len(truth))
    return float(np.mean(hits)), fewest


@pytest.mark.parametrize("flag", ["p1", "p01"])
def test_selective_filters_return_k_with_high_recall(big, flag) -> None:
    store, queries = big
    r, fewest = recall(store, queries, {flag: True})
    assert fewest == 10
    assert r >= 0.95


def test_ann_branch_with_iterative_scan_never_under_returns(big) -> None:
    store, queries = big
    # force the graph walk even for a 1% filter: iterative scans keep going until k rows
    _, fewest = recall(store, queries, {"p1": True}, exact_search_threshold=0)
    assert fewest == 10


async def test_async_filtered_search_matches_sync(big) -> None:
    store, queries = big
    q = list(queries[0])
    sync = [d.id for d in store.similarity_search_by_vector(q, k=10, filter={"p10": True})]
    asyn = [d.id for d in await store.asimilarity_search_by_vector(q, k=10, filter={"p10": True})]
    assert sync == asyn and len(sync) == 10


def test_exact_flag_validated(big) -> None:
    store, queries = big
    with pytest.raises(InputError, match="exact must be True or False"):
        store.similarity_search_by_vector(list(queries[0]), k=3, exact="yes")
    with pytest.raises(InputError, match="exact_search_threshold"):
        store.similarity_search_by_vector(
            list(queries[0]), k=3, filter={"p1": True}, exact_search_threshold=-1
        )


_DEFAULTS = {
    "hnsw.ef_search": "40",
    "hnsw.iterative_scan": "off",
    "plan_cache_mode": "auto",
    "enable_sort": "on",
    "max_parallel_workers_per_gather": "2",
}


def _shown(conn) -> dict[str, str]:
    return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in _DEFAULTS}


def test_settings_end_before_the_next_call_on_the_store_connection(big, make_store) -> None:
    """On the store's own connections a search's knobs are session settings that the
    next call on that connection puts back before it runs (one connection here)."""
    store, queries = big
    one = make_store(DIM, collection=store.collection, pool_size=1)
    tuned = one.similarity_search_by_vector(
        list(queries[0]), k=5, filter={"p1": True}, ef_search=123
    )
    plain = one.similarity_search_by_vector(list(queries[0]), k=5)
    with one._connector.sync_pool().connection() as conn:
        assert _shown(conn) == _DEFAULTS
    assert len(tuned) == len(plain) == 5


def test_settings_never_touch_a_lent_pool(big, dsn, make_store) -> None:
    """On a pool the caller lent, settings are transaction-local: gone after the call."""
    from psycopg_pool import ConnectionPool

    store, queries = big
    with ConnectionPool(dsn, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        lent = make_store(DIM, connection=pool, collection=store.collection)
        hits = lent.similarity_search_by_vector(
            list(queries[0]), k=5, filter={"p1": True}, ef_search=123
        )
        assert len(hits) == 5
        with pool.connection() as conn:
            assert _shown(conn) == _DEFAULTS


@pytest.fixture
def small(make_store):
    s = make_store(8)
    docs = [
        ("a", {"lang": "en", "year": 2020, "tags": ["x", "y"], "specs": {"screen": 13}}),
        ("b", {"lang": "de", "year": 2021, "tags": ["y"], "specs": {"screen": 15}}),
        ("c", {"lang": "en", "year": 2022, "tags": [], "specs": {"screen": 15}}),
        ("d", {"lang": "fr", "year": 2023}),
    ]
    s.add_texts([t for t, _ in docs], [m for _, m in docs], ids=[t for t, _ in docs])
    return s


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        ({"lang": "en"}, ["a", "c"]),
        ({"year": {"$gte": 2021}}, ["b", "c", "d"]),
        ({"specs.screen": 15}, ["b", "c"]),
        ({"tags": {"$contains": "y"}}, ["a", "b"]),
        ({"$or": [{"lang": "fr"}, {"year": 2020}]}, ["a", "d"]),
        ({"lang": {"$nin": ["en", "de"]}}, ["d"]),
    ],
)
async def test_filters_everywhere(small, filt, expected) -> None:
    assert sorted(d.id for d in small.similarity_search("a", k=10, filter=filt)) == expected
    assert sorted(d.id for d in await small.asimilarity_search("a", k=10, filter=filt)) == expected
    pairs = small.similarity_search_with_relevance_scores("a", k=10, filter=filt)
    assert sorted(d.id for d, _ in pairs) == expected
    mmr = small.max_marginal_relevance_search("a", k=10, fetch_k=10, filter=filt)
    assert sorted(d.id for d in mmr) == expected
    assert [d.id for d in small.get(filter=filt)] == expected
    assert [d.id for d in await small.aget(filter=filt)] == expected


async def test_get_pages(small) -> None:
    assert [d.id for d in small.get(limit=2)] == ["a", "b"]
    assert [d.id for d in small.get(limit=2, offset=2)] == ["c", "d"]
    assert [d.id for d in await small.aget(filter={"lang": "en"}, limit=1, offset=1)] == ["c"]
    with pytest.raises(InputError, match="offset"):
        small.get(offset=-1)
    with pytest.raises(InputError, match="limit"):
        small.get(limit=0)


async def test_delete_by_filter_and_ids(small) -> None:
    small.delete(filter={"lang": "en"})
    assert [d.id for d in small.get()] == ["b", "d"]
    await small.adelete(ids=["b", "d"], filter={"lang": "fr"})  # both: ids AND filter
    assert [d.id for d in small.get()] == ["b"]
    with pytest.raises(InputError, match="non-empty filter"):
        small.delete(filter={})


async def test_bad_filter_raises_filter_error_everywhere(small) -> None:
    bad = {"$and": [{"lang": "en"}, {"price": {"$regex": "x"}}]}
    for call in (
        lambda: small.similarity_search("a", filter=bad),
        lambda: small.get(filter=bad),
        lambda: small.delete(filter=bad),
        lambda: small.max_marginal_relevance_search("a", filter=bad),
    ):
        with pytest.raises(FilterError) as info:
            call()
        assert info.value.path == "filter.$and[1].price"
        assert "unknown operator '$regex'" in str(info.value)
    with pytest.raises(FilterError):
        await small.asimilarity_search("a", filter=bad)


@pytest.mark.parametrize("k", [41, 100, 1500])
def test_large_k_is_not_capped_by_ef_search(big, k) -> None:
    store, queries = big
    docs = store.similarity_search_by_vector(list(queries[0]), k=k)
    assert len(docs) == k
    mmr = store.max_marginal_relevance_search_by_vector(list(queries[0]), k=5, fetch_k=min(k, 1000))
    assert len(mmr) == 5
    # an explicit smaller ef_search is raised to k as well
    assert len(store.similarity_search_by_vector(list(queries[1]), k=60, ef_search=10)) == 60


# -- the cost-based choice: estimates, the exact attempt and the fallbacks ---------------


def _ids(store, q, filt, **kwargs) -> list[str]:
    return [d.id for d in store.similarity_search_by_vector(list(q), k=10, filter=filt, **kwargs)]


def _ann_ran(plan: str) -> bool:
    """Whether the ANN branch's HNSW index scan executed in an EXPLAIN ANALYZE text."""
    lines = [line for line in plan.splitlines() if "Index Scan using" in line and "_hnsw" in line]
    return any("never executed" not in line for line in lines)


@pytest.mark.parametrize(
    ("filt", "expected"),
    [({"p10": True}, 0.1), ({"p1": True}, 0.01), ({"n": {"$lt": 4_000}}, 0.2)],
)
def test_matches_are_estimated_from_statistics_for_any_filter(big, conn, filt, expected) -> None:
    """The estimate reads the column's sample in pg_stats, for containment and for
    comparisons alike (where the planner itself has no statistics)."""
    from langchain_pgvstore._sql.filters import compile_filter
    from langchain_pgvstore._sql.search import matches_estimate

    store, _ = big
    table = store._configured.table
    frag = matches_estimate(table, compile_filter(filt, table))
    estimate, rows = conn.execute(frag.sql, frag.params).fetchone()
    assert rows == ROWS
    # one histogram bucket is 1 % of the table
    assert abs(estimate - expected * ROWS) <= max(0.5 * expected * ROWS, 0.02 * ROWS)


def test_selective_filter_is_answered_exactly_without_the_index(big) -> None:
    store, queries = big
    plan = store.explain(list(queries[0]), k=10, filter={"p01": True}, analyze=True)
    assert not _ann_ran(plan)
    r, fewest = recall(store, queries, {"p01": True})
    assert (r, fewest) == (1.0, 10)


def test_broad_filter_walks_the_index_with_high_recall(big) -> None:
    """About 2,000 rows match p10: estimated above the threshold of 500 by more than
    a histogram bucket (202 rows), the graph is walked without an exact attempt."""
    store, queries = big
    knobs = {"exact_search_threshold": 500, "ef_search": 100}
    plan = store.explain(list(queries[0]), k=10, filter={"p10": True}, analyze=True, **knobs)
    assert _ann_ran(plan)
    assert "rows=501.00" not in plan  # no exact attempt (an actual row count)
    r, fewest = recall(store, queries, {"p10": True}, **knobs)
    assert fewest == 10
    assert r >= 0.95


def test_an_exact_attempt_that_finds_too_many_rows_hands_over_to_the_index(big, conn) -> None:
    """A threshold just below the number of p10 rows (about 2,000), with the estimate
    within one histogram bucket above it: the exact scan is tried, stops one row past
    the threshold, and the graph walk answers."""
    from langchain_pgvstore._sql.filters import compile_filter
    from langchain_pgvstore._sql.search import matches_estimate

    store, queries = big
    table = store._configured.table
    frag = matches_estimate(table, compile_filter({"p10": True}, table))
    estimate, rows = conn.execute(frag.sql, frag.params).fetchone()
    (actual,) = conn.execute(
        f'SELECT count(*) FROM "{store.collection}" WHERE metadata ? %s', ("p10",)
    ).fetchone()
    threshold = actual - 20
    assert estimate <= threshold + rows / 99  # the attempt is made
    knobs = {"exact_search_threshold": threshold, "ef_search": 100}
    plan = store.explain(list(queries[0]), k=10, filter={"p10": True}, analyze=True, **knobs)
    assert _ann_ran(plan)
    assert f"rows={threshold + 1}.00" in plan  # the exact attempt read one row past it
    r, fewest = recall(store, queries, {"p10": True}, **knobs)
    assert fewest == 10
    assert r >= 0.95


def test_an_estimate_within_a_bucket_larger_than_the_threshold_tries_the_exact_scan(
    big, conn
) -> None:
    """From about 400,000 rows a histogram bucket is larger than the threshold, and a
    selective filter is estimated at one bucket (a million rows: 0.1 % is 1,000 rows,
    a bucket 10,101, the threshold 6,325). Here the same at 20,000 rows with a threshold
    of 50: a filter matching the one row of a histogram bound is estimated at a bucket
    (202 rows); the exact scan is tried, finds the row, and the graph is not walked."""
    from langchain_pgvstore._sql.filters import compile_filter
    from langchain_pgvstore._sql.search import matches_estimate

    store, queries = big
    table = store._configured.table
    (bound,) = conn.execute(
        "SELECT (histogram_bounds::text::jsonb[])[5] FROM pg_stats WHERE schemaname = 'public'"
        " AND tablename = %s AND attname = 'metadata'",
        (store.collection,),
    ).fetchone()
    filt = {"n": bound["n"]}
    frag = matches_estimate(table, compile_filter(filt, table))
    estimate, rows = conn.execute(frag.sql, frag.params).fetchone()
    assert rows / 99 > 50 and 50 < estimate <= 50 + rows / 99  # above it, within a bucket
    plan = store.explain(
        list(queries[0]), k=10, filter=filt, analyze=True, exact_search_threshold=50
    )
    assert not _ann_ran(plan)
    assert _ids(store, queries[0], filt, exact_search_threshold=50) == [str(bound["n"])]


def test_an_index_walk_that_comes_back_short_is_answered_exactly(big) -> None:
    """The graph walk stops after max_scan_tuples rows; with a selective filter it finds
    fewer than k, and the exact scan of the matches answers instead."""
    store, queries = big
    for q in queries[:5]:
        got = _ids(store, q, {"p01": True}, exact_search_threshold=0, max_scan_tuples=30)
        assert got == _ids(store, q, {"p01": True}, exact=True)


@pytest.mark.parametrize("threshold", [0, 2_000])
def test_filters_matching_fewer_than_k_rows_return_all_of_them(big, threshold) -> None:
    store, queries = big
    q = queries[0]
    assert _ids(store, q, {"n": 7}, exact_search_threshold=threshold) == ["7"]
    few = {"n": {"$in": [1, 2, 3]}}
    assert sorted(_ids(store, q, few, exact_search_threshold=threshold)) == ["1", "2", "3"]
    assert _ids(store, q, {"n": -1}, exact_search_threshold=threshold) == []


def test_without_statistics_the_exact_attempt_decides(make_store) -> None:
    """Before the table was ever analysed there is no estimate: the exact scan is
    tried first, and the graph walk answers when more rows match than the threshold."""
    rng = np.random.default_rng(2)
    n = 3_000
    vecs = rng.normal(size=(n, DIM))
    store = make_store(DIM)
    # below the post-load ANALYZE's 10,000 rows: no statistics unless autovacuum ran
    store.add_embeddings(
        [f"r{i}" for i in range(n)], vecs, [{"third": i % 3 == 0} for i in range(n)],
        ids=[str(i) for i in range(n)],
    )  # fmt: skip
    for q in rng.normal(size=(5, DIM)):
        truth = _ids(store, q, {"third": True}, exact=True)
        assert _ids(store, q, {"third": True}) == truth
        walked = _ids(store, q, {"third": True}, exact_search_threshold=100, ef_search=200)
        assert len(walked) == 10
        assert len(set(walked) & set(truth)) >= 8


def test_an_index_built_after_a_load_without_one_never_under_returns(make_store) -> None:
    """The bulk-load recipe: a store with index=None, a load, then create_index(). Its
    searches meet an HNSW index the store was not configured with; a filtered search
    still returns k rows (a plain post-filtered walk finds about 4 of 40 here), and an
    unfiltered one more rows than ef_search."""
    from langchain_pgvstore import HNSWIndex

    rng = np.random.default_rng(8)
    n = 12_000  # past the post-load ANALYZE's 10,000 rows: an estimate, the ANN branch
    centres = rng.normal(size=(20, DIM))
    vecs = centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, DIM))
    store = make_store(DIM, index=None)
    store.add_embeddings(
        [f"r{i}" for i in range(n)], vecs, [{"p10": bool(i % 10 == 0)} for i in range(n)],
        ids=[str(i) for i in range(n)],
    )  # fmt: skip
    store.create_index(HNSWIndex())
    for q in centres[:5] + 0.3 * rng.normal(size=(5, DIM)):
        got = _ids(store, q, {"p10": True})
        assert len(got) == 10
        assert len(set(got) & set(_ids(store, q, {"p10": True}, exact=True))) >= 9
        assert len(store.similarity_search_by_vector(list(q), k=60)) == 60
