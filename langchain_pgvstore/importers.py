"""Import collections from langchain-postgres and Chroma, with their vectors.

```python
from langchain_pgvstore import PGVStore
from langchain_pgvstore.importers import import_from_pgvector

store = PGVStore(embeddings, connection=dsn, collection="docs", distance="cosine")
report = import_from_pgvector(store, collection="docs", progress=True)
```

Nothing is embedded again: ids, texts, metadata and vectors are copied as they
are, in batches through the store's binary-COPY ingest. An import is resumable:
after each batch its position is recorded in the destination database (the
table `pgvstore_imports`, in the store's schema), and a run that finds an
unfinished import of the same source into the same collection continues after
the last recorded batch. Rows are read in the order of a unique source key, and
the store upserts by id and leaves unchanged rows alone, so a run killed at any
point and run again ends with exactly the rows an uninterrupted run writes.

langchain-postgres is not needed: its tables are read with psycopg. Chroma is
read through its own client (`pip install 'langchain-pgvstore[chroma]'`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from ._import_sources import (
    ChromaReader,
    Reader,
    chroma_space,
    connect,
    name_source_row,
    pgvector_source,
    pgvectorstore_source,
)
from ._sql import Frag
from ._sql import importers as q
from .config import Distance
from .errors import ConfigError, InputError
from .store import PGVStore

__all__ = [
    "ImportReport",
    "chroma_distance",
    "import_from_chroma",
    "import_from_pgvector",
    "import_from_pgvectorstore",
]

ProgressArg = bool | Callable[[int, int], None] | None


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What one import run did.

    Attributes:
        source: the source, e.g. `PGVector collection 'docs' (host=… dbname=…)`.
        total: rows in the source when the run started.
        skipped: rows an earlier, interrupted run had imported; not read again.
        read: rows this run read from the source.
        written: rows this run passed to the store (rows the store already held
            unchanged are left as they are).
        elapsed: seconds the run took.
    """

    source: str
    total: int
    skipped: int
    read: int
    written: int
    elapsed: float

    @property
    def resumed(self) -> bool:
        """Whether this run continued an interrupted import."""
        return self.skipped > 0

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of this run."""
        return self.read / self.elapsed if self.elapsed > 0 else 0.0


def _check_args(store: object, batch_size: object, progress: object) -> PGVStore:
    """Refuse bad arguments before anything is read, written or forgotten."""
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ConfigError(f"progress must be a bool or a callable, got {progress!r}")
    if progress is True:
        try:
            import tqdm  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                "progress=True needs tqdm: pip install 'langchain-pgvstore[progress]'"
            ) from e
    if not isinstance(store, PGVStore):
        raise ConfigError(f"store must be a PGVStore, got {type(store).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not store.dsn:
        raise ConfigError(
            "the store's pool computes its connection string per connection, and imports"
            " need one to record their progress: create the store with a DSN"
        )
    if store.collection == q.CHECKPOINT_TABLE:
        raise ConfigError(
            f"collection name {q.CHECKPOINT_TABLE!r} is where imports record progress"
        )
    return store


@contextmanager
def _progress(progress: ProgressArg, total: int, initial: int) -> Iterator[Callable[[int], None]]:
    """Yield `report(done)`; `True` shows a tqdm bar, a callable gets `(done, total)`."""
    if progress is None or progress is False:
        yield lambda done: None
    elif progress is True:
        from tqdm.auto import tqdm

        with tqdm(total=total, initial=initial, unit="doc", desc="importing") as bar:
            yield lambda done: bar.update(done - bar.n)
    else:
        callback = progress
        yield lambda done: callback(done, total)


def _lock_key(schema: str, collection: str, source: str) -> int:
    digest = hashlib.blake2b(f"{schema}\0{collection}\0{source}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _fetch(conn: psycopg.Connection[Any], frag: Frag) -> list[tuple[Any, ...]]:
    return conn.execute(frag.sql, frag.params).fetchall()


class _Checkpoints:
    """The destination side of an import: its lock and its recorded position."""

    def __init__(self, store: PGVStore, reader: Reader) -> None:
        self._schema = store.schema
        self._collection = store.collection
        self._source = reader.identity
        self._description = reader.description
        self._conn = connect(store.dsn, "destination")
        key = _lock_key(self._schema, self._collection, self._source)
        if not _fetch(self._conn, q.try_advisory_lock(key))[0][0]:
            self._conn.close()
            raise ConfigError(
                f"another run is importing {self._description} into collection"
                f" {self._collection!r}; wait for it to finish"
            )
        self.table_oid: int | None = None

    def _oid(self) -> int | None:
        rows = _fetch(self._conn, q.relation_oid(self._schema, self._collection))
        return int(rows[0][0]) if rows else None

    def _exists(self) -> bool:
        return bool(_fetch(self._conn, q.relation_oid(self._schema, q.CHECKPOINT_TABLE)))

    def position(self, restart: bool) -> tuple[str | None, int]:
        """Where to start: after the recorded key of an unfinished import into this very
        table, else from the first row."""
        if not self._exists():
            return None, 0
        if restart:
            self._execute(q.delete_checkpoint(self._schema, self._collection, self._source))
            return None, 0
        rows = _fetch(self._conn, q.read_checkpoint(self._schema, self._collection, self._source))
        if not rows:
            return None, 0
        table_oid, last_key, done, finished = rows[0]
        # finished: a new run is a new pass (unchanged rows cost no writes); a table
        # dropped and created again since the checkpoint holds none of its rows
        if finished or table_oid != self._oid():
            return None, 0
        self.table_oid = int(table_oid)
        return last_key, int(done)

    def _execute(self, frag: Frag) -> None:
        self._conn.execute(frag.sql, frag.params)

    def save(self, last_key: str | None, done: int, total: int, finished: bool) -> None:
        if self.table_oid is None:
            self.table_oid = self._oid()
            if self.table_oid is None:  # nothing was written: the store made no table
                return
            self._execute(q.create_checkpoints(self._schema))
        self._execute(
            q.save_checkpoint(
                self._schema,
                self._collection,
                self._source,
                table_oid=self.table_oid,
                last_key=last_key,
                done=done,
                total=total,
                finished=finished,
            )
        )

    def close(self) -> None:
        self._conn.close()  # also releases the session's advisory lock


def _run(
    store: PGVStore,
    reader: Reader,
    *,
    batch_size: int,
    progress: ProgressArg,
    restart: bool,
) -> ImportReport:
    started = time.perf_counter()
    try:
        checkpoints = _Checkpoints(store, reader)
    except BaseException:
        reader.close()
        raise
    try:
        total = reader.count()
        after, skipped = checkpoints.position(restart)
        done, read = skipped, 0
        with _progress(progress, max(total, skipped), skipped) as report:
            for rows in reader.batches(after, batch_size):
                try:
                    store.add_embeddings(rows.texts, rows.vectors, rows.metadatas, ids=rows.ids)
                except InputError as e:
                    raise name_source_row(e, rows.ids, reader.description) from e
                # A crash between the batch's commit above and this checkpoint makes the
                # next run send the batch again; the store finds those rows unchanged and
                # writes nothing.
                done += len(rows)
                read += len(rows)
                checkpoints.save(rows.keys[-1], done, max(total, done), finished=False)
                report(done)
            checkpoints.save(None, done, max(total, done), finished=True)
        return ImportReport(
            source=reader.description,
            total=total,
            skipped=skipped,
            read=read,
            written=read,
            elapsed=time.perf_counter() - started,
        )
    finally:
        checkpoints.close()
        reader.close()


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
        store: the destination; its collection is created by the first batch.
        collection: the `PGVector` `collection_name`.
        source: DSN of the database `PGVector` wrote to (`postgresql://…` or
            `postgresql+psycopg://…`); None for the store's own database.
        schema: the schema holding the `langchain_pg_*` tables.
        batch_size: rows per batch (one store transaction and one checkpoint each).
        progress: `True` for a tqdm bar, or a callable receiving `(done, total)`.
        restart: start from the first row even if an earlier run was interrupted.

    Raises:
        ConfigError: no such table or collection, or bad arguments.
        SchemaError: the table does not look like `PGVector`'s.
        InputError: the store refuses a row (the message names its source id);
            batches before it are imported, and a re-run resumes at its batch.
    """
    store = _check_args(store, batch_size, progress)
    reader = pgvector_source(source or store.dsn, collection, schema, store.dimensions)
    return _run(store, reader, batch_size=batch_size, progress=progress, restart=restart)


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
        store: the destination; its collection is created by the first batch.
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
        ConfigError: no such table, an unknown metadata column, or bad arguments.
        SchemaError: the id, content or embedding column is missing or of the
            wrong type, or the id column is not unique.
        InputError: the store refuses a row (the message names its source id).
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
    return _run(store, reader, batch_size=batch_size, progress=progress, restart=restart)


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError as e:
        raise ConfigError(
            "importing from Chroma needs chromadb: pip install 'langchain-pgvstore[chroma]'"
        ) from e
    return chromadb


