"""Reading documents by id or by filter, sync and async."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from typing_extensions import override

from . import _validate as check
from ._core import StoreCore
from ._flow import Flow, Query, read_flow, value_flow
from ._ingest import check_ids
from ._routing import ReadRoute, route
from ._schema import CollectionSpec
from ._sql import dml

__all__ = ["Reads"]

Row = tuple[Any, ...]


def _in_order(
    ids: Sequence[str], rows: list[Row], make: Callable[[Row], Document]
) -> list[Document]:
    by_id = {r[0]: r for r in rows}
    seen: set[str] = set()
    docs = []
    for i in ids:
        if i in by_id and i not in seen:
            seen.add(i)
            docs.append(make(by_id[i]))
    return docs


class Reads(StoreCore):
    """`get_by_ids`, `get` and `count`.

    Each takes `read_from="primary"` to skip the read endpoints, and `after=` a
    `WriteToken` (or its text) to see the write it came from (see `PGVStore`).
    """

    def _by_ids(self, ids: Sequence[str], read: ReadRoute) -> Flow[list[Document]]:
        id_list = check_ids(ids)
        scope = self._compile(None) if self._configured.table.multi_tenant else None
        if not id_list:
            return value_flow([])
        return read_flow(
            lambda spec: Query(dml.get_by_ids(spec.table, id_list, scope)),
            lambda rows: _in_order(id_list, rows, self._documents()),
            [],
            read,
        )

    @override
    def get_by_ids(
        self, ids: Sequence[str], /, *, read_from: str | None = None, after: Any = None
    ) -> list[Document]:
        """Documents for these ids, in the order asked; missing ids are skipped."""
        return self._drive(self._by_ids(ids, route(read_from, after)))

    @override
    async def aget_by_ids(
        self, ids: Sequence[str], /, *, read_from: str | None = None, after: Any = None
    ) -> list[Document]:
        """Async `get_by_ids`."""
        return await self._adrive(self._by_ids(ids, route(read_from, after)))

    def _get(
        self, filter: Mapping[str, Any] | None, limit: int | None, offset: int, read: ReadRoute
    ) -> Flow[list[Document]]:
        if limit is not None:
            limit = check.positive_int(limit, "limit", maximum=check.INT8_MAX)
        offset = check.non_negative_int(offset, "offset", maximum=check.INT8_MAX)
        where = self._compile(filter)

        def build(spec: CollectionSpec) -> Query:
            return Query(dml.get_where(spec.table, where, limit, offset))

        make = self._documents()
        return read_flow(build, lambda rows: [make(r) for r in rows], [], read)

    def get(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        read_from: str | None = None,
        after: Any = None,
    ) -> list[Document]:
        """List documents matching a filter, in id order, a page at a time."""
        return self._drive(self._get(filter, limit, offset, route(read_from, after)))

    async def aget(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        read_from: str | None = None,
        after: Any = None,
    ) -> list[Document]:
        """Async `get`."""
        return await self._adrive(self._get(filter, limit, offset, route(read_from, after)))

    def _count(self, filter: Mapping[str, Any] | None, read: ReadRoute) -> Flow[int]:
        where = self._compile(filter)
        return read_flow(
            lambda spec: Query(dml.count_rows(spec.table, where)),
            lambda rows: int(rows[0][0]),
            0,
            read,
        )

    def count(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        read_from: str | None = None,
        after: Any = None,
    ) -> int:
        """How many documents the collection holds (matching `filter`); 0 before it exists."""
        return self._drive(self._count(filter, route(read_from, after)))

    async def acount(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        read_from: str | None = None,
        after: Any = None,
    ) -> int:
        """Async `count`."""
        return await self._adrive(self._count(filter, route(read_from, after)))
