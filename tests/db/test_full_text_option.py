"""`full_text=False`: a collection without the full-text objects, against a real PostgreSQL.

Such a collection has no `tsv` column, no full-text index and no BM25 statistics
(table, functions, triggers); everything but keyword and hybrid search works as
usual, and those raise `SchemaError` naming the option. Opening it again without
the option uses what it has; a contradicting option is a `SchemaError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import Column, ConfigError, PGVStore, SchemaError
from langchain_pgvstore._sql.bm25_schema import stats_table
from langchain_pgvstore.config import Table

DIM = 16
TEXTS = ["apple pie with cream", "banana bread", "cherry tart", "plum jam on toast"]
METAS = [{"fruit": "apple", "n": 1}, {"fruit": "banana", "n": 2}, {"fruit": "cherry", "n": 3},
         {"fruit": "plum", "n": 4}]  # fmt: skip


class CountingEmbedding(DeterministicFakeEmbedding):
    """Counts the queries it embeds (a refused hybrid search must not embed its query)."""

    queries: int = 0

    def embed_query(self, text: str) -> list[float]:
        self.queries += 1
        return super().embed_query(text)

    async def aembed_query(self, text: str) -> list[float]:
        self.queries += 1
        return super().embed_query(text)


def objects(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    """What the catalog shows of the collection's full-text objects."""
    table = Table("public", name)
    row = conn.execute(
        "SELECT"
        " (SELECT array_agg(attname::text ORDER BY attname) FROM pg_attribute"
        "  WHERE attrelid = to_regclass(%(t)s) AND attnum > 0 AND NOT attisdropped),"
        " (SELECT array_agg(indexdef ORDER BY indexname) FROM pg_indexes"
        "  WHERE schemaname = 'public' AND tablename = %(n)s),"
        " (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%(t)s)"
        "  AND NOT tgisinternal),"
        " to_regclass(%(s)s) IS NOT NULL,"
        " (SELECT count(*) FROM pg_proc WHERE proname LIKE %(p)s)",
        {
            "t": f'public."{name}"',
            "n": name,
            "s": stats_table(table).as_string(None),
            "p": table.index_name("bm25") + "%",
        },
    ).fetchone()
    assert row is not None
    columns, indexes, triggers, stats, functions = row
    return {
        "columns": set(columns or ()),
        "tsv_index": any("tsv" in d for d in indexes or ()),
        "triggers": triggers,
        "stats": stats,
        "functions": functions,
    }


def ids_of(docs: list[Document]) -> list[str | None]:
    return [d.id for d in docs]


@pytest.fixture
def store(make_store) -> PGVStore:
    return make_store(DIM, full_text=False)


@pytest.mark.parametrize("value", ["no", 0, 1, "False"])
def test_full_text_must_be_a_bool(make_store, value: object) -> None:
    with pytest.raises(ConfigError, match="full_text must be True or False"):
        make_store(DIM, full_text=value)


def test_the_table_has_no_full_text_objects(store: PGVStore, conn, collection_name) -> None:
    store.add_texts(TEXTS, METAS)
    found = objects(conn, collection_name)
    assert found["columns"] == {"id", "content", "metadata", "embedding", "created_at",
                                "updated_at"}  # fmt: skip
    assert not found["tsv_index"]
    assert (found["triggers"], found["stats"], found["functions"]) == (0, False, 0)


def test_a_default_collection_has_them(make_store, conn, collection_name) -> None:
    make_store(DIM).add_texts(TEXTS, METAS)
    found = objects(conn, collection_name)
    assert {"tsv", "tsv_len"} <= found["columns"]
    assert found["tsv_index"] and found["stats"] and found["triggers"] > 0


