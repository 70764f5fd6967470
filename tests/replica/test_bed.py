"""The replica test bed itself: real streaming replication between servers on 127.0.0.1.

These tests pin down the behaviour the store's routing will rely on: a replica
shows a write once it has replayed the write's LSN and not before (lag is real
and can be held open with paused replay), refuses writes, serves the same HNSW
results as the primary; a synchronous `remote_apply` standby shows a commit at
once; libpq's `target_session_attrs` picks nodes by role, and after the primary
stops and a replica is promoted, a `read-write` multi-host DSN reaches the new
primary. The failover timeline is measured and printed, never asserted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from tests.fix_replica import Node, PgBinaries, ReplicaBed, process_alive

NewTable = Callable[[ReplicaBed], sql.Identifier]


@pytest.fixture
def new_table() -> Iterator[NewTable]:
    """`new_table(bed)`: a fresh table name, dropped on the bed's primary after the test."""
    made: list[tuple[ReplicaBed, sql.Identifier]] = []

    def make(bed: ReplicaBed) -> sql.Identifier:
        name = sql.Identifier(f"bed_{uuid.uuid4().hex[:10]}")
        made.append((bed, name))
        return name

    yield make
    for bed, name in made:
        if bed.root is not None and bed.primary.running and not bed.primary.in_recovery():
            with bed.primary.connect() as c:
                c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))


def one(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def ids(conn: psycopg.Connection[Any], table: sql.Identifier) -> list[int]:
    rows = conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(table)).fetchall()
    return [r[0] for r in rows]


def insert(node: Node, table: sql.Identifier, *values: int) -> None:
    with node.connect() as c:
        for v in values:
            c.execute(sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(table), (v,))


def create(node: Node, table: sql.Identifier) -> None:
    with node.connect() as c:
        c.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(table))


def test_nodes_have_their_roles(replica_bed: ReplicaBed) -> None:
    assert len(replica_bed.replicas) == 2
    assert not replica_bed.primary.in_recovery()
    assert all(r.in_recovery() for r in replica_bed.replicas)
    with replica_bed.primary.connect() as c:
        streaming = c.execute(
            "SELECT application_name, state FROM pg_stat_replication ORDER BY 1"
        ).fetchall()
        assert streaming == [("replica1", "streaming"), ("replica2", "streaming")]
    # pgvector exists on the primary and, replicated, on every replica
    for node in replica_bed.nodes:
        with node.connect() as c:
            assert c.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone()


def test_write_is_visible_on_replicas_after_waiting_for_its_lsn(
    replica_bed: ReplicaBed, new_table: NewTable
) -> None:
    table = new_table(replica_bed)
    create(replica_bed.primary, table)
    insert(replica_bed.primary, table, 1, 2, 3)
    lsn = replica_bed.primary_lsn()
    for replica in replica_bed.replicas:
        replica_bed.wait_replayed(replica, lsn)
        with replica.connect() as c:
            assert ids(c, table) == [1, 2, 3]


