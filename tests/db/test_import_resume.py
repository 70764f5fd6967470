"""An import killed part-way (SIGKILL to its process) and run again ends as if never interrupted.

The import runs in a child process (tests/importing/child.py) that prints its
progress. The test kills it with `os.kill(pid, SIGKILL)`:

- `anywhere`: as soon as three batches are reported, wherever it then is;
- `mid-batch`: while its next batch waits to write into the collection (the
  test holds a lock on the table): the batch's transaction dies uncommitted;
- `at-checkpoint`: after its next batch's rows are written, while the batch's
  checkpoint waits (the test holds a lock on the checkpoint table): rows and
  checkpoint are one transaction, so the rows die with it.

Wherever it is killed, the collection holds exactly the rows its checkpoint
records. Then the import runs again to the end, and the collection must equal
one imported without interruption: the same ids, texts, metadata and vectors,
no row missing, and no row written twice: rows already in keep their row
version, and the second run reports writing exactly the rows it read.
The child's connections check for a dead client every 100 ms
(`client_connection_check_interval`), so a statement it left waiting on a lock
is cancelled instead of going on after the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import PGVStore
from langchain_pgvstore.importers import import_from_chroma, import_from_pgvector
from tests.importing.sources import database, need_chromadb, row_versions, rows, stored, write

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "tests" / "importing" / "child.py"
DIM = 8
N = 3000
BATCH = 50


@pytest.fixture(scope="module")
def pgvector_source(dsn):
    with database(dsn) as conninfo:
        write(
            {
                "kind": "pgvector",
                "conninfo": conninfo,
                "distance": "l2",
                "queries": [],
                "k": 1,
                "collection": "big",
                **rows(N, DIM, seed=40),
            }
        )
        yield {"kind": "pgvector", "source": conninfo, "source_collection": "big"}


@pytest.fixture(scope="module")
def chroma_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("chroma-resume")
    data = rows(N, DIM, seed=41)
    # Chroma metadata is flat
    data["metadatas"] = [
        {"n": i, "half": i / 2, "even": i % 2 == 0, "tags": ["x", "y"][: 1 + i % 2]}
        for i in range(N)
    ]
    collection = (
        need_chromadb()
        .PersistentClient(path=str(path))
        .create_collection("big", embedding_function=None)
    )
    for start in range(0, N, 1000):
        part = slice(start, start + 1000)
        collection.add(
            ids=data["ids"][part],
            embeddings=np.asarray(data["vectors"][part]),
            documents=data["texts"][part],
            metadatas=data["metadatas"][part],
        )
    return {"kind": "chroma", "source": str(path), "source_collection": "big"}


@pytest.fixture(params=["pgvector", "chroma"])
def source(request) -> dict[str, Any]:
    return request.getfixturevalue(f"{request.param}_source")


def run_import(store: PGVStore, job: dict[str, Any]):
    if job["kind"] == "pgvector":
        return import_from_pgvector(
            store, job["source_collection"], source=job["source"], batch_size=BATCH
        )
    return import_from_chroma(store, job["source_collection"], path=job["source"], batch_size=BATCH)


def make_store(dsn: str, name: str) -> PGVStore:
    return PGVStore(
        DeterministicFakeEmbedding(size=DIM),
        connection=dsn,
        collection=name,
        distance="l2",
        index=None,
    )


def blocked_by_me(conn: psycopg.Connection, timeout: float = 60) -> tuple[int, str]:
    """The pid and statement of a client waiting for a lock this connection holds.

    Only client backends: an autovacuum worker analysing the collection the import
    fills waits for the lock too.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT pid, query FROM pg_stat_activity"
            " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            " AND backend_type = 'client backend'"
        ).fetchone()
        if row:
            return int(row[0]), row[1]
        time.sleep(0.02)
    raise AssertionError("the import never waited for the lock")