async def test_writes_reads_and_vector_searches_work(api, store: PGVStore) -> None:
    ids = await api("add_texts", TEXTS, METAS, ids=["a", "b", "c", "d"])
    assert ids == ["a", "b", "c", "d"]
    emb = DeterministicFakeEmbedding(size=DIM)
    vectors = emb.embed_documents(["fig roll", "kiwi"])
    assert await api("add_embeddings", ["fig roll", "kiwi"], vectors, [{"n": 5}, {"n": 6}],
                     ids=["e", "f"]) == ["e", "f"]  # fmt: skip
    # upsert: the same id with new content
    await api("add_texts", ["banana split"], [{"fruit": "banana", "n": 2}], ids=["b"])
    got = await api("get_by_ids", ["b", "e"])
    assert [(d.id, d.page_content) for d in got] == [("b", "banana split"), ("e", "fig roll")]
    hits = await api("similarity_search", "cherry tart", k=1)
    assert ids_of(hits) == ["c"]
    hits = await api("similarity_search", "cherry tart", k=2, filter={"n": {"$gte": 4}})
    assert set(ids_of(hits)) <= {"d", "e", "f"} and len(hits) == 2
    by_vector = await api("similarity_search_by_vector", vectors[1], k=1)
    assert ids_of(by_vector) == ["f"]
    mmr = await api("max_marginal_relevance_search", "plum jam on toast", k=2, fetch_k=6)
    assert ids_of(mmr)[0] == "d" and len(mmr) == 2
    assert await api("delete", ["a"]) is True
    assert await api("delete", filter={"fruit": "plum"}) is True
    assert sorted(d.id for d in await api("get_by_ids", list("abcdef"))) == ["b", "c", "e", "f"]
    assert store.count() == 4


@pytest.mark.parametrize("method", ["keyword_search", "keyword_search_with_score",
                                    "hybrid_search", "hybrid_search_with_score"])  # fmt: skip
async def test_keyword_and_hybrid_search_are_refused_before_anything_is_sent(
    api, make_store, conn, collection_name, method: str
) -> None:
    emb = CountingEmbedding(size=DIM)
    store = make_store(emb, full_text=False)
    with pytest.raises(SchemaError, match="full_text=False"):
        await api.on(store)(method, "apple", k=2)
    assert emb.queries == 0
    # nothing was sent: the collection was not even looked up into existence
    assert conn.execute("SELECT to_regclass(%s)", (f"public.{collection_name}",)).fetchone() == (
        None,
    )


async def test_hybrid_by_vector_is_refused(api, store: PGVStore) -> None:
    store.add_texts(TEXTS, METAS)
    vector = DeterministicFakeEmbedding(size=DIM).embed_query("apple")
    with pytest.raises(SchemaError, match="full_text=False"):
        await api("hybrid_search_with_score_by_vector", "apple", vector, k=2)


@pytest.mark.parametrize("search_type", ["keyword", "hybrid"])
async def test_the_retrievers_keyword_modes_are_refused(api, store, search_type: str) -> None:
    store.add_texts(TEXTS, METAS)
    retriever = store.as_retriever(search_type=search_type, search_kwargs={"k": 2})
    with pytest.raises(SchemaError, match="full_text=False"):
        await api.on(retriever)("invoke", "apple")
    similarity = store.as_retriever(search_kwargs={"k": 1})
    assert ids_of(await api.on(similarity)("invoke", "banana bread"))[0] is not None


async def test_reopening_without_the_option_uses_what_the_collection_has(
    api, make_store, conn, collection_name
) -> None:
    make_store(DIM, full_text=False).add_texts(TEXTS, METAS, ids=list("abcd"))
    reopened = make_store(DIM)  # no full_text=
    assert ids_of(await api.on(reopened)("similarity_search", "banana bread", k=1)) == ["b"]
    # its keyword search needs the lookup to know: it is refused, nothing else happens
    with pytest.raises(SchemaError, match="full_text=False"):
        await api.on(reopened)("keyword_search", "apple", k=2)
    await api.on(reopened)("add_texts", ["quince"], ids=["q"])
    assert "tsv" not in objects(conn, collection_name)["columns"]


