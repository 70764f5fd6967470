"""The store's retriever: LangChain's search types plus `hybrid`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStoreRetriever
from typing_extensions import override

if TYPE_CHECKING:
    from .store import PGVStore

__all__ = ["PGVStoreRetriever"]


class PGVStoreRetriever(VectorStoreRetriever):
    """A `VectorStoreRetriever` for `PGVStore` with a `hybrid` search type.

    `search_type` is one of `similarity`, `similarity_score_threshold`, `mmr`
    and `hybrid`; `search_kwargs` go to the matching store method (`k`,
    `filter`, `fetch_k`, `lambda_mult`, `score_threshold`, and the query knobs
    `ef_search`, `probes`, `iterative_scan`, `statement_timeout`). `k` may also be
    given directly, and per call: `retriever.invoke(query, k=3)`.
    """

    allowed_search_types: ClassVar[tuple[str, ...]] = (
        "similarity",
        "similarity_score_threshold",
        "mmr",
        "hybrid",
    )
    k: int | None = None
    """Number of documents to return; overrides `search_kwargs["k"]`."""

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        merged = dict(self.search_kwargs)
        if self.k is not None:
            merged["k"] = self.k
        merged.update(kwargs)
        return merged

    @property
    def _store(self) -> PGVStore:
        from .store import PGVStore

        if not isinstance(self.vectorstore, PGVStore):
            raise TypeError("PGVStoreRetriever needs a PGVStore")
        return self.vectorstore

    @override
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        kw = self._kwargs(kwargs)
        store = self._store
        if self.search_type == "hybrid":
            return store.hybrid_search(query, **kw)
        if self.search_type == "mmr":
            return store.max_marginal_relevance_search(query, **kw)
        if self.search_type == "similarity_score_threshold":
            return [d for d, _ in store.similarity_search_with_relevance_scores(query, **kw)]
        return store.similarity_search(query, **kw)

    @override
    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        kw = self._kwargs(kwargs)
        store = self._store
        if self.search_type == "hybrid":
            return await store.ahybrid_search(query, **kw)
        if self.search_type == "mmr":
            return await store.amax_marginal_relevance_search(query, **kw)
        if self.search_type == "similarity_score_threshold":
            pairs = await store.asimilarity_search_with_relevance_scores(query, **kw)
            return [d for d, _ in pairs]
        return await store.asimilarity_search(query, **kw)
