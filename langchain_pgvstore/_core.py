"""The shared core of `PGVStore`: configuration, runners, provisioning, the search statement.

Each public method is a pair: the sync one and its `a`-prefixed twin share a
private builder (SQL fragments, plans, result mapping) and differ only in
which runner waits for the database and which embedding call they make.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from pgvector import Vector
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import override

from ._closing import Closing
from ._documents import document
from ._runner import AsyncRunner, Runner
from ._sql import Frag, Rendered
from ._sql.filters import compile_filter
from ._sql.search import Quantized, SearchSettings, filtered_knn, knn, settings_frags
from ._steps import Plan
from .config import (
    DEFAULT_HNSW,
    MAX_DIMENSIONS,
    Distance,
    HNSWIndex,
    IndexSpec,
    Table,
    VectorType,
    validate_identifier,
)
from .connection import Connector, PoolOptions
from .errors import InputError
from .ingest import vectors_array
from .schema import CollectionSpec, provision_plan, provisioning_denied

__all__ = ["StoreCore"]

#: pgvector's default `hnsw.ef_search`: an HNSW scan returns at most this many rows.
HNSW_DEFAULT_EF_SEARCH = 40

Row = tuple[Any, ...]

#: Search statements cached per store (see `StoreCore._search`).
_STATEMENT_CACHE_SIZE = 256
#: Stand for the query vector and the query text in a cached statement's parameters.
_VECTOR_SLOT = object()
_TEXT_SLOT = object()


def _fill(frag: Frag, vector: Vector, text: str | None = None) -> Frag:
    """A cached statement with this call's query vector (and text) in their slots."""
    params = tuple(
        vector if p is _VECTOR_SLOT else text if p is _TEXT_SLOT else p for p in frag.params
    )
    return Frag(frag.sql, params)


def _doc(row: Row) -> Document:
    return document(row[0], row[1], row[2])


def _as_array(value: Any) -> np.ndarray:
    """A vector column value (pgvector `Vector` or `HalfVector`) as float32 numpy."""
    array: np.ndarray = np.asarray(value.to_numpy(), dtype=np.float32)
    return array


def _check_k(k: object, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"{name} must be a positive integer, got {k!r}")
    return k


