"""Faults: the server going away, statement timeouts, cancelled tasks.

Tests that stop the server use their own `EmbeddedPostgres` in a temporary
directory, never the session's. Slow statements are made honestly: another
session holds a lock on the collection's table, so the store's statement waits
on it, exactly as it would behind a long migration or a VACUUM FULL.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from langchain_pgvstore import (
    DatabaseUnavailableError,
    EmbeddedPostgres,
    PGVStore,
    QueryTimeoutError,
)
from langchain_pgvstore._connection import APPLICATION_NAME
from tests.fix_db import Locker
from tests.fix_store import Api


async def _call(store: Any, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """`store.name(...)` in a thread, or `await store.aname(...)`."""
    if mode == "sync":
        return await asyncio.to_thread(getattr(store, name), *args, **kwargs)
    return await getattr(store, "a" + name)(*args, **kwargs)


DIM = 8
LARGE = 60_000  # rows in a "large" ingest: its transaction runs for seconds
# the tests' own sessions never wait forever either
HELPER = {"autocommit": True, "connect_timeout": 5, "options": "-c statement_timeout=10000"}


def in_thread(fn: Callable[..., Any], *args: Any) -> Future:
    future: Future = Future()

    def body() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed over through the future
            future.set_exception(e)

    threading.Thread(target=body, daemon=True).start()
    return future


def store_activity(dsn: str) -> list[tuple[str, str | None, str]]:
    """(state, wait_event_type, query) of the store's backends."""
    with psycopg.connect(dsn, **HELPER) as c:
        return c.execute(
            "SELECT state, wait_event_type, query FROM pg_stat_activity"
            " WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchall()


def wait_for_activity(
    dsn: str, matches: Callable[[tuple[str, str | None, str]], bool], timeout: float = 30.0
) -> tuple[str, str | None, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in store_activity(dsn):
            if matches(row):
                return row
        time.sleep(0.01)
    raise AssertionError("the store's statement never showed up in pg_stat_activity")


def mid_ingest(row: tuple[str, str | None, str]) -> bool:
    state, _, query = row
    return state == "active" and query.startswith(("COPY", "INSERT", "CREATE INDEX"))


def blocked(row: tuple[str, str | None, str]) -> bool:
    return row[0] == "active" and row[1] == "Lock"


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, **HELPER) as c:
        return c.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]


def large_batch(n: int = LARGE) -> tuple[list[str], np.ndarray]:
    vectors = np.random.default_rng(3).normal(size=(n, DIM)).astype(np.float32)
    return [f"row {i}" for i in range(n)], vectors


