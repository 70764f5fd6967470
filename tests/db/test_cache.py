"""PostgresByteStore beyond the standard suite, and the embedding cache against a real HTTP API."""

from __future__ import annotations

import threading

import pytest

from langchain_pgvstore._sql import kv
from langchain_pgvstore._sql.side_tables import SideTable
from langchain_pgvstore.cache import PostgresByteStore, cached_embeddings, embedding_namespace
from langchain_pgvstore.embeddings import E5SmallEmbeddings, MiniLMEmbeddings, OpenAIBatchEmbeddings
from langchain_pgvstore.errors import ConfigError, InputError
from tests.fix_db import scratch_table

KEY = "sk-test-cache"
TEXTS = [
    "the cat sat on the mat",
    "dogs chase cats",
    "a bird in the hand",
    "the cat sat on the mat",
]


@pytest.fixture
def kv_table(admin):
    with scratch_table(admin, "kv") as name:
        yield name


@pytest.fixture
async def kv_store(dsn: str, kv_table: str):
    store = PostgresByteStore(connection=dsn, table=kv_table, namespace="test", page_size=2)
    yield store
    await store.aclose()


@pytest.fixture
async def make_openai(openai_server):
    made: list[OpenAIBatchEmbeddings] = []

    def build(**kw) -> OpenAIBatchEmbeddings:
        kw.setdefault("model", "text-embedding-3-small")
        emb = OpenAIBatchEmbeddings(api_key=KEY, base_url=openai_server.url, max_retries=0, **kw)
        made.append(emb)
        return emb

    yield build
    for emb in made:
        await emb.aclose()


# -- pure builders -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("a", "b"),
        ("doc:", "doc;"),
        ("x\U0010ffff", "y"),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),
        ("", None),
    ],
)
def test_prefix_upper_bound(prefix: str, bound: str | None) -> None:
    assert kv.prefix_upper_bound(prefix) == bound


def test_builders_bind_everything() -> None:
    side = SideTable("public", "kv", "kv")
    frag = kv.keys_page(side, "ns'; DROP", "p%_", "after", 10)
    text = frag.as_string()
    assert "DROP" not in text and "p%_" not in text
    assert text == (
        'SELECT key FROM "public"."kv" WHERE namespace = %s AND key > %s AND key < %s'
        " ORDER BY key LIMIT %s"
    )
    assert frag.params == ("ns'; DROP", "after", "p%`", 10)


def test_bad_names_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        PostgresByteStore(connection="postgresql://localhost/x", table="x" * 64)
    with pytest.raises(ConfigError):
        PostgresByteStore(connection="postgresql://localhost/x", namespace="a\x00b")
    with pytest.raises(ConfigError):
        PostgresByteStore(connection="postgresql://localhost/x", page_size=0)


# -- the byte store ----------------------------------------------------------------------


async def test_keys_page_through_prefixes_in_byte_order(kv_store: PostgresByteStore, api):
    keys = ["a", "a%", "a_b", "ab", "abc", "b", "é", "éa", "\U0010ffff", "\U0010ffffz", "A"]
    kv_store.mset([(k, k.encode()) for k in keys])

    async def listed(prefix: str | None) -> list[str]:
        return await api.on(kv_store).collect("yield_keys", prefix=prefix)

    assert await listed(None) == sorted(keys, key=lambda k: k.encode())  # page_size=2
    assert await listed("a") == ["a", "a%", "a_b", "ab", "abc"]
    assert await listed("a%") == ["a%"]  # LIKE wildcards are plain characters
    assert await listed("a_") == ["a_b"]
    assert await listed("é") == ["é", "éa"]
    assert await listed("\U0010ffff") == ["\U0010ffff", "\U0010ffffz"]
    assert await listed("zzz") == []


async def test_duplicate_keys_in_one_mset_keep_the_last_value(kv_store: PostgresByteStore):
    kv_store.mset([("k", b"1"), ("j", b"x"), ("k", b"2")])
    assert kv_store.mget(["k", "j"]) == [b"2", b"x"]
    await kv_store.amset([("k", b"3"), ("k", bytearray(b"4"))])
    assert await kv_store.amget(["k"]) == [b"4"]


async def test_namespaces_share_a_table_without_seeing_each_other(dsn: str, kv_table: str):
    with (
        PostgresByteStore(connection=dsn, table=kv_table, namespace="one") as one,
        PostgresByteStore(connection=dsn, table=kv_table, namespace="two") as two,
    ):
        one.mset([("k", b"1")])
        two.mset([("k", b"2")])
        assert one.mget(["k"]) == [b"1"] and two.mget(["k"]) == [b"2"]
        two.mdelete(["k"])
        assert one.mget(["k"]) == [b"1"] and list(two.yield_keys()) == []


