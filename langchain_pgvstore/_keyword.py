"""Keyword (BM25) and hybrid search, sync and async.

Both take their knobs through the same options parser as the similarity
searches (`_options.py`): `k1` and `b` for BM25; `fetch_k`, `fusion`, `rrf_k`
and `weights` for fusion; the vector knobs for hybrid's vector leg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from pgvector import Vector

from . import _validate as check
from ._core import StoreCore
from ._flow import Flow, Query, read_flow
from ._options import SearchOptions, parse_options
from ._schema import CollectionSpec
from ._similarity import query_text
from ._sql import Frag, dml
from ._sql.bm25_search import keyword_search
from ._sql.filters import TRUE
from ._sql.fusion import fuse
from ._sql.search import ids_and_distances, ranked_documents
from ._sql.settings import Settings, search_settings
from ._sql.textsearch import BM25_B, BM25_K1
from ._sql.textsearch import keyword_search as index_keyword_search
from ._statements import TEXT, slotted
from .config import Table
from .errors import InputError, SchemaError

__all__ = ["KeywordSearch"]

Row = tuple[Any, ...]
Scored = list[tuple[Document, float]]


def _scope(spec: CollectionSpec, where: Frag) -> Frag | None:
    """The tenant predicate for joining ranked ids back to their rows.

    A ranked leg returns ids; in a multi-tenant collection an id alone names
    rows of several tenants. The tenant is the first parameter of `where` (see
    `compile_filter`): the same slot, so the cached statement stays one shape.
    """
    if not spec.table.multi_tenant:
        return None
    return dml.tenant_is(spec.table, where.params[0])  # type: ignore[arg-type]


def _keyword_text(query: object) -> str:
    """The query text for BM25: it becomes a parameter of a full-text function."""
    return check.pg_text(query_text(query), "query")


def need_full_text(table: Table) -> None:
    """`SchemaError` for a collection without full text (`full_text=False`)."""
    if not table.has_full_text and not table.textsearch:
        raise SchemaError(
            f"collection {table.schema}.{table.name} has no full text (it was created with"
            " full_text=False): keyword and hybrid search need it; use similarity search,"
            " or a collection created with full text"
        )


def _lexical_leg(spec: CollectionSpec, k: int, where: Frag, options: SearchOptions) -> Frag:
    """The BM25 leg `(id, score)`: on the collection's `pg_textsearch` index if it has one,
    else in plain SQL over its `tsv` and statistics."""
    if spec.table.textsearch:
        if (options.k1, options.b) != (BM25_K1, BM25_B):
            raise InputError(
                f"collection {spec.table.schema}.{spec.table.name} ranks with its pg_textsearch"
                f" index, built with k1={BM25_K1} and b={BM25_B}: k1 and b cannot be changed"
                " per call there"
            )
        return index_keyword_search(spec.table, TEXT, k, None if where is TRUE else where)
    return keyword_search(
        spec.table, TEXT, k, where, ts_config=spec.ts_config,  # type: ignore[arg-type]
        k1=options.k1, b=options.b,
    )  # fmt: skip


class KeywordSearch(StoreCore):
    """BM25 keyword search (over the provisioned tsvector, or on the collection's
    `pg_textsearch` index), and its fusion with vector search."""

    def _keyword_args(
        self, query: str, k: int, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> tuple[str, int, Frag, SearchOptions]:
        need_full_text(self._configured.table)
        text = _keyword_text(query)
        k = check.positive_int(k, "k")
        return text, k, self._compile(filter), parse_options("keyword", k, kwargs)

    def _keyword(self, text: str, k: int, where: Frag, options: SearchOptions) -> Flow[Scored]:
        def build(spec: CollectionSpec) -> Query:
            need_full_text(spec.table)  # an existing collection opened without the option
            filter_key, slotted_where = (None, where) if where is TRUE else slotted(where)

            def make() -> tuple[Frag, Settings]:
                ranked = _lexical_leg(spec, k, slotted_where, options)
                timeout = search_settings(statement_timeout_s=options.statement_timeout)
                return ranked_documents(spec.table, ranked, _scope(spec, slotted_where)), timeout

            template = self._template(("keyword", k, options, filter_key), make)
            return Query(template.fill(None, text, where.params), template.settings)

        return read_flow(build, self._scored, [], options.route)

    def keyword_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents containing any of the query's terms, ranked by BM25 (higher is better).

        Terms are the query's lexemes under the collection's text-search
        configuration (stemmed, stop words removed); statistics are exact.
        `k1` and `b` tune BM25. On a `full_text="pg_textsearch"` collection its
        BM25 index ranks (same scores; `k1` and `b` are the index's).
        """
        return self._drive(self._keyword(*self._keyword_args(query, k, filter, kwargs)))

    async def akeyword_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async `keyword_search_with_score`."""
        return await self._adrive(self._keyword(*self._keyword_args(query, k, filter, kwargs)))

    def keyword_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """`keyword_search_with_score` without the scores."""
        return [d for d, _ in self.keyword_search_with_score(query, k, filter, **kwargs)]

    async def akeyword_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async `keyword_search`."""
        pairs = await self.akeyword_search_with_score(query, k, filter, **kwargs)
        return [d for d, _ in pairs]

    # -- hybrid ---------------------------------------------------------------------

    def _hybrid_args(
        self, query: str, k: int, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> tuple[str, int, Frag, SearchOptions]:
        need_full_text(self._configured.table)
        text = _keyword_text(query)
        k = check.positive_int(k, "k")
        return text, k, self._compile(filter), parse_options("hybrid", k, kwargs)

    def _hybrid(
        self,
        text: str,
        vector: np.ndarray,
        k: int,
        where: Frag,
        options: SearchOptions,
        from_model: bool = False,
    ) -> Flow[Scored]:
        def build(spec: CollectionSpec) -> Query:
            need_full_text(spec.table)  # an existing collection opened without the option
            filter_key, slotted_where = (None, where) if where is TRUE else slotted(where)

            def make() -> tuple[Frag, Settings]:
                n = options.candidates(k)
                nearest, settings = self._build_search(spec, n, slotted_where, options, False)
                vector_leg = ids_and_distances(nearest)
                keyword_leg = _lexical_leg(spec, n, slotted_where, options)
                fused = fuse(
                    vector_leg,
                    keyword_leg,
                    k,
                    method=options.fusion,
                    rrf_k=options.rrf_k,
                    weights=options.weights,
                )
                return ranked_documents(spec.table, fused, _scope(spec, slotted_where)), settings

            template = self._template(("hybrid", k, options, filter_key), make)
            frag = template.fill(Vector(self._fits(spec, vector, from_model)), text, where.params)
            return Query(frag, template.settings)

        return read_flow(build, self._scored, [], options.route)

    def hybrid_search_with_score_by_vector(
        self,
        query: str,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Hybrid search with the query's embedding already at hand (not embedded again)."""
        text, k, where, options = self._hybrid_args(query, k, filter, kwargs)
        return self._drive(self._hybrid(text, self._query_vector(embedding), k, where, options))

    async def ahybrid_search_with_score_by_vector(
        self,
        query: str,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async `hybrid_search_with_score_by_vector`."""
        text, k, where, options = self._hybrid_args(query, k, filter, kwargs)
        vector = self._query_vector(embedding)
        return await self._adrive(self._hybrid(text, vector, k, where, options))

    def hybrid_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Vector and BM25 keyword search fused in one SQL statement; higher score is better.

        Each leg ranks `fetch_k` candidates (default max(20, 2k)) under the same
        filter. `fusion="weighted"` (the default) sums min-max normalised
        scores (weights default to 0.5 vector, 0.5 keyword; the best measured on
        SciFact, see docs/hybrid.md); `fusion="rrf"` sums `weight / (rrf_k + rank)`
        over the legs (weights default to 1, 1). `k1` and `b` tune BM25. The
        vector knobs (`ef_search`, `iterative_scan`, ...) apply to the vector leg.
        All of them are per call.
        """
        text, k, where, options = self._hybrid_args(query, k, filter, kwargs)
        vector = self._query_vector(self._embed_query(text), from_model=True)
        return self._drive(self._hybrid(text, vector, k, where, options, from_model=True))

    async def ahybrid_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async `hybrid_search_with_score`."""
        text, k, where, options = self._hybrid_args(query, k, filter, kwargs)
        vector = self._query_vector(await self._aembed_query(text), from_model=True)
        return await self._adrive(self._hybrid(text, vector, k, where, options, from_model=True))

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
