"""`full_text="pg_textsearch"`: keyword and hybrid search on a pg_textsearch BM25 index.

Every ranking is checked against the plain-SQL BM25 backend (`full_text=True`)
over the same documents on the same server: same ids in the same order, same
scores (the index's are float4, hence the tolerance).
"""

from __future__ import annotations

import random

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import PGVStore
from langchain_pgvstore._sql import Frag, textsearch
from langchain_pgvstore.config import Table
from langchain_pgvstore.errors import InputError, SchemaError
from tests.fix_db import run_sql
from tests.fix_store import StoreFactory

DIM = 8
WORDS = (
    "apple banana cherry grape lemon mango olive peach pear plum quince raspberry"
    " strawberry tomato walnut almond cashew hazelnut pecan pistachio"
).split()
QUERIES = ["apple", "banana cherry", "grape lemon mango", "pear pear plum", "walnut tomatoes",
           "strawberries and raspberries", "nothing matches zzz"]  # fmt: skip


def corpus(n: int = 200, seed: int = 5) -> tuple[list[str], list[dict[str, object]], list[str]]:
    """Texts of 3-40 words over a small vocabulary (Zipf-like: early words are frequent);
    group 7 holds the longest texts, each with "apple" once, which rank last for it."""
    rng = random.Random(seed)
    texts, metas = [], []
    for i in range(n):
        group = i % 10
        length = rng.randint(30, 40) if group == 7 else rng.randint(3, 20)
        vocabulary = WORDS[1:] if group == 7 else WORDS
        words = [vocabulary[min(int(rng.paretovariate(1.0)) - 1, len(vocabulary) - 1)]
                 for _ in range(length)]  # fmt: skip
        if group == 7:
            words.append("apple")  # every group-7 text has the query word once, diluted
        texts.append(" ".join(words))
        metas.append({"group": group, "i": i})
    return texts, metas, [f"d{i:03d}" for i in range(n)]


def same(got: list[tuple[object, float]], want: list[tuple[object, float]]) -> None:
    assert [d.id for d, _ in got] == [d.id for d, _ in want]  # type: ignore[attr-defined]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert a == pytest.approx(b, rel=1e-5)


@pytest.fixture
def pair(make_ts_store: StoreFactory) -> tuple[PGVStore, PGVStore]:
    """The same documents in a pg_textsearch collection and a plain-SQL BM25 one."""
    texts, metas, ids = corpus()
    index = make_ts_store(DIM, full_text="pg_textsearch")
    plain = make_ts_store(DIM, collection=f"{index.collection}_sql", full_text=True)
    for store in (index, plain):
        store.add_texts(texts, metas, ids=ids)
    return index, plain


def test_the_collection_has_the_index_and_no_tsv_or_statistics(pair, ts_admin) -> None:
    index, _ = pair
    table = Table("public", index.collection)
    columns = {r[0] for r in ts_admin.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped", (index.collection,))}  # fmt: skip
    assert "tsv" not in columns and "tsv_len" not in columns
    [(stats,)] = ts_admin.execute("SELECT to_regclass(%s)", (table.index_name("bm25"),))
    assert stats is None
    [(am, definition)] = ts_admin.execute(
        "SELECT am.amname, pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_am am"
        " ON am.oid = c.relam WHERE c.relname = %s", (table.index_name("textsearch"),),
    ).fetchall()  # fmt: skip
    assert am == "bm25"
    assert "text_config=english" in definition.replace("'", "").replace(" ", "")
    [(triggers,)] = ts_admin.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
        (index.collection,),
    )
    assert triggers == 0


@pytest.mark.parametrize("k", [1, 4, 10, 50])
def test_keyword_rankings_and_scores_match_the_sql_backend(pair, k: int) -> None:
    index, plain = pair
    for query in QUERIES:
        got = index.keyword_search_with_score(query, k=k)
        same(got, plain.keyword_search_with_score(query, k=k))
        if query.startswith("nothing"):
            assert got == []


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_hybrid_matches_the_sql_backend(pair, fusion: str) -> None:
    index, plain = pair
    for query in QUERIES:
        same(index.hybrid_search_with_score(query, k=6, fusion=fusion),
             plain.hybrid_search_with_score(query, k=6, fusion=fusion))  # fmt: skip


