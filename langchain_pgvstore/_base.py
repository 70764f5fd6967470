"""The base of `PGVStore`: its configuration, checked once, and what it holds.

Every argument of the constructor is checked here, before anything is sent to
a server; the flow drivers and the search statement are in `_core.py`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import override

from . import _validate as check
from ._closing import Closing
from ._connection import Connector, PoolOptions
from ._replicas import ReadConnections, read_replicas
from ._routing import positive_or_none
from ._runner import Runner
from ._runner_async import AsyncRunner
from ._schema import (
    CollectionSpec,
    check_indexable,
)
from ._sql.settings import Settings
from ._statements import StatementCache
from .columns import Column, declare
from .config import (
    DEFAULT_HNSW,
    MAX_DIMENSIONS,
    TEXTSEARCH,
    Distance,
    Distribution,
    FullText,
    HNSWIndex,
    IndexSpec,
    IVFFlatIndex,
    RowLevelSecurity,
    Table,
    VectorType,
    memory_size,
    validate_identifier,
)
from .errors import ConfigError
from .existing import ExistingTable

__all__ = ["StoreBase"]

R = TypeVar("R")
Row = tuple[Any, ...]
_NO_SETTINGS = Settings()

#: Seconds a store trusts what it knows of its collection before looking it up
#: again. Another process that drops or recreates the collection makes the
#: store's statements fail, which it notices at once (`_flow.py`); a change no
#: statement trips over (the same size, another distance) is noticed this late.
SPEC_TTL = 30.0


def _embedding_model_name(embedding: Embeddings) -> str | None:
    # a cache wrapper (CacheBackedEmbeddings) names the model it wraps
    embedding = getattr(embedding, "underlying_embeddings", embedding)
    for attr in ("model", "model_name"):
        value = getattr(embedding, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


class StoreBase(Closing, VectorStore):
    """The store's configuration and connections (see `PGVStore` for the arguments)."""

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
        multi_tenant: bool = False,
        tenant: str | None = None,
        distributed: bool = False,
        shard_count: int | None = None,
        row_level_security: RowLevelSecurity | None = None,
        read_connections: ReadConnections = None,
        read_your_writes: bool = False,
        read_wait: float = 1.0,
        max_replica_lag: float | None = None,
        columns: Mapping[str, Column] | None = None,
        full_text: FullText | None = None,
        existing_table: ExistingTable | None = None,
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
        check.boolean(multi_tenant, "multi_tenant", ConfigError)
        check.boolean(distributed, "distributed", ConfigError)
        if tenant is not None and not multi_tenant:
            raise ConfigError("tenant= needs multi_tenant=True")
        distribution: Distribution | None = None
        if distributed:
            distribution = "tenant" if multi_tenant else "id"
        if shard_count is not None:
            if not distributed:
                raise ConfigError("shard_count= needs distributed=True")
            check.int_in(shard_count, "shard_count", 1, 64_000, ConfigError)
        if full_text is not None and full_text != TEXTSEARCH and not isinstance(full_text, bool):
            raise ConfigError(
                f"full_text must be True or False, or {TEXTSEARCH!r}, got {full_text!r}"
            )
        if full_text == TEXTSEARCH and distributed:
            raise ConfigError(
                f"full_text={TEXTSEARCH!r} is not supported on distributed (Citus) collections:"
                " the extension is not part of the Citus cluster; use full_text=True there"
            )
        if existing_table is not None and not isinstance(existing_table, ExistingTable):
            raise ConfigError(
                f"existing_table must be an ExistingTable(...), got {type(existing_table).__name__}"
            )
        if existing_table is not None and full_text == TEXTSEARCH:
            raise ConfigError(
                f"full_text={TEXTSEARCH!r} is not supported on an existing table yet; adopt it"
                " with adopt(full_text=True) for keyword and hybrid search"
            )
        declared = declare(columns, existing=existing_table is not None)
        if declared and distributed:
            raise ConfigError(
                "typed columns are not supported on distributed (Citus) collections yet;"
                " keep those fields in metadata, or use a collection that is not distributed"
            )
        spec = CollectionSpec(
            table=Table(
                schema,
                collection,
                multi_tenant,
                distribution,
                declared,
                full_text,
                None if existing_table is None else existing_table.names(),
            ),
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
            shard_count=shard_count,
            row_level_security=(
                None
                if row_level_security is None
                else check.choice(
                    row_level_security, "row_level_security", ("setting", "role"), ConfigError
                )
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
        self._tenant = None if tenant is None else check.tenant_name(tenant, ConfigError)
        self._view = False  # a for_tenant view shares the pools of the store it came from
        self._known: CollectionSpec | None = None
        self._known_at = 0.0
        self._embedding = embedding
        self._connector = Connector(connection, options, data_dir)
        self._replicas = read_replicas(
            read_connections,
            options,
            embedded=self._connector.embedded,
            read_your_writes=check.boolean(read_your_writes, "read_your_writes", ConfigError),
            read_wait=check.positive_number(read_wait, "read_wait", ConfigError),
            max_replica_lag=positive_or_none(max_replica_lag, "max_replica_lag"),
        )
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
    def schema(self) -> str:
        """The PostgreSQL schema holding the collection's table."""
        return self._configured.table.schema

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
        reads = ""
        if self._replicas is not None:
            reads = f", read from: {'; '.join(self._replicas.router.names)}"
        return (
            f"PGVStore(collection={self.collection!r}, schema={self._configured.table.schema!r},"
            f" distance={self.distance.value!r}, {self._connector.description}{reads})"
        )

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pools this store opened (a pool you passed in stays open)."""
        self._connector.close()
        if self._replicas is not None:
            self._replicas.close()

    async def aclose(self) -> None:
        """Close the pools this store opened, async ones included."""
        await self._connector.aclose()
        if self._replicas is not None:
            await self._replicas.aclose()
