"""MMR through the store: one query for candidates and vectors, selection order kept."""

from __future__ import annotations

import numpy as np
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from langchain_pgvstore import InputError
from langchain_pgvstore.mmr import mmr_select

DIM = 8


@pytest.fixture
def store(make_store):
    s = make_store(DIM, vector_type="vector")
    # a tight cluster of near-duplicates around e0, and a few distinct directions
    rng = np.random.default_rng(3)
    base = np.eye(DIM)
    vecs = [base[0] + 0.01 * rng.normal(size=DIM) for _ in range(6)]
    weights = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}
    vecs += [a * base[0] + np.sqrt(1 - a * a) * base[i] for i, a in weights.items()]
    texts = [f"dup{i}" for i in range(6)] + [f"dir{i}" for i in range(1, 5)]
    s.add_embeddings(
        texts,
        np.array(vecs),
        [{"g": "dup" if t.startswith("dup") else "dir"} for t in texts],
        ids=texts,
    )
    return s


QUERY = [1.0] + [0.0] * (DIM - 1)
MMR = "max_marginal_relevance_search_with_score_by_vector"


async def test_lambda_one_is_similarity_order(api, store) -> None:
    got = await api(MMR, QUERY, k=5, fetch_k=10, lambda_mult=1.0)
    plain = store.similarity_search_with_score_by_vector(QUERY, k=5)
    assert [d.id for d, _ in got] == [d.id for d, _ in plain]


async def test_low_lambda_prefers_diversity_and_keeps_selection_order(api) -> None:
    got = await api(MMR, QUERY, k=4, fetch_k=10, lambda_mult=0.0)
    ids = [d.id for d, _ in got]
    assert ids[0].startswith("dup")  # the first pick is the nearest
    assert sum(i.startswith("dir") for i in ids) >= 3  # then distinct directions
    distances = [s for _, s in got]
    assert distances != sorted(distances)  # selection order, not distance order


async def test_fetch_k_bounds_the_candidates(api) -> None:
    got = await api(MMR, QUERY, k=4, fetch_k=4, lambda_mult=0.0)
    # with fetch_k=4 only near-duplicates are candidates, whatever lambda says
    ids = [d.id for d, _ in got]
    assert len(ids) == 4 and all(i.startswith("dup") for i in ids), ids


async def test_matches_reference_selection(api, store, conn) -> None:
    got = await api(MMR, QUERY, k=5, fetch_k=10, lambda_mult=0.3)
    docs = store.similarity_search_with_score_by_vector(QUERY, k=10)
    ids = [d.id for d, _ in docs]
    register_vector(conn)
    rows = dict(
        conn.execute(
            sql.SQL("SELECT id, embedding FROM {}").format(sql.Identifier(store.collection))
        ).fetchall()
    )
    vecs = np.stack([rows[i].to_numpy() for i in ids])
    expected = [ids[j] for j in mmr_select(np.array(QUERY), vecs, 5, 0.3)]
    assert [d.id for d, _ in got] == expected


async def test_filter_applies(api) -> None:
    got = await api(MMR, QUERY, k=3, fetch_k=10, lambda_mult=0.5, filter={"g": "dir"})
    assert len(got) == 3 and all(d.metadata["g"] == "dir" for d, _ in got)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(k=5, fetch_k=3), "fetch_k must be at least k"),
        (dict(k=0), "k must be an integer in"),
        (dict(lambda_mult=1.5), "lambda_mult must be a number in"),
        (dict(lambda_mult=-0.1), "lambda_mult must be a number in"),
        (dict(lambda_mult=float("nan")), "lambda_mult must be a number in"),
    ],
)
async def test_bad_arguments(api, kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        await api(MMR, QUERY, **kwargs)


async def test_text_query_variants(store) -> None:
    docs = store.max_marginal_relevance_search("dup0", k=3, fetch_k=10)
    adocs = await store.amax_marginal_relevance_search("dup0", k=3, fetch_k=10)
    assert [d.id for d in docs] == [d.id for d in adocs] and len(docs) == 3
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 10})
    assert len(retriever.invoke("dup0")) == 2


async def test_halfvec_mmr(make_store) -> None:
    s = make_store(DIM, vector_type="halfvec")
    s.add_texts([f"t{i}" for i in range(10)])
    got = await s.amax_marginal_relevance_search("t1", k=3, fetch_k=10, lambda_mult=0.5)
    assert got[0].page_content == "t1" and len(got) == 3
