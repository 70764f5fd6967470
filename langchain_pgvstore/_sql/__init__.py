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

__all__ = ["Frag", "join"]


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