@pytest.mark.parametrize(
    "filter",
    [
        {"group": 7},  # the texts that rank last: the index's best candidates hold none
        {"group": {"$in": [1, 2, 3, 4, 5]}},  # broad: the candidates are enough
        {"i": {"$lt": 3}},  # fewer matching rows than k
        {"group": 99},  # nothing
    ],
)
def test_filtered_keyword_search_returns_k_rows_when_k_match(pair, filter) -> None:
    index, plain = pair
    for k in (5, 20):
        got = index.keyword_search_with_score("apple", k=k, filter=filter)
        same(got, plain.keyword_search_with_score("apple", k=k, filter=filter))
        if filter == {"group": 7}:
            assert len(got) == k  # all 20 group-7 texts hold "apple"
        same(index.hybrid_search_with_score("apple", k=k, filter=filter),
             plain.hybrid_search_with_score("apple", k=k, filter=filter))  # fmt: skip


def test_the_selective_filter_ranks_last(pair) -> None:
    """The best 100 rows for "apple" hold no group-7 row, so a scan that stopped at its
    first candidates would return none of the 5 or 20 found above."""
    index, _ = pair
    best = index.keyword_search("apple", k=100)
    assert len(best) == 100
    assert all(d.metadata["group"] != 7 for d in best)


def exact_pass_ran(conn: psycopg.Connection, frag: Frag) -> bool:
    """Whether the statement's exact pass (a scan of the collection outside the CTE) ran."""
    plan = "\n".join(r[0] for r in conn.execute(
        sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + frag.sql, frag.params
    ))  # fmt: skip
    exact = plan[plan.index("InitPlan 3") :]  # the second gate: the exact branch
    assert "Scan on" in exact, plan
    return "never executed" not in exact


def test_the_exact_pass_runs_only_when_the_scan_is_short(pair, ts_admin) -> None:
    index, plain = pair
    table = Table("public", index.collection)
    group = Frag(sql.SQL("(metadata ->> 'group')::int = ANY (%s)"), ([1, 2, 3, 4, 5],))
    few = Frag(sql.SQL("(metadata ->> 'i')::int < %s"), (3,))  # fewer rows than k
    assert not exact_pass_ran(ts_admin, textsearch.keyword_search(table, "apple", 5, group))
    assert exact_pass_ran(ts_admin, textsearch.keyword_search(table, "apple", 5, few))
    got = run_sql(ts_admin, textsearch.keyword_search(table, "apple", 5, few))
    want = plain.keyword_search_with_score("apple", k=5, filter={"i": {"$lt": 3}})
    assert [r[0] for r in got] == [d.id for d, _ in want]
    assert [r[1] for r in got] == pytest.approx([s for _, s in want], rel=1e-5)


async def test_writes_update_the_index(make_ts_store: StoreFactory, api) -> None:
    store = make_ts_store(DIM, full_text="pg_textsearch")
    await api.on(store)("add_texts", ["apple pie", "banana split", "cherry tart"],
                        ids=["a", "b", "c"])  # fmt: skip
    assert [d.id for d in await api.on(store)("keyword_search", "apple", k=3)] == ["a"]
    await api.on(store)("add_texts", ["banana bread"], ids=["a"])  # an upsert changes content
    await api.on(store)("delete", ["b"])
    assert await api.on(store)("keyword_search", "apple", k=3) == []
    assert [d.id for d in await api.on(store)("keyword_search", "banana", k=3)] == ["a"]


