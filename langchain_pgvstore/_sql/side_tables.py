"""Names and provisioning builders for the store's side tables (key-value cache, records).

A side table is a plain table next to the collections: the byte store behind
the embedding cache, and the record manager of LangChain's indexing API. Its
names are validated once, here, and held as `psycopg.sql.Identifier` values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from psycopg import sql

from ..config import validate_identifier

__all__ = ["SideTable"]


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class SideTable:
    """A side table's schema and name; `kind` tells side tables apart in lock keys."""

    schema: str
    name: str
    kind: str

    def __post_init__(self) -> None:
        validate_identifier(self.schema, "schema")
        validate_identifier(self.name, "table")

    @property
    def qualname(self) -> sql.Identifier:
        """`schema.table`, quoted."""
        return sql.Identifier(self.schema, self.name)

    def index(self, suffix: str) -> sql.Identifier:
        """An unqualified index name under 63 bytes, unique per table and suffix."""
        prefix = self.name.encode("utf-8")[:32].decode("utf-8", "ignore")
        return sql.Identifier(f"{prefix}_{_short_hash(self.name)}_{suffix}")

    def lock_key(self) -> int:
        """A 64-bit advisory-lock key for provisioning this table (same in every process)."""
        digest = hashlib.sha1(f"pgvstore:{self.kind}:{self.schema}.{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)