# -- the server stops -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[EmbeddedPostgres]:
    # A directory of its own, not under pytest's base temp: another pytest session
    # on the machine resets that tree to mode 0700, and the server (run as another
    # user under root) could then no longer reach its data directory to restart.
    root = Path(tempfile.mkdtemp(prefix="pgvstore-faults-"))
    server = EmbeddedPostgres(root / "pgdata")
    server.start()
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
    try:
        yield server
    finally:
        server.restart()  # stop() below expects a running server
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server(own_server: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    """The fault server, running at the start and at the end of every test."""
    own_server.restart()
    yield own_server
    own_server.restart()


async def test_server_stops_in_the_middle_of_a_large_ingest(
    api, make_store, server, collection_name
) -> None:
    """The call fails with DatabaseUnavailableError, none of its rows exist after the
    restart, and the same store object works again once the server is back."""
    dsn = server.dsn
    store = make_store(DIM, connection=dsn, pool_timeout=2)
    call = api.on(store, in_thread=True)
    store.add_texts(["seed 1", "seed 2"], ids=["s1", "s2"])
    texts, vectors = large_batch()
    ingest = asyncio.ensure_future(call("add_embeddings", texts, vectors))
    phase = await asyncio.to_thread(wait_for_activity, dsn, mid_ingest)
    stopped = time.monotonic()
    await asyncio.to_thread(server.force_stop)
    with pytest.raises(DatabaseUnavailableError) as info:
        await asyncio.wait_for(ingest, 30)
    failed_after = time.monotonic() - stopped
    assert "cannot reach PostgreSQL at host=" in str(info.value)
    assert failed_after < 10

    restart = time.monotonic()
    await asyncio.to_thread(server.restart)
    restarted = time.monotonic()
    assert count(dsn, collection_name) == 2  # no row of the failed call
    await call("add_texts", ["after"], ids=["after"])
    recovered = time.monotonic() - restarted
    assert count(dsn, collection_name) == 3
    print(
        f"\n[{api.mode}] stopped during {phase[2][:12]!r}; call failed {failed_after:.2f} s"
        f" later; restart took {restarted - restart:.2f} s; first call after it {recovered:.2f} s"
    )


async def test_restart_between_calls_is_invisible(make_store, server) -> None:
    """A pooled connection that went stale with a restart is replaced and the call retried."""
    store = make_store(DIM, connection=server.dsn, pool_timeout=5)
    store.add_texts(["a"], ids=["a"])
    assert [d.id for d in await store.aget_by_ids(["a"])] == ["a"]
    await asyncio.to_thread(server.force_stop)
    await asyncio.to_thread(server.restart)
    assert [d.id for d in store.similarity_search("a", k=1)] == ["a"]
    assert [d.id for d in await store.asimilarity_search("a", k=1)] == ["a"]


async def test_pool_recovers_promptly_after_a_longer_outage(make_store, server) -> None:
    """After an 8.5 s outage, the first call once the server is back succeeds.

    psycopg_pool keeps reconnecting a lost connection in the background with
    exponential backoff (attempts 1, 3, 7, 15 ... s after the loss, for up to 5
    minutes), and callers wait for that schedule even when the server is
    already back: here the next attempt is 5 to 8 s away, so calls with
    `pool_timeout=2` fail with a misleading QueryTimeoutError ("no pooled
    connection became free") until it comes.
    """
    store = make_store(DIM, connection=server.dsn, pool_timeout=2)
    store.add_texts(["a"], ids=["a"])
    assert [d.id for d in await store.aget_by_ids(["a"])] == ["a"]
    await asyncio.to_thread(server.force_stop)
    down = time.monotonic()
    # a call in each mode, at the same moment, meets the outage
    sync_call = asyncio.wrap_future(in_thread(store.get_by_ids, ["a"]))
    results = await asyncio.gather(sync_call, store.aget_by_ids(["a"]), return_exceptions=True)
    assert [type(r) for r in results] == [DatabaseUnavailableError] * 2, results
    await asyncio.sleep(max(0.0, down + 8.5 - time.monotonic()))
    await asyncio.to_thread(server.restart)
    back = time.monotonic()
    outcomes = {}
    for mode in ("sync", "async"):
        call = Api(mode).on(store, in_thread=True)
        failures = []
        while True:
            try:
                await call("get_by_ids", ["a"])
                break
            except QueryTimeoutError as e:
                failures.append(str(e))
                assert time.monotonic() - back < 30, "the pool never recovered"
        outcomes[mode] = (failures, round(time.monotonic() - back, 2))
    print(f"\noutage {back - down:.1f} s; after restart: {outcomes}")
    assert outcomes["sync"][0] == [] and outcomes["async"][0] == [], outcomes


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_outage_costs_one_wait_then_calls_fail_at_once_and_recover(
    mode, server, collection_name, caplog
) -> None:
    """The first call in an outage waits `pool_timeout` (a restart may end it); once it
    failed, each call makes one connection attempt and fails at once, without the
    pool's retry loop and its log lines; the first call after the restart succeeds."""
    caplog.set_level(logging.INFO)
    store = PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=server.dsn, collection=collection_name,
        pool_timeout=3,
    )  # fmt: skip

    async def read() -> list[Any]:
        if mode == "sync":
            return await asyncio.to_thread(store.get_by_ids, ["a"])
        return await store.aget_by_ids(["a"])

    async def failing() -> tuple[float, DatabaseUnavailableError]:
        t0 = time.monotonic()
        with pytest.raises(DatabaseUnavailableError) as info:
            await read()
        return time.monotonic() - t0, info.value

    try:
        store.add_texts(["a"], ids=["a"])
        assert await read()
        await asyncio.to_thread(server.force_stop)
        caplog.clear()
        first, error = await failing()
        assert isinstance(error.__cause__, PoolTimeout)  # it waited for the pool
        during_wait = sum(r.levelno >= logging.WARNING for r in caplog.records)
        caplog.clear()
        later = []
        for _ in range(10):  # two and a half seconds of calls during the outage
            took, error = await failing()
            assert error.__cause__ is None and "cannot reach PostgreSQL" in str(error)
            later.append(took)
            await asyncio.sleep(0.25)
        assert max(later) < 1.5  # one connection attempt each, not pool_timeout (3 s)
        lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
        await asyncio.to_thread(server.restart)
        t0 = time.monotonic()
        assert [d.id for d in await read()] == ["a"]  # the first call after the restart
        back = time.monotonic() - t0
        print(
            f"\n[{mode}] first call in the outage failed after {first:.2f} s"
            f" ({during_wait} pool warnings while it waited), the next ten in"
            f" {min(later):.3f}-{max(later):.3f} s ({len(lines)} warnings in those 2.5 s);"
            f" first call after the restart {back:.3f} s"
        )
        # once the server is known down the pool stops retrying: the reconnect attempts
        # already under way end within RECONNECT_TIMEOUT (2 s), then nothing is logged
        assert len(lines) <= 6, [r.getMessage() for r in lines]
    finally:
        await store.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_call_waits_out_a_restart(mode, server, collection_name) -> None:
    """A passing failure (the server restarting) is retried within pool_timeout."""
    store = PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=server.dsn, collection=collection_name,
        pool_timeout=20,
    )  # fmt: skip
    try:
        store.add_texts(["a"], ids=["a"])
        await asyncio.to_thread(server.force_stop)
        if mode == "sync":
            pending = asyncio.wrap_future(in_thread(store.get_by_ids, ["a"]))
        else:
            pending = asyncio.ensure_future(store.aget_by_ids(["a"]))
        await asyncio.sleep(1.0)
        assert not pending.done()
        await asyncio.to_thread(server.restart)
        restarted = time.monotonic()
        assert [d.id for d in await asyncio.wait_for(pending, 30)] == ["a"]
        print(f"\n[{mode}] the waiting call returned {time.monotonic() - restarted:.2f} s after")
    finally:
        await store.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_permanent_failure_after_the_pool_exists_is_raised_at_once(
    mode, server, collection_name
) -> None:
    """The store's database is dropped under it: no waiting for the pool timeout."""
    dbname = f"gone_{collection_name}"[:60]
    with psycopg.connect(server.dsn, **HELPER) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    dsn = psycopg.conninfo.make_conninfo(server.dsn, dbname=dbname)
    store = PGVStore(DeterministicFakeEmbedding(size=DIM), connection=dsn, pool_timeout=20)
    try:
        await _call(store, mode, "count")
        with psycopg.connect(server.dsn, **HELPER) as c:
            c.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
        t0 = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="does not exist") as info:
            await _call(store, mode, "count")
        took = time.monotonic() - t0
        assert not isinstance(info.value.__cause__, PoolTimeout)
        assert took < 10  # not the pool timeout (20 s)
        print(f"\n[{mode}] failed {took:.3f} s after the database was dropped")
    finally:
        await store.aclose()


