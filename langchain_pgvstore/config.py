"""Frozen configuration: table names, distances, vector types, index settings.

Nothing here holds per-query state. Names are validated once, when a `Table`
is made, and kept as `psycopg.sql.Identifier` values from then on.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

from psycopg import sql

from . import _validate as check
from ._column_names import ColumnNames
from ._distance import Distance
from .columns import Columns
from .errors import ConfigError

__all__ = [
    "DEFAULT_HNSW",
    "Distance",
    "Distribution",
    "RowLevelSecurity",
    "TENANT_SETTING",
    "HNSWIndex",
    "IVFFlatIndex",
    "IndexSpec",
    "Table",
    "VectorType",
    "memory_size",
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
    value = check.pg_text(value, what, ConfigError)
    if not value:
        raise ConfigError(f"{what} must not be empty")
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


_MEMORY = re.compile(r"\s*[0-9]{1,12}\s*(?:[kMGT]B|B)?\s*")


def memory_size(value: object, name: str, error: check.ErrorClass = ConfigError) -> str:
    """`value` if it is a PostgreSQL memory size such as `'512MB'` or `'2GB'`."""
    if not isinstance(value, str) or not _MEMORY.fullmatch(value):
        raise error(
            f"{name} must be a memory size such as '512MB' or '2GB' (units B, kB, MB, GB, TB),"
            f" got {value!r}"
        )
    return value.strip()


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
        if self.quantization is not None:
            check.choice(self.quantization, "hnsw quantization", ("binary",), ConfigError)
        if self.rerank_pool is not None:
            check.int_in(self.rerank_pool, "rerank_pool", 1, 1000, ConfigError)
        check.int_in(self.m, "hnsw m", 2, 100, ConfigError)
        check.int_in(self.ef_construction, "hnsw ef_construction", 4, 1000, ConfigError)
        if self.ef_construction < 2 * self.m:
            raise ConfigError(
                "hnsw ef_construction must be at least 2 * m,"
                f" got {self.ef_construction!r} with m={self.m}"
            )


@dataclass(frozen=True, slots=True)
class IVFFlatIndex:
    """An IVFFlat index. `lists=None` derives the list count from the row count at build time."""

    lists: int | None = None

    def __post_init__(self) -> None:
        if self.lists is not None:
            check.int_in(self.lists, "ivfflat lists", 1, 32768, ConfigError)

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


#: The column names of the store's own tables.
STORE_COLUMNS = ColumnNames()

Distribution = Literal["id", "tenant"]
#: `full_text=` of a collection whose keyword search runs on a `pg_textsearch` BM25 index.
TEXTSEARCH: Literal["pg_textsearch"] = "pg_textsearch"
#: A collection's full text: True (plain-SQL BM25), False (none), or `TEXTSEARCH`.
FullText = bool | Literal["pg_textsearch"]
#: How row-level security tells a connection's tenant: a session setting the store
#: sets per call (`pgvstore.tenant`), or the login role's name.
RowLevelSecurity = Literal["setting", "role"]
#: The session setting that names the tenant under `row_level_security="setting"`.
TENANT_SETTING = "pgvstore.tenant"


@dataclass(frozen=True, slots=True)
class Table:
    """A collection's table, its shape, and the names of everything the store provisions.

    `multi_tenant`: every row carries a `tenant` and the primary key is
    `(tenant, id)`. `distribution`: on a Citus cluster, the column the table is
    sharded by (None for an ordinary table). `columns`: the typed columns that
    hold declared metadata fields (`columns.py`), sorted by name. `full_text`:
    True if the table has the full-text objects (the generated `tsv`, its GIN
    index, the BM25 statistics), `"pg_textsearch"` if it has a `pg_textsearch`
    BM25 index over `content` instead, False if neither; None until known,
    which a new table takes as True and an existing one replaces with what the
    catalog shows.
    """

    schema: str
    name: str
    multi_tenant: bool = False
    distribution: Distribution | None = None
    columns: Columns = ()
    full_text: FullText | None = None
    existing: ColumnNames | None = None
    tenant: ClassVar[sql.Identifier] = sql.Identifier("tenant")
    created_at: ClassVar[sql.Identifier] = sql.Identifier("created_at")
    updated_at: ClassVar[sql.Identifier] = sql.Identifier("updated_at")

    def __post_init__(self) -> None:
        validate_identifier(self.schema, "schema")
        validate_identifier(self.name, "collection")
        if self.existing is not None:
            if self.multi_tenant or self.distribution is not None:
                raise ConfigError(
                    "an existing table cannot be multi-tenant or distributed: the store would"
                    " have to change its primary key or shard it"
                )
            taken = set(self.existing.as_tuple())
            for name, _ in self.columns:
                if name in taken:
                    raise ConfigError(
                        f"column {name!r} is one of the table's id, content, embedding,"
                        " metadata or bookkeeping columns; it cannot also be a typed field"
                    )
            return  # the user's own table: its name is the user's, not the store's
        if self.distribution == "tenant" and not self.multi_tenant:
            raise ConfigError("only a multi-tenant collection can be distributed by tenant")
        if self.schema.startswith("pg_"):
            raise ConfigError(
                f"schema {self.schema!r} starts with 'pg_', which PostgreSQL reserves"
                " for system schemas"
            )
        if self.name.startswith(RESERVED_PREFIX) or _DERIVED_NAME.fullmatch(self.name):
            raise ConfigError(
                f"collection name {self.name!r} is reserved: names starting with"
                f" {RESERVED_PREFIX!r}, or ending in '_' + 10 hex digits + '_' + a word, are"
                " those of the store's own tables, indexes and functions"
            )

    @property
    def names(self) -> ColumnNames:
        """The names of the id, content, embedding, metadata and tsv columns."""
        return self.existing or STORE_COLUMNS

    @property
    def id(self) -> sql.Identifier:
        return sql.Identifier(self.names.id)

    @property
    def content(self) -> sql.Identifier:
        return sql.Identifier(self.names.content)

    @property
    def embedding(self) -> sql.Identifier:
        return sql.Identifier(self.names.embedding)

    @property
    def metadata(self) -> sql.Identifier:
        return sql.Identifier(self.names.metadata)

    @property
    def tsv(self) -> sql.Identifier:
        return sql.Identifier(self.names.tsv)

    @property
    def content_hash(self) -> sql.Identifier:
        """An existing table's record of the content each embedding was made from."""
        assert self.names.content_hash is not None, "the table records no content hash"
        return sql.Identifier(self.names.content_hash)

    @property
    def has_full_text(self) -> bool:
        """The table has (or, when new, is to get) the plain-SQL full-text objects."""
        return self.full_text is None or self.full_text is True

    @property
    def textsearch(self) -> bool:
        """The table has (or, when new, is to get) a `pg_textsearch` BM25 index."""
        return self.full_text == TEXTSEARCH

    @property
    def qualname(self) -> sql.Identifier:
        """`schema.table`, quoted."""
        return sql.Identifier(self.schema, self.name)

    @property
    def key(self) -> tuple[sql.Identifier, ...]:
        """The primary key's columns: `(tenant, id)` or `(id,)`."""
        return (self.tenant, self.id) if self.multi_tenant else (self.id,)

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
#: Collection names the store's own objects use: its registry and side tables
#: (`pgvstore_...`) and each collection's derived objects (`<name>_<hash>_<kind>`).
RESERVED_PREFIX = "pgvstore_"
_DERIVED_NAME = re.compile(r".*_[0-9a-f]{10}_[a-z][a-z0-9_]*")
#: The collection schema this release creates (a registry row's `schema_version`);
#: `_upgrade.COLLECTION_STEPS` bring older ones here. See docs/schema.md.
SCHEMA_VERSION = 2
#: The registry schema this release creates (the registry table's comment);
#: `_sql.migrations.REGISTRY_STEPS` bring older ones here.
REGISTRY_VERSION = 4
#: Serialises `CREATE EXTENSION` and registry creation across processes.
GLOBAL_LOCK_KEY = int.from_bytes(hashlib.sha1(b"pgvstore:global").digest()[:8], "big", signed=True)

IndexKind = Literal["hnsw", "ivfflat"]
