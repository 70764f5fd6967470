"""Index management and EXPLAIN against a real server."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_pgvstore import (
    ConfigError,
    HNSWIndex,
    InputError,
    IVFFlatIndex,
    SchemaError,
)
from langchain_pgvstore._indexes import IndexProgress

DIM = 16


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


@pytest.fixture
def store(make_store):
    return make_store(DIM, index=None)


def ann(store) -> dict[str, bool]:
    return {i.kind: i.valid for i in store.index_status() if i.kind in ("hnsw", "ivfflat")}


def test_create_drop_reindex(store) -> None:
    store.add_embeddings(["x"] * 500, vectors(500))
    assert ann(store) == {}
    store.create_index(
        HNSWIndex(m=8, ef_construction=32),
        maintenance_work_mem="64MB",
        max_parallel_maintenance_workers=0,
    )
    infos = {i.kind: i for i in store.index_status()}
    assert infos["hnsw"].valid and infos["hnsw"].size_bytes > 0
    assert "vector_cosine_ops" in infos["hnsw"].definition and "m='8'" in infos["hnsw"].definition
    store.reindex()
    assert ann(store) == {"hnsw": True}
    with pytest.raises(SchemaError, match="already has a hnsw index"):
        store.create_index(IVFFlatIndex())
    store.create_index(IVFFlatIndex(lists=4), replace=True)
    assert ann(store) == {"ivfflat": True}
    store.drop_index()
    assert ann(store) == {}
    with pytest.raises(SchemaError, match="no ANN index"):
        store.reindex()


async def test_concurrent_builds_async(store) -> None:
    await store.aadd_embeddings(["x"] * 300, vectors(300))
    await store.acreate_index(HNSWIndex(), concurrently=True)
    assert ann(store) == {"hnsw": True}
    await store.areindex(concurrently=True)
    assert {i.kind: i.valid for i in await store.aindex_status()}["hnsw"]
    await store.adrop_index(concurrently=True)
    assert ann(store) == {}


def test_build_settings_stay_with_the_build(store) -> None:
    store.add_embeddings(["x"] * 100, vectors(100))
    store.create_index(HNSWIndex(), maintenance_work_mem="123MB")
    pool = store._connector.sync_pool()
    with pool.connection() as conn:
        assert conn.execute("SHOW maintenance_work_mem").fetchone()[0] == "64MB"


def test_ivfflat_refused_on_empty_table(store) -> None:
    store.add_embeddings(["x"], vectors(1), ids=["only"])
    store.delete(["only"])
    with pytest.raises(InputError, match="refusing to build an IVFFlat index on an empty table"):
        store.create_index(IVFFlatIndex())


def test_no_collection_yet(store) -> None:
    with pytest.raises(SchemaError, match="does not exist yet"):
        store.create_index(HNSWIndex())
    assert store.index_status() == []


def test_invalid_index_detected_and_rebuilt(store, conn) -> None:
    store.add_embeddings(["x"] * 200, vectors(200))
    store.create_index(HNSWIndex())
    name = store._spec.table.index_name("hnsw")
    # what a failed CREATE INDEX CONCURRENTLY leaves behind
    conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (name,))
    assert ann(store) == {"hnsw": False}
    store.create_index(HNSWIndex())
    assert ann(store) == {"hnsw": True}


def test_progress_callback_reports_the_build(store) -> None:
    store.add_embeddings(["x"] * 20_000, vectors(20_000))
    seen: list[IndexProgress] = []
    store.create_index(
        HNSWIndex(m=16, ef_construction=128),
        progress=seen.append,
        progress_interval=0.02,
        max_parallel_maintenance_workers=0,
    )
    assert seen, "the build finished before any progress snapshot"
    assert all(isinstance(p.phase, str) and p.phase for p in seen)
    assert any(p.fraction is not None for p in seen)


@pytest.mark.parametrize(
    ("distance", "vector_type"),
    [
        ("cosine", "vector"),
        ("l2", "vector"),
        ("inner_product", "vector"),
        ("l1", "vector"),
        ("cosine", "halfvec"),
        ("l2", "halfvec"),
    ],
)
def test_explain_uses_the_ann_index_for_every_distance(make_store, distance, vector_type) -> None:
    store = make_store(DIM, distance=distance, vector_type=vector_type)
    n = 5_000
    metas = [{"g": i % 3} for i in range(n)]
    store.add_embeddings(["x"] * n, vectors(n), metas)
    index = store._spec.table.index_name("hnsw")
    q = list(vectors(1, seed=9)[0])
    plain = store.explain(q, k=10)
    assert f"Index Scan using {index}" in plain, plain
    # filtered: the count decides at run time; the ANN branch is the index scan
    filtered = store.explain(q, k=10, filter={"g": 1})
    assert f"Index Scan using {index}" in filtered, filtered
    # with analyze: a filter matching more rows than the threshold really walks the index
    analyzed = store.explain(q, k=10, filter={"g": 1}, analyze=True, exact_search_threshold=100)
    assert "Execution Time" in analyzed
    ann_line = next(line for line in analyzed.splitlines() if f"Index Scan using {index}" in line)
    assert "never executed" not in ann_line
    # a text query is embedded first
    assert "Index Scan using" in store.explain("some text", k=3)


async def test_aexplain(store) -> None:
    await store.aadd_embeddings(["x"] * 50, vectors(50))
    plan = await store.aexplain(list(vectors(1)[0]), k=5, exact=True)
    assert "Sort" in plan


@pytest.mark.parametrize("vector_type", ["vector", "halfvec"])
def test_binary_quantized_index_with_exact_rerank(make_store, vector_type) -> None:
    dim, n = 64, 3_000
    store = make_store(
        dim, vector_type=vector_type, index=HNSWIndex(quantization="binary", rerank_pool=80)
    )
    rng = np.random.default_rng(1)
    data = rng.normal(size=(n, dim)).astype(np.float32)
    store.add_embeddings(
        ["x"] * n, data, [{"g": i % 2} for i in range(n)], ids=[str(i) for i in range(n)]
    )
    [info] = [i for i in store.index_status() if i.kind == "hnsw"]
    assert "binary_quantize(embedding)" in info.definition and "bit_hamming_ops" in info.definition
    plan = store.explain(list(data[0]), k=10)
    assert f"Index Scan using {store._spec.table.index_name('hnsw')}" in plan
    # scores are exact distances, results sorted by them
    pairs = store.similarity_search_with_score_by_vector(list(data[7]), k=10)
    assert pairs[0][0].id == "7" and pairs[0][1] == pytest.approx(0.0, abs=1e-3)
    assert [s for _, s in pairs] == sorted(s for _, s in pairs)
    queries = data[:20] + 0.1 * rng.normal(size=(20, dim)).astype(np.float32)

    def recall(**kwargs) -> float:
        hits = []
        for q in queries:
            got = {d.id for d in store.similarity_search_by_vector(list(q), k=10, **kwargs)}
            exact = {d.id for d in store.similarity_search_by_vector(list(q), k=10, exact=True)}
            hits.append(len(got & exact) / 10)
        return float(np.mean(hits))

    # 64 sign bits of Gaussian noise are a coarse sieve: the pool size buys the recall back
    small, large = recall(), recall(rerank_pool=1000)
    assert large >= 0.9 and large >= small
    # a larger pool per call, and filters, go through the same path
    filtered = store.similarity_search_by_vector(
        list(data[3]), k=5, filter={"g": 1}, rerank_pool=200, exact_search_threshold=0
    )
    assert len(filtered) == 5 and all(d.metadata["g"] == 1 for d in filtered)
    with pytest.raises(InputError, match="rerank_pool"):
        store.similarity_search_by_vector(list(data[3]), k=5, rerank_pool=5000)


def test_l1_with_ivfflat_is_refused_before_anything_runs(make_store) -> None:
    with pytest.raises(ConfigError, match="IVFFlat has no operator class for the l1"):
        make_store(DIM, distance="l1", index=IVFFlatIndex())


def test_a_tuned_search_keeps_the_index(make_store) -> None:
    store = make_store(DIM)
    store.add_embeddings(["x"] * 3_000, vectors(3_000))
    index = store._spec.table.index_name("hnsw")
    # pgvector's cost estimate at ef_search=1000 makes a sequential scan look cheaper
    plan = store.explain(list(vectors(1, seed=9)[0]), k=10, ef_search=1000)
    assert f"Index Scan using {index}" in plan, plan
    exact = store.explain(list(vectors(1, seed=9)[0]), k=10, exact=True)
    assert "Seq Scan" in exact, exact


def test_quantization_must_match_the_index(make_store) -> None:
    bq = make_store(DIM, index=HNSWIndex(quantization="binary"))
    bq.add_embeddings(["x"] * 200, vectors(200))
    plain = make_store(DIM)
    with pytest.raises(SchemaError, match="would not serve this store's searches"):
        plain.similarity_search_by_vector(list(vectors(1)[0]), k=3)
    other = make_store(DIM, index=None)
    with pytest.raises(SchemaError, match="quantization='binary' would not serve"):
        other.create_index(HNSWIndex(quantization="binary"), replace=True)
