"""Readers of langchain-postgres' tables: `PGVector`'s shared `langchain_pg_embedding`
(and langchain-community's older layout of it) and `PGVectorStore`'s v2 tables.

The tables are read with psycopg, keyset-paginated in the order of a unique
column; langchain-postgres itself is not needed. Vectors are decoded from
pgvector's binary format straight into numpy, so the source's pgvector-python
version does not matter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.adapt import Buffer, Loader
from psycopg.pq import Format

from ._import_rows import Rows, check_id, check_vectors, connect, metadata_object
from ._sql import importers as q
from .errors import ConfigError, SchemaError, SourceNotFoundError

__all__ = ["SqlReader", "pgvector_source", "pgvectorstore_source"]


class _VectorLoader(Loader):
    """pgvector's binary `vector`: int16 dimensions, int16 unused, float32 big-endian."""

    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


class _HalfvecLoader(Loader):
    """pgvector's binary `halfvec`: the same header, float16 big-endian values."""

    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return np.frombuffer(data, dtype=">f2", offset=4).astype(np.float32)


_LOADERS: dict[str, type[Loader]] = {"vector": _VectorLoader, "halfvec": _HalfvecLoader}
_TEXT_TYPES = {"text", "varchar", "bpchar", "name", "citext"}
_JSON_TYPES = {"json", "jsonb"}


@dataclass(frozen=True, slots=True)
class Column:
    """A source column as the catalog describes it."""

    name: str
    type_name: str
    written: str
    type_oid: int
    typmod: int
    unique: bool


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, Column]:
    frag = q.table_columns(schema, table)
    rows = conn.execute(frag.sql, frag.params).fetchall()
    return {r[0]: Column(*r) for r in rows}


