"""Stores for tests: a factory that cleans up after itself, and the sync/async `api` caller.

`make_store(...)` builds a `PGVStore`: any keyword of the constructor, with
`connection` defaulting to the test server and `collection` to the test's
`collection_name`; the first argument is an embedding model, or an int for a
`DeterministicFakeEmbedding` of that size (16 by default). At teardown the
factory closes every store it made (sync and async pools), then drops from the
test server each collection whose table did not exist when its first store
was made: the table (its indexes and triggers go with it), the registry row
and the BM25 objects (statistics table, functions). A collection that was
there before (a module's shared data, a user's table of that name) belongs to
whoever made it. `make_module_store` does the same for stores a module shares.
Stores on other servers or databases are closed; those servers and databases
belong to the fixtures that made them, which remove them whole.

`api` runs a method through the sync or the async API, once each:
`await api("add_texts", ...)` is `store.add_texts(...)` in the `[sync]` run and
`await store.aadd_texts(...)` in the `[async]` run, on the test's `store`
(override `store` in a module to seed or configure it); `api.on(other)` does the
same on any object with such pairs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from langchain_pgvstore import PGVStore
from langchain_pgvstore._sql import catalog
from tests.fix_db import drop_collection, run_sql

DEFAULT_DIM = 16


class StoreFactory:
    """Builds `PGVStore`s; `aclose()` closes them and drops the collections they made."""

    def __init__(self, dsn: str, admin: psycopg.Connection, collection: str | None) -> None:
        self._dsn = dsn
        self._admin = admin
        self._collection = collection
        self._stores: list[PGVStore] = []
        # (schema, collection) -> whether its table was absent when the first store came
        self._owned: dict[tuple[str, str], bool] = {}

    def __call__(self, embedding: Embeddings | int = DEFAULT_DIM, /, **kwargs: Any) -> PGVStore:
        """A new store; `kwargs` go to `PGVStore` (which may refuse them: nothing is kept then)."""
        if isinstance(embedding, int):
            embedding = DeterministicFakeEmbedding(size=embedding)
        kwargs.setdefault("connection", self._dsn)
        if self._collection is not None:
            kwargs.setdefault("collection", self._collection)
        return self._keep(PGVStore(embedding, **kwargs), made_here=False)

    def adopt(self, store: PGVStore) -> PGVStore:
        """Take over a store made elsewhere with its collection (`PGVStore.from_texts`, ...):
        closed, and the collection dropped, with the others."""
        return self._keep(store, made_here=True)

    def _keep(self, store: PGVStore, *, made_here: bool) -> PGVStore:
        table = store._spec.table
        key = (table.schema, table.name)
        if made_here:
            self._owned[key] = True
        elif key not in self._owned:
            # a table of that name that is there before the first store (a module's shared
            # collection, a user's table) belongs to whoever made it
            [(exists,)] = run_sql(self._admin, catalog.table_exists(table))
            self._owned[key] = not exists
        self._stores.append(store)
        return store

    async def aclose(self) -> None:
        """Close every store, then drop the collections that were not there before them."""
        try:
            for store in reversed(self._stores):
                await store.aclose()
        finally:
            for (schema, name), owned in self._owned.items():
                if owned:
                    drop_collection(self._admin, schema, name)


@pytest.fixture
async def make_store(
    dsn: str, admin: psycopg.Connection, collection_name: str
) -> AsyncIterator[StoreFactory]:
    """`make_store(dim_or_embedding, **kwargs)`: a store on `collection_name` unless told
    otherwise, closed (and its collection dropped) after the test."""
    factory = StoreFactory(dsn, admin, collection_name)
    yield factory
    await factory.aclose()


@pytest.fixture(scope="module")
async def make_module_store(dsn: str, admin: psycopg.Connection) -> AsyncIterator[StoreFactory]:
    """Like `make_store`, for stores a module shares; name the collection with
    `unique_name()`. Closed and dropped after the module's last test."""
    factory = StoreFactory(dsn, admin, None)
    yield factory
    await factory.aclose()


@pytest.fixture
def store(make_store: StoreFactory) -> PGVStore:
    """An empty store of 16 dimensions on `collection_name`; modules override it."""
    return make_store()


def _in_daemon_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """`fn(*args, **kwargs)` in a daemon thread: a call that hangs cannot block the exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            outcome(value)

    def body() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the test through the future
            loop.call_soon_threadsafe(settle, future.set_exception, e)
        else:
            loop.call_soon_threadsafe(settle, future.set_result, result)

    threading.Thread(target=body, daemon=True).start()
    return future


class Caller:
    """`await caller(name, ...)` runs `target.name(...)` or awaits `target.aname(...)`."""

    def __init__(
        self, mode: str, target: Any, *, in_thread: bool = False, timeout: float | None = None
    ) -> None:
        self.mode = mode
        self.target = target
        self._in_thread = in_thread
        self._timeout = timeout

    async def __call__(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "sync":
            method = getattr(self.target, name)
            if not self._in_thread:
                return method(*args, **kwargs)
            pending: Awaitable[Any] = _in_daemon_thread(method, *args, **kwargs)
        else:
            pending = getattr(self.target, "a" + name)(*args, **kwargs)
        return await (
            pending if self._timeout is None else asyncio.wait_for(pending, self._timeout)
        )

    async def collect(self, name: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Everything `target.name(...)` yields, or `target.aname(...)` yields asynchronously."""
        if self.mode == "sync":
            return list(getattr(self.target, name)(*args, **kwargs))
        return [item async for item in getattr(self.target, "a" + name)(*args, **kwargs)]


class Api(Caller):
    """The caller on the test's `store`; `on()` makes one on anything else, in the same mode."""

    def __init__(self, mode: str, target: Any = None) -> None:
        if mode not in ("sync", "async"):
            raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")
        super().__init__(mode, target)

    @property
    def is_async(self) -> bool:
        return self.mode == "async"

    def on(self, target: Any, *, in_thread: bool = False, timeout: float | None = None) -> Caller:
        """A caller on `target`. `in_thread`: a sync call runs in a (daemon) worker thread,
        so the test's event loop goes on meanwhile; `timeout`: seconds before the wait fails."""
        return Caller(self.mode, target, in_thread=in_thread, timeout=timeout)


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, store: PGVStore) -> Iterator[Api]:
    """The test runs twice: through the sync methods, then through their async twins."""
    yield Api(request.param, store)
