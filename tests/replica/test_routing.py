"""The store on a real primary and streaming replicas: routing, read-your-writes, failover.

Which server answered a read is shown by what it saw: with replay paused on
every replica, a row written since is on the primary only, so a read that
misses it ran on a replica and a read that finds it ran on the primary (or
waited for a replica to replay it). Timings are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import (
    ConfigError,
    DatabaseUnavailableError,
    PGVStore,
    WriteToken,
)
from langchain_pgvstore.record_manager import PostgresRecordManager
from tests.fix_replica import ReplicaBed

DIM = 8
MODES = ["sync", "async"]


def embeddings() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=DIM)


@pytest.fixture
def make_store(replica_bed: ReplicaBed) -> Iterator[Callable[..., PGVStore]]:
    """`make_store(**kwargs)`: a store on the bed's primary and both replicas, one
    collection per test; closed, and the collection dropped, afterwards."""
    collection = f"t_rep_{uuid.uuid4().hex[:10]}"
    stores: list[PGVStore] = []

    def make(**kwargs: Any) -> PGVStore:
        kwargs.setdefault("connection", replica_bed.primary.dsn)
        kwargs.setdefault("read_connections", [r.dsn for r in replica_bed.replicas])
        kwargs.setdefault("pool_size", 2)
        kwargs.setdefault("pool_timeout", 5)
        store = PGVStore(embeddings(), collection=collection, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    bed = replica_bed
    if bed.root is not None and bed.primary.running and not bed.primary.in_recovery():
        with PGVStore(embeddings(), connection=bed.primary.dsn, collection=collection) as s:
            s.delete_collection()


async def call(store: PGVStore, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return await asyncio.to_thread(getattr(store, name), *args, **kwargs)
    return await getattr(store, "a" + name)(*args, **kwargs)


def ids(docs: list[Any]) -> set[str]:
    return {d.id for d in docs}


def caught_up(bed: ReplicaBed) -> None:
    for replica in bed.replicas:
        bed.wait_replayed(replica)


def pause_all(bed: ReplicaBed) -> None:
    for replica in bed.replicas:
        bed.pause_replay(replica)


@pytest.mark.parametrize("mode", MODES)
async def test_reads_go_to_replicas_and_lag_is_real(mode, replica_bed, make_store) -> None:
    store = make_store()
    await call(store, mode, "add_texts", ["alpha"], ids=["a"])
    await asyncio.to_thread(caught_up, replica_bed)
    await asyncio.to_thread(pause_all, replica_bed)
    await call(store, mode, "add_texts", ["beta"], ids=["b"])  # on the primary only

    # every read kind misses it: each ran on a replica
    assert ids(await call(store, mode, "similarity_search", "beta", k=5)) == {"a"}
    assert ids(await call(store, mode, "max_marginal_relevance_search", "beta", k=2)) == {"a"}
    assert ids(await call(store, mode, "hybrid_search", "beta", k=5)) == {"a"}
    assert ids(await call(store, mode, "get_by_ids", ["a", "b"])) == {"a"}
    assert ids(await call(store, mode, "get")) == {"a"}
    assert await call(store, mode, "count") == 1
    plan = await call(store, mode, "explain", "beta", analyze=True)
    # the plan's top node returned one row: the replica's table has one
    assert re.match(r"Limit .*\(actual time=\S+ rows=1(\.00)? loops=1\)", plan), plan
    # read_from="primary" sees it, as a search option and as a keyword
    assert ids(await call(store, mode, "similarity_search", "beta", k=5, read_from="primary")) == {
        "a",
        "b",
    }
    assert await call(store, mode, "count", read_from="primary") == 2
    retriever = store.as_retriever(search_kwargs={"k": 5, "read_from": "primary"})
    assert ids(await asyncio.to_thread(retriever.invoke, "beta")) == {"a", "b"}


@pytest.mark.parametrize("mode", MODES)
async def test_read_your_writes_never_misses_a_write(mode, replica_bed, make_store) -> None:
    store = make_store(read_your_writes=True, read_wait=0.2)
    other = make_store()  # another writer, not tracked by `store`
    await call(store, mode, "add_texts", ["alpha"], ids=["a"])
    await asyncio.to_thread(pause_all, replica_bed)
    for i in range(3):  # each read right after its write: found (on the primary)
        await call(store, mode, "add_texts", [f"text {i}"], ids=[f"w{i}"])
        assert f"w{i}" in ids(await call(store, mode, "similarity_search", f"text {i}", k=10))
        assert await call(store, mode, "count") == 2 + i
    # once the replicas have replayed the store's writes, they serve its reads again:
    # a row the other store writes while replay is paused is not seen
    for replica in replica_bed.replicas:
        replica_bed.resume_replay(replica)
    await asyncio.to_thread(caught_up, replica_bed)
    await asyncio.to_thread(pause_all, replica_bed)
    await call(other, mode, "add_texts", ["gamma"], ids=["g"])
    assert "g" not in ids(await call(store, mode, "get"))
    assert await call(store, mode, "count") == 4


async def test_write_token_carries_read_your_writes_across_stores(replica_bed, make_store) -> None:
    writer = make_store(read_connections=None)  # another process, say
    reader = make_store()
    writer.add_texts(["alpha"], ids=["a"])
    caught_up(replica_bed)
    reader.similarity_search("alpha")  # the reader knows the collection
    pause_all(replica_bed)
    writer.add_texts(["beta"], ids=["b"])
    token = str(writer.write_token())  # in a cookie or a header
    assert WriteToken.parse(token) == writer.write_token()
    assert ids(reader.get_by_ids(["a", "b"])) == {"a"}
    assert ids(reader.get_by_ids(["a", "b"], after=token)) == {"a", "b"}
    assert ids(await reader.asimilarity_search("beta", k=5, after=WriteToken.parse(token))) == {
        "a",
        "b",
    }
    # a tracking store gives the position of its own last write, without a round trip
    tracked = make_store(read_your_writes=True, read_wait=0.1)
    await tracked.aadd_texts(["gamma"], ids=["g"])
    own = await tracked.awrite_token()
    assert WriteToken.parse(token) < own
    assert ids(reader.get_by_ids(["g"], after=own)) == {"g"}


def test_synchronous_standby_serves_read_your_writes_without_waiting(
    sync_replica_bed, caplog
) -> None:
    bed = sync_replica_bed
    collection = f"t_rep_{uuid.uuid4().hex[:10]}"
    caplog.set_level(logging.DEBUG, logger="langchain_pgvstore")
    with PGVStore(
        embeddings(), connection=bed.primary.dsn, read_connections=bed.replicas[0].dsn,
        collection=collection, read_your_writes=True, read_wait=5,
    ) as store:  # fmt: skip
        try:
            for i in range(5):
                store.add_texts([f"text {i}"], ids=[f"w{i}"])
                assert store.count() == i + 1
        finally:
            store.delete_collection()
    assert "no replica replayed" not in caplog.text
    assert "reading on the primary" not in caplog.text


async def test_a_down_replica_is_skipped_with_one_warning_and_used_again(
    replica_bed, make_store, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    down, up = replica_bed.replicas
    secret = "pw-" + uuid.uuid4().hex[:8]  # trust authentication ignores it
    store = make_store(read_connections=[down.dsn + f" password={secret}", up.dsn])
    store.add_texts(["alpha"], ids=["a"])
    caught_up(replica_bed)
    assert store.count() == 1 and store.count() == 1  # both replicas have connections now
    down.stop()
    for _ in range(10):
        assert store.count() == 1
        assert ids(await store.asimilarity_search("alpha")) == {"a"}
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "langchain_pgvstore"
    ]
    assert len(warnings) == 1, warnings
    assert f"port={down.port}" in warnings[0] and "unreachable" in warnings[0]
    assert f"reads go to the other replicas (host=127.0.0.1 port={up.port}" in warnings[0]
    assert secret not in caplog.text

    down.start()
    replica_bed.wait_replayed(down)
    deadline = time.monotonic() + 10  # the first retry comes 1 s after the failure
    while "back in use" not in caplog.text:
        assert time.monotonic() < deadline, "the replica was never used again"
        assert store.count() == 1
        time.sleep(0.05)
    assert store._replicas is not None and store._replicas.router.skipped() == {}


def test_a_lagging_replica_is_skipped(replica_bed, make_store, caplog) -> None:
    caplog.set_level(logging.INFO, logger="langchain_pgvstore")
    store = make_store(max_replica_lag=0.5)
    store.add_texts(["alpha"], ids=["a"])
    caught_up(replica_bed)
    slow, fast = replica_bed.replicas
    replica_bed.pause_replay(slow)
    store.add_texts(["beta"], ids=["b"])
    replica_bed.wait_replayed(fast)
    time.sleep(1.1)  # the lag grows past 0.5 s, and is due a measure
    for _ in range(6):  # round robin would give the slow replica every other read
        assert store.count() == 2
    skipped = store._replicas.router.skipped()  # type: ignore[union-attr]
    assert list(skipped) == [next(n for n in skipped if f"port={slow.port}" in n)]
    assert "behind (max_replica_lag=0.5)" in caplog.text
    # both lagging: reads go to the primary
    replica_bed.pause_replay(fast)
    store.add_texts(["gamma"], ids=["g"])
    time.sleep(1.1)
    assert store.count() == 3 and store.count() == 3
    replica_bed.resume_replay(slow)
    replica_bed.resume_replay(fast)
    caught_up(replica_bed)
    time.sleep(1.1)
    for _ in range(4):
        assert store.count() == 3
    assert "back in use" in caplog.text


@pytest.mark.parametrize("mode", MODES)
async def test_primary_down_writes_fail_reads_go_on(mode, replica_bed, make_store) -> None:
    store = make_store(pool_timeout=2)
    await call(store, mode, "add_texts", ["alpha"], ids=["a"])
    await asyncio.to_thread(caught_up, replica_bed)
    await asyncio.to_thread(replica_bed.stop_primary)
    t0 = time.perf_counter()
    with pytest.raises(DatabaseUnavailableError, match=f"port={replica_bed.primary.port}"):
        await call(store, mode, "add_texts", ["beta"], ids=["b"])
    failed = time.perf_counter() - t0
    t1 = time.perf_counter()
    with pytest.raises(DatabaseUnavailableError):
        await call(store, mode, "delete", ["a"])
    again = time.perf_counter() - t1
    assert ids(await call(store, mode, "similarity_search", "alpha")) == {"a"}
    assert await call(store, mode, "count") == 1
    fresh = make_store()  # a new store finds the collection on a replica
    assert ids(await call(fresh, mode, "get")) == {"a"}
    print(
        f"\n[{mode}] primary down: first write failed in {failed:.2f} s, the next in {again:.3f} s"
    )


def test_promoted_replica_takes_writes_through_a_multi_host_primary_dsn(
    make_replica_bed, replica_report
) -> None:
    bed = make_replica_bed(replicas=1)
    (replica,) = bed.replicas
    collection = f"t_rep_{uuid.uuid4().hex[:10]}"
    store = PGVStore(
        embeddings(), connection=bed.multi_host_dsn(target_session_attrs="read-write"),
        read_connections=replica.dsn, collection=collection, pool_timeout=2,
    )  # fmt: skip
    try:
        store.add_texts(["alpha"], ids=["a"])
        bed.wait_replayed(replica)
        t0 = time.perf_counter()
        bed.stop_primary()
        with pytest.raises(DatabaseUnavailableError):
            store.add_texts(["beta"], ids=["b"])
        t_failing = time.perf_counter() - t0
        assert store.count() == 1  # reads go on on the replica meanwhile
        t1 = time.perf_counter()
        bed.promote(replica)
        t_promoted = time.perf_counter() - t1
        while True:
            try:
                store.add_texts(["beta"], ids=["b"])
                break
            except DatabaseUnavailableError:
                assert time.perf_counter() - t1 < 30, "writes never reached the new primary"
                time.sleep(0.01)
        t_writing = time.perf_counter() - t1
        assert ids(store.get_by_ids(["a", "b"])) == {"a", "b"}
    finally:
        store.close()
    line = (
        f"store failover: primary stop -> writes failing {t_failing:.2f} s (pool_timeout 2 s);"
        f" pg_ctl promote {t_promoted:.2f} s; promote -> store writes {t_writing:.2f} s"
    )
    print(line)
    replica_report(line)


def test_a_write_to_a_standby_is_a_config_error(replica_bed, make_store) -> None:
    primary = make_store(read_connections=None)
    primary.add_texts(["alpha"], ids=["a"])
    caught_up(replica_bed)
    replica = replica_bed.replicas[0]
    misconfigured = make_store(connection=replica.dsn, read_connections=None)
    assert misconfigured.count() == 1  # reading through it works
    for write in (
        lambda: misconfigured.add_texts(["beta"], ids=["b"]),
        lambda: misconfigured.delete(["a"]),
        lambda: misconfigured.delete_collection(),
    ):
        with pytest.raises(ConfigError, match="reached a read-only standby") as info:
            write()
        assert "in_hot_standby=on" in str(info.value) and f"port={replica.port}" in str(info.value)
        assert "target_session_attrs=read-write" in str(info.value)
    assert primary.count(read_from="primary") == 1
    records = PostgresRecordManager("t_rep/records", connection=replica.dsn)
    try:
        with pytest.raises(ConfigError, match="read-only standby"):
            records.update(["k"])
    finally:
        records.close()


def test_provisioning_on_a_standby_is_refused_naming_the_primary(replica_bed) -> None:
    replica = replica_bed.replicas[0]
    collection = f"t_rep_{uuid.uuid4().hex[:10]}"
    with PGVStore(embeddings(), connection=replica.dsn, collection=collection) as store:
        assert store.similarity_search("anything") == []  # reads never create
        with pytest.raises(ConfigError) as info:
            store.add_texts(["alpha"])
    message = str(info.value)
    assert f"collection public.{collection} cannot be created through" in message
    assert "read-only standby" in message and "the primary" in message
    assert "pg_is_in_recovery() is false" in message


def test_a_multi_host_read_dsn_is_one_endpoint(replica_bed, make_store) -> None:
    read = replica_bed.multi_host_dsn(
        replica_bed.replicas, target_session_attrs="standby", load_balance_hosts="random"
    )
    store = make_store(read_connections=read)
    store.add_texts(["alpha"], ids=["a"])
    caught_up(replica_bed)
    pause_all(replica_bed)
    store.add_texts(["beta"], ids=["b"])
    assert store.count() == 1 and store.count(read_from="primary") == 2
    assert ids(store.get_by_ids(["b"], after=store.write_token())) == {"b"}


def test_reads_on_replicas_never_create(replica_bed) -> None:
    collection = f"t_rep_{uuid.uuid4().hex[:10]}"
    with PGVStore(
        embeddings(), connection=replica_bed.primary.dsn,
        read_connections=[r.dsn for r in replica_bed.replicas], collection=collection,
    ) as store:  # fmt: skip
        assert store.similarity_search("x") == [] and store.count() == 0
    with replica_bed.primary.connect() as c:
        found = c.execute(
            "SELECT to_regclass(%s)", (sql.Identifier(collection).as_string(None),)
        ).fetchone()
    assert found == (None,)


async def test_a_replica_down_from_the_start_costs_no_wait(replica_bed, make_store, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="langchain_pgvstore")
    nothing = "host=127.0.0.1 port=1 dbname=postgres user=postgres connect_timeout=2"
    store = make_store(read_connections=[nothing, replica_bed.replicas[0].dsn], pool_timeout=20)
    store.add_texts(["alpha"], ids=["a"])
    caught_up(replica_bed)
    t0 = time.monotonic()
    assert store.count() == 1 and await store.acount() == 1
    took = time.monotonic() - t0
    assert took < 10  # not the pool timeout (20 s)
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("langchain_pgvstore")]
    assert len(warnings) == 1 and "port=1 " in warnings[0] and "unreachable" in warnings[0]
    print(f"\ntwo reads with one replica never reachable: {took:.3f} s")


def test_a_read_cancelled_by_recovery_is_answered_elsewhere(replica_bed, make_store, caplog):
    """Replay that must take a lock a replica read holds cancels the read (with
    max_standby_streaming_delay = 0); the store answers it on the primary."""
    caplog.set_level(logging.DEBUG, logger="langchain_pgvstore")
    replica = replica_bed.replicas[0]
    store = make_store(read_connections=[replica.dsn], index=None, pool_size=1)
    rows = 40_000
    vectors = np.random.default_rng(15).normal(size=(rows, DIM)).astype(np.float32)
    store.add_embeddings(
        [f"t{i}" for i in range(rows)], vectors, ids=[f"r{i}" for i in range(rows)]
    )
    query = [float(x) for x in vectors[7]]
    expected = [d.id for d in store.similarity_search_by_vector(query, k=3, read_from="primary")]
    caught_up(replica_bed)
    assert [d.id for d in store.similarity_search_by_vector(query, k=3)] == expected
    table = sql.Identifier(store.collection)

    watcher = replica.connect()

    def active() -> bool:
        return bool(
            watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                " AND application_name = 'langchain-pgvstore' AND query LIKE 'SELECT%%'"
            ).fetchone()[0]  # type: ignore[index]
        )

    replica.configure({"max_standby_streaming_delay": "0"})
    with replica.connect() as c:
        c.execute("SELECT pg_reload_conf()")
    try:
        attempts = 0
        while attempts < 20:
            attempts += 1
            with ThreadPoolExecutor(1) as pool:
                search = pool.submit(store.similarity_search_by_vector, query, k=3)
                deadline = time.monotonic() + 5
                while not active() and not search.done() and time.monotonic() < deadline:
                    pass
                with replica_bed.primary.connect() as c, c.transaction():
                    c.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
                assert [d.id for d in search.result(30)] == expected
            if "cancelled a read" in caplog.text:
                break
        assert "cancelled a read" in caplog.text and "conflict with recovery" in caplog.text
        print(f"\na read cancelled by recovery, answered on the primary (attempt {attempts})")
    finally:
        watcher.close()
        replica.configure({"max_standby_streaming_delay": "30s"})
        with replica.connect() as c:
            c.execute("SELECT pg_reload_conf()")
