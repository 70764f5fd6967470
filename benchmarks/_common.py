"""Shared benchmark plumbing: a server, synthetic data, timing, and the JSON report."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

RESULTS = Path(__file__).parent / "results"

HNSW_BY_HAND = sql.SQL(
    "CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
)


def create_raw_table(
    conn: psycopg.Connection[Any], table: sql.Identifier, dim: int, *, secondary: bool = True
) -> None:
    """The raw baselines' table: the store's columns (vectors stored inline, as the store
    does) and, with `secondary`, its GIN indexes on metadata and the tsvector."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id text PRIMARY KEY, content text NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({}) NOT NULL,"
            " tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(table, sql.Literal(dim))
    )
    conn.execute(sql.SQL("ALTER TABLE {} ALTER embedding SET STORAGE MAIN").format(table))
    if secondary:
        conn.execute(
            sql.SQL("CREATE INDEX ON {} USING gin (metadata jsonb_path_ops)").format(table)
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gin (tsv)").format(table))


def copy_rows(
    conn: psycopg.Connection[Any],
    target: sql.Composable,
    texts: list[str],
    metas: list[dict[str, Any]],
    ids: list[str],
    vecs: np.ndarray,
) -> None:
    """pgvector-python's loading example: binary COPY with `write_row`."""
    with conn.cursor().copy(
        sql.SQL("COPY {} (id, content, metadata, embedding) FROM STDIN (FORMAT BINARY)").format(
            target
        )
    ) as copy:
        copy.set_types(["text", "text", "jsonb", "vector"])
        for i in range(len(ids)):
            copy.write_row((ids[i], texts[i], Jsonb(metas[i]), vecs[i]))


def server_dsn() -> tuple[str, Any]:
    """`PGVSTORE_BENCH_DSN`, or a fresh embedded server in a temporary directory."""
    dsn = os.environ.get("PGVSTORE_BENCH_DSN")
    if dsn:
        return dsn, None
    from langchain_pgvstore.server import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="pgvstore-bench-")) / "pgdata")
    server.start()
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return server.dsn, server


def clustered_vectors(n: int, dim: int, clusters: int = 100, seed: int = 0) -> np.ndarray:
    """Unit vectors around `clusters` random centres: closer to real embeddings than noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, size=n)
    vecs = centres[labels] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def documents(n: int, seed: int = 0) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(seed)
    words = [
        "vector",
        "postgres",
        "index",
        "search",
        "query",
        "table",
        "filter",
        "embedding",
        "latency",
        "recall",
        "graph",
        "cluster",
        "memory",
        "batch",
        "stream",
        "token",
    ]
    texts = [" ".join(rng.choice(words, size=12)) + f" document {i}" for i in range(n)]
    metas = [
        {"source": f"s{i % 10}", "n": int(i), "tags": ["a", "b"][: 1 + i % 2]} for i in range(n)
    ]
    ids = [f"doc-{i}" for i in range(n)]
    return texts, metas, ids


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def environment(dsn: str) -> dict[str, Any]:
    """Package versions, server settings and machine load, stored with every result."""
    packages = {}
    for name in (
        "langchain-pgvstore",
        "psycopg",
        "psycopg-pool",
        "pgvector",
        "numpy",
        "langchain-core",
        "langchain-postgres",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    with psycopg.connect(dsn) as conn:
        server = conn.execute("SELECT version()").fetchone()[0]
        ext = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        settings = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name = ANY(%s)",
                (
                    [
                        "shared_buffers",
                        "work_mem",
                        "maintenance_work_mem",
                        "max_parallel_workers",
                        "max_parallel_maintenance_workers",
                        "jit",
                        "synchronous_commit",
                    ],
                ),
            ).fetchall()
        )
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "server": server,
        "pgvector": ext[0] if ext else None,
        "settings": settings,
        "packages": packages,
    }


def write_report(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for j, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
