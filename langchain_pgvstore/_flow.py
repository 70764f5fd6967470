"""The course of one store call, as a generator both of the store's drivers run.

A flow yields what it needs (look the collection up, provision it, run a
query, run a write plan) and receives the result, or the database error,
back. It holds every decision of a call: what a read returns before the
collection exists, and what happens when another process dropped or
recreated the collection under this store (the statement fails with one of
`SCHEMA_CHANGED`): the flow has the store forget what it knew, looks the
collection up again, and runs the call once more against what it finds. A
changed collection then either works (a write re-creates a dropped table) or
fails with a typed error naming the difference (`SchemaError` from the
registry check, `DimensionError` from the vector check).

A read flow may first yield its `ReadRoute`: the server its lookup and query
go to (a read endpoint, or the primary; `_perform.py`). Every other need goes
to the primary.

`PGVStore` drives flows with `_drive` / `_adrive`, which differ only in
`await`; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from ._failures import SCHEMA_CHANGED
from ._plan import Plan
from ._routing import ReadRoute
from ._schema import CollectionSpec
from ._sql import Frag
from ._sql.settings import Settings

__all__ = [
    "FORGET",
    "LOOKUP",
    "Flow",
    "Need",
    "Provision",
    "Query",
    "Write",
    "change_flow",
    "known_flow",
    "read_flow",
    "value_flow",
    "write_flow",
]

R = TypeVar("R")
Rows = list[tuple[Any, ...]]


class _Lookup:
    """Need: the collection as the database records it, or None (never creates)."""


class _Forget:
    """Need: drop what the store knows of the collection (no I/O)."""


LOOKUP = _Lookup()
FORGET = _Forget()


@dataclass(frozen=True, slots=True)
class Provision:
    """Need: the collection, created (with `dimensions`) if it does not exist."""

    dimensions: int | None


@dataclass(frozen=True, slots=True)
class Query:
    """Need: the rows of a read."""

    frag: Frag
    settings: Settings = Settings()
    binary: bool = False
    client: bool = False


@dataclass(frozen=True, slots=True)
class Write:
    """Need: the result of a write plan, run in one transaction."""

    make_plan: Callable[[], Plan[Any]]


Need = _Lookup | _Forget | Provision | Query | Write | ReadRoute
Flow = Generator[Need, Any, R]


def read_flow(
    build: Callable[[CollectionSpec], Query],
    finish: Callable[[Rows], R],
    empty: R,
    route: ReadRoute | None = None,
) -> Flow[R]:
    """Look the collection up, run the query `build` makes for it, map the rows.

    Before the collection exists the answer is `empty`, and nothing is created.
    Both reads follow `route` (None: the primary).
    """
    if route is not None:
        yield route
    spec: CollectionSpec | None = yield LOOKUP
    for attempt in (1, 2):
        if spec is None:
            return empty
        query = build(spec)
        try:
            rows: Rows = yield query
        except SCHEMA_CHANGED:
            if attempt == 2:
                raise
            yield FORGET
            fresh: CollectionSpec | None = yield LOOKUP
            if fresh == spec:
                raise  # the collection is as it was: the error is the statement's own
            spec = fresh
            continue
        return finish(rows)
    raise AssertionError("unreachable")


def known_flow() -> Flow[CollectionSpec | None]:
    """The collection as the database records it (None before it exists)."""
    spec: CollectionSpec | None = yield LOOKUP
    return spec


def value_flow(value: R) -> Flow[R]:
    """A flow that needs nothing: its answer is known without the database."""
    return value
    yield  # a generator, like every flow


def write_flow(
    dimensions: int | None, prepare: Callable[[CollectionSpec], Callable[[], Plan[R]]]
) -> Flow[R]:
    """Provision the collection, then run the write plan `prepare` makes for it.

    `prepare(spec)` checks the call against the collection (raising before any
    statement is sent) and returns the plan to run. A write that fails because
    the collection changed under the store is run once more after provisioning
    again: a dropped table is re-created, a collection re-created with another
    shape fails `prepare`'s checks.
    """
    spec: CollectionSpec = yield Provision(dimensions)
    return (yield from _write(spec, prepare, Provision(dimensions), None))


def change_flow(prepare: Callable[[CollectionSpec], Callable[[], Plan[R]]], absent: R) -> Flow[R]:
    """Like `write_flow` for writes that need an existing collection (deletes):
    before the collection exists the answer is `absent`, and nothing is created."""
    spec: CollectionSpec | None = yield LOOKUP
    if spec is None:
        return absent
    return (yield from _write(spec, prepare, LOOKUP, absent))


def _write(
    spec: CollectionSpec | None,
    prepare: Callable[[CollectionSpec], Callable[[], Plan[R]]],
    again: Need,
    absent: Any,
) -> Generator[Need, Any, R]:
    for attempt in (1, 2):
        if spec is None:  # gone when looked up again: nothing to change
            result: R = absent
            return result
        make_plan = prepare(spec)
        try:
            written: R = yield Write(make_plan)
        except SCHEMA_CHANGED:
            if attempt == 2:
                raise
            yield FORGET
            spec = yield again
            continue
        return written
    raise AssertionError("unreachable")