def test_paused_replay_hides_a_committed_write_until_resumed(
    replica_bed: ReplicaBed, new_table: NewTable
) -> None:
    table = new_table(replica_bed)
    replica = replica_bed.replicas[0]
    create(replica_bed.primary, table)
    insert(replica_bed.primary, table, 1)
    replica_bed.wait_replayed(replica)

    with replica_bed.replay_paused(replica), replica.connect() as c:
        insert(replica_bed.primary, table, 2)  # committed on the primary
        lsn = replica_bed.primary_lsn()
        # the replica has received the commit, it has only not applied it
        deadline = time.monotonic() + 10
        while not one(c, "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,)):
            assert time.monotonic() < deadline, "the replica never received the write"
            time.sleep(0.005)
        assert ids(c, table) == [1]
        assert one(c, "SELECT pg_last_wal_replay_lsn() < %s::pg_lsn", (lsn,))
        with pytest.raises(TimeoutError, match="replay paused"):
            replica_bed.wait_replayed(replica, lsn, timeout=0.3)
        # the other replica is not held back
        replica_bed.wait_replayed(replica_bed.replicas[1], lsn)

    replica_bed.wait_replayed(replica, lsn)
    with replica.connect() as c:
        assert ids(c, table) == [1, 2]


def test_replica_refuses_writes(replica_bed: ReplicaBed, new_table: NewTable) -> None:
    table = new_table(replica_bed)
    create(replica_bed.primary, table)
    replica = replica_bed.replicas[0]
    replica_bed.wait_replayed(replica)
    # the server tells the client it is a standby at connect time: no query needed
    with replica_bed.primary.connect() as c:
        assert c.info.parameter_status("in_hot_standby") == "off"
    with replica.connect() as c:
        assert c.info.parameter_status("in_hot_standby") == "on"
        with pytest.raises(pg_errors.ReadOnlySqlTransaction):
            c.execute(sql.SQL("INSERT INTO {} (id) VALUES (1)").format(table))
        with pytest.raises(pg_errors.ReadOnlySqlTransaction):
            c.execute("CREATE TABLE never_made (id int)")
        with pytest.raises(pg_errors.ReadOnlySqlTransaction):
            c.execute(sql.SQL("DELETE FROM {}").format(table))


def test_hnsw_search_on_a_replica_returns_the_primarys_rows(
    replica_bed: ReplicaBed, new_table: NewTable
) -> None:
    table = new_table(replica_bed)
    index = sql.Identifier(f"{table.as_string()[1:-1]}_hnsw")
    rng = np.random.default_rng(15)
    vectors = rng.standard_normal((600, 16)).astype(np.float32)
    queries = rng.standard_normal((12, 16)).astype(np.float32)
    with replica_bed.primary.connect() as c:
        register_vector(c)
        c.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, embedding vector(16))").format(table)
        )
        with c.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} (id, embedding) VALUES (%s, %s)").format(table),
                [(i, v) for i, v in enumerate(vectors)],
            )
        c.execute(
            sql.SQL("CREATE INDEX {} ON {} USING hnsw (embedding vector_l2_ops)").format(
                index, table
            )
        )
    lsn = replica_bed.primary_lsn()
    knn = sql.SQL("SELECT id FROM {} ORDER BY embedding <-> %s LIMIT 10").format(table)

    def search(node: Node) -> list[list[int]]:
        with node.connect() as c:
            register_vector(c)
            c.execute("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in c.execute(sql.SQL("EXPLAIN ") + knn, (queries[0],)))
            assert f"Index Scan using {index.as_string()[1:-1]}" in plan, plan
            return [[r[0] for r in c.execute(knn, (q,))] for q in queries]

    on_primary = search(replica_bed.primary)
    assert all(len(hits) == 10 for hits in on_primary)
    for replica in replica_bed.replicas:
        replica_bed.wait_replayed(replica, lsn)
        assert search(replica) == on_primary


def test_stopped_replica_catches_up_when_started(
    replica_bed: ReplicaBed, new_table: NewTable
) -> None:
    table = new_table(replica_bed)
    create(replica_bed.primary, table)
    replica = replica_bed.replicas[1]
    replica.stop()
    assert not replica.running
    with pytest.raises(psycopg.OperationalError):
        replica.connect().close()
    insert(replica_bed.primary, table, 7)  # its slot keeps the WAL for it
    replica.start()
    replica_bed.wait_replayed(replica)
    with replica.connect() as c:
        assert ids(c, table) == [7]


def test_which_lsn_covers_a_commit(
    make_replica_bed: Callable[..., ReplicaBed], new_table: NewTable
) -> None:
    """The token for read-your-writes: the WAL flush position covers a synchronous commit
    exactly; it misses an asynchronous one; the insert position covers both but can point
    past a page header, where replay (the end of the last record) never gets on its own."""
    bed = make_replica_bed(replicas=1)
    primary, (replica,) = bed.primary, bed.replicas
    with primary.connect() as c:
        c.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")  # async commits stay unflushed
        c.execute("SELECT pg_reload_conf()")
    table = new_table(bed)
    create(primary, table)
    time.sleep(0.3)  # the WAL writer finishes the sleep it began with the old delay

    with primary.connect() as c, replica.connect() as rc:
        c.execute(sql.SQL("INSERT INTO {} (id) VALUES (1)").format(table))  # synchronous
        flush = one(c, "SELECT pg_current_wal_flush_lsn()")
        bed.wait_replayed(replica, flush)
        assert ids(rc, table) == [1]

        c.execute("SET synchronous_commit = off")
        c.execute(sql.SQL("INSERT INTO {} (id) VALUES (2)").format(table))  # asynchronous
        flush, insert = c.execute(
            "SELECT pg_current_wal_flush_lsn(), pg_current_wal_insert_lsn()"
        ).fetchone()  # type: ignore[misc]
        assert one(c, "SELECT %s::pg_lsn < %s::pg_lsn", (flush, insert))
        bed.wait_replayed(replica, flush)
        assert ids(rc, table) == [1]  # replayed up to the flush LSN, yet the commit is missing
        c.execute("SET synchronous_commit = on")
        c.execute(sql.SQL("INSERT INTO {} (id) VALUES (3)").format(table))  # flushes both
        bed.wait_replayed(replica, insert)
        assert ids(rc, table) == [1, 2, 3]

        # A record that ends exactly on a WAL page boundary (8 kB pages): emit messages sized
        # to fill the page, learning the record overhead from each miss.
        def offset() -> tuple[str, int]:
            lsn, off = c.execute(
                "SELECT pg_current_wal_insert_lsn(),"
                " (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint % 8192"
            ).fetchone()  # type: ignore[misc]
            return lsn, int(off)

        overhead, header = 52, 24  # a guess, corrected below; a page header is 24 bytes
        for _ in range(20):
            _, before = offset()
            size = 8192 - before - overhead
            if size < 16:  # too close to the end: move to the next page
                c.execute("SELECT pg_logical_emit_message(false, 'bed', repeat('x', 300), true)")
                continue
            c.execute(
                "SELECT pg_logical_emit_message(false, 'bed', repeat('x', %s), true)", (size,)
            )
            insert, after = offset()
            if after == header:
                break
            overhead += after - header if after < 4096 else -(8192 - after + header)
        else:
            pytest.fail("could not end a record on a page boundary")
        flush = one(c, "SELECT pg_current_wal_flush_lsn()")
        assert one(c, "SELECT %s::pg_lsn - %s::pg_lsn", (insert, flush)) == header
        bed.wait_replayed(replica, flush)
        time.sleep(0.2)
        assert one(rc, "SELECT pg_last_wal_replay_lsn() = %s::pg_lsn", (flush,))
        with pytest.raises(TimeoutError):
            bed.wait_replayed(replica, insert, timeout=0.5)


@pytest.mark.parametrize(
    ("attrs", "standby"),
    [
        ("read-write", False),
        ("primary", False),
        ("read-only", True),
        ("standby", True),
        ("prefer-standby", True),
    ],
)
def test_target_session_attrs_pick_a_node_by_role(
    replica_bed: ReplicaBed, attrs: str, standby: bool
) -> None:
    # the primary is listed first: a match on a later host shows the role was checked
    dsn = replica_bed.multi_host_dsn(target_session_attrs=attrs)
    with psycopg.connect(dsn, autocommit=True) as c:
        assert one(c, "SELECT pg_is_in_recovery()") is standby
        expected = replica_bed.replicas[0] if standby else replica_bed.primary
        assert c.info.port == expected.port


def test_prefer_standby_falls_back_to_the_primary(replica_bed: ReplicaBed) -> None:
    for replica in replica_bed.replicas:
        replica.stop()
    dsn = replica_bed.multi_host_dsn(
        [*replica_bed.replicas, replica_bed.primary], target_session_attrs="prefer-standby"
    )
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.info.port == replica_bed.primary.port
    standby_only = replica_bed.multi_host_dsn(replica_bed.replicas, target_session_attrs="standby")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(standby_only).close()


def test_load_balance_hosts_spreads_connections_over_replicas(replica_bed: ReplicaBed) -> None:
    dsn = replica_bed.multi_host_dsn(
        replica_bed.replicas, target_session_attrs="standby", load_balance_hosts="random"
    )
    seen = set()
    for _ in range(30):  # both replicas are missed with probability 2 * 2**-30
        with psycopg.connect(dsn) as c:
            seen.add(c.info.port)
    assert seen == {r.port for r in replica_bed.replicas}


def test_remote_apply_commit_is_on_the_replica_at_once(
    sync_replica_bed: ReplicaBed, new_table: NewTable
) -> None:
    bed = sync_replica_bed
    (replica,) = bed.replicas
    with bed.primary.connect() as c:
        assert c.execute("SHOW synchronous_commit").fetchone() == ("remote_apply",)
        assert c.execute(
            "SELECT application_name, sync_state FROM pg_stat_replication"
        ).fetchall() == [("replica1", "sync")]
    table = new_table(bed)
    create(bed.primary, table)
    with bed.primary.connect() as writer, replica.connect() as reader:
        for i in range(25):  # no waiting between the commit and the read
            writer.execute(sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(table), (i,))
            assert reader.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE id = %s").format(table), (i,)
            ).fetchone() == (1,)


