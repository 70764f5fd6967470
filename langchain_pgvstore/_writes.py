"""Adding and deleting documents, sync and async.

Every argument is checked before the embedding model is called and before
anything is sent: a bad call costs nothing and writes nothing. A load runs
in one transaction (binary COPY, then one upsert), so a failure half-way
leaves none of its rows behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from typing_extensions import override

from . import _validate as check
from ._core import StoreCore, model_failed
from ._flow import Flow, change_flow, write_flow
from ._ingest import Batch, check_ids, prepare_batch
from ._load import load_plan
from ._plan import Execute, Plan
from ._progress import PhaseCallback, Progress, make_progress, report_phases
from ._routing import WriteToken
from ._schema import CollectionSpec, drop_plan
from ._sql import Frag, dml
from ._sql.replication import commit_lsn
from .errors import DimensionError, EmbeddingError, InputError

__all__ = ["Writes"]


def _batches(n: int, size: int) -> list[range]:
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def _texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InputError("texts must be a list of strings, not a single string")
    if isinstance(texts, Mapping):
        raise InputError("texts must be a list of strings, not a dict")
    return list(texts)


def _no_extra(method: str, kwargs: Mapping[str, Any], expected: str) -> None:
    for name in kwargs:
        raise InputError(f"unknown argument {name!r} for {method}; expected {expected}")


def _model_vectors(vectors: object, expected: int) -> list[Any]:
    """What the model returned, if it is one vector per text."""
    if not isinstance(vectors, (list, tuple, np.ndarray)):
        raise EmbeddingError(
            f"the embedding model returned {type(vectors).__name__}, not a list of vectors"
        )
    if len(vectors) != expected:
        raise EmbeddingError(
            f"the embedding model returned {len(vectors)} vectors for {expected} texts"
        )
    return list(vectors)


def _from_model(batch: Callable[[], Batch]) -> Batch:
    """The batch of what a model returned: a bad vector is the model's fault."""
    try:
        return batch()
    except DimensionError:
        raise
    except InputError as e:
        raise EmbeddingError(f"the embedding model returned a bad vector: {e}") from None