@pytest.mark.parametrize("param", ["dbname", "user"])
def test_a_missing_database_or_role_fails_at_once_without_log_lines(param, dsn, caplog) -> None:
    """No retry, no pool: the first connection attempt's refusal is the error."""
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    missing = psycopg.conninfo.make_conninfo(dsn, **{param: "no_such_" + param})
    store = PGVStore(DeterministicFakeEmbedding(size=DIM), connection=missing, pool_timeout=20)
    t0 = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="does not exist"):
        store.count()
    took = time.monotonic() - t0
    assert took < 10  # not the pool timeout (20 s)
    assert not caplog.records  # no pool was made
    print(f"\n{param}: failed in {took:.3f} s")
    store.close()


# -- statement timeouts -----------------------------------------------------------------------


@pytest.fixture
def locker(dsn, collection_name, make_store) -> Iterator[Locker]:
    # set up after `make_store`, so torn down (the lock released) before it drops the table
    locker = Locker(dsn, collection_name)
    yield locker
    locker.release()
    locker.conn.close()


def _pooled_session(pool: Any) -> tuple[str, int, Any]:
    with pool.connection() as c:
        timeout = c.execute("SHOW statement_timeout").fetchone()[0]
        return (
            timeout,
            c.execute("SELECT pg_backend_pid()").fetchone()[0],
            c.info.transaction_status,
        )


