"""Operating a cluster under distributed collections: shard moves, rebalancing, tenant isolation.

An operator moves shards while the store keeps working: after
`citus_rebalance_start` every shard has its HNSW index where it now lives, and
the store's answers are the ones it gave before. Moves copy a shard either by
logical replication (Citus's default; it needs `wal_level = logical` on the
workers and a primary key, which every collection has) or with writes to the
shard blocked while it is copied (`shard_transfer_mode => 'block_writes'`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import psycopg
import pytest

from langchain_pgvstore import HNSWIndex, PGVStore, SchemaError
from tests.citus.test_distributed import DIM, EMB, _corpus


def _placements(conn: psycopg.Connection, name: str) -> dict[int, int]:
    """shard id -> the port of the worker holding it."""
    rows = conn.execute(
        "SELECT shardid, nodeport FROM citus_shards WHERE table_name = %s::regclass", (name,)
    ).fetchall()
    return {int(s): int(p) for s, p in rows}


def _workers(conn: psycopg.Connection) -> list[int]:
    rows = conn.execute(
        "SELECT nodeport FROM pg_dist_node WHERE groupid <> 0 AND shouldhaveshards ORDER BY 1"
    ).fetchall()
    return [int(r[0]) for r in rows]


def _hnsw_per_shard(conn: psycopg.Connection, name: str) -> list[str]:
    """How many HNSW indexes each shard has, asked on the worker that holds it."""
    rows = conn.execute(
        "SELECT result FROM run_command_on_shards(%s, $$SELECT count(*) FROM pg_indexes"
        " WHERE tablename = '%%s' AND indexdef LIKE '%%%%USING hnsw%%%%'$$)",
        (name,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _answers(store: PGVStore, queries: np.ndarray) -> list[Any]:
    out: list[Any] = []
    for q in queries:
        v = list(q)
        out.append(
            (
                [d.id for d in store.similarity_search_by_vector(v, k=8, exact=True)],
                [d.id for d in store.similarity_search_by_vector(v, k=5, filter={"n": 2})],
                [d.id for d, _ in store.keyword_search_with_score("plum kiwi", k=10)],
            )
        )
    out.append(store.count())
    return out


def _move(conn: psycopg.Connection, shard: int, source: int, target: int, mode: str) -> None:
    conn.execute(
        "SELECT citus_move_shard_placement(%s, '127.0.0.1', %s, '127.0.0.1', %s,"
        " shard_transfer_mode => %s::citus.shard_transfer_mode)",
        (shard, source, target, mode),
    )


def test_rebalance_keeps_searches_correct(citus_dsn, citus_collection) -> None:
    """Every shard moved to one worker, then `citus_rebalance_start` spreads them again:
    answers, index scans on every shard, and writes are as before."""
    shards = 6  # a colocation group of its own among the suite's tables
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True,
        shard_count=shards, index=HNSWIndex(m=8, ef_construction=32),
    )  # fmt: skip
    try:
        texts, vectors, metas, ids = _corpus(900, seed=11)
        store.add_embeddings(texts, vectors, metas, ids=ids)
        queries = np.random.default_rng(12).normal(size=(4, DIM))
        before = _answers(store, queries)
        with psycopg.connect(citus_dsn, autocommit=True) as conn:
            workers = _workers(conn)
            if len(workers) < 2:
                pytest.skip("moving shards needs a cluster with two workers or more")
            first = workers[0]
            for shard, port in _placements(conn, citus_collection).items():
                if port != first:
                    _move(conn, shard, port, first, "block_writes")
            assert set(_placements(conn, citus_collection).values()) == {first}
            assert _answers(store, queries) == before  # served by one worker
            conn.execute("SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')")
            conn.execute("SELECT citus_rebalance_wait()")
            spread = _placements(conn, citus_collection)
            assert len(set(spread.values())) == len(workers), spread
            assert _hnsw_per_shard(conn, citus_collection) == ["1"] * shards
        assert _answers(store, queries) == before
        plan = store.explain(list(queries[0]), k=3, ef_search=100)
        assert plan.count("Index Scan using") == shards, plan
        store.add_embeddings(["moved plum"], [vectors[0]], ids=["new"])
        assert [d.page_content for d in store.get_by_ids(["new"])] == ["moved plum"]
        assert store.delete(["new", "r1"]) is True
        assert store.count() == 899
    finally:
        store.delete_collection()
        store.close()


def test_shard_moves_need_logical_decoding_or_block_writes(citus_dsn, citus_collection) -> None:
    """Citus's default transfer mode replicates the shard logically; without
    `wal_level = logical` on the workers it is refused, and `block_writes` works."""
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True, shard_count=3,
    )  # fmt: skip
    try:
        texts, vectors, metas, ids = _corpus(60, seed=2)
        store.add_embeddings(texts, vectors, metas, ids=ids)
        with psycopg.connect(citus_dsn, autocommit=True) as conn:
            workers = _workers(conn)
            if len(workers) < 2:
                pytest.skip("moving shards needs a cluster with two workers or more")
            shard, port = sorted(_placements(conn, citus_collection).items())[0]
            target = next(w for w in workers if w != port)
            levels = conn.execute(
                "SELECT DISTINCT result FROM run_command_on_workers('SHOW wal_level')"
            ).fetchall()
            if [r[0] for r in levels] == ["logical"]:
                _move(conn, shard, port, target, "auto")
            else:
                with pytest.raises(
                    psycopg.Error, match=re.escape('requires "wal_level" >= "logical"')
                ):
                    _move(conn, shard, port, target, "auto")
                _move(conn, shard, port, target, "block_writes")
            assert _placements(conn, citus_collection)[shard] == target
        assert store.count() == 60
        assert store.similarity_search_by_vector(list(vectors[5]), k=1)[0].id == "r5"
    finally:
        store.delete_collection()
        store.close()


def test_a_large_tenant_isolated_to_its_own_shard(citus_dsn, citus_collection) -> None:
    """`isolate_tenant_to_new_shard` gives one tenant a shard of its own; the store
    routes its searches there and answers as before."""
    store = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True,
        multi_tenant=True, shard_count=5,
    )  # fmt: skip
    try:
        for seed, tenant in enumerate(("whale", "minnow", "krill")):
            texts, vectors, metas, ids = _corpus(120, seed=seed)
            store.for_tenant(tenant).add_embeddings(texts, vectors, metas, ids=ids)
        whale = store.for_tenant("whale")
        queries = np.random.default_rng(3).normal(size=(3, DIM))
        before = _answers(whale, queries)
        with psycopg.connect(citus_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT isolate_tenant_to_new_shard(%s, 'whale'::text, cascade_option => 'CASCADE',"
                " shard_transfer_mode => 'block_writes')",
                (citus_collection,),
            )
            shard = conn.execute(
                "SELECT get_shard_id_for_distribution_column(%s, 'whale'::text)",
                (citus_collection,),
            ).fetchone()
            assert shard is not None
            counts = conn.execute(
                "SELECT result FROM run_command_on_shards(%s, $$SELECT count(DISTINCT tenant)"
                " || ':' || count(*) FILTER (WHERE tenant = 'whale') FROM %%s$$)"
                " WHERE shardid = %s",
                (citus_collection, shard[0]),
            ).fetchone()
            assert counts == ("1:120",)
        assert _answers(whale, queries) == before
        plan = whale.explain(list(queries[0]), k=3)
        assert re.search(r"Task Count: 1\b", plan), plan
        assert store.tenants() == {"whale": 120, "minnow": 120, "krill": 120}
    finally:
        store.delete_collection()
        store.close()


def test_reopening_keeps_the_distribution(dsn, citus_dsn, citus_collection) -> None:
    """The registry records how a collection is distributed: a store opened later without
    `distributed=True` uses it as it is; asking a plain collection to be distributed is
    refused."""
    made = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, distributed=True, shard_count=4,
    )  # fmt: skip
    texts, vectors, metas, ids = _corpus(80, seed=8)
    made.add_embeddings(texts, vectors, metas, ids=ids)
    made.close()
    reopened = PGVStore(EMB, connection=citus_dsn, collection=citus_collection)
    try:
        reopened.add_embeddings(["plum plum"], [vectors[1]], ids=["r1"])  # an upsert
        assert reopened.count() == 80
        assert reopened.get_by_ids(["r1"])[0].page_content == "plum plum"
        assert "Task Count: 4" in reopened.explain(list(vectors[2]), k=2)
    finally:
        reopened.delete_collection()
        reopened.close()
    plain_name = citus_collection + "_plain"
    plain = PGVStore(EMB, connection=dsn, collection=plain_name)
    plain.add_texts(["apple"], ids=["1"])
    asked = PGVStore(EMB, connection=dsn, collection=plain_name, distributed=True)
    try:
        with pytest.raises(SchemaError, match="is not distributed, but this store asks for a"):
            asked.similarity_search("apple")
    finally:
        asked.close()
        plain.delete_collection()
        plain.close()
