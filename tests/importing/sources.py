"""Helpers for the importer tests: source data, source databases, the langchain-postgres writer,
and the checks that an imported collection equals its source."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

WRITER = Path(__file__).with_name("writer.py")


def _required(variable: str) -> bool:
    """Whether the run was asked for what `variable` installs (CI sets them all): then a
    missing part is a failure, not a skip."""
    return os.environ.get(variable, "0") == "1"


def sources_python() -> str:
    """The interpreter of the virtualenv holding langchain-postgres (scripts/dev makes it)."""
    python = os.environ.get("PGVSTORE_SOURCES_PYTHON", "")
    if python and os.path.exists(python):
        return python
    reason = (
        "langchain-postgres' virtualenv is missing: run the tests with PGVSTORE_SOURCES=1"
        " scripts/dev, which installs requirements/sources.lock into $venv/sources and sets"
        " PGVSTORE_SOURCES_PYTHON"
    )
    if _required("PGVSTORE_SOURCES"):
        pytest.fail(reason)
    pytest.skip(reason)


def need_chromadb() -> Any:
    """The chromadb module; the test is skipped without it, unless PGVSTORE_CHROMA=1."""
    if _required("PGVSTORE_CHROMA"):
        import chromadb as module

        return module
    return pytest.importorskip(
        "chromadb",
        reason="chromadb (the [chroma] extra) is not installed: run the tests with"
        " PGVSTORE_CHROMA=1 scripts/dev, which adds requirements/chroma.lock",
    )


def write(job: dict[str, Any]) -> dict[str, Any]:
    """Run the writer on a job in the sources virtualenv; its JSON answer."""
    out = subprocess.run(
        [sources_python(), str(WRITER)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


@contextmanager
def database(dsn: str) -> Iterator[str]:
    """A fresh database with pgvector on the test server; its conninfo. Dropped afterwards."""
    name = f"src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo = psycopg.conninfo.make_conninfo(dsn, dbname=name)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    try:
        yield conninfo
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """Random float32 vectors (no two at the same distance from a query, in practice)."""
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def metadata(i: int) -> dict[str, Any]:
    """Varied JSON: nesting, unicode, numbers, booleans, nulls, lists, empty containers."""
    kinds: list[dict[str, Any]] = [
        {"topic": "space", "year": 2000 + i % 25},
        {"nested": {"a": [1, 2, {"b": None}], "ü": "ñ 雪 🚀"}, "ok": True},
        {},
        {"price": i / 8, "tags": ["x", "y"][: i % 3], "empty": {}},
        {"quote": 'he said "hi"\n\ttab', "neg": -i, "big": 2**53 - i},
    ]
    return {**kinds[i % len(kinds)], "n": i}


def text(i: int) -> str:
    return f"document {i}: " + ["plain", "ünïcödé 雪", "", "line\nbreak", "'quotes' \"too\""][i % 5]


def rows(n: int, dim: int, seed: int, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """A source's rows as the writer takes them (vectors as lists of the float32 values)."""
    vecs = vectors(n, dim, seed)
    return {
        "ids": list(ids) if ids is not None else [f"doc-{seed}-{i:05d}" for i in range(n)],
        "texts": [text(i) for i in range(n)],
        "metadatas": [metadata(i) for i in range(n)],
        "vectors": vecs.astype(np.float64).tolist(),
    }


def stored(dsn: str, schema: str, collection: str) -> dict[str, tuple[str, Any, np.ndarray]]:
    """Every row of a store's table: id -> (content, metadata, float32 vector)."""
    with psycopg.connect(dsn) as conn:
        got = conn.execute(
            sql.SQL("SELECT id, content, metadata, embedding::real[] FROM {}").format(
                sql.Identifier(schema, collection)
            )
        ).fetchall()
    return {r[0]: (r[1], r[2], np.asarray(r[3], dtype=np.float32)) for r in got}


def row_versions(dsn: str, schema: str, collection: str) -> dict[str, str]:
    """id -> xmin: a row written again gets a new one."""
    with psycopg.connect(dsn) as conn:
        got = conn.execute(
            sql.SQL("SELECT id, xmin::text FROM {}").format(sql.Identifier(schema, collection))
        ).fetchall()
    return dict(got)


def assert_rows_equal(
    got: dict[str, tuple[str, Any, np.ndarray]],
    ids: Sequence[str],
    texts: Sequence[str],
    metadatas: Sequence[dict[str, Any]],
    vecs: np.ndarray,
) -> None:
    """The imported table holds exactly these rows, vectors equal at float32 precision."""
    assert sorted(got) == sorted(ids)
    for i, id_ in enumerate(ids):
        content, meta, vec = got[id_]
        assert content == texts[i], id_
        assert meta == metadatas[i], id_
        assert np.array_equal(vec, vecs[i].astype(np.float32)), id_


def brute_force(vecs: np.ndarray, query: np.ndarray, distance: str, k: int) -> list[int]:
    """Indices of the k nearest source vectors, by numpy."""
    v = vecs.astype(np.float64)
    q = query.astype(np.float64)
    if distance == "cosine":
        d = 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    elif distance == "l2":
        d = np.linalg.norm(v - q, axis=1)
    else:
        d = -(v @ q)
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]