def _until(what: str, attempt: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Retry `attempt` until it returns; its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except (psycopg.OperationalError, PoolTimeout) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {timeout:g} s: {e}") from e
            time.sleep(0.01)


def test_promoted_replica_is_reached_through_a_multi_host_dsn(
    make_replica_bed: Callable[..., ReplicaBed], replica_report: Callable[[str], None]
) -> None:
    bed = make_replica_bed(replicas=1)
    old, new = bed.primary, bed.replicas[0]
    rw = bed.multi_host_dsn(target_session_attrs="read-write")

    def write(value: int) -> int:
        with psycopg.connect(rw, autocommit=True) as c:
            c.execute("INSERT INTO failover (id) VALUES (%s)", (value,))
            return c.info.port

    with psycopg.connect(rw, autocommit=True) as c:
        c.execute("CREATE TABLE failover (id int PRIMARY KEY)")
    assert write(1) == old.port
    bed.wait_replayed(new)
    # a pool on the multi-host DSN, with the store's reconnect policy: start over at once
    pool: ConnectionPool[Any] = ConnectionPool(
        rw,
        min_size=1,
        max_size=2,
        timeout=2.0,
        reconnect_timeout=2.0,
        reconnect_failed=lambda p: None if p.closed else p.check(),
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True},
        open=False,
    )
    pool.open(wait=True)

    def pool_write(value: int) -> int:
        with pool.connection() as c:
            c.execute("INSERT INTO failover (id) VALUES (%s)", (value,))
            port: int = c.info.port
            return port

    try:
        with pool.connection() as c:
            assert c.info.port == old.port

        t0 = time.perf_counter()
        bed.stop_primary()  # immediate: as a crash would
        t_stopped = time.perf_counter()
        with pytest.raises(psycopg.OperationalError):
            write(2)
        t_failing = time.perf_counter()
        # the pool drops its dead connection and finds no read-write host within its timeout
        with pytest.raises(PoolTimeout):
            pool_write(2)
        t_pool_failing = time.perf_counter()
        # reads go on on the replica meanwhile
        with new.connect() as c:
            assert ids(c, sql.Identifier("failover")) == [1]

        t1 = time.perf_counter()
        assert bed.promote(new) is bed.primary is new
        t_promoted = time.perf_counter()
        assert _until("a write through the multi-host DSN", lambda: write(2)) == new.port
        t_written = time.perf_counter()

        assert _until("a write through the pool", lambda: pool_write(3)) == new.port
        t_pool = time.perf_counter()
    finally:
        pool.close()
    with new.connect() as c:
        assert not one(c, "SELECT pg_is_in_recovery()")
        assert ids(c, sql.Identifier("failover")) == [1, 2, 3]

    timeline = (
        f"failover timeline: primary stop (immediate) {t_stopped - t0:.3f} s,"
        f" stop -> writes failing {t_failing - t0:.3f} s"
        f" (through the pool, timeout 2 s: {t_pool_failing - t_failing:.3f} s);"
        f" pg_ctl promote {t_promoted - t1:.3f} s,"
        f" promote -> write via read-write DSN {t_written - t1:.3f} s,"
        f" promote -> write via pool {t_pool - t1:.3f} s"
    )
    print(timeline)
    replica_report(timeline)


