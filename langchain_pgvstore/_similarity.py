"""Similarity and maximal-marginal-relevance search, sync and async."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from typing_extensions import override

from . import _validate as check
from ._core import StoreCore, as_array
from ._flow import Flow, read_flow
from ._options import SearchKind, SearchOptions, parse_options
from ._sql import Frag
from .errors import InputError
from .mmr import mmr_select

__all__ = ["SimilaritySearch"]

Row = tuple[Any, ...]
Scored = list[tuple[Document, float]]


def query_text(query: object) -> str:
    """A query text to embed; `InputError` for anything else."""
    if not isinstance(query, str):
        raise InputError(f"query must be a string, got {type(query).__name__}")
    return query


class SimilaritySearch(StoreCore):
    """Nearest-neighbour and MMR search over the collection."""

    def _args(
        self, kind: SearchKind, k: int, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> tuple[int, Frag, SearchOptions]:
        """Everything a search checks before it embeds or sends anything."""
        k = check.positive_int(k, "k")
        return k, self._compile(filter), parse_options(kind, k, kwargs)

    def _nearest(
        self,
        vector: np.ndarray,
        k: int,
        where: Frag,
        options: SearchOptions,
        from_model: bool = False,
    ) -> Flow[Scored]:
        return read_flow(
            lambda spec: self._search(spec, vector, k, where, options, from_model=from_model),
            self._scored,
            [],
            options.route,
        )

    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The `k` nearest documents to a vector with their distances (lower is closer)."""
        k, where, options = self._args("similarity", k, filter, kwargs)
        return self._drive(self._nearest(self._query_vector(embedding), k, where, options))

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `similarity_search_with_score_by_vector`."""
        k, where, options = self._args("similarity", k, filter, kwargs)
        return await self._adrive(self._nearest(self._query_vector(embedding), k, where, options))

    @override
    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents nearest to the query text, with the distance (lower is closer)."""
        k, where, options = self._args("similarity", k, filter, kwargs)
        vector = self._query_vector(self._embed_query(query_text(query)), from_model=True)
        return self._drive(self._nearest(vector, k, where, options, from_model=True))

    @override
    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async `similarity_search_with_score`."""
        k, where, options = self._args("similarity", k, filter, kwargs)
        vector = self._query_vector(await self._aembed_query(query_text(query)), from_model=True)
        return await self._adrive(self._nearest(vector, k, where, options, from_model=True))

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

    def _mmr_args(
        self,
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> tuple[int, int, float, Frag, SearchOptions]:
        k, where, options = self._args("mmr", k, filter, kwargs)
        fetch_k = check.positive_int(fetch_k, "fetch_k")
        if fetch_k < k:
            raise InputError(f"fetch_k must be at least k, got fetch_k={fetch_k} and k={k}")
        lambda_mult = check.number_in(lambda_mult, "lambda_mult", 0.0, 1.0)
        return k, fetch_k, lambda_mult, where, options

    def _mmr(
        self,
        vector: np.ndarray,
        k: int,
        fetch_k: int,
        lambda_mult: float,
        where: Frag,
        options: SearchOptions,
        from_model: bool = False,
    ) -> Flow[Scored]:
        """The `fetch_k` nearest rows with their vectors (one query, binary), then MMR."""

        def pick(rows: list[Row]) -> Scored:
            if not rows:
                return []
            candidates = np.stack([as_array(r[4]) for r in rows])
            chosen = mmr_select(vector, candidates, k, lambda_mult)
            make = self._documents()
            return [(make(rows[i]), float(rows[i][3])) for i in chosen]

        return read_flow(
            lambda spec: self._search(
                spec, vector, fetch_k, where, options, with_embedding=True, from_model=from_model
            ),
            pick,
            [],
            options.route,
        )

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

        `lambda_mult=1` is plain similarity order, `0` maximal diversity after
        the nearest document.
        """
        args = self._mmr_args(k, fetch_k, lambda_mult, filter, kwargs)
        return self._drive(self._mmr(self._query_vector(embedding), *args))

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
        args = self._mmr_args(k, fetch_k, lambda_mult, filter, kwargs)
        return await self._adrive(self._mmr(self._query_vector(embedding), *args))

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
        args = self._mmr_args(k, fetch_k, lambda_mult, filter, kwargs)
        vector = self._query_vector(self._embed_query(query_text(query)), from_model=True)
        return self._drive(self._mmr(vector, *args, from_model=True))

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
        args = self._mmr_args(k, fetch_k, lambda_mult, filter, kwargs)
        vector = self._query_vector(await self._aembed_query(query_text(query)), from_model=True)
        return await self._adrive(self._mmr(vector, *args, from_model=True))

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
