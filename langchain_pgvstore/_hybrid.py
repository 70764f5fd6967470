"""Keyword (BM25) and hybrid search, sync and async."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from langchain_core.documents import Document
from pgvector import Vector
from psycopg import sql

from ._core import _TEXT_SLOT, StoreCore, _check_k, _doc, _fill
from ._sql import Frag
from ._sql.filters import compile_filter
from ._sql.fusion import fuse
from ._sql.lexical import keyword_search
from .errors import InputError
from .ingest import check_unicode
from .schema import CollectionSpec

__all__ = ["HybridOptions", "HybridSearch"]

Row = tuple[Any, ...]
Fusion = Literal["rrf", "weighted"]


@dataclass(frozen=True, slots=True)
class HybridOptions:
    """One hybrid query's knobs; built per call, never stored on the store."""

    k: int = 4
    fetch_k: int | None = None
    fusion: Fusion = "weighted"
    rrf_k: int = 60
    weights: tuple[float, float] | None = None
    k1: float = 1.2
    b: float = 0.75

    @property
    def candidates(self) -> int:
        """Rows each leg contributes: `fetch_k`, or max(20, 2k)."""
        return self.fetch_k if self.fetch_k is not None else max(20, 2 * self.k)

    def __post_init__(self) -> None:
        _check_k(self.k)
        if self.fetch_k is not None:
            _check_k(self.fetch_k, "fetch_k")
            if self.fetch_k < self.k:
                raise InputError(
                    f"fetch_k must be at least k, got fetch_k={self.fetch_k} and k={self.k}"
                )
        if self.fusion not in ("rrf", "weighted"):
            raise InputError(f"unknown fusion {self.fusion!r}; expected 'rrf' or 'weighted'")


def _documents(rows: list[Row]) -> list[tuple[Document, float]]:
    return [(_doc(r), float(r[3])) for r in rows]


def _with_documents(spec: CollectionSpec, ranked: Frag) -> Frag:
    """Join ranked `(id, score)` rows to their documents, keeping the ranking."""
    t = spec.table
    return (
        Frag(sql.SQL("SELECT d.{}, d.{}, d.{}, r.score FROM (").format(t.id, t.content, t.metadata))
        + ranked
        + Frag(
            sql.SQL(
                ') AS r JOIN {} AS d ON d.{} = r.id ORDER BY r.score DESC, r.id COLLATE "C"'
            ).format(t.qualname, t.id)
        )
    )


