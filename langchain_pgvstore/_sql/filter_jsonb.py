"""Filters on a typed `jsonb` column's nested keys, served by the column's GIN index.

`{"attrs.color": "red"}` on a `jsonb` column `attrs` means what it means on
metadata (docs/filters.md). Reading `attrs` as the object `{"attrs": attrs}`
gives exactly that (`filter_columns.jsonb_column`) but hides the column from
its index. Below the top level, containment and path reads of that object
are those of the column itself, so the metadata compiler runs on the column
with the first key dropped, with two differences:

- a NULL column (the field absent) makes `@>` NULL: each containment carries
  `AND attrs IS NOT NULL`, which keeps it two-valued and indexable;
- every remaining segment may be read as an array index by `#>`, not only
  those after the first: the guard checks them all.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from . import Frag
from .filters import _INDEX_LIKE, _Compiler, _nest

__all__ = ["JsonbColumnCompiler"]


class JsonbColumnCompiler(_Compiler):
    """The metadata compiler over a nullable `jsonb` column, for keys below its top level."""

    def __init__(self, name: str) -> None:
        super().__init__(sql.Identifier(name))
        self.column = sql.Identifier(name)

    def _present(self, frag: Frag) -> Frag:
        return Frag(sql.SQL("({} AND {} IS NOT NULL)").format(frag.sql, self.column), frag.params)

    def _contains(self, doc: dict[str, Any]) -> Frag:
        return self._present(super()._contains(doc))

    def _contains_any(self, docs: list[dict[str, Any]]) -> Frag:
        return self._present(super()._contains_any(docs))

    def _guard(self, keys: tuple[str, ...], frag: Frag) -> Frag:
        if not any(_INDEX_LIKE.fullmatch(k) for k in keys):
            return frag
        parents = self._contains(_nest(keys[:-1], {}))  # the column is an object there
        return Frag(
            sql.SQL("({} AND {})").format(parents.sql, frag.sql), parents.params + frag.params
        )
