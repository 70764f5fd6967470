"""Store behaviour against a real PostgreSQL, each test run through the sync and the async API."""

from __future__ import annotations

import math
import uuid

import numpy as np
import psycopg
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import (
    ConfigError,
    DimensionError,
    EmbeddingError,
    InputError,
    PGVStore,
    SchemaError,
)
from langchain_pgvstore.config import SCHEMA_VERSION, HNSWIndex, IVFFlatIndex

DIM = 16


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    ).fetchone()[0]


async def test_add_search_get_roundtrip(api, store: PGVStore) -> None:
    ids = await api(
        "add_texts",
        ["apple pie", "banana bread", "cherry tart"],
        [{"fruit": "apple"}, {"fruit": "banana"}, {"fruit": "cherry"}],
    )
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(uuid.UUID(i) for i in ids)
    hits = await api("similarity_search", "banana bread", k=2)
    assert hits[0] == Document(id=ids[1], page_content="banana bread", metadata={"fruit": "banana"})
    assert len(hits) == 2
    got = await api("get_by_ids", [ids[2], "missing", ids[0]])
    assert [d.page_content for d in got] == ["cherry tart", "apple pie"]
    assert store.dimensions == DIM


async def test_ids_honoured_and_returned_in_input_order(api) -> None:
    docs = [
        Document(page_content="one", id="d1"),
        Document(page_content="two"),
        Document(page_content="three", id="d3"),
    ]
    ids = await api("add_documents", docs)
    assert ids[0] == "d1" and ids[2] == "d3" and uuid.UUID(ids[1])
    ids = await api("add_documents", docs, ids=["x", "y", "z"])
    assert ids == ["x", "y", "z"]
    assert [d.id for d in await api("get_by_ids", ["z", "y", "x", "d1"])] == ["z", "y", "x", "d1"]


async def test_upsert_replaces_content_metadata_and_vector(
    api, store: PGVStore, conn, collection_name
) -> None:
    await api("add_texts", ["old text"], [{"v": 1}], ids=["a"])
    await api("add_texts", ["new text"], [{"v": 2}], ids=["a"])
    assert count(conn, collection_name) == 1
    [doc] = await api("get_by_ids", ["a"])
    assert doc == Document(id="a", page_content="new text", metadata={"v": 2})
    [(hit, dist)] = await api("similarity_search_with_score", "new text", k=1)
    assert hit.id == "a" and dist == pytest.approx(0.0, abs=1e-6)
    created, updated = conn.execute(
        sql.SQL("SELECT created_at, updated_at FROM {} WHERE id = 'a'").format(
            sql.Identifier(collection_name)
        )
    ).fetchone()
    assert updated >= created


async def test_readding_unchanged_rows_writes_nothing(api, conn, collection_name) -> None:
    """Identical rows are not rewritten (no dead versions, no ANN inserts); changed ones are."""
    texts = ["alpha", "beta", "gamma"]
    metas = [{"n": 1}, {"n": 2, "tags": ["x", "y"]}, {"n": 3}]
    ids = ["a", "b", "c"]
    versions = sql.SQL("SELECT id, xmin::text, updated_at FROM {} ORDER BY id").format(
        sql.Identifier(collection_name)
    )
    await api("add_texts", texts, metas, ids=ids)
    before = conn.execute(versions).fetchall()
    # the same rows again, metadata keys in another order (jsonb equality ignores it)
    await api("add_texts", texts, [dict(reversed(m.items())) for m in metas], ids=ids)
    assert conn.execute(versions).fetchall() == before
    # one row changes its metadata, one its text (and so its vector): only those are rewritten
    await api("add_texts", ["alpha", "delta", "gamma"], [{"n": 1}, metas[1], {"n": 4}], ids=ids)
    after = conn.execute(versions).fetchall()
    assert after[0] == before[0]
    assert after[1][1] != before[1][1] and after[1][2] > before[1][2]
    assert after[2][1] != before[2][1] and after[2][2] > before[2][2]
    got = await api("get_by_ids", ids)
    assert [(d.page_content, d.metadata) for d in got] == [
        ("alpha", {"n": 1}),
        ("delta", metas[1]),
        ("gamma", {"n": 4}),
    ]
    # keyword statistics follow only the rows that changed
    assert await api("keyword_search", "beta", k=3) == []
    hits = await api("keyword_search", "delta gamma", k=3)
    assert sorted(d.id for d in hits) == ["b", "c"]


