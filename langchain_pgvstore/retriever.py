"""The store's retriever: LangChain's search types plus `hybrid`."""

from __future__ import annotations

from collections.abc import Callable
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


def _relevance_docs(pairs: list[tuple[Document, float]]) -> list[Document]:
    return [d for d, _ in pairs]


#: search type -> (sync method, async method, result mapping). A new search mode
#: is one row here.
_SEARCHES: dict[str, tuple[str, str, Callable[[Any], list[Document]] | None]] = {
    "similarity": ("similarity_search", "asimilarity_search", None),
    "similarity_score_threshold": (
        "similarity_search_with_relevance_scores",
        "asimilarity_search_with_relevance_scores",
        _relevance_docs,
    ),
    "mmr": ("max_marginal_relevance_search", "amax_marginal_relevance_search", None),
    "keyword": ("keyword_search", "akeyword_search", None),
    "hybrid": ("hybrid_search", "ahybrid_search", None),
}


class PGVStoreRetriever(VectorStoreRetriever):
    """A `VectorStoreRetriever` for `PGVStore` with `keyword` and `hybrid` search types.

    `search_type` is one of `similarity`, `similarity_score_threshold`, `mmr`,
    `keyword` and `hybrid`; `search_kwargs` go to the matching store method
    (`k`, `filter`, `fetch_k`, `lambda_mult`, `score_threshold`, and the search
    options of docs/api.md, e.g. `ef_search`); an unknown one raises
    `InputError`. `k` may also be given directly, and per call:
    `retriever.invoke(query, k=3)`.
    """

    allowed_search_types: ClassVar[tuple[str, ...]] = tuple(_SEARCHES)
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
        method, _, mapping = _SEARCHES[self.search_type]
        result = getattr(self._store, method)(query, **self._kwargs(kwargs))
        return mapping(result) if mapping else list(result)

    @override
    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        _, method, mapping = _SEARCHES[self.search_type]
        result = await getattr(self._store, method)(query, **self._kwargs(kwargs))
        return mapping(result) if mapping else list(result)
