"""Frozen configuration: table names, distances, vector types, index settings.

Nothing here holds per-query state. Names are validated once, when a `Table`
is made, and kept as `psycopg.sql.Identifier` values from then on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

from psycopg import sql

from .errors import ConfigError

__all__ = [
    "DEFAULT_HNSW",
    "Distance",
    "HNSWIndex",
    "IVFFlatIndex",
    "IndexSpec",
    "Table",
    "VectorType",
    "validate_identifier",
]

MAX_IDENTIFIER_BYTES = 63
MAX_INDEXED_DIMENSIONS = {"vector": 2000, "halfvec": 4000}
MAX_DIMENSIONS = 16000
#: Full text covers this many leading characters of a document. PostgreSQL refuses
#: a tsvector over 1 MB, and short distinct words take up to ~5.5 bytes of it per
#: character of text: this keeps the worst case near half the limit.
MAX_TSVECTOR_CHARS = 100_000


def validate_identifier(value: object, what: str) -> str:
    """Check that `value` can be used verbatim as a PostgreSQL identifier.

    PostgreSQL silently truncates names over 63 bytes, which would let two
    different collections share one table, so longer names are refused.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {value!r}")
    if not value:
        raise ConfigError(f"{what} must not be empty")
    if "\x00" in value:
        raise ConfigError(f"{what} must not contain NUL bytes, got {value!r}")
    if "%" in value:
        # psycopg reads every % of a statement with parameters as a placeholder,
        # inside a quoted identifier too: "a%%b" would name the table "a%b"
        raise ConfigError(f"{what} must not contain '%', got {value!r}")
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ConfigError(
            f"{what} {value!r} is {len(value.encode('utf-8'))} bytes long;"
            f" PostgreSQL identifiers are limited to {MAX_IDENTIFIER_BYTES} bytes"
        )
    return value


class Distance(StrEnum):
    """How closeness between two vectors is measured."""

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "inner_product"
    L1 = "l1"

    @classmethod
    def parse(cls, value: str | Distance) -> Distance:
        """Accept a `Distance` or its name (a few common aliases included)."""
        if isinstance(value, Distance):
            return value
        key = str(value).strip().lower().replace("-", "_").replace(" ", "_")
        aliases = {
            "euclidean": "l2",
            "ip": "inner_product",
            "dot": "inner_product",
            "max_inner_product": "inner_product",
            "manhattan": "l1",
            "taxicab": "l1",
        }
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(d.value for d in cls)
            raise ConfigError(f"unknown distance {value!r}; expected one of {names}") from None

    @property
    def operator(self) -> sql.SQL:
        """The pgvector operator that orders rows nearest first."""
        return _OPERATORS[self]

    def opclass(self, vector_type: VectorType) -> sql.Identifier:
        """The index operator class the store's own queries can use."""
        return sql.Identifier(f"{vector_type.value}_{_OPCLASS_SUFFIX[self]}")

    def relevance(self) -> Callable[[float], float]:
        """Map the operator's distance to a relevance score in [0, 1], higher is closer."""
        return _RELEVANCE[self]


def _cosine_relevance(distance: float) -> float:
    # cosine distance lies in [0, 2]
    return min(1.0, max(0.0, 1.0 - distance / 2.0))


def _inner_product_relevance(distance: float) -> float:
    # pgvector's <#> returns the negative inner product; for unit vectors the
    # inner product lies in [-1, 1]. Clamp so unnormalised vectors stay in range.
    return min(1.0, max(0.0, (1.0 - distance) / 2.0))


def _reciprocal_relevance(distance: float) -> float:
    # L1 and L2 distances are unbounded: 1 / (1 + d) is 1 for an exact match
    # and falls monotonically towards 0.
    if math.isnan(distance):
        return 0.0
    return 1.0 / (1.0 + max(0.0, distance))


_OPERATORS = {
    Distance.COSINE: sql.SQL("<=>"),
    Distance.L2: sql.SQL("<->"),
    Distance.INNER_PRODUCT: sql.SQL("<#>"),
    Distance.L1: sql.SQL("<+>"),
}
_OPCLASS_SUFFIX = {
    Distance.COSINE: "cosine_ops",
    Distance.L2: "l2_ops",
    Distance.INNER_PRODUCT: "ip_ops",
    Distance.L1: "l1_ops",
}
_RELEVANCE: dict[Distance, Callable[[float], float]] = {
    Distance.COSINE: _cosine_relevance,
    Distance.L2: _reciprocal_relevance,
    Distance.INNER_PRODUCT: _inner_product_relevance,
    Distance.L1: _reciprocal_relevance,
}


class VectorType(StrEnum):
    """How embeddings are stored: `vector` (float32) or `halfvec` (float16, half the bytes)."""

    VECTOR = "vector"
    HALFVEC = "halfvec"

    @classmethod
    def parse(cls, value: str | VectorType) -> VectorType:
        """Accept a `VectorType` or its name."""
        if isinstance(value, VectorType):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ConfigError(
                f"unknown vector type {value!r}; expected one of vector, halfvec"
            ) from None

    @property
    def sql_type(self) -> sql.SQL:
        """The SQL type name, for casts."""
        return sql.SQL(self.value)