async def test_duplicate_ids_in_one_call_last_wins(api, conn, collection_name) -> None:
    ids = await api(
        "add_texts",
        ["first", "second", "third"],
        [{"n": 1}, {"n": 2}, {"n": 3}],
        ids=["same", "other", "same"],
    )
    assert ids == ["same", "other", "same"]
    assert count(conn, collection_name) == 2
    [doc] = await api("get_by_ids", ["same"])
    assert doc.page_content == "third" and doc.metadata == {"n": 3}


async def test_add_embeddings_precomputed(api, store: PGVStore) -> None:
    vecs = np.eye(DIM, dtype=np.float32)[:3]
    ids = await api("add_embeddings", ["x", "y", "z"], vecs, ids=["1", "2", "3"])
    assert ids == ["1", "2", "3"]
    hits = await api("similarity_search_with_score_by_vector", list(vecs[1]), k=1)
    assert hits[0][0].id == "2" and hits[0][1] == pytest.approx(0.0, abs=1e-6)
    assert [d.id for d in await api("similarity_search_by_vector", list(vecs[2]), k=1)] == ["3"]


async def test_filter_equality(api) -> None:
    await api(
        "add_texts",
        ["a", "b", "c"],
        [{"src": "docs"}, {"src": "blog"}, {"src": "docs"}],
        ids=["1", "2", "3"],
    )
    hits = await api("similarity_search", "b", k=3, filter={"src": "docs"})
    assert sorted(d.id for d in hits) == ["1", "3"]


async def test_empty_store_and_empty_add(api, store: PGVStore) -> None:
    assert await api("similarity_search", "anything", k=3) == []
    assert await api("add_texts", []) == []
    assert await api("get_by_ids", ["nope"]) == []
    assert await api("delete", ["nope"]) is True


async def test_delete_ids_and_collection(api, store: PGVStore, conn, collection_name) -> None:
    await api("add_texts", ["a", "b", "c"], ids=["1", "2", "3"])
    await api("delete", ["1", "missing"])
    assert sorted(d.id for d in await api("get_by_ids", ["1", "2", "3"])) == ["2", "3"]
    await api("delete_collection")
    assert conn.execute("SELECT to_regclass(%s)", (collection_name,)).fetchone()[0] is None
    # the store provisions again on next use
    await api("add_texts", ["again"], ids=["9"])
    assert [d.id for d in await api("get_by_ids", ["9", "2"])] == ["9"]


async def test_delete_needs_ids_or_filter(api) -> None:
    with pytest.raises(InputError, match="ids or a non-empty filter"):
        await api("delete")


