"""Import collections from langchain-postgres and Chroma, with their vectors.

```python
from langchain_pgvstore import PGVStore
from langchain_pgvstore.importers import import_from_pgvector

store = PGVStore(embeddings, connection=dsn, collection="docs", distance="cosine")
report = import_from_pgvector(store, collection="docs", progress=True)
```

Nothing is embedded again: ids, texts, metadata and vectors are copied as they
are, in batches through the store's binary-COPY ingest. An import is resumable:
each batch records its position in the destination database (the table
`pgvstore_imports`, in the store's schema) in the same transaction as its rows,
and a run that finds an unfinished import of the same source into the same
collection continues after the last committed batch. Rows are read in the order
of a unique source key, so a run killed at any point and run again ends with
exactly the rows an uninterrupted run writes, and writes no batch twice.

langchain-postgres is not needed: its tables are read with psycopg. Chroma is
read through its own client (`pip install 'langchain-pgvstore[chroma]'`), from a
persistent directory, a server's URL, or a client of your own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from . import _validate as check
from ._import_chroma import ChromaReader, chroma_collection, chroma_space
from ._import_postgres import pgvector_source, pgvectorstore_source
from ._import_run import ImportReport, ProgressArg, check_progress, run
from .config import Distance
from .errors import ConfigError
from .store import PGVStore

__all__ = [
    "ImportReport",
    "chroma_distance",
    "import_from_chroma",
    "import_from_pgvector",
    "import_from_pgvectorstore",
]


def _check_args(store: object, batch_size: object, progress: object) -> PGVStore:
    """Refuse bad arguments before anything is read or written."""
    check_progress(progress)
    if not isinstance(store, PGVStore):
        raise ConfigError(f"store must be a PGVStore, got {type(store).__name__}")
    check.positive_int(batch_size, "batch_size", ConfigError)
    # a multi-tenant collection takes rows as one tenant's: refuse an unbound store now
    store._bound_tenant()
    # imports record their progress on a connection of their own: a pool whose
    # conninfo is computed per connection has no DSN to open it with (ConfigError)
    store.dsn  # noqa: B018
    return store


def import_from_pgvector(
    store: PGVStore,
    collection: str,
    *,
    source: str | None = None,
    schema: str = "public",
    batch_size: int = 1000,
    progress: ProgressArg = None,
    restart: bool = False,
) -> ImportReport:
    """Copy a langchain-postgres `PGVector` collection into `store`, vectors included.

    Reads the shared `langchain_pg_embedding` table (`id`, `document`,
    `cmetadata`, `embedding`) for the rows of `collection`, and also the older
    layout of langchain-community's `PGVector`, whose ids are in `custom_id`
    (falling back to the row's `uuid`). The store's distance is used as it is:
    the source does not record one, so create the store with the
    `distance_strategy` the collection was searched by.

    Args:
        store: the destination; its collection is created by the first batch. For a
            multi-tenant collection, a store bound to the tenant (`for_tenant`).
        collection: the `PGVector` `collection_name`.
        source: DSN of the database `PGVector` wrote to (`postgresql://…` or
            `postgresql+psycopg://…`); None for the store's own database.
        schema: the schema holding the `langchain_pg_*` tables.
        batch_size: rows per batch (one store transaction and one checkpoint each).
        progress: `True` for a tqdm bar, or a callable receiving `(done, total)`.
        restart: start from the first row even if an earlier run was interrupted.

    Raises:
        SourceNotFoundError: no such table or collection (a `ConfigError`).
        ConfigError: bad arguments.
        DatabaseUnavailableError: the source database cannot be reached.
        SchemaError: the table does not look like `PGVector`'s.
        InputError: the store refuses a row (the message names its source id);
            batches before it are imported, and a re-run resumes at its batch. Also
            for a multi-tenant collection's store bound to no tenant.
    """
    store = _check_args(store, batch_size, progress)
    reader = pgvector_source(source or store.dsn, collection, schema, store.dimensions)
    return run(store, reader, batch_size=batch_size, progress=progress, restart=restart)


def import_from_pgvectorstore(
    store: PGVStore,
    table: str,
    *,
    source: str | None = None,
    schema: str = "public",
    id_column: str = "langchain_id",
    content_column: str = "content",
    embedding_column: str = "embedding",
    metadata_json_column: str | None = "langchain_metadata",
    metadata_columns: Sequence[str] | None = None,
    ignore_columns: Sequence[str] = (),
    batch_size: int = 1000,
    progress: ProgressArg = None,
    restart: bool = False,
) -> ImportReport:
    """Copy a langchain-postgres `PGVectorStore` (v2) table into `store`, vectors included.

    Each document's metadata is built the way `PGVectorStore` reads it: the
    JSON column, then every metadata column on top of it under the column's
    name (a NULL column gives `None`). Column values become JSON as PostgreSQL
    writes them: numbers, booleans, arrays and `jsonb` as such, dates and
    timestamps as ISO 8601 strings (timestamps in UTC), uuids as strings. Ids
    are the id column's text (a uuid's canonical form). The store's distance is
    used as it is: the table does not record one.

    Args:
        store: the destination; its collection is created by the first batch. For a
            multi-tenant collection, a store bound to the tenant (`for_tenant`).
        table: the table `PGEngine.init_vectorstore_table` created.
        source: DSN of the database holding it; None for the store's own database.
        schema: the table's schema.
        id_column: the id column; it must be unique (it is the primary key
            `init_vectorstore_table` creates).
        content_column: the content column.
        embedding_column: the vector column.
        metadata_json_column: the JSON metadata column, or None; a table without
            it is read without it, as `PGVectorStore` does.
        metadata_columns: the columns to fold into the metadata; None for every
            column but the above and `tsvector` ones (the hybrid-search column).
        ignore_columns: columns to leave out when `metadata_columns` is None.
        batch_size: rows per batch (one store transaction and one checkpoint each).
        progress: `True` for a tqdm bar, or a callable receiving `(done, total)`.
        restart: start from the first row even if an earlier run was interrupted.

    Raises:
        SourceNotFoundError: no such table (a `ConfigError`).
        ConfigError: an unknown metadata column, or bad arguments.
        DatabaseUnavailableError: the source database cannot be reached.
        SchemaError: the id, content or embedding column is missing or of the
            wrong type, or the id column is not unique.
        InputError: the store refuses a row (the message names its source id), or
            is a multi-tenant collection's bound to no tenant.
    """
    store = _check_args(store, batch_size, progress)
    reader = pgvectorstore_source(
        source or store.dsn,
        table,
        schema,
        id_column=id_column,
        content_column=content_column,
        embedding_column=embedding_column,
        metadata_json_column=metadata_json_column,
        metadata_columns=metadata_columns,
        ignore_columns=ignore_columns,
        dimensions=store.dimensions,
    )
    return run(store, reader, batch_size=batch_size, progress=progress, restart=restart)


def chroma_distance(
    collection: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    client: Any = None,
) -> Distance:
    """The store distance matching a Chroma collection's space (`cosine`, `l2`, `ip`).

    Create the destination store with it: `PGVStore(..., distance=chroma_distance(...))`.
    Takes the same `collection`, `path`, `url` and `client` as `import_from_chroma`.
    """
    found, _ = chroma_collection(collection, path, client, url)
    return chroma_space(found)[1]


def import_from_chroma(
    store: PGVStore,
    collection: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    client: Any = None,
    batch_size: int = 1000,
    progress: ProgressArg = None,
    restart: bool = False,
) -> ImportReport:
    """Copy a Chroma collection into `store`: ids, documents, metadatas and embeddings.

    The store must use the collection's distance (`cosine`, `l2`, or `ip` as
    `inner_product`); `chroma_distance` tells which. A record without a
    document gets an empty text, one without metadata an empty dict.

    Args:
        store: the destination; its collection is created by the first batch. For a
            multi-tenant collection, a store bound to the tenant (`for_tenant`).
        collection: the collection's name, or a chromadb `Collection`.
        path: a Chroma persistent directory (opened with `chromadb.PersistentClient`).
        url: a Chroma server, `http://host:port` (port 8000 if left out) or
            `https://host:port` (opened with `chromadb.HttpClient`, default tenant
            and database).
        client: a chromadb client instead, for anything `url` does not cover
            (auth headers, another tenant or database). Pass exactly one of
            `path`, `url` and `client` with a collection name; none with a
            `Collection`.
        batch_size: records per batch (one store transaction and one checkpoint each).
        progress: `True` for a tqdm bar, or a callable receiving `(done, total)`.
        restart: start from the first record even if an earlier run was interrupted.

    Raises:
        SourceNotFoundError: no such directory or collection (a `ConfigError`).
        ConfigError: chromadb is missing, the store's distance differs from the
            collection's, or bad arguments.
        DatabaseUnavailableError: the Chroma server at `url` cannot be reached.
        SchemaError: the collection's distance space is not one Chroma documents.
        InputError: the store refuses a record (the message names its id), or is
            a multi-tenant collection's bound to no tenant.
    """
    store = _check_args(store, batch_size, progress)
    found, where = chroma_collection(collection, path, client, url)
    space, distance = chroma_space(found)
    if store.distance is not distance:
        raise ConfigError(
            f"chroma collection {found.name!r} is searched by {space!r} distance but the"
            f" store uses {store.distance.value!r}: create the store with"
            f" distance={distance.value!r}"
        )
    reader = ChromaReader(found, where, store.dimensions)
    return run(store, reader, batch_size=batch_size, progress=progress, restart=restart)