class Writes(StoreCore):
    """Upserts (`add_*`) and deletes."""

    # -- embedding ------------------------------------------------------------------

    def _embed(self, texts: list[str], size: int, progress: Progress) -> list[Any]:
        vectors: list[Any] = []
        for chunk in _batches(len(texts), size):
            part = [texts[i] for i in chunk]
            try:
                got = self._embedding.embed_documents(part)
            except (EmbeddingError, DimensionError):
                raise
            except Exception as e:
                raise model_failed(e) from e
            vectors.extend(_model_vectors(got, len(part)))
            progress.advance(len(part))
        return vectors

    async def _aembed(self, texts: list[str], size: int, progress: Progress) -> list[Any]:
        vectors: list[Any] = []
        for chunk in _batches(len(texts), size):
            part = [texts[i] for i in chunk]
            try:
                got = await self._embedding.aembed_documents(part)
            except (EmbeddingError, DimensionError):
                raise
            except Exception as e:
                raise model_failed(e) from e
            vectors.extend(_model_vectors(got, len(part)))
            progress.advance(len(part))
        return vectors

    # -- loading --------------------------------------------------------------------

    def _batch(
        self,
        texts: list[str],
        vectors: Sequence[Sequence[float]] | np.ndarray,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
    ) -> Batch:
        spec = self._spec
        return prepare_batch(
            texts,
            metadatas,
            ids,
            vectors,
            spec.dimensions,
            spec.vector_type,
            spec.distance,
            self._configured.table.columns,
        )

    def _precheck(
        self,
        texts: list[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
    ) -> None:
        # Validate what we can before paying for embeddings.
        prepare_batch(
            texts, metadatas, ids, np.ones((len(texts), 1)), None,
            columns=self._configured.table.columns,
        )  # fmt: skip

    def _load(
        self, batch: Batch, also: Sequence[Frag] = (), *, progress: Progress | None = None
    ) -> Flow[int]:
        """Write `batch` (as the bound tenant's rows), then run the statements `also`, in
        one transaction; the rows the load really wrote (unchanged rows are not written).
        `progress` hears of the load's phases (copy, merge, index)."""
        tenant = self._bound_tenant()

        def prepare(spec: CollectionSpec) -> Callable[[], Plan[int]]:
            if batch.vectors.shape[1] != spec.dimensions:
                raise DimensionError(
                    f"expected {spec.dimensions} dimensions, got {batch.vectors.shape[1]}"
                    " (document 0)"
                )
            spec.table.names.refuse_unfitting(batch.ids, spec.table.name)

            def plan() -> Plan[int]:
                steps = load_plan(spec, batch, tenant)
                written = yield from (steps if progress is None else report_phases(steps, progress))
                for frag in also:
                    yield Execute(frag)
                return written

            return plan

        return write_flow(batch.vectors.shape[1], prepare)

    def _load_batch(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
        ids: Sequence[str],
        *,
        also: Sequence[Frag],
    ) -> int:
        """Upsert a non-empty batch with precomputed vectors and run `also` in the same
        transaction; returns how many rows the upsert wrote.

        The importers record each batch's checkpoint this way, so that a batch and
        its checkpoint commit together or not at all.
        """
        batch = self._batch(_texts(texts), embeddings, metadatas, ids)
        if not len(batch):
            raise InputError("a batch to load needs at least one document")
        return self._drive(self._load(batch, also))

    def _add_args(
        self,
        texts: Iterable[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
        batch_size: int | None,
        kwargs: Mapping[str, Any],
    ) -> tuple[list[str], int]:
        _no_extra("add_texts", kwargs, "ids, progress or batch_size")
        text_list = _texts(texts)
        size = (
            self._batch_size if batch_size is None else check.positive_int(batch_size, "batch_size")
        )
        self._precheck(text_list, metadatas, ids)
        return text_list, size

    @override
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        progress: bool | PhaseCallback | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed texts and upsert them; returns their ids in input order.

        `batch_size` texts go to the embedding model per call (default: the
        store's). `progress=True` shows a tqdm bar per phase of the load; a
        callable receives `(phase, done, total)` for the phases `embedding`,
        `copy`, `merge` (not when a large load goes straight into an empty
        table) and `index` (when the load builds the ANN index), in that order;
        `total` is the number of texts.
        """
        text_list, size = self._add_args(texts, metadatas, ids, batch_size, kwargs)
        with make_progress(progress) as bar:
            if not text_list:
                return []
            bar.phase("embedding", len(text_list))
            vectors = self._embed(text_list, size, bar)
            batch = _from_model(lambda: self._batch(text_list, vectors, metadatas, ids))
            if len(batch):
                self._drive(self._load(batch, progress=bar))
            return batch.ids

    @override
    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        progress: bool | PhaseCallback | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async `add_texts`."""
        text_list, size = self._add_args(texts, metadatas, ids, batch_size, kwargs)
        with make_progress(progress) as bar:
            if not text_list:
                return []
            bar.phase("embedding", len(text_list))
            vectors = await self._aembed(text_list, size, bar)
            batch = _from_model(lambda: self._batch(text_list, vectors, metadatas, ids))
            if len(batch):
                await self._adrive(self._load(batch, progress=bar))
            return batch.ids

    def add_embeddings(
        self,
        texts: Iterable[str],
        embeddings: Sequence[Sequence[float]] | np.ndarray,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Upsert texts with precomputed vectors (binary COPY, one transaction)."""
        batch = self._batch(_texts(texts), embeddings, metadatas, ids)
        if len(batch):
            self._drive(self._load(batch))
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
        batch = self._batch(_texts(texts), embeddings, metadatas, ids)
        if len(batch):
            await self._adrive(self._load(batch))
        return batch.ids

    @staticmethod
    def _split_documents(
        documents: list[Document], ids: object
    ) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
        if isinstance(documents, (str, bytes, Mapping)) or not isinstance(documents, Sequence):
            raise InputError(
                f"documents must be a list of Documents, got {type(documents).__name__}"
            )
        for i, d in enumerate(documents):
            if not isinstance(d, Document):
                raise InputError(
                    f"documents must be Documents, got {type(d).__name__} (document {i})"
                )
        if ids is not None:
            if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
                raise InputError(f"ids must be a list of strings, got {type(ids).__name__}")
            if len(ids) != len(documents):
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

    # -- delete -----------------------------------------------------------------------

    def _delete(
        self, ids: Sequence[str] | None, filter: Mapping[str, Any] | None, kwargs: Mapping[str, Any]
    ) -> Flow[bool]:
        _no_extra("delete", kwargs, "ids or filter")
        if ids is None and not filter:
            raise InputError(
                "delete needs ids or a non-empty filter; to remove everything use"
                " delete_collection()"
            )
        # the tenant's scope, and the filter if one was given
        where = self._compile(filter) if filter or self._tenant is not None else None
        if where is None and self._configured.table.multi_tenant:
            self._bound_tenant()  # refuses the unbound store
        id_list = check_ids(ids) if ids is not None else None

        def prepare(spec: CollectionSpec) -> Callable[[], Plan[bool]]:
            frag: Frag | None
            if id_list is None:
                assert where is not None
                frag = dml.delete_where(spec.table, where)
            elif not id_list:
                frag = None
            else:
                frag = dml.delete_ids(spec.table, id_list, where)

            def plan() -> Plan[bool]:
                if frag is not None:
                    yield Execute(frag)
                return True

            return plan

        return change_flow(prepare, True)

    @override
    def delete(
        self,
        ids: list[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Delete by ids and/or metadata filter; missing ids are fine. Returns True."""
        return self._drive(self._delete(ids, filter, kwargs))

    @override
    async def adelete(
        self,
        ids: list[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Async `delete`."""
        return await self._adrive(self._delete(ids, filter, kwargs))

    def delete_collection(self) -> None:
        """Drop the collection's table and registry row; the store can be reused afterwards."""
        self._write(lambda: drop_plan(self._configured))
        self._known_spec(None)

    async def adelete_collection(self) -> None:
        """Async `delete_collection`."""
        await self._awrite(lambda: drop_plan(self._configured))
        self._known_spec(None)

    # -- read-your-writes across processes ------------------------------------------------

    def write_token(self) -> WriteToken:
        """A token covering this store's writes so far, for a later read's `after=`.

        With `read_your_writes=True` it is the commit position of the store's last
        write (no I/O). Otherwise, or before the first write, the primary's current
        position, which covers every write committed so far (one round trip).
        `str(token)` travels to another process; `WriteToken.parse` reads it back.
        """
        known = self._replicas.last_write if self._replicas is not None else None
        return known or WriteToken(int(self._db.fetch(commit_lsn())[0][0]))

    async def awrite_token(self) -> WriteToken:
        """Async `write_token`."""
        known = self._replicas.last_write if self._replicas is not None else None
        return known or WriteToken(int((await self._adb.fetch(commit_lsn()))[0][0]))
