"""SQL fragments: a piece of `psycopg.sql` and the parameters its placeholders take.

Every query the store runs is built by pure functions in this package out of
`Frag` values. Keeping the text and its parameters in one value means a
placeholder can never drift away from its parameter, and the text is
deterministic, so psycopg can prepare it and tests can snapshot it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import sql

from ..config import Distance, VectorType

__all__ = ["Frag", "Rendered", "join", "operator", "type_name"]


@dataclass(frozen=True, slots=True)
class Frag:
    """A composable SQL fragment with its positional (`%s`) parameters."""

    sql: sql.SQL | sql.Composed
    params: tuple[object, ...] = ()

    def __add__(self, other: Frag) -> Frag:
        return Frag(sql.Composed([self.sql, other.sql]), self.params + other.params)

    def as_string(self) -> str:
        """Render the SQL text (placeholders left as `%s`), for logs and snapshot tests."""
        return self.sql.as_string(None)


def join(separator: sql.SQL, parts: Iterable[Frag]) -> Frag:
    """Join fragments with `separator`, keeping parameters in order."""
    parts = list(parts)
    return Frag(
        separator.join(p.sql for p in parts),
        tuple(param for p in parts for param in p.params),
    )


class Rendered(sql.SQL):
    """A statement's SQL rendered once (identifiers quoted, `%s` kept), reused as text.

    psycopg renders a `Composed` tree on every execute; a search statement
    built from fragments takes longer to build and render than a local round
    trip to the server. The store caches these per statement shape.
    """

    def __init__(self, source: sql.Composable) -> None:
        # the text comes from typed pieces (SQL, Identifier, Literal), never from input
        super().__init__(source.as_string(None))


def operator(distance: Distance) -> sql.SQL:
    """The pgvector operator of a distance (from a closed enum, never from input)."""
    return sql.SQL(distance.operator)


def type_name(vector_type: VectorType) -> sql.SQL:
    """The SQL type of a vector column (from a closed enum, never from input)."""
    return sql.SQL(vector_type.value)