def _describe_client(client: Any) -> str:
    """`server host:port` or `path '…'` of a chromadb client, for messages."""
    try:
        settings = client.get_settings()
    except Exception:
        return type(client).__name__
    host = getattr(settings, "chroma_server_host", None)
    if host:
        return f"server {host}:{getattr(settings, 'chroma_server_http_port', None) or 8000}"
    directory = getattr(settings, "persist_directory", None)
    if getattr(settings, "is_persistent", False) and directory:
        return f"path {directory!r}"
    return type(client).__name__


def _chroma_collection(
    collection: Any, path: str | os.PathLike[str] | None, client: Any
) -> tuple[Any, str]:
    """The chromadb `Collection` to read, and where it is (for messages)."""
    if not isinstance(collection, str):
        if path is not None or client is not None:
            raise ConfigError("pass path= or client= with a collection name, not a Collection")
        return collection, "a chromadb Collection"
    if (path is None) == (client is None):
        raise ConfigError("pass exactly one of path= (a Chroma directory) or client=")
    if path is not None:
        if not os.path.isdir(path):
            raise ConfigError(f"no Chroma directory at {os.fspath(path)!r}")
        client = _chromadb().PersistentClient(path=os.fspath(path))
        where = f"path {os.fspath(path)!r}"
    else:
        where = _describe_client(client)
    try:
        found = client.get_collection(collection)
    except Exception as e:
        # chromadb raises NotFoundError (1.x) or ValueError (older) for a missing collection
        names = sorted(str(getattr(c, "name", c)) for c in client.list_collections())
        raise ConfigError(
            f"no chroma collection named {collection!r} ({where}): {e};"
            f" collections there: {', '.join(map(repr, names)) or 'none'}"
        ) from None
    return found, where