def _embedding_model_name(embedding: Embeddings) -> str | None:
    # a cache wrapper (CacheBackedEmbeddings) names the model it wraps
    embedding = getattr(embedding, "underlying_embeddings", embedding)
    for attr in ("model", "model_name"):
        value = getattr(embedding, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


class StoreCore(Closing, VectorStore):
    """State and plumbing shared by the store's method groups (see `PGVStore`)."""

    def __init__(
        self,
        embedding: Embeddings,
        *,
        connection: str | ConnectionPool[Any] | AsyncConnectionPool[Any] | None = None,
        collection: str = "langchain",
        schema: str = "public",
        distance: str | Distance = Distance.COSINE,
        dimensions: int | None = None,
        vector_type: str | VectorType = VectorType.VECTOR,
        text_search_config: str = "english",
        index: IndexSpec = DEFAULT_HNSW,
        embedding_batch_size: int = 512,
        bulk_rebuild_rows: int = 10_000,
        maintenance_work_mem: str | None = None,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        statement_timeout: float | None = None,
        exact_search_threshold: int = 2_000,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
        ):
            raise InputError(f"dimensions must be a positive integer, got {dimensions!r}")
        if not isinstance(embedding_batch_size, int) or embedding_batch_size < 1:
            raise InputError(
                f"embedding_batch_size must be a positive integer, got {embedding_batch_size!r}"
            )
        validate_identifier(text_search_config, "text_search_config")
        self._spec = CollectionSpec(
            table=Table(schema, collection),
            distance=Distance.parse(distance),
            vector_type=VectorType.parse(vector_type),
            ts_config=text_search_config,
            index=index,
            dimensions=dimensions,
            embedding_model=_embedding_model_name(embedding),
            bulk_rebuild_rows=bulk_rebuild_rows,
            maintenance_work_mem=maintenance_work_mem,
        )
        self._embedding = embedding
        self._batch_size = embedding_batch_size
        self._connector = Connector(
            connection,
            PoolOptions(
                max_size=pool_size, timeout=pool_timeout, statement_timeout=statement_timeout
            ),
            data_dir,
        )
        self._db = Runner(self._connector)
        self._adb = AsyncRunner(self._connector)
        self._provisioned = False
        self._statements: dict[Hashable, tuple[Frag, list[Frag]]] = {}
        if (
            isinstance(exact_search_threshold, bool)
            or not isinstance(exact_search_threshold, int)
            or exact_search_threshold < 0
        ):
            raise InputError(
                "exact_search_threshold must be a non-negative integer,"
                f" got {exact_search_threshold!r}"
            )
        self._exact_below = exact_search_threshold

    # -- properties ---------------------------------------------------------

    @property
    @override
    def embeddings(self) -> Embeddings:
        """The embedding model."""
        return self._embedding

    @property
    def collection(self) -> str:
        """The collection (table) name."""
        return self._spec.table.name

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding the collection's table."""
        return self._spec.table.schema

    @property
    def distance(self) -> Distance:
        """The distance this collection is searched by."""
        return self._spec.distance

    @property
    def dimensions(self) -> int | None:
        """Vector size, once known (given, registered, or inferred from the first vector)."""
        return self._spec.dimensions

    @property
    def dsn(self) -> str:
        """The connection string in use, for psql, pg_dump or other tools (may hold a password)."""
        return self._connector.dsn

    def __repr__(self) -> str:
        return (
            f"PGVStore(collection={self.collection!r}, schema={self._spec.table.schema!r},"
            f" distance={self.distance.value!r}, {self._connector.description})"
        )

    # -- provisioning ---------------------------------------------------------

    def _provision_plan(self, dimensions: int | None) -> Callable[[], Plan[CollectionSpec]]:
        spec = self._spec
        if spec.dimensions is None and dimensions is not None:
            spec = replace(spec, dimensions=dimensions)
        return lambda: provision_plan(spec)

    def _provisioned_spec(self, spec: CollectionSpec) -> CollectionSpec | None:
        if spec != self._spec:
            # cached statements are keyed by shape only: they belong to one spec
            self._statements.clear()
        self._spec = spec
        self._provisioned = spec.dimensions is not None
        return spec if self._provisioned else None

    def _ensure(self, dimensions: int | None = None) -> CollectionSpec | None:
        """The provisioned spec; None when the collection does not exist yet."""
        if self._provisioned:
            return self._spec
        try:
            spec = self._db.run(self._provision_plan(dimensions))
        except pg_errors.InsufficientPrivilege as e:
            raise provisioning_denied(self._spec, e) from e
        return self._provisioned_spec(spec)

    async def _aensure(self, dimensions: int | None = None) -> CollectionSpec | None:
        if self._provisioned:
            return self._spec
        try:
            spec = await self._adb.run(self._provision_plan(dimensions))
        except pg_errors.InsufficientPrivilege as e:
            raise provisioning_denied(self._spec, e) from e
        return self._provisioned_spec(spec)

    # -- search ----------------------------------------------------------------

    def _query_vector(self, embedding: Sequence[float] | np.ndarray) -> np.ndarray:
        # The common case, a clean 1-d vector of the right size, is checked in one
        # conversion; anything else takes the batch path, which names what is wrong.
        dims = self._spec.dimensions
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                flat = np.asarray(embedding, dtype=np.float32)
                if self._spec.vector_type is VectorType.HALFVEC:
                    flat = flat.astype(np.float16).astype(np.float32)
        except (TypeError, ValueError):
            flat = None
        if (
            flat is not None
            and flat.ndim == 1
            and 1 <= len(flat) <= MAX_DIMENSIONS
            and len(flat) == (dims or len(flat))
            and np.isfinite(flat).all()
        ):
            return flat
        array = vectors_array([list(embedding)], dims, self._spec.vector_type)
        row: np.ndarray = array[0]
        return row

    def _search(
        self,
        spec: CollectionSpec,
        vector: np.ndarray,
        k: int,
        filter: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        *,
        with_embedding: bool = False,
    ) -> tuple[Frag, list[Frag]]:
        """The search statement and the transaction-local settings it runs with.

        Building and rendering a statement costs more than a local round trip,
        so each shape (k, filter, knobs) is built once with a slot for the
        query vector, rendered, and cached; a call only fills the slot. The
        cache holds statements of the current spec only (see `_provisioned_spec`).
        """
        key = ("knn", k, repr(filter), tuple(sorted(kwargs.items())), with_embedding)
        query, settings = self._statement(
            key, lambda: self._build_search(spec, k, filter, kwargs, with_embedding)
        )
        return _fill(query, Vector(vector)), settings

    def _statement(
        self, key: Hashable, build: Callable[[], tuple[Frag, list[Frag]]]
    ) -> tuple[Frag, list[Frag]]:
        """The statement of this shape: built and rendered on first use, then cached."""
        try:
            cached = self._statements.get(key)
        except TypeError:  # an unhashable knob value: build it every time
            key, cached = None, None
        if cached is None:
            query, settings = build()
            cached = (
                Frag(Rendered(query.sql), query.params),
                [Frag(Rendered(s.sql), s.params) for s in settings],
            )
            if key is not None:
                if len(self._statements) >= _STATEMENT_CACHE_SIZE:
                    self._statements.clear()  # atomic, unlike evicting while others read
                self._statements[key] = cached
        return cached

    def _build_search(
        self,
        spec: CollectionSpec,
        k: int,
        filter: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        with_embedding: bool,
    ) -> tuple[Frag, list[Frag]]:
        settings = self._settings(kwargs)
        where = compile_filter(filter, spec.table)
        args = (spec.table, spec.distance, spec.vector_type, _VECTOR_SLOT, k, where)
        exact = kwargs.get("exact", False)
        if not isinstance(exact, bool):
            raise InputError(f"exact must be True or False, got {exact!r}")
        quantized = None if exact else self._quantized(spec, k, kwargs)
        if quantized is not None:
            # the graph must hand over the whole candidate pool, not ef_search rows
            ef = min(1000, max(settings.ef_search or 40, quantized.pool))
            settings = replace(settings, ef_search=ef)
        if (
            isinstance(spec.index, HNSWIndex)
            and quantized is None
            and not exact
            and (k > HNSW_DEFAULT_EF_SEARCH or (settings.ef_search or k) < k)
        ):
            settings = replace(settings, min_ef_search=min(1000, k))
            if k > 1000 and settings.iterative_scan is None:
                # past ef_search's ceiling only an iterative scan yields more rows
                settings = replace(settings, iterative_scan="strict_order")
        if exact or spec.index is None or not filter:
            query = knn(*args, with_embedding=with_embedding, exact=exact, quantized=quantized)
            if spec.index is not None and not exact and not settings.empty:
                # a caller who tunes the index wants the index, not a sequential scan
                settings = replace(settings, index_scan=True)
        else:
            threshold = kwargs.get("exact_search_threshold", self._exact_below)
            if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
                raise InputError(
                    f"exact_search_threshold must be a non-negative integer, got {threshold!r}"
                )
            query = filtered_knn(
                *args, threshold, with_embedding=with_embedding, quantized=quantized
            )
            # when the filter matches many rows the graph walk continues until k
            # of them are found, instead of returning what the first pass saw
            iterative = settings.iterative_scan or "relaxed_order"
            settings = replace(settings, iterative_scan=iterative, custom_plan=True)
        return query, settings_frags(settings)

    def _nothing(self, filter: Mapping[str, Any] | None) -> list[Any]:
        """The result of a search before the collection exists, after checking the filter."""
        compile_filter(filter, self._spec.table)
        return []

    @staticmethod
    def _quantized(spec: CollectionSpec, k: int, kwargs: Mapping[str, Any]) -> Quantized | None:
        index = spec.index
        if not isinstance(index, HNSWIndex) or index.quantization != "binary":
            return None
        assert spec.dimensions is not None
        pool = kwargs.get("rerank_pool") or index.rerank_pool or max(40, 4 * k)
        if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= 1000:
            raise InputError(f"rerank_pool must be an integer in [1, 1000], got {pool!r}")
        return Quantized(spec.dimensions, max(pool, k))

    @staticmethod
    def _settings(kwargs: Mapping[str, Any]) -> SearchSettings:
        return SearchSettings(
            ef_search=kwargs.get("ef_search"),
            probes=kwargs.get("probes"),
            iterative_scan=kwargs.get("iterative_scan"),
            max_scan_tuples=kwargs.get("max_scan_tuples"),
            statement_timeout=kwargs.get("statement_timeout"),
        )

    @override
    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance → relevance in [0, 1] for this store's distance (see `Distance.relevance`)."""
        return self._spec.distance.relevance()

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pools this store opened (a pool you passed in stays open)."""
        self._connector.close()

    async def aclose(self) -> None:
        """Close the pools this store opened, async ones included."""
        await self._connector.aclose()