async def _apooled_session(pool: Any) -> tuple[str, int, Any]:
    async with pool.connection() as c:
        timeout = (await (await c.execute("SHOW statement_timeout")).fetchone())[0]
        pid = (await (await c.execute("SELECT pg_backend_pid()")).fetchone())[0]
        return timeout, pid, c.info.transaction_status


async def _session(store: PGVStore, mode: str) -> tuple[str, int, Any]:
    if mode == "sync":
        return _pooled_session(store._connector.sync_pool())
    return await _apooled_session(await store._connector.async_pool())


async def test_store_statement_timeout(api, make_store, dsn, collection_name, locker) -> None:
    """`PGVStore(statement_timeout=0.3)`: every kind of call that waits longer raises
    QueryTimeoutError, writes nothing, and the pooled connection is reused as it was."""
    store = make_store(DIM, pool_size=1, statement_timeout=0.3)
    call = api.on(store, in_thread=True, timeout=30)
    await call("add_texts", ["seed"], ids=["seed"])
    before = await _session(store, api.mode)
    assert before[0] == "300ms"
    locker.lock()
    calls = [
        ("similarity_search", ("q",), {}),
        ("add_texts", (["new"],), {"ids": ["new"]}),
        ("get_by_ids", (["seed"],), {}),
        ("delete", (["seed"],), {}),
        ("max_marginal_relevance_search", ("q",), {}),
    ]
    took = []
    for name, args, kwargs in calls:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match="statement timeout"):
            await call(name, *args, **kwargs)
        took.append(time.monotonic() - started)
        assert 0.25 <= took[-1] < 5, name
    print(f"\n[{api.mode}] timed out after " + ", ".join(f"{t:.2f}" for t in took) + " s")
    assert await _session(store, api.mode) == before  # same backend, same setting, idle
    locker.release()
    assert count(dsn, collection_name) == 1


async def test_per_call_statement_timeout_ends_with_the_call(api, make_store, dsn, locker) -> None:
    """`similarity_search(..., statement_timeout=0.2)` raises QueryTimeoutError, and the
    store's next call on that pooled connection runs with the server's default again."""
    store = make_store(DIM, pool_size=1)
    call = api.on(store, in_thread=True, timeout=30)
    await call("add_texts", ["seed"], ids=["seed"])
    with psycopg.connect(dsn) as fresh:
        default = fresh.execute("SHOW statement_timeout").fetchone()[0]
    before = await _session(store, api.mode)
    assert before[0] == default
    locker.lock()
    for name in ("similarity_search", "max_marginal_relevance_search"):
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match="statement timeout"):
            await call(name, "q", statement_timeout=0.2)
        assert 0.15 <= time.monotonic() - started < 5
    locker.release()
    # the store's next call on that connection runs without the knob: a write
    # that waits longer than 0.2 s for the lock still succeeds
    locker.lock()
    write = asyncio.ensure_future(call("add_texts", ["later"], ids=["later"]))
    await asyncio.sleep(0.5)
    assert not write.done()
    locker.release()
    assert await write == ["later"]
    assert await _session(store, api.mode) == before  # same backend, default timeout


