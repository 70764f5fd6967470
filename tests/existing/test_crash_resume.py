"""The backfill killed mid-run (SIGKILL, a real process) and run again: every row is
embedded, none is skipped, and no row whose embedding was committed is embedded again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psycopg
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from tests.existing.test_adopt import DECLARED, DIM, PRODUCTS, make_products
from tests.fix_store import StoreFactory

ROWS = 120
BATCH = 10

_WORKER = textwrap.dedent(
    """
    import sys, time
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_pgvstore import Column, ExistingTable, PGVStore

    dsn, table, log = sys.argv[1], sys.argv[2], sys.argv[3]

    class Slow(DeterministicFakeEmbedding):
        def embed_documents(self, texts):
            with open(log, "a") as f:
                f.writelines(t + "\\n" for t in texts)
            time.sleep(0.3)
            return super().embed_documents(texts)

    store = PGVStore(
        Slow(size=%d), connection=dsn, collection=table, dimensions=%d,
        existing_table=ExistingTable(id="sku", content="description"),
        columns={"price": Column("numeric"), "stock": Column("integer", nullable=True)},
    )
    store.embed_pending(batch_size=%d)
    """
) % (DIM, DIM, BATCH)


class Logged(DeterministicFakeEmbedding):
    embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        type(self).embedded.extend(texts)
        return super().embed_documents(texts)


def _committed(admin: psycopg.Connection, table: str) -> set[str]:
    rows = admin.execute(
        sql.SQL("SELECT description FROM {} WHERE embedding IS NOT NULL").format(
            sql.Identifier(table)
        )
    ).fetchall()
    return {r[0] for r in rows}


def test_killed_backfill_resumes_without_embedding_a_row_twice(
    make_store: StoreFactory,
    admin: psycopg.Connection,
    dsn: str,
    collection_name: str,
    tmp_path: Path,
) -> None:
    make_products(admin, collection_name, rows=ROWS)
    store = make_store(Logged(size=DIM), existing_table=PRODUCTS, dimensions=DIM, columns=DECLARED)
    store.adopt(add_embedding_column=True, add_metadata_column=True, track_changes=True)

    log = tmp_path / "first-run.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, dsn, collection_name, str(log)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while len(_committed(admin, collection_name)) < 3 * BATCH:
            assert worker.poll() is None, "the worker ended before it was killed"
            assert time.monotonic() < deadline, "the worker committed nothing in time"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(30)
    committed = _committed(admin, collection_name)
    first = log.read_text().splitlines()
    assert ROWS > len(committed) >= 3 * BATCH and len(committed) % BATCH == 0
    # what the killed run embedded beyond its commits is at most the batch in flight
    assert set(first) >= committed and len(set(first) - committed) <= BATCH

    Logged.embedded = []
    report = store.embed_pending(batch_size=BATCH)
    second = Logged.embedded
    assert not committed & set(second), "a committed row was embedded again"
    assert len(second) == len(set(second)) == ROWS - len(committed)
    assert report.embedded == ROWS - len(committed) and report.remaining == 0

    expected = DeterministicFakeEmbedding(size=DIM)
    rows = admin.execute(
        sql.SQL("SELECT description, embedding::text FROM {}").format(
            sql.Identifier(collection_name)
        )
    ).fetchall()
    assert len(rows) == ROWS
    for description, vector in rows:
        got = np.array([float(x) for x in vector.strip("[]").split(",")])
        assert np.allclose(got, expected.embed_query(description), atol=1e-6)
