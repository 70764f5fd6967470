"""A failed statement never poisons a pooled connection (docs/reliability.md, class 1).

psycopg prepares a statement on its sixth execution on a connection. If that
execution fails inside a pipeline, the server skips the statements after the
failure, and psycopg can believe a statement is prepared that the server never
saw: every later execution of the same shape then fails with
`InvalidSqlStatementName`. For every kind of search, sync and async, on the
store's own pool and on a pool the caller lent it, the 1st, 5th, 6th and 7th
execution is made to fail (a statement timeout, a cancellation, a lock
timeout), and the next 20 calls on the same one-connection pool must succeed.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langchain_pgvstore import PGVStore, QueryTimeoutError

DIM = 8
EMB = DeterministicFakeEmbedding(size=DIM)
VECTOR = [0.1 * i for i in range(1, DIM + 1)]
FILTER = {"topic": "a"}

#: kind -> (method, args, kwargs)
KINDS: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "similarity": ("similarity_search_by_vector", (VECTOR,), {"k": 3}),
    "filtered": ("similarity_search_by_vector", (VECTOR,), {"k": 3, "filter": FILTER}),
    "settings": ("similarity_search_by_vector", (VECTOR,), {"k": 3, "ef_search": 60}),
    "mmr": ("max_marginal_relevance_search_by_vector", (VECTOR,), {"k": 2, "fetch_k": 5}),
    "keyword": ("keyword_search", ("alpha",), {"k": 3}),
    "hybrid": ("hybrid_search_with_score_by_vector", ("alpha", VECTOR), {"k": 3}),
    "get": ("get_by_ids", (["d0", "d1"],), {}),
}
FAIL_AT = (1, 5, 6, 7)
AFTER = 20


class Locker:
    """Another session holding an exclusive lock on the collection's table."""

    def __init__(self, dsn: str, table: str) -> None:
        self.conn = psycopg.connect(dsn)
        self.table = table

    def lock(self) -> None:
        self.conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(self.table))
        )

    def release(self) -> None:
        self.conn.rollback()


@pytest.fixture(scope="module")
def collection(dsn: str) -> Iterator[str]:
    name = f"t_poison_{uuid.uuid4().hex[:8]}"
    store = PGVStore(EMB, connection=dsn, collection=name, index=None)
    store.add_texts(
        [f"alpha doc {i}" for i in range(10)],
        [{"topic": "a" if i % 2 else "b"} for i in range(10)],
        ids=[f"d{i}" for i in range(10)],
    )
    store.close()
    yield name
    store = PGVStore(EMB, connection=dsn, collection=name)
    store.delete_collection()
    store.close()


def _dsn_with(dsn: str, options: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["options"] = options
    return psycopg.conninfo.make_conninfo(**params)


def _backend_waiting(dsn: str, timeout: float = 5.0) -> int:
    """The pid of a session of the store waiting for the lock."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as c:
        while time.monotonic() < deadline:
            row = c.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = 'langchain-pgvstore' LIMIT 1"
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.01)
    raise AssertionError("no store session waited for the lock")


async def _call(store: PGVStore, mode: str, kind: str) -> Any:
    method, args, kwargs = KINDS[kind]
    if mode == "sync":
        return await asyncio.to_thread(getattr(store, method), *args, **kwargs)
    return await getattr(store, "a" + method)(*args, **kwargs)


async def _fail_once(store: PGVStore, mode: str, kind: str, cause: str, dsn: str, locker: Locker):
    """Run the call while the table is locked, so that it fails the way `cause` says."""
    locker.lock()
    try:
        if cause == "cancel" and mode == "async":
            method, args, kwargs = KINDS[kind]
            task = asyncio.ensure_future(getattr(store, "a" + method)(*args, **kwargs))
            await asyncio.to_thread(_backend_waiting, dsn)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        elif cause == "cancel":

            def cancel() -> None:
                pid = _backend_waiting(dsn)
                with psycopg.connect(dsn, autocommit=True) as c:
                    c.execute("SELECT pg_cancel_backend(%s)", (pid,))

            canceller = threading.Thread(target=cancel)
            canceller.start()
            with pytest.raises(QueryTimeoutError):
                await _call(store, mode, kind)
            canceller.join()
        else:  # a statement timeout or a lock timeout, both set on the store's connections
            with pytest.raises(QueryTimeoutError):
                await _call(store, mode, kind)
    finally:
        locker.release()


def _store(dsn: str, collection: str, cause: str, pool: str, mode: str) -> tuple[PGVStore, Any]:
    options = {
        "timeout": "-c statement_timeout=500",
        "lock": "-c lock_timeout=500",
        "cancel": "",
    }[cause]
    conninfo = _dsn_with(dsn, options) if options else dsn
    if pool == "own":
        return PGVStore(EMB, connection=conninfo, collection=collection, pool_size=1), None
    kwargs = {"autocommit": True, "application_name": "langchain-pgvstore"}
    if mode == "sync":
        lent: Any = ConnectionPool(conninfo, min_size=1, max_size=1, kwargs=kwargs, open=True)
    else:
        lent = AsyncConnectionPool(conninfo, min_size=1, max_size=1, kwargs=kwargs, open=False)
    return PGVStore(EMB, connection=lent, collection=collection), lent


CASES = [
    (kind, mode, cause, pool)
    for kind in sorted(KINDS)
    for mode in ("sync", "async")
    for cause in ("timeout", "cancel", "lock")
    for pool in ("own", "lent")
    # on a lent pool every failure takes the same path: one cause shows it
    if pool == "own" or cause == "timeout"
]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "mode", "cause", "pool"), CASES)
async def test_a_failed_execution_leaves_the_connection_usable(
    kind: str, mode: str, cause: str, pool: str, dsn: str, collection: str
) -> None:
    reference = PGVStore(EMB, connection=dsn, collection=collection)
    expected = await _call(reference, mode, kind)
    await reference.aclose()
    assert expected, "the call returns rows when it does not fail"
    locker = Locker(dsn, collection)
    try:
        for fail_at in FAIL_AT:
            # a fresh one-connection pool, so that this is the n-th execution on it
            store, lent = _store(dsn, collection, cause, pool, mode)
            if lent is not None and mode == "async":
                await lent.open()
            try:
                for _ in range(fail_at - 1):
                    assert await _call(store, mode, kind) == expected
                await _fail_once(store, mode, kind, cause, dsn, locker)
                for _ in range(AFTER):
                    assert await _call(store, mode, kind) == expected
            finally:
                await store.aclose()
                if lent is not None:
                    await lent.close() if mode == "async" else lent.close()
    finally:
        locker.conn.close()
