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
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langchain_pgvstore import PGVStore, QueryTimeoutError
from tests.fix_db import Locker, unique_name
from tests.fix_store import Api

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


@pytest.fixture(scope="module")
def collection(make_module_store) -> str:
    store = make_module_store(EMB, collection=unique_name("poison"), index=None)
    store.add_texts(
        [f"alpha doc {i}" for i in range(10)],
        [{"topic": "a" if i % 2 else "b"} for i in range(10)],
        ids=[f"d{i}" for i in range(10)],
    )
    return store.collection


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


async def _call(api: Api, store: PGVStore, kind: str) -> Any:
    method, args, kwargs = KINDS[kind]
    return await api.on(store, in_thread=True)(method, *args, **kwargs)


async def _fail_once(api: Api, store: PGVStore, kind: str, cause: str, dsn: str, locker: Locker):
    """Run the call while the table is locked, so that it fails the way `cause` says."""
    locker.lock()
    try:
        if cause == "cancel" and api.is_async:
            task = asyncio.ensure_future(_call(api, store, kind))
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
                await _call(api, store, kind)
            canceller.join()
        else:  # a statement timeout or a lock timeout, both set on the store's connections
            with pytest.raises(QueryTimeoutError):
                await _call(api, store, kind)
    finally:
        locker.release()


def _conninfo(dsn: str, cause: str) -> str:
    options = {
        "timeout": "-c statement_timeout=500",
        "lock": "-c lock_timeout=500",
        "cancel": "",
    }[cause]
    return _dsn_with(dsn, options) if options else dsn


def _lent_pool(conninfo: str, asynchronous: bool) -> Any:
    kwargs = {"autocommit": True, "application_name": "langchain-pgvstore"}
    if asynchronous:
        return AsyncConnectionPool(conninfo, min_size=1, max_size=1, kwargs=kwargs, open=False)
    return ConnectionPool(conninfo, min_size=1, max_size=1, kwargs=kwargs, open=True)


CASES = [
    (kind, cause, pool)
    for kind in sorted(KINDS)
    for cause in ("timeout", "cancel", "lock")
    for pool in ("own", "lent")
    # on a lent pool every failure takes the same path: one cause shows it
    if pool == "own" or cause == "timeout"
]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "cause", "pool"), CASES)
async def test_a_failed_execution_leaves_the_connection_usable(
    api: Api, make_store, kind: str, cause: str, pool: str, dsn: str, collection: str
) -> None:
    expected = await _call(api, make_store(EMB, collection=collection), kind)
    assert expected, "the call returns rows when it does not fail"
    conninfo = _conninfo(dsn, cause)
    locker = Locker(dsn, collection)
    try:
        for fail_at in FAIL_AT:
            # a fresh one-connection pool, so that this is the n-th execution on it
            lent = _lent_pool(conninfo, api.is_async) if pool == "lent" else None
            if lent is not None and api.is_async:
                await lent.open()
            try:
                store = make_store(
                    EMB, connection=lent or conninfo, collection=collection, pool_size=1
                )
                for _ in range(fail_at - 1):
                    assert await _call(api, store, kind) == expected
                await _fail_once(api, store, kind, cause, dsn, locker)
                for _ in range(AFTER):
                    assert await _call(api, store, kind) == expected
                await store.aclose()  # frees its connection before the next round
            finally:
                if lent is not None:
                    await lent.close() if api.is_async else lent.close()
    finally:
        locker.conn.close()
