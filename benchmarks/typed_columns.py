"""Filtered search on a typed column vs the same field in jsonb, at 10%, 1% and 0.1%.

    python benchmarks/typed_columns.py [--rows 100000] [--dim 128] [--queries 30] [--out PATH]

Loads `rows` clustered unit vectors into one PGVStore collection (HNSW,
cosine). Every row carries two fields twice, once in a typed column and once
as an undeclared field of the `metadata` jsonb, with the same values:

- `bucket` / `j_bucket`: an integer uniform in 0..999; a range filter
  (`{"bucket": {"$lt": 100}}`) keeps 10%, 1% or 0.1% of the rows;
- `tier` / `j_tier`: a text, `"a"` for 10% of the rows, `"b"` for 1%, `"c"`
  for 0.1%, `"z"` for the rest; an equality filter (`{"tier": "b"}`).

Both copies live in the same table and share its HNSW index, so only where
the filter is evaluated differs: a btree on the column, the GIN `@>` index or
a per-row jsonb read for the metadata field. Each query is searched (k=10)
with the store's defaults (the exact-or-ANN gate, `exact_search_threshold`
2,000) on both, interleaved query by query. Recall@10 is against an exact scan
of the same filter; "min rows" is the fewest rows any query returned. Latency
is end to end (client call to documents), medians over the queries. Writes
benchmarks/results/typed_columns.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

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

from langchain_pgvstore import Column, PGVStore  # noqa: E402

SELECTIVITIES = {"10%": (100, "a"), "1%": (10, "b"), "0.1%": (1, "c")}


def load(store: PGVStore, rows: int, dim: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    vecs = clustered_vectors(rows, dim, seed=seed)
    buckets = rng.integers(0, 1000, size=rows)
    draw = rng.random(rows)
    tiers = np.where(draw < 0.1, "a", np.where(draw < 0.11, "b", np.where(draw < 0.111, "c", "z")))
    metas = [
        {"bucket": int(b), "j_bucket": int(b), "tier": str(t), "j_tier": str(t)}
        for b, t in zip(buckets, tiers, strict=True)
    ]
    step = 50_000
    for start in range(0, rows, step):
        end = min(rows, start + step)
        store.add_embeddings(
            [f"row {i}" for i in range(start, end)],
            vecs[start:end],
            metas[start:end],
            ids=[str(i) for i in range(start, end)],
        )


def filters(selectivity: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{kind: {where: filter}} for one selectivity."""
    bound, tier = SELECTIVITIES[selectivity]
    return {
        "range": {"column": {"bucket": {"$lt": bound}}, "jsonb": {"j_bucket": {"$lt": bound}}},
        "equality": {"column": {"tier": tier}, "jsonb": {"j_tier": tier}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--k", type=int, default=10)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "typed_columns")

    dsn, server = server_dsn()
    store = PGVStore(
        DeterministicFakeEmbedding(size=args.dim),
        connection=dsn,
        collection=f"typed_{uuid.uuid4().hex[:8]}",
        maintenance_work_mem="512MB",
        bulk_rebuild_rows=args.rows // 2,
        columns={"bucket": Column("integer"), "tier": Column("text")},
    )
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        t0 = time.perf_counter()
        load(store, args.rows, args.dim)
        load_s = time.perf_counter() - t0
        print(f"loaded {args.rows:,} x {args.dim}-d in {load_s:.1f}s", flush=True)
        rng = np.random.default_rng(99)
        queries = clustered_vectors(args.queries, args.dim, seed=1)
        queries += 0.05 * rng.normal(size=queries.shape).astype(np.float32)
        for selectivity in SELECTIVITIES:
            for kind, by_where in filters(selectivity).items():
                lat: dict[str, list[float]] = {w: [] for w in by_where}
                rec: dict[str, list[float]] = {w: [] for w in by_where}
                rows: dict[str, list[int]] = {w: [] for w in by_where}
                for qi, q in enumerate(queries):
                    truth = {
                        d.id
                        for d in store.similarity_search_by_vector(
                            list(q), k=args.k, filter=by_where["column"], exact=True
                        )
                    }
                    order = list(by_where) if qi % 2 == 0 else list(reversed(by_where))
                    for where in order:
                        start = time.perf_counter()
                        docs = store.similarity_search_by_vector(
                            list(q), k=args.k, filter=by_where[where]
                        )
                        lat[where].append(time.perf_counter() - start)
                        ids = {d.id for d in docs}
                        rec[where].append(len(ids & truth) / max(1, len(truth)))
                        rows[where].append(len(docs))
                entry = {
                    where: {
                        "filter": repr(by_where[where]),
                        "p50_s": median(lat[where]),
                        "p95_s": p95(lat[where]),
                        "recall_at_10": float(np.mean(rec[where])),
                        "min_rows": int(min(rows[where])),
                    }
                    for where in by_where
                }
                entry["speedup"] = {
                    "jsonb_over_column": entry["jsonb"]["p50_s"] / entry["column"]["p50_s"]
                }
                results.setdefault(kind, {})[selectivity] = entry
            print(f"selectivity {selectivity} done", flush=True)
        env = environment(dsn)
    finally:
        store.delete_collection()
        store.close()
        if server is not None:
            server.stop()

    table = []
    for kind, by_sel in results.items():
        for selectivity, entry in by_sel.items():
            col, js = entry["column"], entry["jsonb"]
            table.append(
                [
                    f"{kind} {selectivity}",
                    col["p50_s"] * 1e3,
                    js["p50_s"] * 1e3,
                    entry["speedup"]["jsonb_over_column"],
                    col["recall_at_10"],
                    js["recall_at_10"],
                    col["min_rows"],
                    js["min_rows"],
                ]
            )
    print(
        f"\nfiltered k={args.k} search, {args.rows:,} x {args.dim}-d, HNSW m=16"
        f" ef_construction=64, {args.queries} queries; load average {load_before[0]:.2f}"
        " before the run"
    )
    print_table(
        [
            "filter",
            "column p50 ms",
            "jsonb p50 ms",
            "jsonb/column",
            "column recall",
            "jsonb recall",
            "column min rows",
            "jsonb min rows",
        ],
        table,
    )
    path = write_report(
        out,
        {
            "benchmark": "typed_columns",
            "rows": args.rows,
            "dim": args.dim,
            "queries": args.queries,
            "k": args.k,
            "load_seconds": load_s,
            "loadavg_before": list(load_before),
            "results": results,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