@dataclass(frozen=True, slots=True)
class HNSWIndex:
    """An HNSW index. `m` links per node, `ef_construction` candidates while building.

    `quantization="binary"` indexes `binary_quantize(embedding)` (1 bit per
    dimension, 32 times smaller than float32) and re-ranks `rerank_pool`
    candidates (default max(40, 4 × k)) by the exact distance.
    """

    m: int = 16
    ef_construction: int = 64
    quantization: Literal["binary"] | None = None
    rerank_pool: int | None = None

    def __post_init__(self) -> None:
        if self.quantization not in (None, "binary"):
            raise ConfigError(
                f"hnsw quantization must be None or 'binary', got {self.quantization!r}"
            )
        if self.rerank_pool is not None and (
            isinstance(self.rerank_pool, bool)
            or not isinstance(self.rerank_pool, int)
            or not 1 <= self.rerank_pool <= 1000
        ):
            raise ConfigError(
                f"rerank_pool must be an integer in [1, 1000], got {self.rerank_pool!r}"
            )
        if not isinstance(self.m, int) or not 2 <= self.m <= 100:
            raise ConfigError(f"hnsw m must be an integer in [2, 100], got {self.m!r}")
        if not isinstance(self.ef_construction, int) or not (
            4 <= self.ef_construction <= 1000 and self.ef_construction >= 2 * self.m
        ):
            raise ConfigError(
                "hnsw ef_construction must be an integer in [4, 1000] and at least 2 * m,"
                f" got {self.ef_construction!r} with m={self.m}"
            )


@dataclass(frozen=True, slots=True)
class IVFFlatIndex:
    """An IVFFlat index. `lists=None` derives the list count from the row count at build time."""

    lists: int | None = None

    def __post_init__(self) -> None:
        if self.lists is not None and (
            not isinstance(self.lists, int) or not 1 <= self.lists <= 32768
        ):
            raise ConfigError(f"ivfflat lists must be an integer in [1, 32768], got {self.lists!r}")

    def lists_for(self, rows: int) -> int:
        """pgvector's guidance: rows / 1000 up to 1M rows, sqrt(rows) above."""
        if self.lists is not None:
            return self.lists
        if rows <= 1_000_000:
            return max(1, rows // 1000)
        return max(1, int(math.sqrt(rows)))


IndexSpec = HNSWIndex | IVFFlatIndex | None
DEFAULT_HNSW = HNSWIndex()


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Table:
    """A collection's table and the names of everything the store provisions for it."""

    schema: str
    name: str
    id: ClassVar[sql.Identifier] = sql.Identifier("id")
    content: ClassVar[sql.Identifier] = sql.Identifier("content")
    metadata: ClassVar[sql.Identifier] = sql.Identifier("metadata")
    embedding: ClassVar[sql.Identifier] = sql.Identifier("embedding")
    tsv: ClassVar[sql.Identifier] = sql.Identifier("tsv")
    created_at: ClassVar[sql.Identifier] = sql.Identifier("created_at")
    updated_at: ClassVar[sql.Identifier] = sql.Identifier("updated_at")

    def __post_init__(self) -> None:
        validate_identifier(self.schema, "schema")
        validate_identifier(self.name, "collection")
        if self.schema.startswith("pg_"):
            raise ConfigError(
                f"schema {self.schema!r} starts with 'pg_', which PostgreSQL reserves"
                " for system schemas"
            )
        if self.name == REGISTRY_TABLE:
            raise ConfigError(f"collection name {self.name!r} is reserved")

    @property
    def qualname(self) -> sql.Identifier:
        """`schema.table`, quoted."""
        return sql.Identifier(self.schema, self.name)

    @property
    def registry(self) -> sql.Identifier:
        """The registry table that records every collection of this schema."""
        return sql.Identifier(self.schema, REGISTRY_TABLE)

    def index_name(self, kind: str) -> str:
        """A stable index name under 63 bytes, unique per collection and kind.

        Long collection names are cut and disambiguated with a hash, because
        PostgreSQL would otherwise truncate them into collisions.
        """
        prefix = self.name.encode("utf-8")[:32].decode("utf-8", "ignore")
        return f"{prefix}_{_short_hash(self.name)}_{kind}"

    def index(self, kind: str) -> sql.Identifier:
        """Schema-qualified identifier of one of the collection's indexes."""
        return sql.Identifier(self.schema, self.index_name(kind))

    def lock_key(self) -> int:
        """A 64-bit advisory-lock key for this collection (same in every process)."""
        digest = hashlib.sha1(f"pgvstore:{self.schema}.{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


REGISTRY_TABLE = "pgvstore_collections"
SCHEMA_VERSION = 1
#: Serialises `CREATE EXTENSION` and registry creation across processes.
GLOBAL_LOCK_KEY = int.from_bytes(hashlib.sha1(b"pgvstore:global").digest()[:8], "big", signed=True)

IndexKind = Literal["hnsw", "ivfflat"]
