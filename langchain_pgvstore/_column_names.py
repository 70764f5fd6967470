"""The names of a collection's columns: the store's own, or those of an existing table."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ColumnNames"]


@dataclass(frozen=True, slots=True)
class ColumnNames:
    """Where a collection's parts live: the store's own names, or an existing table's.

    `content_hash` records, per row, a digest of the content its embedding was
    made from (existing tables only: it is how changed rows are found).
    """

    id: str = "id"
    content: str = "content"
    embedding: str = "embedding"
    metadata: str = "metadata"
    tsv: str = "tsv"
    content_hash: str | None = None

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
        }


_NAME_ROLES = ("id", "content", "embedding", "metadata", "tsv", "content_hash")
