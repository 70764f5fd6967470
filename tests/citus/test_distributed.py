"""Collections distributed over a real Citus cluster (coordinator + workers).

Every feature of the store is run on a collection sharded by id and on a
multi-tenant one sharded by tenant, and compared with the same collection on
one ordinary server: with exact searches the answers must be the same, BM25
included (its statistics are kept by the writes, there being no triggers on
a distributed table). Per-search settings are shown to reach the workers by
what the shards' HNSW scans return, and by every shard's plan.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import (
    HNSWIndex,
    IndexProgress,
    PGVStore,
    PostgresByteStore,
    PostgresRecordManager,
    SchemaError,
)
from langchain_pgvstore.config import Table

DIM = 16
EMB = DeterministicFakeEmbedding(size=DIM)
WORDS = "apple pear plum fig kiwi lime date grape melon berry".split()


def _corpus(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 9)))) for _ in range(n)]
    vectors = rng.normal(size=(n, DIM))
    metas = [{"n": i % 5, "even": i % 2 == 0} for i in range(n)]
    return texts, vectors, metas, [f"r{i}" for i in range(n)]


def _pair(dsn: str, citus_dsn: str, name: str, multi_tenant: bool, **kwargs: Any):
    """The same collection on one server and distributed (exact search: no ANN index)."""
    kw: dict[str, Any] = {"collection": name, "multi_tenant": multi_tenant, **kwargs}
    one = PGVStore(EMB, connection=dsn, **kw)
    many = PGVStore(EMB, connection=citus_dsn, distributed=True, shard_count=4, **kw)
    if multi_tenant:
        return one, many, one.for_tenant("acme"), many.for_tenant("acme")
    return one, many, one, many


def _answers(store: PGVStore, query: np.ndarray) -> dict[str, Any]:
    q = list(query)

    def scored(pairs: list[Any]) -> list[tuple[str, float]]:
        return [(str(d.id), round(float(s), 6)) for d, s in pairs]

    return {
        "similarity": scored(store.similarity_search_with_score_by_vector(q, k=8)),
        "filtered": scored(store.similarity_search_with_score_by_vector(q, k=5, filter={"n": 2})),
        "mmr": [d.id for d in store.max_marginal_relevance_search_by_vector(q, k=4, fetch_k=12)],
        "keyword": scored(store.keyword_search_with_score("plum kiwi", k=10)),
        "keyword_filtered": scored(
            store.keyword_search_with_score("apple", k=10, filter={"even": True})
        ),
        "hybrid": scored(store.hybrid_search_with_score_by_vector("plum fig", q, k=6)),
        "get": [d.id for d in store.get({"n": {"$in": [1, 3]}}, limit=7, offset=2)],
        "by_ids": [d.page_content for d in store.get_by_ids(["r3", "r1", "nope"])],
        "count": store.count(),
    }


@pytest.mark.parametrize("multi_tenant", [False, True], ids=["by-id", "by-tenant"])
def test_a_distributed_collection_answers_like_one_server(dsn, citus_dsn, multi_tenant) -> None:
    name = f"c_{uuid.uuid4().hex[:10]}"
    one, many, a, b = _pair(dsn, citus_dsn, name, multi_tenant, index=None)
    try:
        texts, vectors, metas, ids = _corpus(300)
        for store in (a, b):
            store.add_embeddings(texts, vectors, metas, ids=ids)
        queries = np.random.default_rng(1).normal(size=(3, DIM))
        for q in queries:
            assert _answers(b, q) == _answers(a, q)
        # upserts (some rows changed, some re-sent unchanged), deletes by id and by filter
        changed = [t + " melon" for t in texts[:40]]
        for store in (a, b):
            store.add_embeddings(changed + texts[40:60], np.vstack([vectors[:40] + 0.5, vectors[40:60]]),
                                 metas[:60], ids=ids[:60])  # fmt: skip
            store.delete(["r5", "r6", "missing"])
            store.delete(filter={"n": 4, "even": True})
        for q in queries:
            assert _answers(b, q) == _answers(a, q)
    finally:
        for store in (one, many):
            store.delete_collection()
            store.close()


def _folded(conn: psycopg.Connection, name: str) -> dict[str, tuple[int, int]]:
    stats = Table("public", name).index_name("bm25")
    rows = conn.execute(
        psycopg.sql.SQL(
            "SELECT term, sum(docs), sum(tokens) FROM {} GROUP BY term HAVING sum(docs) <> 0"
        ).format(psycopg.sql.Identifier(stats))
    ).fetchall()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def _recounted(conn: psycopg.Connection, name: str) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        psycopg.sql.SQL(
            "SELECT u.lexeme, count(*), sum(coalesce(cardinality(u.positions), 1))"
            " FROM {t}, unnest(tsv) AS u GROUP BY u.lexeme"
            " UNION ALL SELECT '', count(*), sum(tsv_len) FROM {t}"
        ).format(t=psycopg.sql.Identifier(name))
    ).fetchall()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows if r[1]}


def test_statistics_kept_by_the_writes_equal_a_recount(citus_dsn, citus_collection) -> None:
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True,
        bulk_rebuild_rows=100,
    )  # fmt: skip
    try:
        texts, vectors, metas, ids = _corpus(400, seed=3)
        store.add_embeddings(texts[:200], vectors[:200], metas[:200], ids=ids[:200])  # direct COPY
        store.add_embeddings(texts[150:300], vectors[150:300], metas[150:300], ids=ids[150:300])
        store.add_embeddings([t + " date" for t in texts[:50]], vectors[:50], ids=ids[:50])
        store.add_embeddings(texts[50:100], vectors[50:100], metas[50:100], ids=ids[50:100])
        store.delete(ids[280:300])
        store.delete(filter={"n": 0})
        with psycopg.connect(citus_dsn, autocommit=True) as conn:
            triggers = conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                (citus_collection,),
            ).fetchone()
            assert triggers == (0,)
            assert _folded(conn, citus_collection) == _recounted(conn, citus_collection)
    finally:
        store.delete_collection()
        store.close()


def test_tables_are_distributed_and_reference_tables(citus_dsn, citus_collection) -> None:
    for multi_tenant, column in ((False, "id"), (True, "tenant")):
        name = citus_collection + ("_t" if multi_tenant else "")
        store = PGVStore(
            EMB, connection=citus_dsn, collection=name, distributed=True,
            multi_tenant=multi_tenant, tenant="acme" if multi_tenant else None, shard_count=4,
        )  # fmt: skip
        try:
            store.add_texts(["apple"], ids=["1"])
            with psycopg.connect(citus_dsn, autocommit=True) as conn:
                kinds = dict(
                    conn.execute(
                        "SELECT logicalrelid::text, partmethod::text || coalesce("
                        "column_to_column_name(logicalrelid, partkey), '') FROM pg_dist_partition"
                        " WHERE logicalrelid::text = ANY(%s)",
                        ([name, Table("public", name).index_name("bm25"), "pgvstore_collections"],),
                    ).fetchall()
                )
                shards = conn.execute(
                    "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = %s::regclass", (name,)
                ).fetchone()
            assert kinds[name] == "h" + column
            assert kinds[Table("public", name).index_name("bm25")] == "n"
            assert kinds["pgvstore_collections"] == "n"
            assert shards == (4,)
        finally:
            store.delete_collection()
            store.close()


def _recall_at_1(store: PGVStore, vectors: np.ndarray, queries: np.ndarray, **knobs: Any) -> float:
    hits = 0
    for q in queries:
        found = store.similarity_search_by_vector(list(q), k=1, **knobs)
        cos = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
        hits += found[0].id == f"r{int(np.argmax(cos))}"
    return hits / len(queries)


def test_search_settings_reach_the_workers(citus_dsn, citus_collection) -> None:
    """With `ef_search=1` and no iterative scan each shard's HNSW returns what one step of
    the graph finds: recall drops, which it could only do if the setting reached the
    shards (left alone they use 40). Every shard's plan shows the index scan the
    tuned search asks for (`enable_seqscan = off`)."""
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True, shard_count=4,
        index=HNSWIndex(m=4, ef_construction=8),
    )  # fmt: skip
    try:
        rng = np.random.default_rng(5)
        vectors = rng.normal(size=(4000, DIM))
        store.add_embeddings(
            [f"t{i}" for i in range(4000)], vectors, ids=[f"r{i}" for i in range(4000)]
        )
        queries = rng.normal(size=(60, DIM))
        wide = _recall_at_1(store, vectors, queries, ef_search=400, iterative_scan="off")
        narrow = _recall_at_1(store, vectors, queries, ef_search=1, iterative_scan="off")
        assert wide >= 0.9 and narrow < wide - 0.15, (narrow, wide)
        plan = store.explain(list(queries[0]), k=3, ef_search=100)
        tasks = re.findall(r"->  Task\b", plan)
        assert len(tasks) == 4
        assert plan.count("Index Scan using") == 4, plan
        assert "Seq Scan" not in plan
    finally:
        store.delete_collection()
        store.close()


def test_tenant_searches_route_to_one_shard(citus_dsn, citus_collection) -> None:
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True,
        multi_tenant=True, shard_count=8,
    )  # fmt: skip
    try:
        for tenant in ("acme", "globex", "initech"):
            view = store.for_tenant(tenant)
            texts, vectors, metas, ids = _corpus(50, seed=len(tenant))
            view.add_embeddings(texts, vectors, metas, ids=ids)
        view = store.for_tenant("globex")
        plan = view.explain([1.0] * DIM, k=3, filter={"n": 1})
        assert re.search(r"Task Count: 1\b", plan), plan
        assert len(view.similarity_search_by_vector([1.0] * DIM, k=60)) == 50
        assert {d.metadata["n"] for d in view.get({"n": 1})} == {1}
        assert store.tenants() == {"acme": 50, "globex": 50, "initech": 50}
        assert store.delete_tenant("acme") == 50
        assert store.tenants() == {"globex": 50, "initech": 50}
    finally:
        store.delete_collection()
        store.close()


@pytest.mark.parametrize("selectivity", [0.5, 0.1, 0.01])
def test_filtered_search_returns_k_rows(citus_dsn, citus_collection, selectivity) -> None:
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True, shard_count=4,
        exact_search_threshold=10,
    )  # fmt: skip
    try:
        rng = np.random.default_rng(9)
        n = 2000
        flags = rng.random(n) < selectivity
        store.add_embeddings(
            [f"t{i}" for i in range(n)], rng.normal(size=(n, DIM)),
            [{"flag": bool(f)} for f in flags], ids=[f"r{i}" for i in range(n)],
        )  # fmt: skip
        k = 15
        for q in rng.normal(size=(5, DIM)):
            found = store.similarity_search_by_vector(list(q), k=k, filter={"flag": True})
            assert len(found) == min(k, int(flags.sum()))
            assert all(d.metadata["flag"] for d in found)
    finally:
        store.delete_collection()
        store.close()


def test_index_administration(citus_dsn, citus_collection) -> None:
    store = PGVStore(EMB, connection=citus_dsn, collection=citus_collection, distributed=True)
    try:
        texts, vectors, metas, ids = _corpus(500, seed=4)
        store.add_embeddings(texts, vectors, metas, ids=ids)
        kinds = {i.kind for i in store.index_status()}
        assert "hnsw" in kinds and "gin" in kinds
        store.drop_index()
        assert "hnsw" not in {i.kind for i in store.index_status()}
        assert len(store.similarity_search_by_vector(list(vectors[0]), k=5)) == 5
        seen: list[IndexProgress] = []
        store.create_index(progress=seen.append, progress_interval=0.05)
        assert "hnsw" in {i.kind for i in store.index_status() if i.valid}
        store.reindex(concurrently=True)
        assert all(s.tuples_total > 0 for s in seen)  # whatever snapshots the build left time for
        assert store.similarity_search_by_vector(list(vectors[7]), k=1)[0].id == "r7"
    finally:
        store.delete_collection()
        store.close()


async def test_async_calls_on_a_distributed_collection(citus_dsn, citus_collection) -> None:
    store = PGVStore(EMB, connection=citus_dsn, collection=citus_collection, distributed=True)
    try:
        texts, vectors, metas, ids = _corpus(100, seed=6)
        assert await store.aadd_embeddings(texts, vectors, metas, ids=ids) == ids
        found = await store.asimilarity_search_by_vector(list(vectors[3]), k=1, ef_search=50)
        assert found[0].id == "r3"
        assert await store.akeyword_search("plum", k=3)
        assert await store.adelete(["r3"]) is True
        assert await store.acount() == 99
    finally:
        await store.adelete_collection()
        await store.aclose()


@pytest.mark.parametrize("multi_tenant", [False, True], ids=["by-id", "by-tenant"])
def test_progress_phases_of_a_distributed_load(citus_dsn, citus_collection, multi_tenant) -> None:
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True,
        multi_tenant=multi_tenant, bulk_rebuild_rows=5,
    )  # fmt: skip
    writer = store.for_tenant("acme") if multi_tenant else store
    seen: list[tuple[str, int, int]] = []
    try:
        texts, _vectors, _metas, ids = _corpus(6, seed=7)
        writer.add_texts(texts, ids=ids, progress=lambda *event: seen.append(event))
        phases = [p for i, (p, _d, _t) in enumerate(seen) if i == 0 or seen[i - 1][0] != p]
        # by id: a large load into an empty table goes straight in, then builds the graph;
        # a tenant's load always merges, into the graph made with the table
        rest = ["merge"] if multi_tenant else ["index"]
        assert phases == ["embedding", "copy", *rest]
        assert seen[-1] == (rest[0], 6, 6) and ("copy", 6, 6) in seen
        assert writer.count() == 6
        assert writer.keyword_search(texts[0].split()[0], k=1)  # BM25 statistics were kept
    finally:
        store.delete_collection()
        store.close()


def test_side_tables_work_on_a_coordinator(citus_dsn) -> None:
    """The record manager and the embedding cache keep plain tables on the coordinator."""
    table = f"c_side_{uuid.uuid4().hex[:8]}"
    records = PostgresRecordManager("ns", connection=citus_dsn, table=table + "_records")
    cache = PostgresByteStore(connection=citus_dsn, table=table + "_kv")
    try:
        records.create_schema()
        records.update(["a", "b"], group_ids=["g", None])
        assert records.exists(["a", "b", "c"]) == [True, True, False]
        assert records.list_keys(group_ids=["g"]) == ["a"]
        cache.mset([("k1", b"v1"), ("k1", b"v2")])
        cache.mset([("k1", b"v3")])
        assert cache.mget(["k1", "k2"]) == [b"v3", None]
    finally:
        records.close()
        cache.close()
        with psycopg.connect(citus_dsn, autocommit=True) as conn:
            for name in (table + "_records", table + "_kv"):
                conn.execute(
                    psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(name))
                )


def test_distributed_needs_a_citus_coordinator(dsn, collection_name) -> None:
    store = PGVStore(EMB, connection=dsn, collection=collection_name, distributed=True)
    with pytest.raises(SchemaError, match="not a Citus coordinator"):
        store.add_texts(["apple"])
    store.close()


@pytest.fixture(autouse=True)
def _no_leftover_tables(citus_dsn) -> Iterator[None]:
    yield