BAD_ADDS = [
    pytest.param(
        dict(texts=["a", "b"], metadatas=[{}]),
        InputError,
        "2 texts but 1 metadatas",
        id="metadatas-length",
    ),
    pytest.param(
        dict(texts=["a"], ids=["1", "2"]), InputError, "1 texts but 2 ids", id="ids-length"
    ),
    pytest.param(dict(texts=["a\x00b"]), InputError, "document 0 contains a NUL", id="nul-text"),
    pytest.param(
        dict(texts=["a", "b"], metadatas=[{}, {"k": "v\x00"}]),
        InputError,
        "document 1 contains a NUL",
        id="nul-meta-value",
    ),
    pytest.param(
        dict(texts=["a"], metadatas=[{"k\x00": 1}]), InputError, "contains a NUL", id="nul-meta-key"
    ),
    pytest.param(
        dict(texts=["a"], metadatas=[{"s": {1, 2}}]),
        InputError,
        "not JSON-serialisable",
        id="set-meta",
    ),
    pytest.param(
        dict(texts=["a"], metadatas=[{"f": float("nan")}]),
        InputError,
        "not JSON-serialisable",
        id="nan-meta",
    ),
    pytest.param(
        dict(texts=["a"], metadatas=["notadict"]), InputError, "must be a dict", id="meta-not-dict"
    ),
    pytest.param(dict(texts=["a"], ids=[""]), InputError, "must not be empty", id="empty-id"),
    pytest.param(dict(texts=["a"], ids=[5]), InputError, "must be a string", id="int-id"),
    pytest.param(dict(texts=[3]), InputError, "must be a string", id="non-str-text"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_ADDS)
async def test_bad_input_is_rejected_and_writes_nothing(
    api, conn, collection_name, kwargs, error, message
) -> None:
    await api("add_texts", ["seed"], ids=["seed"])
    with pytest.raises(error, match=message):
        await api("add_texts", **kwargs)
    assert count(conn, collection_name) == 1


BAD_VECTORS = [
    pytest.param(
        [[1.0] * DIM, [1.0] * (DIM - 1)],
        DimensionError,
        "expected 16 dimensions, got 15 \\(document 1\\)",
        id="ragged",
    ),
    pytest.param(
        [[1.0] * 8, [1.0] * 8], DimensionError, "expected 16 dimensions, got 8", id="wrong-dim"
    ),
    pytest.param(
        [[1.0] * DIM, [float("nan")] * DIM], InputError, "vector 1 contains NaN", id="nan"
    ),
    pytest.param(
        [[float("inf")] * DIM, [1.0] * DIM],
        InputError,
        "vector 0 contains NaN or infinity",
        id="inf",
    ),
    pytest.param([[1e39] * DIM, [1.0] * DIM], InputError, "too large for vector", id="overflow"),
    pytest.param([["x"] * DIM, [1.0] * DIM], InputError, "only real numbers", id="not-numbers"),
]


@pytest.mark.parametrize(("vectors", "error", "message"), BAD_VECTORS)
async def test_bad_vectors_rejected(api, conn, collection_name, vectors, error, message) -> None:
    await api("add_embeddings", ["seed"], [[0.5] * DIM], ids=["seed"])
    with pytest.raises(error, match=message):
        await api("add_embeddings", ["a", "b"], vectors, ids=["a", "b"])
    assert count(conn, collection_name) == 1


class WrongCountEmbedding(DeterministicFakeEmbedding):
    def embed_documents(self, texts):
        return super().embed_documents(texts)[:-1]

    async def aembed_documents(self, texts):
        return self.embed_documents(texts)


async def test_embedding_returning_wrong_count(api, make_store) -> None:
    store = make_store(WrongCountEmbedding(size=DIM))
    with pytest.raises(EmbeddingError, match="returned 1 vectors for 2 texts"):
        await api.on(store)("add_texts", ["a", "b"])


async def test_failure_inside_the_transaction_leaves_no_rows(api, conn, collection_name) -> None:
    await api("add_texts", ["seed"], ids=["seed"])
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT no_poison CHECK (content <> 'poison')").format(
            sql.Identifier(collection_name)
        )
    )
    texts = [f"doc {i}" for i in range(500)] + ["poison"]
    with pytest.raises(psycopg.errors.CheckViolation):
        await api("add_texts", texts)
    assert count(conn, collection_name) == 1


