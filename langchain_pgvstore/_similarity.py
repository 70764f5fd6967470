"""Similarity and maximal-marginal-relevance search, sync and async."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from typing_extensions import override

from ._core import StoreCore, _as_array, _check_k, _doc
from .errors import InputError
from .mmr import mmr_select

__all__ = ["SimilaritySearch"]

Row = tuple[Any, ...]


class SimilaritySearch(StoreCore):
    """Nearest-neighbour and MMR search over the collection."""

    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The `k` nearest documents to a vector with their distances (lower is closer)."""
        k = _check_k(k)
        vector = self._query_vector(embedding)
        spec = self._ensure(len(vector))
        if spec is None:
            return self._nothing(filter)
        query, pre = self._search(spec, vector, k, filter, kwargs)
        rows = self._db.fetch(query, settings=pre)
        return [(_doc(r), float(r[3])) for r in rows]

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `similarity_search_with_score_by_vector`."""
        k = _check_k(k)
        vector = self._query_vector(embedding)
        spec = await self._aensure(len(vector))
        if spec is None:
            return self._nothing(filter)
        query, pre = self._search(spec, vector, k, filter, kwargs)
        rows = await self._adb.fetch(query, settings=pre)
        return [(_doc(r), float(r[3])) for r in rows]

    @override
    def similarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The `k` documents nearest to the query text."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    @override
    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async `similarity_search`."""
        pairs = await self.asimilarity_search_with_score(query, k, filter, **kwargs)
        return [d for d, _ in pairs]

    @override
    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents nearest to the query text, with the distance (lower is closer)."""
        _check_k(k)
        vector = self._embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter, **kwargs)

    @override
    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async `similarity_search_with_score`."""
        _check_k(k)
        vector = await self._embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, filter, **kwargs)

    @override
    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The `k` documents nearest to a vector."""
        pairs = self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [d for d, _ in pairs]

    @override
    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async `similarity_search_by_vector`."""
        pairs = await self.asimilarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [d for d, _ in pairs]

    # -- maximal marginal relevance ------------------------------------------------

    @staticmethod
    def _check_mmr(k: int, fetch_k: int, lambda_mult: float) -> None:
        _check_k(k)
        _check_k(fetch_k, "fetch_k")
        if fetch_k < k:
            raise InputError(f"fetch_k must be at least k, got fetch_k={fetch_k} and k={k}")
        if (
            isinstance(lambda_mult, bool)
            or not isinstance(lambda_mult, (int, float))
            or not 0.0 <= lambda_mult <= 1.0
        ):
            raise InputError(f"lambda_mult must be a number in [0, 1], got {lambda_mult!r}")

    @staticmethod
    def _mmr_pick(
        vector: np.ndarray, rows: list[Row], k: int, lambda_mult: float
    ) -> list[tuple[Document, float]]:
        if not rows:
            return []
        candidates = np.stack([_as_array(r[4]) for r in rows])
        chosen = mmr_select(vector, candidates, k, lambda_mult)
        return [(_doc(rows[i]), float(rows[i][3])) for i in chosen]

    def max_marginal_relevance_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """MMR over the `fetch_k` nearest rows, in selection order, with their distances.

        Candidates and their vectors come back in one query, in binary; the
        selection runs in numpy. `lambda_mult=1` is plain similarity order,
        `0` maximal diversity after the nearest document.
        """
        self._check_mmr(k, fetch_k, lambda_mult)
        vector = self._query_vector(embedding)
        spec = self._ensure(len(vector))
        if spec is None:
            return self._nothing(filter)
        query, pre = self._search(spec, vector, fetch_k, filter, kwargs, with_embedding=True)
        rows = self._db.fetch(query, binary=True, settings=pre)
        return self._mmr_pick(vector, rows, k, lambda_mult)

    async def amax_marginal_relevance_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `max_marginal_relevance_search_with_score_by_vector`."""
        self._check_mmr(k, fetch_k, lambda_mult)
        vector = self._query_vector(embedding)
        spec = await self._aensure(len(vector))
        if spec is None:
            return self._nothing(filter)
        query, pre = self._search(spec, vector, fetch_k, filter, kwargs, with_embedding=True)
        rows = await self._adb.fetch(query, binary=True, settings=pre)
        return self._mmr_pick(vector, rows, k, lambda_mult)

    def max_marginal_relevance_search_with_score(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """MMR for a query text, in selection order, with distances."""
        self._check_mmr(k, fetch_k, lambda_mult)
        vector = self._embedding.embed_query(query)
        return self.max_marginal_relevance_search_with_score_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
        )

    async def amax_marginal_relevance_search_with_score(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `max_marginal_relevance_search_with_score`."""
        self._check_mmr(k, fetch_k, lambda_mult)
        vector = await self._embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_with_score_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
        )

    @override
    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Documents chosen by maximal marginal relevance, in selection order."""
        pairs = self.max_marginal_relevance_search_with_score(
            query, k, fetch_k, lambda_mult, filter, **kwargs
        )
        return [d for d, _ in pairs]

    @override
    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async `max_marginal_relevance_search`."""
        pairs = await self.amax_marginal_relevance_search_with_score(
            query, k, fetch_k, lambda_mult, filter, **kwargs
        )
        return [d for d, _ in pairs]

    @override
    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR for a query vector, in selection order."""
        pairs = self.max_marginal_relevance_search_with_score_by_vector(
            embedding, k, fetch_k, lambda_mult, filter, **kwargs
        )
        return [d for d, _ in pairs]

    @override
    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async `max_marginal_relevance_search_by_vector`."""
        pairs = await self.amax_marginal_relevance_search_with_score_by_vector(
            embedding, k, fetch_k, lambda_mult, filter, **kwargs
        )
        return [d for d, _ in pairs]