class HybridSearch(StoreCore):
    """BM25 keyword search over the provisioned tsvector, and its fusion with vector search."""

    def _check_text(self, query: object) -> str:
        if not isinstance(query, str):
            raise InputError(f"query must be a string, got {type(query).__name__}")
        if "\x00" in query:
            raise InputError("query contains a NUL (\\x00) character")
        return check_unicode(query, "query")

    def _keyword_frag(
        self,
        spec: CollectionSpec,
        query: str,
        k: int,
        filter: Mapping[str, Any] | None,
        k1: float,
        b: float,
    ) -> Frag:
        where = compile_filter(filter, spec.table)
        ranked = keyword_search(spec.table, query, k, where, ts_config=spec.ts_config, k1=k1, b=b)
        return _with_documents(spec, ranked)

    def keyword_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> list[tuple[Document, float]]:
        """Documents containing any of the query's terms, ranked by BM25 (higher is better).

        Terms are the query's lexemes under the collection's text-search
        configuration (stemmed, stop words removed); statistics are exact.
        """
        query = self._check_text(query)
        _check_k(k)
        spec = self._ensure()
        if spec is None:
            return self._nothing(filter)
        return _documents(self._db.fetch(self._keyword_frag(spec, query, k, filter, k1, b)))

    async def akeyword_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> list[tuple[Document, float]]:
        """Async `keyword_search_with_score`."""
        query = self._check_text(query)
        _check_k(k)
        spec = await self._aensure()
        if spec is None:
            return self._nothing(filter)
        rows = await self._adb.fetch(self._keyword_frag(spec, query, k, filter, k1, b))
        return _documents(rows)

    def keyword_search(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> list[Document]:
        """`keyword_search_with_score` without the scores."""
        pairs = self.keyword_search_with_score(query, k, filter, k1=k1, b=b)
        return [d for d, _ in pairs]

    async def akeyword_search(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> list[Document]:
        """Async `keyword_search`."""
        pairs = await self.akeyword_search_with_score(query, k, filter, k1=k1, b=b)
        return [d for d, _ in pairs]

    # -- hybrid ---------------------------------------------------------------------

    def _hybrid_frag(
        self,
        spec: CollectionSpec,
        query: str,
        vector: np.ndarray,
        filter: Mapping[str, Any] | None,
        options: HybridOptions,
        kwargs: Mapping[str, Any],
    ) -> tuple[Frag, list[Frag]]:
        def build() -> tuple[Frag, list[Frag]]:
            where = compile_filter(filter, spec.table)
            n = options.candidates
            nearest, settings = self._build_search(spec, n, filter, kwargs, False)
            vector_leg = (
                Frag(sql.SQL("SELECT id, distance FROM (")) + nearest + Frag(sql.SQL(") v"))
            )
            text = cast(str, _TEXT_SLOT)
            lexical_leg = keyword_search(
                spec.table, text, n, where, ts_config=spec.ts_config, k1=options.k1, b=options.b
            )
            fused = fuse(
                vector_leg,
                lexical_leg,
                options.k,
                method=options.fusion,
                rrf_k=options.rrf_k,
                weights=options.weights,
            )
            return _with_documents(spec, fused), settings

        key = ("hybrid", options, repr(filter), tuple(sorted(kwargs.items())))
        frag, settings = self._statement(key, build)
        return _fill(frag, Vector(vector), query), settings

    def hybrid_search_with_score_by_vector(
        self,
        query: str,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        fetch_k: int | None = None,
        fusion: Fusion = "weighted",
        rrf_k: int = 60,
        weights: tuple[float, float] | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Hybrid search with the query's embedding already at hand (not embedded again)."""
        query = self._check_text(query)
        options = HybridOptions(k, fetch_k, fusion, rrf_k, weights, k1, b)
        vector = self._query_vector(embedding)
        spec = self._ensure(len(vector))
        if spec is None:
            return self._nothing(filter)
        frag, settings = self._hybrid_frag(spec, query, vector, filter, options, kwargs)
        return _documents(self._db.fetch(frag, settings=settings))

    async def ahybrid_search_with_score_by_vector(
        self,
        query: str,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        fetch_k: int | None = None,
        fusion: Fusion = "weighted",
        rrf_k: int = 60,
        weights: tuple[float, float] | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `hybrid_search_with_score_by_vector`."""
        query = self._check_text(query)
        options = HybridOptions(k, fetch_k, fusion, rrf_k, weights, k1, b)
        vector = self._query_vector(embedding)
        spec = await self._aensure(len(vector))
        if spec is None:
            return self._nothing(filter)
        frag, settings = self._hybrid_frag(spec, query, vector, filter, options, kwargs)
        return _documents(await self._adb.fetch(frag, settings=settings))

    def hybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Vector and BM25 keyword search fused in one SQL statement; higher score is better.

        Each leg ranks `fetch_k` candidates (default max(20, 2k)) under the same
        filter. `fusion="weighted"` (the default) sums min-max normalised
        scores (weights default to 0.5 vector, 0.5 keyword; the best measured on
        SciFact, see docs/hybrid.md); `fusion="rrf"` sums `weight / (rrf_k + rank)`
        over the legs (weights default to 1, 1). `k1` and `b` tune
        BM25. Query knobs (`ef_search`, `iterative_scan`, ...) apply to the
        vector leg. All of them are per call.
        """
        self._check_text(query)
        HybridOptions(k, kwargs.get("fetch_k"))  # fail before paying for the embedding
        vector = self._embedding.embed_query(query)
        return self.hybrid_search_with_score_by_vector(query, vector, k, filter, **kwargs)

    async def ahybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `hybrid_search_with_score`."""
        self._check_text(query)
        HybridOptions(k, kwargs.get("fetch_k"))
        vector = await self._embedding.aembed_query(query)
        return await self.ahybrid_search_with_score_by_vector(query, vector, k, filter, **kwargs)

    def hybrid_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """`hybrid_search_with_score` without the scores."""
        return [d for d, _ in self.hybrid_search_with_score(query, k, filter, **kwargs)]

    async def ahybrid_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async `hybrid_search`."""
        pairs = await self.ahybrid_search_with_score(query, k, filter, **kwargs)
        return [d for d, _ in pairs]