def test_failure_during_copy_leaves_no_rows(store, conn, collection_name, monkeypatch) -> None:
    """The client dies half-way through COPY: nothing of the call is committed."""
    from langchain_pgvstore import _ingest as ingest

    store.add_texts(["seed"], ids=["seed"])
    real = ingest.encode_copy

    def exploding(batch, vector_type, rows_per_chunk=2000, **kwargs):
        chunks = real(batch, vector_type, rows_per_chunk=10, **kwargs)
        yield next(chunks)
        raise RuntimeError("client died mid-COPY")

    monkeypatch.setattr(ingest, "encode_copy", exploding)
    with pytest.raises(RuntimeError, match="mid-COPY"):
        store.add_texts([f"t{i}" for i in range(100)])
    assert count(conn, collection_name) == 1


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product", "l1"])
async def test_relevance_scores_exact_match_is_top(api, make_store, distance) -> None:
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(20, DIM))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = make_store(DIM, distance=distance)
    store.add_embeddings([f"v{i}" for i in range(20)], vecs, ids=[str(i) for i in range(20)])
    fn = store._select_relevance_score_fn()
    pairs = await api.on(store)("similarity_search_with_score_by_vector", list(vecs[5]), k=20)
    rel = [(d.id, fn(s)) for d, s in pairs]
    assert len(rel) == 20
    assert rel[0][0] == "5"
    assert rel[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= r <= 1.0 for _, r in rel)
    assert [r for _, r in rel] == sorted((r for _, r in rel), reverse=True)


async def test_similarity_search_with_relevance_scores(api) -> None:
    await api("add_texts", ["alpha", "beta", "gamma"], ids=["1", "2", "3"])
    pairs = await api("similarity_search_with_relevance_scores", "beta", k=3)
    assert len(pairs) == 3
    assert pairs[0][0].id == "2" and pairs[0][1] == pytest.approx(1.0, abs=1e-6)
    assert all(0.0 <= s <= 1.0 for _, s in pairs)
    high = await api("similarity_search_with_relevance_scores", "beta", k=3, score_threshold=0.99)
    assert [d.id for d, _ in high] == ["2"]


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True])
async def test_bad_k(api, k) -> None:
    with pytest.raises(InputError, match="k must be an integer in"):
        await api("similarity_search", "x", k=k)


def test_reopening_with_other_dimensions_or_distance(make_store) -> None:
    make_store(DIM).add_texts(["a"])
    s = make_store(DIM + 1, dimensions=DIM + 1)
    with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 17"):
        s.similarity_search("a")
    s = make_store(DIM, distance="l2")
    with pytest.raises(SchemaError, match="distance 'cosine'"):
        s.similarity_search("a")
    s = make_store(DIM + 4)
    # dimensions not given: inferred from the embedding, which disagrees with the registry
    with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 20"):
        s.similarity_search("a")


def test_store_reads_dimensions_from_registry(make_store) -> None:
    make_store(DIM).add_texts(["a"], ids=["1"])
    s = make_store(DIM)
    assert [d.id for d in s.get_by_ids(["1"])] == ["1"]
    assert s.dimensions == DIM


def _indexes(conn, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
    ).fetchall()
    return dict(rows)


@pytest.mark.parametrize(
    ("distance", "vector_type", "opclass"),
    [
        ("cosine", "vector", "vector_cosine_ops"),
        ("l2", "vector", "vector_l2_ops"),
        ("inner_product", "halfvec", "halfvec_ip_ops"),
        ("l1", "halfvec", "halfvec_l1_ops"),
    ],
)
def test_provisioned_schema(make_store, conn, collection_name, distance, vector_type, opclass):
    s = make_store(DIM, distance=distance, vector_type=vector_type)
    s.add_texts(["hello world"], [{"a": 1}], ids=["1"])
    [doc] = s.get_by_ids(["1"])
    assert doc.metadata == {"a": 1}
    cols = dict(
        conn.execute(
            "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c"
            " JOIN pg_attribute a ON a.attname = c.column_name AND a.attrelid = %s::regclass"
            " WHERE table_name = %s",
            (collection_name, collection_name),
        ).fetchall()
    )
    assert cols["id"] == "text" and cols["content"] == "text" and cols["metadata"] == "jsonb"
    assert cols["embedding"] == f"{vector_type}({DIM})"
    assert cols["tsv"] == "tsvector"
    assert cols["created_at"] == cols["updated_at"] == "timestamp with time zone"
    idx = _indexes(conn, collection_name)
    defs = " | ".join(idx.values())
    assert "USING gin (metadata jsonb_path_ops)" in defs
    assert "USING gin (tsv)" in defs
    assert f"USING hnsw (embedding {opclass})" in defs
    reg = conn.execute(
        "SELECT dimensions, distance, vector_type, text_search_config, embedding_model, schema_version"
        " FROM pgvstore_collections WHERE collection = %s",
        (collection_name,),
    ).fetchone()
    assert reg == (DIM, distance, vector_type, "english", None, SCHEMA_VERSION)
    tsv = conn.execute(
        sql.SQL("SELECT tsv::text FROM {}").format(sql.Identifier(collection_name))
    ).fetchone()[0]
    assert tsv == "'hello':1 'world':2"