async def test_tenants_never_see_each_others_rows(make_ts_store: StoreFactory, api) -> None:
    store = make_ts_store(DIM, full_text="pg_textsearch", multi_tenant=True)
    a, b = store.for_tenant("a"), store.for_tenant("b")
    # tenant b's texts outrank tenant a's for "apple", under the same ids
    await api.on(b)("add_texts", [f"apple apple {i}" for i in range(150)],
                    ids=[str(i) for i in range(150)])  # fmt: skip
    await api.on(a)("add_texts", ["apple " + "filler " * 30 + str(i) for i in range(5)],
                    ids=[str(i) for i in range(5)])  # fmt: skip
    for method in ("keyword_search", "hybrid_search"):
        got = await api.on(a)(method, "apple", k=10)
        assert len(got) == 5
        assert all("filler" in d.page_content for d in got)
        got_b = await api.on(b)(method, "apple", k=10)
        assert len(got_b) == 10 and all("filler" not in d.page_content for d in got_b)


def test_reopening_knows_the_backend(pair, make_ts_store: StoreFactory) -> None:
    index, _ = pair
    reopened = make_ts_store(DIM, collection=index.collection)
    same(reopened.keyword_search_with_score("apple", k=5),
         index.keyword_search_with_score("apple", k=5))  # fmt: skip
    assert reopened._spec.table.textsearch
    for asked in (True, False):
        wrong = make_ts_store(DIM, collection=index.collection, full_text=asked)
        with pytest.raises(SchemaError, match="full_text='pg_textsearch'"):
            wrong.similarity_search("apple", k=1)
    plain_asks_index = make_ts_store(DIM, collection=f"{index.collection}_sql",
                                     full_text="pg_textsearch")  # fmt: skip
    with pytest.raises(SchemaError, match="has full text"):
        plain_asks_index.similarity_search("apple", k=1)


def test_k1_and_b_are_the_index_s(pair) -> None:
    index, _ = pair
    with pytest.raises(InputError, match="k1 and b cannot be changed"):
        index.keyword_search("apple", k=3, k1=2.0)
    with pytest.raises(InputError, match="k1 and b cannot be changed"):
        index.hybrid_search("apple", k=3, b=0.5)
    assert index.keyword_search("apple", k=3, k1=1.2, b=0.75)


def test_a_query_with_a_colon_and_quotes(make_ts_store: StoreFactory) -> None:
    store = make_ts_store(DIM, full_text="pg_textsearch")
    store.add_texts(["ratio 3:1 of apple", "o'neil's pear"], ids=["r", "o"])
    assert [d.id for d in store.keyword_search("idx:apple", k=2)] == ["r"]
    assert [d.id for d in store.keyword_search("o'neil", k=2)] == ["o"]


def test_sql_backend_objects_are_untouched(ts_admin: psycopg.Connection, pair) -> None:
    _, plain = pair
    [(tsv,)] = ts_admin.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'tsv'",
        (plain.collection,),
    )
    assert tsv == 1


def index_file(conn: psycopg.Connection, store: PGVStore) -> int:
    """The text index's file: a new one when the index is built again."""
    name = Table("public", store.collection).index_name("textsearch")
    [(node,)] = conn.execute("SELECT pg_relation_filenode(%s::regclass)", (name,)).fetchall()
    return int(node)


def test_a_large_first_load_builds_the_index_after_the_rows(make_ts_store, ts_admin) -> None:
    texts, metas, ids = corpus()
    store = make_ts_store(DIM, full_text="pg_textsearch", bulk_rebuild_rows=100)
    plain = make_ts_store(DIM, collection=f"{store.collection}_sql", full_text=True)
    store.add_texts(["seed"], ids=["seed"])
    before = index_file(ts_admin, store)
    store.delete(["seed"])
    vectors = DeterministicFakeEmbedding(size=DIM).embed_documents(texts)
    # 200 rows in one batch into an empty table: a direct load
    store.add_embeddings(texts, vectors, metas, ids=ids)
    assert index_file(ts_admin, store) != before  # dropped and built again over the rows
    plain.add_texts(texts, metas, ids=ids)
    for query in QUERIES:
        same(store.keyword_search_with_score(query, k=10),
             plain.keyword_search_with_score(query, k=10))  # fmt: skip