def test_statement_timeout_on_a_pool_the_caller_owns(
    make_store, dsn, collection_name, locker
) -> None:
    """On a caller's pool the store's timeout is transaction-local: the caller's own
    sessions keep their setting."""
    with ConnectionPool(
        dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
    ) as pool:
        store = make_store(DIM, connection=pool, statement_timeout=0.3)
        store.add_texts(["seed"], ids=["seed"])
        before = _pooled_session(pool)
        locker.lock()
        for call in (lambda: store.similarity_search("q"), lambda: store.add_texts(["x"])):
            with pytest.raises(QueryTimeoutError):
                call()
        assert _pooled_session(pool) == before
        locker.release()
    assert count(dsn, collection_name) == 1


# -- cancellation -------------------------------------------------------------------------------


def wait_until_idle(dsn: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(state != "idle" for state, _, _ in store_activity(dsn)):
        assert time.monotonic() < deadline, store_activity(dsn)
        time.sleep(0.02)


async def _cancel_when(task: asyncio.Future, dsn: str, when: Callable[..., bool]) -> str:
    """Cancel the task once its statement is seen; returns that statement."""
    row = await asyncio.to_thread(wait_for_activity, dsn, when)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    took = time.monotonic() - started
    assert took < 5
    print(f"\ncancelled during {row[2][:12]!r} in {took * 1000:.1f} ms")
    # the server stopped the statement too: nothing of it is left running or waiting
    await asyncio.to_thread(wait_until_idle, dsn)
    return row[2]


async def _assert_pool_healthy(store: PGVStore) -> None:
    started = time.monotonic()
    assert [d.id for d in await asyncio.wait_for(store.aget_by_ids(["seed"]), 10)] == ["seed"]
    assert time.monotonic() - started < 2
    stats = (await store._connector.async_pool()).get_stats()
    assert stats["requests_waiting"] == 0
    assert stats["pool_available"] == stats["pool_size"] == 1


@pytest.fixture
async def one_conn_store(make_store):
    store = make_store(DIM, pool_size=1)
    await store.aadd_texts(["seed"], ids=["seed"])
    return store


async def test_cancelled_search_leaves_the_pool_healthy(one_conn_store, dsn, locker) -> None:
    locker.lock()
    task = asyncio.ensure_future(one_conn_store.asimilarity_search("q"))
    await _cancel_when(task, dsn, blocked)  # while the lock is still held
    locker.release()
    await _assert_pool_healthy(one_conn_store)


async def test_cancelled_ingest_writes_nothing(
    one_conn_store, dsn, collection_name, locker
) -> None:
    """Cancelled while its merge waits for a lock: after the lock goes, none of its rows exist."""
    locker.lock()
    task = asyncio.ensure_future(one_conn_store.aadd_texts([f"t{i}" for i in range(200)]))
    statement = await _cancel_when(task, dsn, blocked)
    assert statement.startswith("INSERT")
    locker.release()
    await _assert_pool_healthy(one_conn_store)
    assert count(dsn, collection_name) == 1


async def test_cancelled_large_ingest_writes_nothing(one_conn_store, dsn, collection_name) -> None:
    """Cancelled in the middle of a large ingest (COPY, merge or index build)."""
    texts, vectors = large_batch()
    task = asyncio.ensure_future(one_conn_store.aadd_embeddings(texts, vectors))
    await _cancel_when(task, dsn, mid_ingest)
    await _assert_pool_healthy(one_conn_store)
    assert count(dsn, collection_name) == 1
