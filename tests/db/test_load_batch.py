"""The store's batch hook for the importers (`Writes._load_batch`): one batch and the
statements that follow it commit together, and the count of rows written is exact."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import InputError, PGVStore
from langchain_pgvstore._sql import Frag

DIM = 4


def batch(ids: list[str], seed: int = 0) -> tuple[list[str], np.ndarray, list[dict], list[str]]:
    vectors = np.random.default_rng(seed).standard_normal((len(ids), DIM)).astype(np.float32)
    return [f"text {i}" for i in ids], vectors, [{"id": i} for i in ids], ids


@pytest.fixture
def marks(conn: psycopg.Connection) -> sql.Identifier:
    """A table the extra statements write to."""
    name = sql.Identifier("public", "load_batch_marks")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TABLE {} (n int)").format(name))
    yield name
    conn.execute(sql.SQL("DROP TABLE {}").format(name))


def mark(table: sql.Identifier, n: int) -> Frag:
    return Frag(sql.SQL("INSERT INTO {} VALUES (%s)").format(table), (n,))


def rows(conn: psycopg.Connection, table: str) -> list[str]:
    query = sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(table))
    return [r[0] for r in conn.execute(query)]


def test_rows_written_are_counted_exactly(dsn, conn, collection_name, marks) -> None:
    with PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name
    ) as store:
        texts, vectors, metas, ids = batch(["a", "b", "c"])
        assert store._load_batch(texts, vectors, metas, ids, also=[mark(marks, 1)]) == 3
        # the same rows again: stored unchanged, not written
        assert store._load_batch(texts, vectors, metas, ids, also=[mark(marks, 2)]) == 0
        # one changed, one new, one unchanged
        vectors[0] += 1
        texts2, vectors2, metas2, ids2 = batch(["d"], seed=1)
        assert (
            store._load_batch(
                [*texts, *texts2],
                np.vstack([vectors, vectors2]),
                [*metas, *metas2],
                [*ids, *ids2],
                also=[],
            )
            == 2
        )
        assert rows(conn, collection_name) == ["a", "b", "c", "d"]
        assert conn.execute(
            sql.SQL("SELECT array_agg(n ORDER BY n) FROM {}").format(marks)
        ).fetchone()[0] == [1, 2]


def test_a_large_first_load_counts_what_it_copied(dsn, conn, collection_name) -> None:
    # bulk_rebuild_rows=4: six rows into an empty table go straight in by COPY;
    # an id given twice is one row (the later wins), so five rows are written
    with PGVStore(
        DeterministicFakeEmbedding(size=DIM),
        connection=dsn,
        collection=collection_name,
        bulk_rebuild_rows=4,
    ) as store:
        texts, vectors, metas, ids = batch(["a", "b", "c", "d", "e", "a"])
        assert store._load_batch(texts, vectors, metas, ids, also=[]) == 5
        assert rows(conn, collection_name) == ["a", "b", "c", "d", "e"]
        got = conn.execute(
            sql.SQL("SELECT content FROM {} WHERE id = 'a'").format(sql.Identifier(collection_name))
        ).fetchone()
        assert got == ("text a",)


def test_a_failing_extra_statement_takes_its_batch_with_it(
    dsn, conn, collection_name, marks
) -> None:
    with PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name
    ) as store:
        texts, vectors, metas, ids = batch(["a", "b"])
        assert store._load_batch(texts, vectors, metas, ids, also=[mark(marks, 1)]) == 2
        texts, vectors, metas, ids = batch(["c", "d"], seed=2)
        with pytest.raises(psycopg.errors.DivisionByZero):
            store._load_batch(
                texts,
                vectors,
                metas,
                ids,
                also=[mark(marks, 2), Frag(sql.SQL("SELECT 1 / %s"), (0,))],
            )
        # neither the batch's rows nor the statement before the failing one are there
        assert rows(conn, collection_name) == ["a", "b"]
        assert conn.execute(sql.SQL("SELECT array_agg(n) FROM {}").format(marks)).fetchone()[0] == [
            1
        ]


def test_an_empty_batch_is_refused(dsn, collection_name) -> None:
    with PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name
    ) as store:
        with pytest.raises(InputError, match="at least one document"):
            store._load_batch([], np.zeros((0, DIM), dtype=np.float32), [], [], also=[])
