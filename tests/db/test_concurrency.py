"""Concurrency: threads and tasks on one collection, racing provisioners, pool limits.

Every wait is bounded: threads are daemons whose results come back through
futures, tasks run under `asyncio.wait_for`, subprocesses under `timeout=`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from pgvector.psycopg import register_vector
from psycopg import sql

import langchain_pgvstore._connection as connection_module
from langchain_pgvstore import PGVStore, QueryTimeoutError
from langchain_pgvstore._connection import APPLICATION_NAME

DIM = 8
UNIVERSE = [f"id{i:03d}" for i in range(48)]
WORKERS = 8  # threads, and as many asyncio tasks
OPS = 10  # per worker: 5 upserts, 3 searches, 2 reads
UPSERT_SIZE = 10
DEADLINE = 120.0  # seconds for the whole mixed workload; it takes a few


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Run `fn` in a daemon thread; a hung call cannot block the interpreter's exit."""
    future: Future = Future()

    def body() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the test through the future
            future.set_exception(e)

    threading.Thread(target=body, daemon=True).start()
    return future


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def waiting_on_lock(dsn: str) -> int:
    """How many of the store's backends are blocked on a lock right now."""
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND wait_event_type = 'Lock'",
            (APPLICATION_NAME,),
        ).fetchone()[0]


# -- many writers and readers on one collection ------------------------------------------


def program(kind: str, worker: int) -> list[tuple[str, str, list[str]]]:
    """A worker's fixed list of operations: (op, tag, ids); ids in a random order."""
    rng = random.Random(f"{kind}{worker}")
    ops = []
    for n in range(OPS):
        op = ("upsert", "search", "upsert", "get")[n % 4]
        size = UPSERT_SIZE if op == "upsert" else 5
        ops.append((op, f"{kind}{worker}-{n}", rng.sample(UNIVERSE, size)))
    return ops