def chroma_distance(
    collection: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> Distance:
    """The store distance matching a Chroma collection's space (`cosine`, `l2`, `ip`).

    Create the destination store with it: `PGVStore(..., distance=chroma_distance(...))`.
    Takes the same `collection`, `path` and `client` as `import_from_chroma`.
    """
    found, _ = _chroma_collection(collection, path, client)
    return chroma_space(found)[1]


def import_from_chroma(
    store: PGVStore,
    collection: Any,
    *,
    path: str | os.PathLike[str] | None = None,
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
        store: the destination; its collection is created by the first batch.
        collection: the collection's name, or a chromadb `Collection`.
        path: a Chroma persistent directory (opened with `chromadb.PersistentClient`).
        client: a chromadb client instead, e.g. `chromadb.HttpClient(host, port)`
            for a Chroma server.
        batch_size: records per batch (one store transaction and one checkpoint each).
        progress: `True` for a tqdm bar, or a callable receiving `(done, total)`.
        restart: start from the first record even if an earlier run was interrupted.

    Raises:
        ConfigError: chromadb is missing, no such collection, the store's distance
            differs from the collection's, or bad arguments.
        SchemaError: the collection's distance space is not one Chroma documents.
        InputError: the store refuses a record (the message names its id).
    """
    store = _check_args(store, batch_size, progress)
    found, where = _chroma_collection(collection, path, client)
    space, distance = chroma_space(found)
    if store.distance is not distance:
        raise ConfigError(
            f"chroma collection {found.name!r} is searched by {space!r} distance but the"
            f" store uses {store.distance.value!r}: create the store with"
            f" distance={distance.value!r}"
        )
    reader = ChromaReader(found, where, store.dimensions)
    return _run(store, reader, batch_size=batch_size, progress=progress, restart=restart)