def wait_gone(conn: psycopg.Connection, pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    # in a transaction pg_stat_activity is a snapshot taken once: clear it each time
    while conn.execute(
        "SELECT pg_stat_clear_snapshot(), count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()[1]:
        assert time.monotonic() < deadline, f"backend {pid} outlived its killed client"
        time.sleep(0.05)


def settled(dsn: str, timeout: float = 30) -> None:
    """Wait until no other client backend runs a statement or holds a transaction open:
    whatever the killed child's last transaction was, it has committed or rolled back."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() AND datname = current_database()"
            " AND state IS DISTINCT FROM 'idle'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed import's backend is still busy"
            time.sleep(0.05)


def snapshot(dsn: str, collection: str) -> tuple[dict[str, str], int]:
    """The collection's row versions and the import's recorded position, read at once."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        versions = dict(
            conn.execute(
                sql.SQL("SELECT id, xmin::text FROM {}").format(sql.Identifier(collection))
            ).fetchall()
        )
        done = conn.execute(
            "SELECT done FROM public.pgvstore_imports WHERE collection = %s", (collection,)
        ).fetchone()[0]
    return versions, done


@pytest.mark.parametrize("where", ["anywhere", "mid-batch", "at-checkpoint"])
def test_killed_import_resumes_to_the_same_collection(
    dsn, source, collection_name, where, tmp_path
) -> None:
    job = {
        **source,
        "dsn": dsn,
        "collection": collection_name,
        "distance": "l2",
        "dim": DIM,
        "batch_size": BATCH,
    }
    env = {**os.environ, "PGOPTIONS": "-c client_connection_check_interval=100"}
    lock_target = {
        "mid-batch": sql.Identifier("public", collection_name),
        "at-checkpoint": sql.Identifier("public", "pgvstore_imports"),
    }.get(where)
    errors = tmp_path / "child.err"
    with (
        errors.open("w") as err,
        subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(job)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as child,
        psycopg.connect(dsn) as blocker,
    ):
        try:
            assert child.stdout is not None
            for line in child.stdout:
                if int(line.split()[0]) >= 3 * BATCH:
                    break
            else:
                raise AssertionError(
                    f"the import reported no progress: {errors.read_text()[-3000:]}"
                )
            if lock_target is None:
                os.kill(child.pid, signal.SIGKILL)
            else:
                # SHARE mode lets reads through and stops the child's next write to the table
                blocker.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(lock_target))
                waiting, statement = blocked_by_me(blocker)
                # the statement it waits in: the batch's upsert, or the checkpoint's after it
                assert statement.startswith("INSERT INTO"), statement
                assert ("pgvstore_imports" in statement) == (where == "at-checkpoint"), statement
                os.kill(child.pid, signal.SIGKILL)
                wait_gone(blocker, waiting)
            assert child.wait(30) == -signal.SIGKILL
        finally:
            blocker.rollback()
            if child.poll() is None:
                child.kill()

    settled(dsn)
    before, recorded = snapshot(dsn, collection_name)
    assert 3 * BATCH <= len(before) < N, "the kill must land part-way"
    # the batch in flight left nothing behind, its checkpoint included
    assert len(before) == recorded

    store = make_store(dsn, collection_name)
    report = run_import(store, job)
    assert report.skipped == recorded and report.skipped + report.read == N
    # every row read was written, once: no batch was sent again
    assert report.written == report.read
    after = row_versions(dsn, "public", collection_name)
    # no row written twice: what the first run wrote keeps its row version
    assert {id_: after[id_] for id_ in before} == before
    assert len(after) == N

    reference = make_store(dsn, f"{collection_name}_ref")
    try:
        assert run_import(reference, job).read == N
        got, want = (
            stored(dsn, "public", collection_name),
            stored(dsn, "public", reference.collection),
        )
        assert got.keys() == want.keys()
        for id_, (content, meta, vec) in want.items():
            assert got[id_][:2] == (content, meta)
            assert np.array_equal(got[id_][2], vec)
    finally:
        reference.delete_collection()
        reference.close()
        store.close()