def test_ivfflat_and_exact_indexes(make_store, conn, collection_name) -> None:
    make_store(DIM, index=IVFFlatIndex()).add_texts([f"t{i}" for i in range(30)])
    defs = " | ".join(_indexes(conn, collection_name).values())
    assert "USING ivfflat (embedding vector_cosine_ops) WITH (lists='1')" in defs
    other = collection_name + "_exact"
    s = make_store(DIM, collection=other, index=None)
    s.add_texts(["x"])
    assert [d.page_content for d in s.similarity_search("x", k=1)] == ["x"]
    defs = " | ".join(_indexes(conn, other).values())
    assert "USING gin (tsv)" in defs  # the table's other indexes are there
    assert "hnsw" not in defs and "ivfflat" not in defs


def _index_oid(conn, store: PGVStore) -> int:
    return conn.execute(
        "SELECT %s::regclass::oid", (store._spec.table.index_name("hnsw"),)
    ).fetchone()[0]


def _row_versions(conn, collection_name: str) -> list[str]:
    return conn.execute(
        sql.SQL("SELECT array_agg(xmin::text ORDER BY id) FROM {}").format(
            sql.Identifier(collection_name)
        )
    ).fetchone()[0]


@pytest.fixture
def small_graph_store(make_store) -> PGVStore:
    return make_store(DIM, bulk_rebuild_rows=50, index=HNSWIndex(m=8, ef_construction=32))


def test_bulk_load_rebuilds_index(small_graph_store, conn, collection_name) -> None:
    """A load at least as large as the table (and the threshold) rebuilds the HNSW index."""
    s = small_graph_store
    s.add_texts([f"a{i}" for i in range(10)])
    oid1 = _index_oid(conn, s)
    s.add_texts([f"b{i}" for i in range(5)])  # small: inserted into the index
    oid2 = _index_oid(conn, s)
    s.add_texts([f"c{i}" for i in range(60)])  # large: dropped and rebuilt
    oid3 = _index_oid(conn, s)
    assert oid1 == oid2 != oid3
    assert count(conn, collection_name) == 75
    valid = conn.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = %s", (oid3,)
    ).fetchone()[0]
    assert valid is True


def test_bulk_reload_of_unchanged_rows_keeps_the_index(
    small_graph_store, conn, collection_name
) -> None:
    """The rebuild policy counts rows that change: re-sending stored rows rebuilds nothing
    and writes nothing; changing them all still rebuilds."""
    s = small_graph_store
    texts = [f"doc {i}" for i in range(60)]
    ids = [f"id{i}" for i in range(60)]
    s.add_texts(texts, ids=ids)
    first = _index_oid(conn, s)
    xmins = _row_versions(conn, collection_name)
    s.add_texts(texts, ids=ids)  # as large as the table, but nothing changes
    assert _index_oid(conn, s) == first
    assert _row_versions(conn, collection_name) == xmins
    s.add_texts([t + " changed" for t in texts], ids=ids)  # every row changes
    assert _index_oid(conn, s) != first
    assert [d.page_content for d in s.get_by_ids(["id7"])] == ["doc 7 changed"]