def test_invalid_input_is_refused(kv_store: PostgresByteStore):
    with pytest.raises(InputError, match="NUL"):
        kv_store.mset([("a\x00", b"x")])
    with pytest.raises(InputError, match="bytes"):
        kv_store.mset([("a", "not bytes")])  # type: ignore[list-item]
    with pytest.raises(InputError, match="single string"):
        kv_store.mget("abc")
    assert kv_store.mget([]) == []
    kv_store.mset([])
    kv_store.mdelete([])


def test_concurrent_first_use_provisions_once(dsn: str, kv_table: str):
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with PostgresByteStore(connection=dsn, table=kv_table, schema="public") as s:
                s.mset([(f"k{i}", b"v")])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with PostgresByteStore(connection=dsn, table=kv_table) as s:
        assert sorted(s.yield_keys()) == ["k0", "k1", "k2", "k3"]


def test_own_schema_is_created(dsn: str, schema_name: str, conn):
    with PostgresByteStore(connection=dsn, schema=schema_name, table="cache") as s:
        s.mset([("a", b"1")])
        assert s.mget(["a"]) == [b"1"]
    assert conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema_name}".cache',)
    ).fetchone() == (True,)


# -- the embedding cache ---------------------------------------------------------------------


def test_namespace_is_model_and_dimensions(make_openai):
    assert embedding_namespace(make_openai(dimensions=64)) == "text-embedding-3-small:64:"
    assert embedding_namespace(make_openai()) == "text-embedding-3-small:native:"
    assert embedding_namespace(E5SmallEmbeddings()) == "multilingual-e5-small-q4:384:"

    class Anonymous:
        pass

    with pytest.raises(ConfigError, match="namespace="):
        embedding_namespace(Anonymous())  # type: ignore[arg-type]


def test_namespace_of_minilm() -> None:
    pytest.importorskip("sentence_transformers", reason="needs the [local] extra")
    assert embedding_namespace(MiniLMEmbeddings()) == "all-MiniLM-L6-v2:384:"


def test_repeated_documents_and_queries_call_the_api_once(
    openai_server, make_openai, kv_store: PostgresByteStore
):
    cached = cached_embeddings(make_openai(dimensions=64), kv_store)
    first = cached.embed_documents(TEXTS)
    sent = len(openai_server.requests)
    assert sent >= 1
    assert sorted({t for r in openai_server.requests for t in openai_server.texts(r)}) == sorted(
        set(TEXTS)
    )

    assert cached.embed_documents(TEXTS) == first
    assert cached.embed_query(TEXTS[1]) == first[1]  # queries share the cache
    assert len(openai_server.requests) == sent

    query = cached.embed_query("where is the cat?")
    assert len(openai_server.requests) == sent + 1
    assert cached.embed_query("where is the cat?") == query
    assert len(openai_server.requests) == sent + 1

    keys = list(kv_store.yield_keys())
    assert len(keys) == len(set(TEXTS)) + 1
    assert all(k.startswith("text-embedding-3-small:64:") for k in keys)
    assert all(len(k) == len("text-embedding-3-small:64:") + 64 for k in keys)  # sha256 hex


async def test_async_cache_and_dimensions_miss(
    openai_server, make_openai, kv_store: PostgresByteStore
):
    small = cached_embeddings(make_openai(dimensions=32), kv_store)
    vectors = await small.aembed_documents(TEXTS)
    assert {len(v) for v in vectors} == {32}
    sent = len(openai_server.requests)
    assert await small.aembed_documents(TEXTS) == vectors
    assert await small.aembed_query(TEXTS[0]) == vectors[0]
    assert len(openai_server.requests) == sent

    # same texts, another size: another cache key, so the API is called again
    larger = cached_embeddings(make_openai(dimensions=48), kv_store)
    assert {len(v) for v in await larger.aembed_documents(TEXTS)} == {48}
    assert len(openai_server.requests) > sent
    assert all(r.body.get("dimensions") == 48 for r in openai_server.requests[sent:])


async def test_cache_through_the_vector_store(
    api, openai_server, make_openai, kv_store: PostgresByteStore, make_store
):
    emb = cached_embeddings(make_openai(dimensions=64), kv_store)
    call = api.on(make_store(emb))
    await call("add_texts", TEXTS[:3], ids=["a", "b", "c"])
    sent = len(openai_server.requests)

    # re-ingesting the same texts (new ids, even) embeds nothing
    await call("add_texts", TEXTS[:3], ids=["d", "e", "f"])
    hits = [await call("similarity_search", TEXTS[1], k=2) for _ in range(3)]
    assert len(openai_server.requests) == sent
    assert {d.id for d in hits[0]} == {"b", "e"}

    await call("similarity_search", "something new")
    await call("similarity_search", "something new")
    assert len(openai_server.requests) == sent + 1
