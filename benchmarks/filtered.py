"""Filtered ANN search: recall@10 and latency at 50%, 10%, 1% and 0.1% selectivity.

    python benchmarks/filtered.py [--rows 100000] [--dim 384] [--queries 50] [--out PATH]

Loads `rows` clustered unit vectors into a PGVStore collection (HNSW, cosine).
Each row carries metadata flags `p50`, `p10`, `p1`, `p01`, set independently at
random with those probabilities. For each selectivity, `queries` query vectors
are searched (k=10) with a filter on the flag, by:

- post-filter HNSW: the plain SQL `WHERE metadata @> … ORDER BY embedding <=> q LIMIT 10`,
  run directly with psycopg, iterative scans off: what most integrations do;
- pgvstore: `similarity_search_with_score_by_vector(…, filter=…)` with the store's defaults;
- the strategies the default combines, run through the store's per-call knobs:
  the ANN index alone with iterative scans (relaxed or strict order), and an
  exact scan of the matching rows.

Recall@10 is measured against an exact scan of the same filter. Latency is end
to end (client call to rows), medians and p95 over the queries, all strategies
interleaved query by query. Writes benchmarks/results/filtered.json (other
settings: `--out`).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    clustered_vectors,
    environment,
    median,
    output_argument,
    p95,
    print_table,
    report_path,
    server_dsn,
    write_report,
)
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

from langchain_pgvstore import PGVStore  # noqa: E402

SELECTIVITIES = {"p50": 0.5, "p10": 0.1, "p1": 0.01, "p01": 0.001}


def load(store: PGVStore, rows: int, dim: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    vecs = clustered_vectors(rows, dim, seed=seed)
    flags = {name: rng.random(rows) < p for name, p in SELECTIVITIES.items()}
    metas = [{name: True for name in SELECTIVITIES if flags[name][i]} for i in range(rows)]
    step = 50_000
    for start in range(0, rows, step):
        end = min(rows, start + step)
        store.add_embeddings(
            [f"row {i}" for i in range(start, end)],
            vecs[start:end],
            metas[start:end],
            ids=[str(i) for i in range(start, end)],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "filtered")

    dsn, server = server_dsn()
    collection = f"filtered_{uuid.uuid4().hex[:8]}"
    store = PGVStore(
        DeterministicFakeEmbedding(size=args.dim),
        connection=dsn,
        collection=collection,
        maintenance_work_mem="1GB",
        bulk_rebuild_rows=args.rows // 2,
    )
    try:
        t0 = time.perf_counter()
        load(store, args.rows, args.dim)
        print(f"loaded {args.rows:,} x {args.dim}-d in {time.perf_counter() - t0:.1f}s", flush=True)
        rng = np.random.default_rng(99)
        queries = clustered_vectors(args.queries, args.dim, seed=1)  # same centres as the data
        queries += 0.05 * rng.normal(size=queries.shape).astype(np.float32)
        table = sql.Identifier(collection)
        raw_sql = sql.SQL(
            "SELECT id, embedding <=> %s AS d FROM {} WHERE metadata @> %s ORDER BY d LIMIT %s"
        ).format(table)
        exact_sql = sql.SQL(
            "SELECT id FROM {} WHERE metadata @> %s ORDER BY embedding <=> %s LIMIT %s"
        ).format(table)
        strategies: dict[str, dict[str, Any] | None] = {
            "post-filter HNSW (raw SQL)": None,
            "pgvstore default": {},
            "ANN only, iterative relaxed_order": {"exact_search_threshold": 0},
            "ANN only, iterative strict_order": {
                "exact_search_threshold": 0,
                "iterative_scan": "strict_order",
            },
            "exact scan": {"exact": True},
        }
        results: dict[str, dict[str, Any]] = {}
        with psycopg.connect(dsn, autocommit=True) as raw:
            register_vector(raw)
            for flag, p in SELECTIVITIES.items():
                filt = {flag: True}
                truth = []
                with raw.transaction():
                    raw.execute("SET LOCAL enable_indexscan = off")
                    for q in queries:
                        truth.append(
                            {
                                r[0]
                                for r in raw.execute(
                                    exact_sql, (Jsonb(filt), Vector(q), args.k)
                                ).fetchall()
                            }
                        )
                lat: dict[str, list[float]] = {s: [] for s in strategies}
                rec: dict[str, list[float]] = {s: [] for s in strategies}
                counts: dict[str, list[int]] = {s: [] for s in strategies}
                for qi, q in enumerate(queries):
                    for name, knobs in strategies.items():
                        start = time.perf_counter()
                        if knobs is None:
                            ids = [
                                r[0]
                                for r in raw.execute(
                                    raw_sql, (Vector(q), Jsonb(filt), args.k)
                                ).fetchall()
                            ]
                        else:
                            ids = [
                                d.id
                                for d, _ in store.similarity_search_with_score_by_vector(
                                    list(q), k=args.k, filter=filt, **knobs
                                )
                            ]
                        lat[name].append((time.perf_counter() - start) * 1000)
                        expected = truth[qi]
                        rec[name].append(len(expected & set(ids)) / max(1, len(expected)))
                        counts[name].append(len(ids))
                results[flag] = {
                    name: {
                        "selectivity": p,
                        "recall_at_10": float(np.mean(rec[name])),
                        "min_results": int(min(counts[name])),
                        "mean_results": float(np.mean(counts[name])),
                        "p50_ms": median(lat[name]),
                        "p95_ms": p95(lat[name]),
                    }
                    for name in strategies
                }
                print(f"selectivity {p:.1%} done", flush=True)
        env = environment(dsn)
    finally:
        store.delete_collection()
        store.close()
        if server is not None:
            server.stop()

    rows = []
    for flag, by_strategy in results.items():
        for name, r in by_strategy.items():
            rows.append(
                [
                    f"{SELECTIVITIES[flag]:.1%}",
                    name,
                    r["recall_at_10"],
                    r["min_results"],
                    r["p50_ms"],
                    r["p95_ms"],
                ]
            )
    print(
        f"\nfiltered k={args.k} search, {args.rows:,} x {args.dim}-d, HNSW m=16 ef_construction=64,"
        f" ef_search=40, {args.queries} queries"
    )
    print_table(["selectivity", "strategy", "recall@10", "min rows", "p50 ms", "p95 ms"], rows)
    path = write_report(
        out,
        {
            "benchmark": "filtered",
            "rows": args.rows,
            "dim": args.dim,
            "queries": args.queries,
            "k": args.k,
            "results": results,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