def _texts(tag: str, ids: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    return [f"{tag}|{i}" for i in ids], [{"tag": tag, "id": i} for i in ids]


def run_sync_worker(store: PGVStore, ops, barrier: threading.Barrier) -> list[Any]:
    barrier.wait(timeout=30)
    seen = []
    for op, tag, ids in ops:
        if op == "upsert":
            texts, metas = _texts(tag, ids)
            assert store.add_texts(texts, metas, ids=ids) == ids
        elif op == "search":
            seen.extend(store.similarity_search(f"{tag}|{ids[0]}", k=5))
        else:
            seen.extend(store.get_by_ids(ids))
    return seen


async def run_async_worker(store: PGVStore, ops) -> list[Any]:
    seen = []
    for op, tag, ids in ops:
        if op == "upsert":
            texts, metas = _texts(tag, ids)
            assert await store.aadd_texts(texts, metas, ids=ids) == ids
        elif op == "search":
            seen.extend(await store.asimilarity_search(f"{tag}|{ids[0]}", k=5))
        else:
            seen.extend(await store.aget_by_ids(ids))
    return seen


def serial_order(programs: dict[str, list], final_tag: dict[str, str]) -> list[str]:
    """A serial order of all upserts that explains the final state, or AssertionError.

    Each worker's upserts keep their program order; for every id, every other
    upsert that wrote it must come before the one whose write survived.
    """
    writes: dict[str, set[str]] = defaultdict(set)  # id -> tags that wrote it
    after: dict[str, set[str]] = defaultdict(set)  # tag -> tags that must come after it
    nodes: list[str] = []
    for ops in programs.values():
        tags = [tag for op, tag, _ in ops if op == "upsert"]
        nodes += tags
        for a, b in itertools.pairwise(tags):
            after[a].add(b)
        for op, tag, ids in ops:
            if op == "upsert":
                for i in ids:
                    writes[i].add(tag)
    for i, last in final_tag.items():
        assert last in writes[i], f"{i} holds {last!r}, which never wrote it"
        for other in writes[i] - {last}:
            after[other].add(last)
    # Kahn's algorithm: a cycle means no serial replay gives this state
    indegree = {n: 0 for n in nodes}
    for a in after:
        for b in after[a]:
            indegree[b] += 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for b in sorted(after[n]):
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    assert len(order) == len(nodes), "the final state is not the result of any serial replay"
    return order


def replay(programs: dict[str, list], order: list[str]) -> dict[str, str]:
    by_tag = {tag: ids for ops in programs.values() for op, tag, ids in ops if op == "upsert"}
    state: dict[str, str] = {}
    for tag in order:
        for i in by_tag[tag]:
            state[i] = f"{tag}|{i}"
    return state


async def test_threads_and_tasks_upsert_and_search_one_collection(
    make_store, dsn, collection_name
) -> None:
    """8 threads and 8 tasks, overlapping upserts in random id orders, plus searches and reads.

    No call fails (a deadlock would surface as DeadlockDetected), and the final
    table equals a serial replay of the upserts: no lost, duplicated or torn rows.
    """
    embedding = DeterministicFakeEmbedding(size=DIM)
    store = make_store(embedding, dimensions=DIM, pool_size=4)
    # open both pools and provision first: the cold-start race has its own test
    store.similarity_search("warm-up", k=1)
    await store.asimilarity_search("warm-up", k=1)
    programs = {f"s{w}": program("s", w) for w in range(WORKERS)}
    programs |= {f"a{w}": program("a", w) for w in range(WORKERS)}
    barrier = threading.Barrier(WORKERS)
    started = time.monotonic()
    futures = [
        in_thread(run_sync_worker, store, programs[f"s{w}"], barrier) for w in range(WORKERS)
    ]
    tasks = [run_async_worker(store, programs[f"a{w}"]) for w in range(WORKERS)]
    results = await asyncio.wait_for(
        asyncio.gather(*tasks, *(asyncio.wrap_future(f) for f in futures)), DEADLINE
    )
    elapsed = time.monotonic() - started

    # every worker saw documents, and every one it saw was whole: content, metadata and id agree
    assert all(len(seen) > 0 for seen in results) and len(results) == 2 * WORKERS
    for seen in results:
        for doc in seen:
            tag, doc_id = doc.page_content.split("|")
            assert doc.metadata == {"tag": tag, "id": doc_id} and doc.id == doc_id

    with psycopg.connect(dsn, autocommit=True) as c:
        register_vector(c)
        rows = c.execute(
            sql.SQL("SELECT id, content, metadata, embedding FROM {}").format(
                sql.Identifier(collection_name)
            )
        ).fetchall()
    written = {i for ops in programs.values() for op, _, ids in ops if op == "upsert" for i in ids}
    assert sorted(r[0] for r in rows) == sorted(written)  # nothing lost, nothing twice
    final_tag = {}
    for doc_id, content, metadata, vector in rows:
        tag = metadata["tag"]
        assert content == f"{tag}|{doc_id}" and metadata["id"] == doc_id
        expected = np.asarray(embedding.embed_query(content), dtype=np.float32)
        assert np.array_equal(vector.to_numpy(), expected), f"torn row {doc_id}"
        final_tag[doc_id] = tag
    order = serial_order(programs, final_tag)
    assert replay(programs, order) == {r[0]: r[1] for r in rows}
    print(f"\n{WORKERS} threads + {WORKERS} tasks x {OPS} ops in {elapsed:.2f} s")


def test_serial_order_check_rejects_impossible_states() -> None:
    """The checker above is sound: a state no serial replay produces is refused."""
    programs = {
        "w0": [("upsert", "w0-0", ["x", "y"])],
        "w1": [("upsert", "w1-0", ["x", "y"])],
    }
    assert serial_order(programs, {"x": "w1-0", "y": "w1-0"}) == ["w0-0", "w1-0"]
    with pytest.raises(AssertionError, match="not the result of any serial replay"):
        serial_order(programs, {"x": "w0-0", "y": "w1-0"})  # a torn pair of upserts
    programs = {"w0": [("upsert", "w0-0", ["x"]), ("upsert", "w0-1", ["x"])]}
    with pytest.raises(AssertionError, match="not the result of any serial replay"):
        serial_order(programs, {"x": "w0-0"})  # the later write of one worker was lost


# -- the first calls of a new store, from many threads and tasks at once ---------------------


@pytest.fixture
def pools_made(monkeypatch) -> Iterator[list[Any]]:
    """Every pool a store creates, in creation order."""
    made: list[Any] = []

    class CountedPool(connection_module.ConnectionPool):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    class CountedAsyncPool(connection_module.AsyncConnectionPool):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(connection_module, "ConnectionPool", CountedPool)
    monkeypatch.setattr(connection_module, "AsyncConnectionPool", CountedAsyncPool)
    yield made


async def test_concurrent_first_use_opens_one_pool_of_each_kind(make_store, pools_made) -> None:
    """A store shared by 8 threads and 8 tasks from its first call on creates one sync and
    one async pool, and closing the store closes every pool it created."""
    store = make_store(DIM)
    barrier = threading.Barrier(WORKERS)

    def first_call() -> int:
        barrier.wait(timeout=30)
        return len(store.similarity_search("x", k=1))

    try:
        futures = [in_thread(first_call) for _ in range(WORKERS)]
        await asyncio.wait_for(
            asyncio.gather(
                *(store.asimilarity_search("x", k=1) for _ in range(WORKERS)),
                *(asyncio.wrap_future(f) for f in futures),
            ),
            60,
        )
        kinds = [type(p).__name__ for p in pools_made]
    finally:
        await store.aclose()
        leaked = [p for p in pools_made if not p.closed]
        for pool in leaked:
            if isinstance(pool, connection_module.ConnectionPool):
                pool.close()
            else:
                await pool.close()
    assert sorted(kinds) == ["CountedAsyncPool", "CountedPool"], kinds
    assert not leaked, f"{len(leaked)} pools were left open after aclose()"


# -- provisioning one new collection from many places at once -------------------------------


def _collection_state(dsn: str, schema: str, name: str) -> tuple[int, int, list[str]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        tables = c.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s AND c.relkind = 'r'",
            (schema, name),
        ).fetchone()[0]
        registry = c.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE collection = %s").format(
                sql.Identifier(schema, "pgvstore_collections")
            ),
            (name,),
        ).fetchone()[0]
        ids = c.execute(
            sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(schema, name))
        ).fetchall()
    return tables, registry, [r[0] for r in ids]