def test_heal_restores_a_stopped_paused_or_promoted_bed(
    make_replica_bed: Callable[..., ReplicaBed], new_table: NewTable
) -> None:
    bed = make_replica_bed(replicas=1)
    (replica,) = bed.replicas
    bed.pause_replay(replica)
    bed.stop_primary()
    bed.heal()
    assert bed.primary.running and not bed.primary.in_recovery()
    with replica.connect() as c:
        assert one(c, "SELECT pg_get_wal_replay_pause_state()") == "not paused"
    table = new_table(bed)
    create(bed.primary, table)
    bed.wait_replayed(replica)

    old_root = bed.root
    bed.promote(replica)
    bed.heal()  # a promoted bed is made anew
    assert bed.root != old_root and not bed.promoted
    assert not bed.primary.in_recovery() and all(r.in_recovery() for r in bed.replicas)
    bed.wait_replayed(bed.replicas[0])


def test_close_leaves_no_process_and_no_directory(pg_binaries: PgBinaries) -> None:
    made: list[Path] = []
    with pytest.raises(RuntimeError, match="a failing test"):
        with ReplicaBed(pg_binaries, 1) as bed:
            assert bed.root is not None and bed.root.is_dir()
            made.append(bed.root)
            pids = [n.pid() for n in bed.nodes]
            assert all(pids)
            raise RuntimeError("a failing test")
    assert not made[0].exists()
    assert not any(process_alive(pid) for pid in pids if pid is not None)


class _FailingBackup(PgBinaries):
    """The real binaries, but the base backup fails, as it would on a full disk; notes the
    bed's directory and the primary's pid at that moment."""

    def __init__(self, bin_dir: Path) -> None:
        super().__init__(bin_dir)
        self.at_failure: list[tuple[Path, int | None]] = []

    def run(self, program: str, *args: str, cwd: Path | None = None, timeout: float = 60) -> str:
        if program == "pg_basebackup":
            assert cwd is not None
            primary = Node(self, "primary", cwd / "primary", port=0)
            self.at_failure.append((cwd, primary.pid()))
            raise RuntimeError("pg_basebackup failed: no space left on device")
        return super().run(program, *args, cwd=cwd, timeout=timeout)


def test_a_bed_that_fails_to_start_removes_what_it_made(pg_binaries: PgBinaries) -> None:
    bins = _FailingBackup(pg_binaries.bin_dir)
    bed = ReplicaBed(bins, 1)
    with pytest.raises(RuntimeError, match="no space left"):
        bed.start()
    ((root, pid),) = bins.at_failure
    assert pid is not None  # the primary was running when the backup failed
    assert not process_alive(pid)
    assert not root.exists()
    assert bed.root is None and bed.nodes == ()