def _where(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"host={info.host} port={info.port} dbname={info.dbname}"


class SqlReader:
    """Rows of a source table in key order, one keyset-paginated query per batch.

    Each batch is its own short statement, so a long import holds no
    transaction open on the source.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        table: q.SourceTable,
        embedding: Column,
        *,
        scope_value: str | None,
        description: str,
        identity: str,
        dimensions: int | None,
    ) -> None:
        self._conn = conn
        self._table = table
        self._embedding = embedding
        self._scope = scope_value
        self.description = description
        self.identity = identity
        self._dimensions = dimensions

    def count(self) -> int:
        frag = q.count_rows(self._table, self._scope)
        row = self._conn.execute(frag.sql, frag.params).fetchone()
        assert row is not None
        return int(row[0])

    def batches(self, after: str | None, size: int) -> Iterator[Rows]:
        n_meta = len(self._table.metadata_columns)
        while True:
            frag = q.read_batch(self._table, size, after, self._scope)
            with self._conn.cursor(binary=True) as cur:
                cur.adapters.register_loader(
                    self._embedding.type_oid, _LOADERS[self._embedding.type_name]
                )
                rows = cur.execute(frag.sql, frag.params).fetchall()
            if not rows:
                return
            keys: list[str] = []
            ids: list[str] = []
            texts: list[str] = []
            metadatas: list[dict[str, Any]] = []
            vectors: list[Any] = []
            for row in rows:
                key, id_, content, meta_json = row[0], row[1], row[2], row[3]
                id_ = check_id(key, id_)
                metadata = metadata_object(id_, meta_json)
                # metadata columns override keys of the JSON column, as PGVectorStore reads them
                for name, value in zip(
                    self._table.metadata_columns, row[4 : 4 + n_meta], strict=True
                ):
                    metadata[name] = value
                keys.append(key)
                ids.append(id_)
                texts.append(content if content is not None else "")
                metadatas.append(metadata)
                vectors.append(row[-1])
            matrix = check_vectors(ids, vectors, self._dimensions)
            self._dimensions = matrix.shape[1]
            yield Rows(keys, ids, texts, metadatas, matrix)
            after = keys[-1]

    def close(self) -> None:
        self._conn.close()


def _embedding_column(where: str, columns: dict[str, Column], name: str) -> Column:
    column = columns[name]
    if column.type_name not in _LOADERS:
        raise SchemaError(
            f"{where}: column {name!r} is {column.written}, expected a pgvector vector or halfvec"
        )
    return column


def _check_dimensions(where: str, column: Column, dimensions: int | None) -> None:
    # a vector(n) column's type modifier is n; -1 means any size
    if dimensions is not None and column.typmod > 0 and column.typmod != dimensions:
        raise ConfigError(
            f"{where}: column {column.name!r} is {column.written} but the store has"
            f" {dimensions} dimensions"
        )


def pgvector_source(dsn: str, collection: str, schema: str, dimensions: int | None) -> SqlReader:
    """A reader of one `PGVector` collection in the shared `langchain_pg_embedding` table.

    langchain-postgres' layout keys rows by `id`; langchain-community's older
    one by a `uuid`, with the caller's id in the nullable `custom_id`.
    """
    conn = connect(dsn, "source")
    try:
        where = f"{schema}.langchain_pg_embedding ({_where(conn)})"
        columns = _columns(conn, schema, "langchain_pg_embedding")
        if not columns:
            raise SourceNotFoundError(
                f"no table {schema}.langchain_pg_embedding ({_where(conn)}): is this the"
                " database and schema PGVector wrote to?"
            )
        ids: tuple[str, ...]
        if "id" in columns:
            key, ids = "id", ("id",)
        elif "uuid" in columns and "custom_id" in columns:
            key, ids = "uuid", ("custom_id", "uuid")
        else:
            raise SchemaError(
                f"{where} has neither an 'id' column (langchain-postgres) nor 'uuid' and"
                f" 'custom_id' (langchain-community); its columns: {', '.join(columns)}"
            )
        missing = [
            c for c in ("collection_id", "document", "cmetadata", "embedding") if c not in columns
        ]
        if missing:
            raise SchemaError(
                f"{where} does not look like PGVector's: no column {', '.join(map(repr, missing))};"
                f" its columns: {', '.join(columns)}"
            )
        if not columns[key].unique:
            raise SchemaError(f"{where}: column {key!r} has no unique index to read it in order by")
        if columns["cmetadata"].type_name not in _JSON_TYPES:
            raise SchemaError(
                f"{where}: column 'cmetadata' is {columns['cmetadata'].written},"
                " expected json or jsonb"
            )
        embedding = _embedding_column(where, columns, "embedding")
        _check_dimensions(where, embedding, dimensions)
        if not _columns(conn, schema, "langchain_pg_collection"):
            raise SourceNotFoundError(f"no table {schema}.langchain_pg_collection ({_where(conn)})")
        frag = q.pgvector_collection(schema, collection)
        found = [r[0] for r in conn.execute(frag.sql, frag.params).fetchall()]
        if not found:
            frag = q.pgvector_collection_names(schema)
            names = [r[0] for r in conn.execute(frag.sql, frag.params).fetchall()]
            raise SourceNotFoundError(
                f"no PGVector collection named {collection!r} in"
                f" {schema}.langchain_pg_collection ({_where(conn)});"
                f" collections there: {', '.join(map(repr, names)) or 'none'}"
            )
        if len(found) > 1:
            raise ConfigError(
                f"{len(found)} PGVector collections are named {collection!r} in"
                f" {schema}.langchain_pg_collection (uuids {', '.join(found)}); rename all"
                " but one to import it"
            )
        table = q.SourceTable(
            schema=schema,
            name="langchain_pg_embedding",
            key=key,
            ids=ids,
            content="document",
            embedding="embedding",
            metadata_json="cmetadata",
            scope="collection_id",
        )
        return SqlReader(
            conn,
            table,
            embedding,
            scope_value=found[0],
            description=f"PGVector collection {collection!r} ({_where(conn)})",
            identity=f"pgvector:{_where(conn)}:{schema}:{found[0]}",
            dimensions=dimensions,
        )
    except BaseException:
        conn.close()
        raise


def pgvectorstore_source(
    dsn: str,
    table: str,
    schema: str,
    *,
    id_column: str,
    content_column: str,
    embedding_column: str,
    metadata_json_column: str | None,
    metadata_columns: Sequence[str] | None,
    ignore_columns: Sequence[str],
    dimensions: int | None,
) -> SqlReader:
    """A reader of one `PGVectorStore` table, folding its metadata columns into the metadata."""
    conn = connect(dsn, "source")
    try:
        where = f"{schema}.{table} ({_where(conn)})"
        columns = _columns(conn, schema, table)
        if not columns:
            raise SourceNotFoundError(f"no table {where}")
        for role, name in (
            ("id", id_column),
            ("content", content_column),
            ("embedding", embedding_column),
        ):
            if name not in columns:
                raise SchemaError(
                    f"{where} has no {role} column {name!r}; its columns: {', '.join(columns)}"
                )
        if not columns[id_column].unique:
            raise SchemaError(
                f"{where}: id column {id_column!r} has no unique index to read it in order by"
            )
        if columns[content_column].type_name not in _TEXT_TYPES:
            raise SchemaError(
                f"{where}: content column {content_column!r} is"
                f" {columns[content_column].written}, expected text"
            )
        embedding = _embedding_column(where, columns, embedding_column)
        _check_dimensions(where, embedding, dimensions)
        # PGVectorStore itself goes on without the JSON column when the table has none
        json_column = metadata_json_column if metadata_json_column in columns else None
        if json_column is not None and columns[json_column].type_name not in _JSON_TYPES:
            raise SchemaError(
                f"{where}: metadata column {json_column!r} is {columns[json_column].written},"
                " expected json or jsonb"
            )
        taken = {id_column, content_column, embedding_column, json_column}
        for name in ignore_columns:
            if name not in columns:
                raise ConfigError(f"{where} has no column {name!r} to ignore")
        if metadata_columns is None:
            chosen = [
                name
                for name, column in columns.items()
                if name not in taken
                and name not in ignore_columns
                # the hybrid-search tsvector is derived from the content, not metadata
                and column.type_name != "tsvector"
            ]
        else:
            unknown = [name for name in metadata_columns if name not in columns]
            if unknown:
                raise ConfigError(
                    f"{where} has no column {', '.join(map(repr, unknown))};"
                    f" its columns: {', '.join(columns)}"
                )
            clash = [name for name in metadata_columns if name in taken]
            if clash:
                raise ConfigError(
                    f"{', '.join(map(repr, clash))} cannot be a metadata column: it holds the"
                    " id, content, embedding or JSON metadata"
                )
            chosen = list(dict.fromkeys(metadata_columns))
        source = q.SourceTable(
            schema=schema,
            name=table,
            key=id_column,
            ids=(id_column,),
            content=content_column,
            embedding=embedding_column,
            metadata_json=json_column,
            metadata_columns=tuple(chosen),
        )
        return SqlReader(
            conn,
            source,
            embedding,
            scope_value=None,
            description=f"PGVectorStore table {schema}.{table} ({_where(conn)})",
            identity=f"pgvectorstore:{_where(conn)}:{schema}:{table}",
            dimensions=dimensions,
        )
    except BaseException:
        conn.close()
        raise