def test_large_load_into_an_emptied_table_rebuilds_the_index(
    small_graph_store, conn, collection_name
) -> None:
    """Everything deleted, then a large load: it goes straight in and the graph is rebuilt
    over it, not filled row by row."""
    s = small_graph_store
    s.add_texts([f"a{i}" for i in range(60)], ids=[f"a{i}" for i in range(60)])
    first = _index_oid(conn, s)
    s.delete([f"a{i}" for i in range(60)])
    s.add_texts([f"b{i}" for i in range(60)])
    assert _index_oid(conn, s) != first
    assert count(conn, collection_name) == 60
    [hit] = s.similarity_search("b7", k=1)
    assert hit.page_content == "b7"


def test_custom_schema_and_text_search_config(make_store, conn, schema_name) -> None:
    s = make_store(DIM, collection="docs", schema=schema_name, text_search_config="simple")
    s.add_texts(["The Running dogs"], ids=["1"])
    tsv = conn.execute(
        sql.SQL("SELECT tsv::text FROM {}").format(sql.Identifier(schema_name, "docs"))
    ).fetchone()[0]
    assert tsv == "'dogs':3 'running':2 'the':1"


def test_dsn_with_sqlalchemy_prefix(dsn, make_store) -> None:
    url = psycopg.conninfo.make_conninfo(dsn)
    params = psycopg.conninfo.conninfo_to_dict(url)
    sa_url = f"postgresql+psycopg://{params.get('user', 'postgres')}@/{params.get('dbname', 'postgres')}?host={params['host']}"
    if "port" in params:
        sa_url += f"&port={params['port']}"
    s = make_store(DIM, connection=sa_url)
    s.add_texts(["x"], ids=["1"])
    assert [d.id for d in s.get_by_ids(["1"])] == ["1"]


def test_external_pools_are_used_and_left_open(dsn, make_store, collection_name) -> None:
    from psycopg_pool import ConnectionPool

    with ConnectionPool(dsn, min_size=1, max_size=2, open=True) as pool:
        s = make_store(DIM, connection=pool)
        s.add_texts(["x"], ids=["1"])
        s.close()
        # the caller's pool is still usable after the store closed
        with pool.connection() as c:
            assert (
                c.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(collection_name))
                ).fetchone()[0]
                == 1
            )


async def test_async_pool_given_sync_methods_derive_a_pool(dsn, make_store) -> None:
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
        store = make_store(DIM, connection=pool)
        await store.aadd_texts(["x"], ids=["1"])
        assert [d.id for d in store.get_by_ids(["1"])] == ["1"]
        await store.aclose()
        assert not pool.closed


async def test_from_texts_and_documents(api, make_store, dsn, collection_name) -> None:
    """`from_texts`/`afrom_texts` and `from_documents`/`afrom_documents`."""
    build = api.on(PGVStore)
    s = make_store.adopt(
        await build(
            "from_texts",
            ["a", "b"],
            DeterministicFakeEmbedding(size=DIM),
            [{"i": 1}, {"i": 2}],
            ids=["1", "2"],
            connection=dsn,
            collection=collection_name,
        )
    )
    assert [d.metadata for d in s.get_by_ids(["2", "1"])] == [{"i": 2}, {"i": 1}]
    s = make_store.adopt(
        await build(
            "from_documents",
            [Document(page_content="c", id="3")],
            DeterministicFakeEmbedding(size=DIM),
            connection=dsn,
            collection=collection_name,
        )
    )
    assert [d.id for d in await api.on(s)("get_by_ids", ["1", "3"])] == ["1", "3"]


