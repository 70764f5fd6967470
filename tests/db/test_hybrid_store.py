"""Keyword (BM25) and hybrid search through the store, and the retriever."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_pgvstore import FilterError, InputError
from langchain_pgvstore.fusion import Hit, rrf, weighted
from langchain_pgvstore.retriever import PGVStoreRetriever
from tests.fix_db import unique_name

DIM = 16
DOCS = {
    "1": ("The quick brown fox jumps over the lazy dog", {"lang": "en"}),
    "2": ("Foxes are quick and clever animals", {"lang": "en"}),
    "3": ("Error code E1234 raised by the payment module", {"lang": "en"}),
    "4": ("Der schnelle braune Fuchs", {"lang": "de"}),
    "5": ("Dogs sleep all day in the sun", {"lang": "en"}),
    "6": ("The payment module retries on timeout", {"lang": "en"}),
}


@pytest.fixture
def store(make_store):
    s = make_store(DIM)
    s.add_texts([t for t, _ in DOCS.values()], [m for _, m in DOCS.values()], ids=list(DOCS))
    return s


async def test_keyword_matches_any_term_ranked_by_bm25(api) -> None:
    pairs = await api("keyword_search_with_score", "quick fox payment error", k=10)
    ids = [d.id for d, _ in pairs]
    # every document holding at least one term, none without
    assert set(ids) == {"1", "2", "3", "6"}
    scores = [s for _, s in pairs]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    # a sentence-long query still matches a document that has only one of its words
    long = await api("keyword_search", "why does my payment keep failing every single time", k=10)
    assert "6" in [d.id for d in long]


async def test_keyword_filter_and_empty(api) -> None:
    assert [d.id for d in await api("keyword_search", "fox", k=5, filter={"lang": "de"})] == []
    assert await api("keyword_search", "the of and", k=5) == []  # stop words only


async def test_hybrid_finds_exact_code_and_fuses(api, store) -> None:
    pairs = await api("hybrid_search_with_score", "E1234", k=3)
    assert pairs[0][0].id == "3"
    # the SQL fusion equals the reference fusion of the two legs
    k, n = 4, 20
    q = "quick payment"
    vec = store.similarity_search_with_score(q, k=n)
    kw = store.keyword_search_with_score(q, k=n)
    legs = [[Hit(d.id, -s) for d, s in vec], [Hit(d.id, s) for d, s in kw]]
    for fusion, ref in (("rrf", rrf(legs, k=60)), ("weighted", weighted(legs))):
        got = await api("hybrid_search_with_score", q, k=k, fetch_k=n, fusion=fusion)
        assert [d.id for d, _ in got] == [h.id for h in ref[:k]]
        assert [s for _, s in got] == pytest.approx([h.score for h in ref[:k]])


async def test_hybrid_filter_applies_to_both_legs(api) -> None:
    got = await api("hybrid_search", "fox", k=10, filter={"lang": "de"})
    assert [d.id for d in got] == ["4"]


async def test_hybrid_parameters_are_per_call(api, store) -> None:
    a = await api("hybrid_search_with_score", "dog", k=3, fusion="weighted", weights=(0.1, 0.9))
    b = await api("hybrid_search_with_score", "dog", k=3)
    assert a != b
    c = await api("hybrid_search_with_score", "dog", k=3)
    assert b == c


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(k=0), InputError, "k must be an integer in"),
        (dict(k=5, fetch_k=2), InputError, "fetch_k must be at least k"),
        (dict(fusion="max"), InputError, "fusion must be one of"),
        (dict(weights=(1.0,)), InputError, "weights must be a pair"),
        (dict(filter={"lang": {"$bad": 1}}), FilterError, "unknown operator"),
    ],
)
async def test_hybrid_bad_arguments(api, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        await api("hybrid_search", "fox", **kwargs)


async def test_query_with_nul_rejected(api) -> None:
    with pytest.raises(InputError, match="NUL"):
        await api("keyword_search", "fo\x00x")


async def test_retriever_search_types(store) -> None:
    for search_type, kwargs in (
        ("similarity", {}),
        ("mmr", {"fetch_k": 6}),
        ("hybrid", {}),
        ("similarity_score_threshold", {"score_threshold": 0.0}),
    ):
        r = store.as_retriever(search_type=search_type, search_kwargs={"k": 2, **kwargs})
        assert isinstance(r, PGVStoreRetriever)
        assert len(r.invoke("quick fox")) == 2
        assert len(await r.ainvoke("quick fox")) == 2
        assert len(r.invoke("quick fox", k=1)) == 1
    with pytest.raises(ValueError, match="search_type"):
        store.as_retriever(search_type="nope")


async def test_retriever_in_an_lcel_chain(store) -> None:
    from langchain_core.runnables import RunnableLambda

    retriever = store.as_retriever(
        search_type="hybrid", search_kwargs={"k": 1, "filter": {"lang": "en"}}
    )
    chain = retriever | RunnableLambda(lambda docs: docs[0].page_content.upper())
    assert chain.invoke("E1234") == "ERROR CODE E1234 RAISED BY THE PAYMENT MODULE"


@pytest.fixture(scope="module")
def shared_store(make_module_store):
    s = make_module_store(DIM, collection=unique_name("ret"))
    s.add_texts([f"document number {i} about foxes" for i in range(10)])
    return s


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _store(self, shared_store):
        type(self)._shared = shared_store

    @property
    def retriever_constructor(self):
        return PGVStoreRetriever

    @property
    def retriever_constructor_params(self):
        return {"vectorstore": type(self)._shared, "search_type": "hybrid", "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "foxes"