_PROVISIONER = textwrap.dedent(
    """
    import sys
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_pgvstore import PGVStore

    dsn, schema, me, *collections = sys.argv[1:]
    stores = [
        PGVStore(DeterministicFakeEmbedding(size=8), connection=dsn, schema=schema, collection=c)
        for c in collections
    ]
    for s in stores:
        assert s.get_by_ids(["none"]) == []  # connects; creates nothing without dimensions
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    for s in stores:
        s.add_texts([me], ids=[me])
        s.close()
    print("done", flush=True)
    """
)


def test_two_processes_provision_the_same_new_collections(dsn, schema_name) -> None:
    """Two processes, released at the same instant, provision the same three new
    collections in a new schema: one schema, one table and one registry row each."""
    names = ["c0", "c1", "c2"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROVISIONER, dsn, schema_name, me, *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in ("p0", "p1")
    ]
    try:
        for p in procs:
            line = in_thread(p.stdout.readline).result(timeout=90)
            assert line.strip() == "ready", p.stderr.read() if p.poll() is not None else line
        for p in procs:  # both are blocked on stdin: release them together
            p.stdin.write("go\n")
        for p in procs:
            p.stdin.flush()
        outs = [p.communicate(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "done", err
    for name in names:
        assert _collection_state(dsn, schema_name, name) == (1, 1, ["p0", "p1"])


def test_eight_stores_in_threads_provision_one_new_collection(make_store, dsn, schema_name):
    stores = [make_store(DIM, schema=schema_name, collection="shared") for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS)

    def provision(i: int) -> list[str]:
        barrier.wait(timeout=30)
        return stores[i].add_texts([f"t{i}"], ids=[f"t{i}"])

    futures = [in_thread(provision, i) for i in range(WORKERS)]
    assert [f.result(timeout=60) for f in futures] == [[f"t{i}"] for i in range(WORKERS)]
    assert _collection_state(dsn, schema_name, "shared") == (
        1,
        1,
        sorted(f"t{i}" for i in range(WORKERS)),
    )


# -- pool limits ---------------------------------------------------------------------------


@pytest.fixture
def small_pool_store(make_store) -> PGVStore:
    store = make_store(DIM, pool_size=2, pool_timeout=0.5)
    store.add_texts(["seed"], ids=["seed"])
    return store


async def test_more_callers_than_connections_wait_then_time_out(
    api, dsn, collection_name, small_pool_store
) -> None:
    """Both pooled connections are stuck behind a table lock: the third caller waits
    `pool_timeout` and gets QueryTimeoutError; once the lock goes, the stuck calls finish
    and the pool serves calls again."""
    store = small_pool_store
    call = api.on(store, in_thread=True, timeout=15)
    if api.is_async:
        # open the async pool first: concurrent first calls have their own test
        await store.asimilarity_search("x", k=1)
    locker = psycopg.connect(dsn)
    try:
        locker.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(collection_name)
            )
        )
        stuck = [asyncio.ensure_future(call("similarity_search", "x", k=1)) for _ in range(2)]
        await asyncio.to_thread(wait_until, lambda: waiting_on_lock(dsn) == 2, 15, "2 stuck")
        started = time.monotonic()
        with pytest.raises(
            QueryTimeoutError, match=r"no pooled connection became free within 0.5 s"
        ):
            await call("similarity_search", "x", k=1)
        waited = time.monotonic() - started
        assert 0.45 <= waited < 5, waited
        print(f"\n[{api.mode}] third caller on a full pool of 2 failed after {waited:.2f} s")
    finally:
        locker.rollback()
        locker.close()
    assert [len(r) for r in await asyncio.gather(*stuck)] == [1, 1]
    assert len(await call("similarity_search", "x", k=1)) == 1


async def test_more_callers_than_connections_take_turns(api, make_store) -> None:
    """24 concurrent callers on a pool of 2 (24 threads behind a barrier, or 24 tasks):
    they queue for connections, and all succeed; the pool never opens more than 2."""
    store = make_store(DIM, pool_size=2)
    store.add_texts(["seed"], ids=["seed"])
    if not api.is_async:
        barrier = threading.Barrier(24)

        def call() -> int:
            barrier.wait(timeout=30)
            return len(store.similarity_search("x", k=1))

        futures = [in_thread(call) for _ in range(24)]
        assert [f.result(timeout=60) for f in futures] == [1] * 24
        stats = store._connector.sync_pool().get_stats()
    else:
        calls = [store.asimilarity_search("x", k=1) for _ in range(24)]
        assert [len(r) for r in await asyncio.wait_for(asyncio.gather(*calls), 60)] == [1] * 24
        stats = (await store._connector.async_pool()).get_stats()
    assert stats["pool_max"] == 2 and stats["connections_num"] <= 2
    assert stats["requests_waiting"] == 0
