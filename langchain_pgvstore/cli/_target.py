"""Which database a command works on, and the collections it finds there.

`--dsn` (or `PGVSTORE_DSN`) names a server; without one, the embedded server
of `--data-dir` (or `PGVSTORE_DATA_DIR`) is used: the one `pgvstore server
start` left running, or else one started for this command and stopped when
it ends.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import psycopg
from langchain_core.embeddings import Embeddings
from typing_extensions import override

from .._column_names import ColumnNames
from .._dsn import parse_dsn
from .._sql import Frag, catalog, ddl
from ..columns import Columns, from_registry
from ..config import HNSWIndex, IndexSpec, IVFFlatIndex, Table, validate_identifier
from ..errors import ConfigError, EmbeddingError
from ..existing import ExistingTable
from ..server import default_data_dir, embedded_dsn
from ..store import PGVStore
from ._exits import CLIError, Exit

__all__ = ["Collection", "Target", "add_target_options", "find_collection", "list_collections"]

CONNECT_TIMEOUT = 5


def add_target_options(parser: argparse.ArgumentParser, *, schema: bool = True) -> None:
    """--dsn, --data-dir and (for collection commands) --schema."""
    group = parser.add_argument_group("database")
    group.add_argument(
        "--dsn",
        default=os.environ.get("PGVSTORE_DSN") or None,
        help="PostgreSQL connection string (default: $PGVSTORE_DSN, else the embedded server)",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the embedded server's data directory (default: $PGVSTORE_DATA_DIR or a per-user"
        " folder)",
    )
    if schema:
        group.add_argument("--schema", default="public", help="schema of the collections")


class Target:
    """The database of one command: a DSN, its redacted description, a connection."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.embedded = not args.dsn
        self.data_dir: Path = args.data_dir or default_data_dir()
        self._dsn: str | None = None
        self._parsed = parse_dsn(args.dsn, what="--dsn") if args.dsn else None
        if self._parsed is not None:
            self._dsn = self._parsed.dsn

    @property
    def dsn(self) -> str:
        """The DSN, starting the embedded server for this command if it does not run."""
        if self._dsn is None:
            self._dsn = embedded_dsn(self.data_dir)
        return self._dsn

    def redact(self, text: str) -> str:
        """`text` without the password of --dsn."""
        return self._parsed.redact(text) if self._parsed is not None else text

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection; a server that cannot be reached is a one-line error."""
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.OperationalError as e:
            raise CLIError(self.redact(f"cannot connect: {e}"), Exit.UNAVAILABLE) from None
        with conn:
            yield conn


@dataclass(frozen=True, slots=True)
class Collection:
    """A registered collection as the catalog describes it."""

    schema: str
    name: str
    dimensions: int
    distance: str
    vector_type: str
    ts_config: str
    embedding_model: str | None
    table_exists: bool
    size_bytes: int
    index_kind: str | None
    index_valid: bool | None
    index_definition: str | None
    columns: Columns = ()
    """Its typed columns, as the registry records them."""
    existing: ColumnNames | None = None
    """An adopted table's column names (None: one of the store's own tables)."""

    @property
    def existing_table(self) -> ExistingTable | None:
        """What a store names to open an adopted table (None for the store's own)."""
        e = self.existing
        if e is None:
            return None
        return ExistingTable(id=e.id, content=e.content, embedding=e.embedding, metadata=e.metadata)

    @property
    def table(self) -> Table:
        """The collection's table as the library's statement builders take it."""
        return Table(self.schema, self.name, columns=self.columns, existing=self.existing)

    @property
    def index(self) -> IndexSpec:
        """The index setting a store needs to open this collection as it is."""
        if self.index_kind == "ivfflat":
            return IVFFlatIndex()
        binary = "binary_quantize(" in (self.index_definition or "")
        return HNSWIndex(quantization="binary") if binary else HNSWIndex()


def _rows(conn: psycopg.Connection[Any], frag: Frag) -> list[tuple[Any, ...]]:
    return conn.execute(frag.sql, frag.params or None).fetchall()


def list_collections(conn: psycopg.Connection[Any], schema: str | None = None) -> list[Collection]:
    """Every registered collection (of one schema, or of all), by schema and name."""
    schemas = [str(r[0]) for r in _rows(conn, catalog.registries())]
    if schema is not None:
        schemas = [s for s in schemas if s == schema]
    found = []
    for name in schemas:
        for row in _rows(conn, catalog.collections(name)):
            collection = Collection(name, *row)
            if collection.table_exists:
                collection = _with_registry(conn, collection)
            found.append(collection)
    return found


def _with_registry(conn: psycopg.Connection[Any], collection: Collection) -> Collection:
    """The collection with its typed columns and adopted column names, from its registry
    row (read as jsonb: a registry of an earlier release reads as none of either)."""
    rows = _rows(conn, ddl.registry_row(Table(collection.schema, collection.name)))
    if not rows:
        return collection  # dropped meanwhile
    typed, existing = rows[0][ddl.ROW_TYPED_COLUMNS], rows[0][ddl.ROW_EXISTING_TABLE]
    return replace(
        collection,
        columns=from_registry(typed),
        existing=ColumnNames(**existing) if isinstance(existing, dict) else None,
    )


def find_collection(conn: psycopg.Connection[Any], schema: str, name: str) -> Collection:
    """The collection, or a one-line error (exit 3) naming what exists; a table that is
    not a collection yet is pointed to `pgvstore adopt`."""
    validate_identifier(schema, "--schema")
    validate_identifier(name, "collection")
    found = list_collections(conn, schema)
    for collection in found:
        if collection.name == name and collection.table_exists:
            return collection
    exists = _rows(conn, catalog.table_exists(Table(schema, name)))
    if exists and exists[0][0]:
        where = "" if schema == "public" else f" --schema {schema}"
        raise CLIError(
            f"table {schema}.{name} is not a collection: adopt it first with"
            f" pgvstore adopt {name}{where} --id COLUMN --content COLUMN (try --dry-run)",
            Exit.NOT_FOUND,
        )
    known = ", ".join(c.name for c in found if c.table_exists) or "none"
    raise CLIError(
        f"no collection {name!r} in schema {schema!r} (collections there: {known})",
        Exit.NOT_FOUND,
    )


class NoModel(Embeddings):
    """The embeddings of a store opened only to manage its collection: never called."""

    @override
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise EmbeddingError("this command does not embed texts")

    @override
    def embed_query(self, text: str) -> list[float]:
        raise EmbeddingError("this command does not embed texts")


class _AsCreated(Enum):
    INDEX = "the collection's index"


def open_store(
    target: Target,
    collection: Collection,
    embeddings: Embeddings | None = None,
    *,
    index: IndexSpec | Literal[_AsCreated.INDEX] = _AsCreated.INDEX,
) -> PGVStore:
    """A store on an existing collection, configured as the collection was created
    (and with `index` as its index setting, when given; None for none)."""
    try:
        return PGVStore(
            embeddings or NoModel(),
            connection=target.dsn,
            collection=collection.name,
            schema=collection.schema,
            distance=collection.distance,
            vector_type=collection.vector_type,
            text_search_config=collection.ts_config,
            columns=dict(collection.columns) or None,
            existing_table=collection.existing_table,
            index=collection.index if index is _AsCreated.INDEX else index,
            pool_size=2,
            pool_timeout=CONNECT_TIMEOUT,
        )
    except ConfigError as e:
        raise CLIError(str(e), Exit.USAGE) from None
