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
