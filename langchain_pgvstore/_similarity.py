"""Similarity and maximal-marginal-relevance search, sync and async."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from langchain_core.documents import Document
from typing_extensions import override

from . import _validate as check
from ._core import StoreCore, as_array
from ._flow import Flow, Query, read_flow
from ._options import SearchKind, SearchOptions, parse_options
from ._routing import ReadRoute
from ._schema import CollectionSpec
from ._sql import Frag
from .errors import InputError
from .mmr import mmr_select

__all__ = ["SimilaritySearch"]

Row = tuple[Any, ...]
Scored = list[tuple[Document, float]]
Build = Callable[[CollectionSpec], Query]
Finish = Callable[[list[Row]], Scored]
Read = tuple[Build, Finish, ReadRoute | None]


def query_text(query: object) -> str:
    """A query text to embed; `InputError` for anything else."""
    if not isinstance(query, str):
        raise InputError(f"query must be a string, got {type(query).__name__}")
    return query


def _nothing() -> Scored:
    """What a search finds before the collection exists (a new list for each call)."""
    return []


def _at_query(
    build: Build, finish: Finish, route: ReadRoute | None, spec: CollectionSpec
) -> Flow[Scored]:
    """The read flow of a fast-path search, advanced to its query (whose failure goes in)."""
    flow = read_flow(build, finish, _nothing(), route)
    if route is not None:
        next(flow)  # the route, which the driver is then given directly
    flow.send(None)  # LOOKUP
    flow.send(spec)  # the query
    return flow


class SimilaritySearch(StoreCore):
    """Nearest-neighbour and MMR search over the collection."""

    def _args(
        self, kind: SearchKind, k: int, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> tuple[int, Frag, SearchOptions]:
        """Everything a search checks before it embeds or sends anything."""
        k = check.positive_int(k, "k")
        return k, self._compile(filter), parse_options(kind, k, kwargs)

    def _read(self, build: Build, finish: Finish, route: ReadRoute | None) -> Scored:
        """`read_flow(build, finish, [], route)`, driven; the flow is skipped while the
        collection is known and its one query succeeds (a search's client time is mostly
        this path). The query is carried out as the flow's would be (`_perform`: the
        tenant's settings, a distributed collection, the read route)."""
        spec = self._trusted()
        if spec is None:
            return self._drive(read_flow(build, finish, _nothing(), route))
        try:
            rows = self._perform(build(spec), route)
        except psycopg.Error as e:
            # the flow decides what a failure means (a changed collection is looked up again)
            return self._drive(_at_query(build, finish, route, spec), e, route)
        return finish(rows)

    async def _aread(self, build: Build, finish: Finish, route: ReadRoute | None) -> Scored:
        """Async `_read`."""
        spec = self._trusted()
        if spec is None:
            return await self._adrive(read_flow(build, finish, _nothing(), route))
        try:
            rows = await self._aperform(build(spec), route)
        except psycopg.Error as e:
            return await self._adrive(_at_query(build, finish, route, spec), e, route)
        return finish(rows)

    def _nearest(
        self,
        vector: np.ndarray,
        k: int,
        where: Frag,
        options: SearchOptions,
        from_model: bool = False,
    ) -> Read:
        return (
            lambda spec: self._search(spec, vector, k, where, options, from_model=from_model),
            self._scored,
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
        return self._read(*self._nearest(self._query_vector(embedding), k, where, options))

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `similarity_search_with_score_by_vector`."""
        k, where, options = self._args("similarity", k, filter, kwargs)
        return await self._aread(*self._nearest(self._query_vector(embedding), k, where, options))

    @override
    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents nearest to the query text, with the distance (lower is closer)."""
        k, where, options = self._args("similarity", k, filter, kwargs)
        vector = self._query_vector(self._embed_query(query_text(query)), from_model=True)
        return self._read(*self._nearest(vector, k, where, options, from_model=True))

    @override
    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async `similarity_search_with_score`."""
        k, where, options = self._args("similarity", k, filter, kwargs)
        vector = self._query_vector(await self._aembed_query(query_text(query)), from_model=True)
        return await self._aread(*self._nearest(vector, k, where, options, from_model=True))

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
    ) -> Read:
        """The `fetch_k` nearest rows with their vectors (one query, binary), then MMR."""

        def pick(rows: list[Row]) -> Scored:
            if not rows:
                return []
            candidates = np.stack([as_array(r[4]) for r in rows])
            chosen = mmr_select(vector, candidates, k, lambda_mult)
            make = self._documents()
            return [(make(rows[i]), float(rows[i][3])) for i in chosen]

        return (
            lambda spec: self._search(
                spec, vector, fetch_k, where, options, with_embedding=True, from_model=from_model
            ),
            pick,
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
        return self._read(*self._mmr(self._query_vector(embedding), *args))

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
        return await self._aread(*self._mmr(self._query_vector(embedding), *args))

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
        return self._read(*self._mmr(vector, *args, from_model=True))

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
        return await self._aread(*self._mmr(vector, *args, from_model=True))

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