async def test_reopening_with_full_text_true_is_refused(api, make_store, conn, collection_name):
    make_store(DIM, full_text=False).add_texts(TEXTS, METAS)
    wrong = make_store(DIM, full_text=True)
    with pytest.raises(SchemaError, match="was created with full_text=False"):
        await api.on(wrong)("similarity_search", "apple", k=1)
    with pytest.raises(SchemaError, match="full_text=False"):
        await api.on(wrong)("add_texts", ["fig"])
    assert "tsv" not in objects(conn, collection_name)["columns"]  # nothing added


async def test_reopening_a_full_text_collection_with_false_is_refused(
    api, make_store, conn, collection_name
) -> None:
    make_store(DIM).add_texts(TEXTS, METAS, ids=list("abcd"))
    wrong = make_store(DIM, full_text=False)
    with pytest.raises(SchemaError, match="has full text"):
        await api.on(wrong)("add_texts", ["fig"])
    with pytest.raises(SchemaError, match="has full text"):
        await api.on(wrong)("get_by_ids", ["a"])
    assert "tsv" in objects(conn, collection_name)["columns"]  # nothing dropped
    explicit = make_store(DIM, full_text=True)
    hits = await api.on(explicit)("keyword_search", "apple", k=1)
    assert ids_of(hits) == ["a"]


async def test_multi_tenant_collections_without_full_text(api, make_store, conn, collection_name):
    shared = make_store(DIM, multi_tenant=True, full_text=False)
    acme, globex = api.on(shared.for_tenant("acme")), api.on(shared.for_tenant("globex"))
    await acme("add_texts", TEXTS[:2], METAS[:2], ids=["1", "2"])
    await globex("add_texts", TEXTS[2:], METAS[2:], ids=["1", "2"])
    assert [d.page_content for d in await acme("similarity_search", "banana bread", k=1)] == [
        "banana bread"
    ]
    assert [d.page_content for d in await globex("get_by_ids", ["1"])] == ["cherry tart"]
    await globex("delete", ["2"])
    assert await globex("get_by_ids", ["2"]) == []
    with pytest.raises(SchemaError, match="full_text=False"):
        await acme("hybrid_search", "apple", k=1)
    found = objects(conn, collection_name)
    assert "tsv" not in found["columns"] and "tenant" in found["columns"]
    assert (found["triggers"], found["stats"]) == (0, False)


async def test_typed_columns_without_full_text(api, make_store, conn, collection_name) -> None:
    store = make_store(DIM, full_text=False, columns={"n": Column("integer")})
    await api.on(store)("add_texts", TEXTS, METAS, ids=list("abcd"))
    hits = await api.on(store)("similarity_search", "apple pie", k=4, filter={"n": {"$gt": 2}})
    assert sorted(ids_of(hits)) == ["c", "d"]
    got = await api.on(store)("get_by_ids", ["b"])
    assert got[0].metadata == {"fruit": "banana", "n": 2}
    found = objects(conn, collection_name)
    assert "n" in found["columns"] and "tsv" not in found["columns"]


def test_a_large_load_builds_the_index_without_full_text(make_store, conn, collection_name):
    """A load past `bulk_rebuild_rows` goes straight in, builds HNSW, cleans the GIN lists."""
    store = make_store(DIM, full_text=False, bulk_rebuild_rows=50)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((120, DIM)).astype(np.float32)
    store.add_embeddings([f"t{i}" for i in range(120)], vectors.tolist(),
                         ids=[str(i) for i in range(120)])  # fmt: skip
    assert store.count() == 120
    assert ids_of(store.similarity_search_by_vector(vectors[17].tolist(), k=1)) == ["17"]
    kinds = {i.kind for i in store.index_status()}
    assert "hnsw" in kinds and not any("tsv" in i.name for i in store.index_status())
