"""The names of a collection's columns: the store's own, or those of an existing table."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["ID_TYPES", "ColumnNames"]


def _integer(bits: int) -> Callable[[str], bool]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def fits(text: str) -> bool:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            return False
        return low <= value <= high and text.strip() == str(value)

    return fits


def _uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


#: Id column types of an existing table besides text and varchar: the SQL type (the
#: store's ids are text, cast to it) and which texts are ids of that type.
ID_TYPES: dict[str, Callable[[str], bool]] = {
    "smallint": _integer(16),
    "integer": _integer(32),
    "bigint": _integer(64),
    "uuid": _uuid,
}


@dataclass(frozen=True, slots=True)
class ColumnNames:
    """Where a collection's parts live: the store's own names, or an existing table's.

    `content_hash` records, per row, a digest of the content its embedding was
    made from (existing tables only: it is how changed rows are found).
    `id_type`: an existing table's id column type when it is not text (one of
    `ID_TYPES`): statements cast the store's text ids to it and read it as text.
    """

    id: str = "id"
    content: str = "content"
    embedding: str = "embedding"
    metadata: str = "metadata"
    tsv: str = "tsv"
    content_hash: str | None = None
    id_type: str | None = None

    def __post_init__(self) -> None:
        names = self.as_tuple()
        from .config import validate_identifier  # config imports this module

        for what, name in zip(_NAME_ROLES, names, strict=False):
            validate_identifier(name, f"{what} column")
        if len(set(names)) != len(names):
            from .errors import ConfigError

            raise ConfigError(
                "the id, content, embedding, metadata, full-text and content-hash columns must"
                f" be different columns, got {names!r}"
            )
        assert self.id_type is None or self.id_type in ID_TYPES, self.id_type

    def fitting(self, ids: Sequence[str]) -> list[str]:
        """The ids that can be ids of this table (others name no row: an integer key
        has no row "abc")."""
        if self.id_type is None:
            return list(ids)
        fits = ID_TYPES[self.id_type]
        return [i for i in ids if fits(i)]

    def refuse_unfitting(self, ids: Sequence[str], table: str) -> None:
        """`InputError` for the first id that cannot be a key of this table (written ids)."""
        fitting = set(self.fitting(ids))
        for i, id_ in enumerate(ids):
            if id_ not in fitting:
                from .errors import InputError

                raise InputError(
                    f"document {i}: id {id_!r} is not a {self.id_type}, the type of the id"
                    f" column {self.id!r} of {table}; give ids= of that type"
                )

    def as_tuple(self) -> tuple[str, ...]:
        names = (self.id, self.content, self.embedding, self.metadata, self.tsv)
        return names if self.content_hash is None else (*names, self.content_hash)

    def as_json(self) -> dict[str, str | None]:
        """The names as the registry records them."""
        return {
            "id": self.id,
            "content": self.content,
            "embedding": self.embedding,
            "metadata": self.metadata,
            "tsv": self.tsv,
            "content_hash": self.content_hash,
            "id_type": self.id_type,
        }


_NAME_ROLES = ("id", "content", "embedding", "metadata", "tsv", "content_hash")