async def test_progress_callback_and_batching(api, make_store) -> None:
    calls: list[int] = []

    class Counting(DeterministicFakeEmbedding):
        def embed_documents(self, texts):
            calls.append(len(texts))
            return super().embed_documents(texts)

        async def aembed_documents(self, texts):
            calls.append(len(texts))
            return super().embed_documents(texts)

    seen: list[tuple[int, int]] = []

    def embedding_only(phase: str, done: int, total: int) -> None:
        if phase == "embedding":
            seen.append((done, total))

    store = make_store(Counting(size=DIM), batch_size=4)
    texts = [f"t{i}" for i in range(10)]
    await api.on(store)("add_texts", texts, progress=embedding_only)
    assert calls == [4, 4, 2]
    assert seen == [(0, 10), (4, 10), (8, 10), (10, 10)]


def test_large_valid_inputs(store) -> None:
    ids = [f"id{i}" for i in range(20_000)]
    vecs = np.random.default_rng(0).normal(size=(20_000, DIM)).astype(np.float32)
    store.add_embeddings(["x"] * len(ids), vecs, ids=ids)
    assert len(store.get_by_ids(ids)) == 20_000
    store.delete(ids[:15_000])
    assert len(store.get_by_ids(ids)) == 5_000


def test_scores_are_distances(make_store) -> None:
    s = make_store(DIM, distance="l2")
    s.add_embeddings(["o", "p"], [[0.0] * DIM, [3.0, 4.0] + [0.0] * (DIM - 2)], ids=["o", "p"])
    pairs = s.similarity_search_with_score_by_vector([0.0] * DIM, k=2)
    assert [(d.id, round(sc, 5)) for d, sc in pairs] == [("o", 0.0), ("p", 5.0)]
    assert math.isclose(s._select_relevance_score_fn()(5.0), 1 / 6)


def test_unindexable_dimensions_are_refused_before_anything_is_created(
    make_store, conn, collection_name
) -> None:
    s = make_store(3072)
    with pytest.raises(
        ConfigError, match="at most 2000 dimensions, got 3072; use vector_type='halfvec'"
    ):
        s.add_texts(["x"])
    assert conn.execute("SELECT to_regclass(%s)", (collection_name,)).fetchone()[0] is None
    # halfvec indexes 3,072 dimensions (text-embedding-3-large)
    s = make_store(3072, vector_type="halfvec")
    s.add_texts(["x", "y"], ids=["1", "2"])
    assert s.similarity_search("x", k=1)[0].id == "1"
    assert [i.valid for i in s.index_status() if i.kind == "hnsw"] == [True]


def test_large_first_load_goes_straight_in_and_last_duplicate_wins(
    make_store, conn, collection_name
) -> None:
    s = make_store(DIM, bulk_rebuild_rows=5)
    texts = [f"t{i}" for i in range(10)]
    ids = ["a", "b", "c", "d", "a", "e", "f", "g", "b", "h"]
    assert s.add_texts(texts, [{"i": i} for i in range(10)], ids=ids) == ids
    assert count(conn, collection_name) == 8
    got = {d.id: d.metadata["i"] for d in s.get_by_ids(["a", "b", "h"])}
    assert got == {"a": 4, "b": 8, "h": 9}
    # BM25 statistics saw the direct load too
    assert [d.id for d in s.keyword_search("t9", k=1)] == ["h"]


def test_cached_statements_take_each_calls_vector_and_filter(store) -> None:
    store.add_texts(["alpha", "beta", "gamma"], [{"g": 1}, {"g": 2}, {"g": 1}], ids=["1", "2", "3"])
    for _ in range(3):  # the same shape, again and again
        assert store.similarity_search("alpha", k=1)[0].id == "1"
        assert store.similarity_search("beta", k=1)[0].id == "2"
        assert sorted(d.id for d in store.similarity_search("beta", k=3, filter={"g": 1})) == [
            "1",
            "3",
        ]
        assert [d.id for d in store.similarity_search("alpha", k=3, filter={"g": 2})] == ["2"]
        assert store.hybrid_search("gamma", k=1)[0].id == "3"
        assert store.hybrid_search("alpha", k=1)[0].id == "1"
