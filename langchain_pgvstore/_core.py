"""The shared core of `PGVStore`: configuration, the flow drivers, the search statement.

Every public method of the store is a pair: the sync one and its `a`-prefixed
twin check their arguments and build a flow (`_flow.py`) the same way, and
differ only in which driver runs it (`_drive` or `_adrive`) and which
embedding call they make.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import psycopg
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from pgvector import Vector
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import override

from . import _validate as check
from ._closing import Closing
from ._connection import Connector, PoolOptions
from ._documents import document
from ._flow import FORGET, LOOKUP, Flow, Need, Provision, Query, Write
from ._nearest import nearest_statement
from ._options import SearchOptions
from ._runner import AsyncRunner, Runner
from ._schema import (
    CollectionSpec,
    check_indexable,
    lookup_plan,
    provision_plan,
    provisioning_denied,
)
from ._sql import Frag
from ._sql.filters import TRUE, compile_filter
from ._sql.settings import Settings
from ._statements import StatementCache, Template, slotted
from ._vectors import fits, query_vector
from .config import (
    DEFAULT_HNSW,
    MAX_DIMENSIONS,
    Distance,
    HNSWIndex,
    IndexSpec,
    IVFFlatIndex,
    Table,
    VectorType,
    memory_size,
    validate_identifier,
)
from .errors import ConfigError, DimensionError, EmbeddingError

__all__ = ["StoreCore"]

R = TypeVar("R")
Row = tuple[Any, ...]

#: Seconds a store trusts what it knows of its collection before looking it up
#: again. Another process that drops or recreates the collection makes the
#: store's statements fail, which it notices at once (`_flow.py`); a change no
#: statement trips over (the same size, another distance) is noticed this late.
SPEC_TTL = 30.0


def _doc(row: Row) -> Document:
    return document(row[0], row[1], row[2])


def _as_array(value: Any) -> np.ndarray:
    """A vector column value (pgvector `Vector` or `HalfVector`) as float32 numpy."""
    array: np.ndarray = np.asarray(value.to_numpy(), dtype=np.float32)
    return array


def _embedding_model_name(embedding: Embeddings) -> str | None:
    # a cache wrapper (CacheBackedEmbeddings) names the model it wraps
    embedding = getattr(embedding, "underlying_embeddings", embedding)
    for attr in ("model", "model_name"):
        value = getattr(embedding, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def model_failed(error: Exception) -> EmbeddingError:
    """The typed error for an embedding model that raised (the original is the cause)."""
    return EmbeddingError(f"the embedding model failed: {type(error).__name__}: {error}")


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
        batch_size: int = 512,
        bulk_rebuild_rows: int = 10_000,
        maintenance_work_mem: str | None = None,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        statement_timeout: float | None = None,
        exact_search_threshold: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        # Every argument is checked here, before anything is sent to a server.
        if not callable(getattr(embedding, "embed_query", None)):
            raise ConfigError(
                f"embedding must be a LangChain Embeddings, got {type(embedding).__name__}"
            )
        if dimensions is not None:
            check.int_in(dimensions, "dimensions", 1, MAX_DIMENSIONS, ConfigError)
        if index is not None and not isinstance(index, (HNSWIndex, IVFFlatIndex)):
            raise ConfigError(
                f"index must be HNSWIndex(...), IVFFlatIndex(...) or None, got {index!r}"
            )
        validate_identifier(text_search_config, "text_search_config")
        spec = CollectionSpec(
            table=Table(schema, collection),
            distance=Distance.parse(distance),
            vector_type=VectorType.parse(vector_type),
            ts_config=text_search_config,
            index=index,
            dimensions=dimensions,
            embedding_model=_embedding_model_name(embedding),
            bulk_rebuild_rows=check.positive_int(
                bulk_rebuild_rows, "bulk_rebuild_rows", ConfigError, maximum=check.INT8_MAX
            ),
            maintenance_work_mem=(
                None
                if maintenance_work_mem is None
                else memory_size(maintenance_work_mem, "maintenance_work_mem")
            ),
        )
        check_indexable(spec)
        self._batch_size = check.positive_int(batch_size, "batch_size", ConfigError)
        self._exact_below = (
            None
            if exact_search_threshold is None
            else check.non_negative_int(
                exact_search_threshold, "exact_search_threshold", ConfigError
            )
        )
        if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
            raise ConfigError(f"data_dir must be a path, got {type(data_dir).__name__}")
        options = PoolOptions(
            max_size=pool_size, timeout=pool_timeout, statement_timeout=statement_timeout
        )
        self._configured = spec
        self._known: CollectionSpec | None = None
        self._known_at = 0.0
        self._embedding = embedding
        self._connector = Connector(connection, options, data_dir)
        self._db = Runner(self._connector)
        self._adb = AsyncRunner(self._connector)
        self._statements = StatementCache()

    # -- properties ---------------------------------------------------------

    @property
    @override
    def embeddings(self) -> Embeddings:
        """The embedding model."""
        return self._embedding

    @property
    def _spec(self) -> CollectionSpec:
        """What the store knows of its collection: the database's record, else its own."""
        return self._known or self._configured

    @property
    def collection(self) -> str:
        """The collection (table) name."""
        return self._configured.table.name

    @property
    def distance(self) -> Distance:
        """The distance this collection is searched by."""
        return self._configured.distance

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
            f"PGVStore(collection={self.collection!r}, schema={self._configured.table.schema!r},"
            f" distance={self.distance.value!r}, {self._connector.description})"
        )

    # -- running flows --------------------------------------------------------

    def _known_spec(self, spec: CollectionSpec | None) -> CollectionSpec | None:
        if spec != self._known:
            # cached statements are keyed by shape only: they belong to one spec
            self._statements.clear()
        self._known = spec if spec is not None and spec.dimensions is not None else None
        self._known_at = time.monotonic()
        return self._known

    def _trusted(self) -> CollectionSpec | None:
        """What the store knows of its collection, if it is recent enough to trust."""
        known = self._known
        if known is not None and time.monotonic() - self._known_at < SPEC_TTL:
            return known
        return None

    def _perform(self, need: Need) -> Any:
        if need is LOOKUP:
            if (known := self._trusted()) is not None:
                return known
            return self._known_spec(
                self._db.run(lambda: lookup_plan(self._configured), transaction=False)
            )
        if need is FORGET:
            return self._known_spec(None)
        if isinstance(need, Provision):
            if (known := self._trusted()) is not None:
                return known
            plan = self._provision(need.dimensions)
            try:
                return self._known_spec(self._db.run(plan))
            except pg_errors.InsufficientPrivilege as e:
                raise provisioning_denied(self._configured, e) from e
        if isinstance(need, Query):
            return self._db.fetch(need.frag, binary=need.binary, settings=need.settings)
        assert isinstance(need, Write)
        return self._db.run(need.make_plan)

    async def _aperform(self, need: Need) -> Any:
        if need is LOOKUP:
            if (known := self._trusted()) is not None:
                return known
            return self._known_spec(
                await self._adb.run(lambda: lookup_plan(self._configured), transaction=False)
            )
        if need is FORGET:
            return self._known_spec(None)
        if isinstance(need, Provision):
            if (known := self._trusted()) is not None:
                return known
            plan = self._provision(need.dimensions)
            try:
                return self._known_spec(await self._adb.run(plan))
            except pg_errors.InsufficientPrivilege as e:
                raise provisioning_denied(self._configured, e) from e
        if isinstance(need, Query):
            return await self._adb.fetch(need.frag, binary=need.binary, settings=need.settings)
        assert isinstance(need, Write)
        return await self._adb.run(need.make_plan)

    def _provision(self, dimensions: int | None) -> Callable[[], Any]:
        spec = self._configured
        if spec.dimensions is None and dimensions is not None:
            spec = replace(spec, dimensions=dimensions)
        return lambda: provision_plan(spec)

    def _drive(self, flow: Flow[R], error: psycopg.Error | None = None) -> R:
        """Run a flow to its end (from a failed need: `error`); database errors go back into it."""
        value: Any = None
        while True:
            try:
                need = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: R = stop.value
                return result
            value, error = None, None
            try:
                value = self._perform(need)
            except psycopg.Error as e:
                error = e

    async def _adrive(self, flow: Flow[R], error: psycopg.Error | None = None) -> R:
        """Async `_drive`."""
        value: Any = None
        while True:
            try:
                need = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: R = stop.value
                return result
            value, error = None, None
            try:
                value = await self._aperform(need)
            except psycopg.Error as e:
                error = e

    # -- embeddings -----------------------------------------------------------

    def _embed_query(self, text: str) -> list[float]:
        try:
            vector = self._embedding.embed_query(text)
        except (EmbeddingError, DimensionError):
            raise
        except Exception as e:
            raise model_failed(e) from e
        return vector

    async def _aembed_query(self, text: str) -> list[float]:
        try:
            vector = await self._embedding.aembed_query(text)
        except (EmbeddingError, DimensionError):
            raise
        except Exception as e:
            raise model_failed(e) from e
        return vector

    def _query_vector(self, embedding: Any, *, from_model: bool = False) -> np.ndarray:
        """A checked query vector (its size is checked against the collection in the flow)."""
        return query_vector(embedding, self._configured, from_model)

    @staticmethod
    def _fits(spec: CollectionSpec, vector: np.ndarray, from_model: bool) -> np.ndarray:
        return fits(spec, vector, from_model)

    # -- the search statement ---------------------------------------------------

    def _search(
        self,
        spec: CollectionSpec,
        vector: np.ndarray,
        k: int,
        where: Frag,
        options: SearchOptions,
        *,
        with_embedding: bool = False,
        from_model: bool = False,
    ) -> Query:
        """The nearest-neighbour query for one call, from the cached template of its shape."""
        filter_key, slotted_where = (None, where) if where is TRUE else slotted(where)
        key = ("knn", k, options, filter_key, with_embedding)
        template = self._statements.get(
            key, lambda: self._build_search(spec, k, slotted_where, options, with_embedding)
        )
        frag = template.fill(Vector(self._fits(spec, vector, from_model)), None, where.params)
        return Query(frag, template.settings, with_embedding)

    def _build_search(
        self,
        spec: CollectionSpec,
        k: int,
        where: Frag,
        options: SearchOptions,
        with_embedding: bool,
    ) -> tuple[Frag, Settings]:
        return nearest_statement(spec, k, where, options, with_embedding, self._exact_below)

    @override
    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance → relevance in [0, 1] for this store's distance (see `Distance.relevance`)."""
        return self._configured.distance.relevance()

    def _template(self, key: Any, build: Callable[[], tuple[Frag, Settings]]) -> Template:
        return self._statements.get(key, build)

    def _compile(self, filter: Mapping[str, Any] | None) -> Frag:
        """The filter as SQL over the collection; `FilterError` before anything is sent."""
        return compile_filter(filter, self._configured.table)

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pools this store opened (a pool you passed in stays open)."""
        self._connector.close()

    async def aclose(self) -> None:
        """Close the pools this store opened, async ones included."""
        await self._connector.aclose()
