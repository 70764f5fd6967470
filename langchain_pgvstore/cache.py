"""A LangChain `ByteStore` on PostgreSQL, and an embedding cache built on it.

`PostgresByteStore` keeps bytes under string keys in one table (default
`public.pgvstore_kv`), partitioned by a `namespace` column so that several
stores (an embedding cache, a parent-document docstore, ...) can share it.
Every method is one SQL statement; the async ones are native.

`cached_embeddings(embeddings, store)` wraps a model in LangChain's
`CacheBackedEmbeddings`, keyed by (model, dimensions, SHA-256 of the text):
embedding the same text twice, at ingest or as a query, calls the model once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings
from langchain_core.stores import ByteStore
from typing_extensions import override

from . import _validate as check
from ._closing import Closing
from ._side_tables import Connection, SideTableDB, check_keys, check_text
from ._sql import Frag, kv
from ._sql.side_tables import SideTable
from .errors import ConfigError, InputError

if TYPE_CHECKING:
    from langchain_classic.embeddings import CacheBackedEmbeddings

__all__ = ["PostgresByteStore", "cached_embeddings", "embedding_namespace"]

_INSTALL_HINT = "pip install 'langchain-pgvstore[cache]'"


def _pairs(pairs: Sequence[tuple[str, bytes]]) -> tuple[list[str], list[bytes]]:
    """Validated keys and values; a key given twice keeps its last value."""
    merged: dict[str, bytes] = {}
    for pair in pairs:
        key, value = pair
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InputError(f"values must be bytes, got {type(value).__name__} for key {key!r}")
        merged[check_text(key, "key")] = bytes(value)
    return list(merged), list(merged.values())


def _next_after(rows: list[tuple[Any, ...]], page_size: int) -> str | None:
    """The key to continue after, or None when this page was the last."""
    return str(rows[-1][0]) if len(rows) == page_size else None


class PostgresByteStore(Closing, ByteStore):
    """A LangChain `ByteStore` (str keys, bytes values) in a PostgreSQL table.

    Setup:
        Nothing to do: the table is created on first use, idempotently, under an
        advisory lock. It has the columns `namespace`, `key`, `value bytea` and
        `created_at` (when the current value was written), with primary key
        (namespace, key).

    Instantiate:
        ```python
        from langchain_pgvstore.cache import PostgresByteStore

        store = PostgresByteStore(connection="postgresql://...", namespace="embeddings")
        ```

    Use:
        `store.mset([("a", b"1")])`, `store.mget(["a", "b"])` returns `[b"1", None]`,
        `list(store.yield_keys(prefix="a"))`, `store.mdelete(["a"])`; every method has
        a native `a`-prefixed async twin.

    Args:
        connection: a DSN, a psycopg `ConnectionPool` / `AsyncConnectionPool`, or
            None for the embedded server (as for `PGVStore`).
        namespace: the partition of the table this store reads and writes.
        schema: schema of the table (created if missing).
        table: table name.
        pool_size: maximum connections in each pool this store creates.
        pool_timeout: seconds to wait for a free pooled connection.
        statement_timeout: seconds any one statement may run.
        data_dir: data directory of the embedded server (with `connection=None`).
        page_size: keys fetched per query by `yield_keys`.
    """

    def __init__(
        self,
        *,
        connection: Connection = None,
        namespace: str = "default",
        schema: str = "public",
        table: str = "pgvstore_kv",
        pool_size: int = 5,
        pool_timeout: float = 30.0,
        statement_timeout: float | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        page_size: int = 1000,
    ) -> None:
        page_size = check.positive_int(page_size, "page_size", ConfigError)
        self.namespace = check.pg_text(namespace, "namespace", ConfigError)
        side = SideTable(schema, table, "kv")
        self._page_size = page_size
        self._db = SideTableDB(
            side,
            [kv.create_table(side)],
            connection,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            statement_timeout=statement_timeout,
            data_dir=data_dir,
        )

    def __repr__(self) -> str:
        side = self._db.table
        return (
            f"PostgresByteStore(namespace={self.namespace!r}, table={side.schema}.{side.name},"
            f" {self._db.description})"
        )

    @override
    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in order; None for a missing key."""
        key_list = check_keys(keys)
        if not key_list:
            return []
        rows = self._db.fetch(kv.mget(self._db.table, self.namespace, key_list))
        return [r[0] for r in rows]

    @override
    async def amget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Async `mget`."""
        key_list = check_keys(keys)
        if not key_list:
            return []
        rows = await self._db.afetch(kv.mget(self._db.table, self.namespace, key_list))
        return [r[0] for r in rows]

    @override
    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """Write values, replacing existing ones (an upsert)."""
        keys, values = _pairs(key_value_pairs)
        if keys:
            self._db.execute(kv.mset(self._db.table, self.namespace, keys, values))

    @override
    async def amset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """Async `mset`."""
        keys, values = _pairs(key_value_pairs)
        if keys:
            await self._db.aexecute(kv.mset(self._db.table, self.namespace, keys, values))

    @override
    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete keys; missing keys are fine."""
        key_list = check_keys(keys)
        if key_list:
            self._db.execute(kv.mdelete(self._db.table, self.namespace, key_list))

    @override
    async def amdelete(self, keys: Sequence[str]) -> None:
        """Async `mdelete`."""
        key_list = check_keys(keys)
        if key_list:
            await self._db.aexecute(kv.mdelete(self._db.table, self.namespace, key_list))

    def _page(self, prefix: str | None, after: str | None) -> Frag:
        if prefix is not None:
            check_text(prefix, "prefix")
        return kv.keys_page(self._db.table, self.namespace, prefix, after, self._page_size)

    @override
    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """The keys (starting with `prefix`) in byte order, fetched a page at a time."""
        after: str | None = None
        while True:
            rows = self._db.fetch(self._page(prefix, after))
            yield from (str(r[0]) for r in rows)
            after = _next_after(rows, self._page_size)
            if after is None:
                return

    @override
    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Async `yield_keys`."""
        after: str | None = None
        while True:
            rows = await self._db.afetch(self._page(prefix, after))
            for r in rows:
                yield str(r[0])
            after = _next_after(rows, self._page_size)
            if after is None:
                return

    def close(self) -> None:
        """Close the connection pools this store opened (a pool you passed in stays open)."""
        self._db.close()

    async def aclose(self) -> None:
        """Close the pools this store opened, async ones included."""
        await self._db.aclose()


def embedding_namespace(embeddings: Embeddings) -> str:
    """`<model>:<dimensions>:` for a model, the cache-key prefix `cached_embeddings` uses.

    The model name comes from `embeddings.model` (or `model_name`), the size from
    `embeddings.dimensions`; a model without a requested size gets `native`.
    """
    model = None
    for attr in ("model", "model_name"):
        value = getattr(embeddings, attr, None)
        if isinstance(value, str) and value:
            model = value
            break
    if model is None:
        raise ConfigError(
            f"cannot tell which model {type(embeddings).__name__} uses (no .model or"
            " .model_name); pass namespace= to cached_embeddings so that vectors of different"
            " models never share cache keys"
        )
    dimensions = getattr(embeddings, "dimensions", None)
    size = "native" if dimensions is None else str(dimensions)
    return f"{model}:{size}:"


def cached_embeddings(
    embeddings: Embeddings,
    store: ByteStore,
    *,
    namespace: str | None = None,
    batch_size: int | None = 1000,
) -> CacheBackedEmbeddings:
    """Wrap `embeddings` so each (model, dimensions, text) is embedded once.

    Document and query embeddings share one cache in `store`, under keys
    `<model>:<dimensions>:<sha256 of the text>` (see `embedding_namespace`; pass
    `namespace=` to choose the prefix yourself). Changing the model or its
    `dimensions` changes the keys, so stale vectors are never returned.

    ```python
    store = PostgresByteStore(connection=dsn, namespace="embeddings")
    emb = cached_embeddings(OpenAIBatchEmbeddings(model="text-embedding-3-small"), store)
    vector_store = PGVStore(emb, connection=dsn)
    ```

    Args:
        embeddings: the model to wrap.
        store: any LangChain `ByteStore`; usually a `PostgresByteStore`.
        namespace: cache-key prefix; default `embedding_namespace(embeddings)`.
        batch_size: texts embedded (and written to the cache) per model call, so a
            large load writes the cache as it goes; None for all at once.

    Needs `langchain-classic` (the `cache` extra), which provides `CacheBackedEmbeddings`.
    """
    try:
        from langchain_classic.embeddings import CacheBackedEmbeddings
    except ImportError as e:
        raise ConfigError(
            f"cached_embeddings needs langchain-classic for CacheBackedEmbeddings: {_INSTALL_HINT}"
        ) from e
    if namespace is None:
        namespace = embedding_namespace(embeddings)
    return CacheBackedEmbeddings.from_bytes_store(
        embeddings,
        store,
        namespace=namespace,
        batch_size=batch_size,
        query_embedding_cache=True,
        key_encoder="sha256",
    )
