"""Growth: ingest throughput, index build time and search latency as the collection grows.

    python benchmarks/growth.py [--sizes 10000,100000] [--dim 384] [--queries 200]
    python benchmarks/growth.py --sizes 10000,100000,1000000 --out PATH   # optional, long

For each size, into a new collection (precomputed embeddings):

1. `add_embeddings` with `index=None` (validation, binary COPY, merge, GIN
   and BM25 maintenance, ANALYZE): ingest throughput;
2. `create_index(HNSWIndex())` (m=16, ef_construction=64,
   maintenance_work_mem 1GB, the server's parallel maintenance workers):
   the build time; 1 + 2 is "until searchable";
3. `similarity_search_by_vector(k=10)` for `--queries` query vectors (after
   one warm-up pass): p50/p95 latency, and recall@10 against exact search on
   the first 50 queries; also a filtered search (`source = s3`, 10%).

Prints a table and the growth exponent b of each metric between consecutive
sizes (metric ~ rows^b: 1 is linear, 0 is flat). Writes
benchmarks/results/growth.json (other settings, such as the large size: `--out`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    LookupEmbedding,
    clustered_vectors,
    documents,
    environment,
    output_argument,
    p95,
    queries,
    report_path,
    server_dsn,
    write_report,
)
from report import GROWTH_METRICS  # noqa: E402
from report import growth as growth_table  # noqa: E402

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore import HNSWIndex, PGVStore  # noqa: E402

FILTER = {"source": "s3"}


def one_size(dsn: str, rows: int, dim: int, n_queries: int, mwm: str) -> dict[str, Any]:
    store = PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=dsn,
        collection=f"growth_{rows}_{uuid.uuid4().hex[:6]}",
        index=None,
        maintenance_work_mem=mwm,
    )
    try:
        texts, metas, ids = documents(rows)
        vecs = clustered_vectors(rows, dim)
        store.similarity_search_by_vector([0.0] * dim, k=1)  # open the pool
        t_ingest = 0.0
        step = 100_000
        for start in range(0, rows, step):
            end = min(rows, start + step)
            t0 = time.perf_counter()
            store.add_embeddings(
                texts[start:end], vecs[start:end], metas[start:end], ids=ids[start:end]
            )
            t_ingest += time.perf_counter() - t0
        del texts, metas, ids, vecs
        t0 = time.perf_counter()
        store.create_index(HNSWIndex(), maintenance_work_mem=mwm)
        t_index = time.perf_counter() - t0
        qs = [[float(x) for x in q] for q in queries(n_queries, dim)]
        for q in qs:  # warm-up pass: the same pages for every size's measured pass
            store.similarity_search_by_vector(q, k=10)
        lat: list[float] = []
        flat: list[float] = []
        for q in qs:
            t0 = time.perf_counter()
            store.similarity_search_by_vector(q, k=10)
            lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.similarity_search_by_vector(q, k=10, filter=FILTER)
            flat.append(time.perf_counter() - t0)
        recall = []
        for q in qs[:50]:
            got = {d.id for d in store.similarity_search_by_vector(q, k=10)}
            truth = {d.id for d in store.similarity_search_by_vector(q, k=10, exact=True)}
            recall.append(len(got & truth) / 10)
        return {
            "rows": rows,
            "ingest_s": t_ingest,
            "ingest_rows_per_s": rows / t_ingest,
            "index_build_s": t_index,
            "searchable_s": t_ingest + t_index,
            "search_p50_ms": statistics.median(lat) * 1000,
            "search_p95_ms": p95(lat) * 1000,
            "filtered_p50_ms": statistics.median(flat) * 1000,
            "filtered_p95_ms": p95(flat) * 1000,
            "recall_at_10": float(np.mean(recall)),
        }
    finally:
        store.delete_collection()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--maintenance-work-mem", default="1GB")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "growth")
    sizes = [int(s) for s in args.sizes.split(",")]

    dsn, server = server_dsn()
    results: list[dict[str, Any]] = []
    try:
        for rows in sizes:
            r = one_size(dsn, rows, args.dim, args.queries, args.maintenance_work_mem)
            results.append(r)
            print(
                f"{rows:,}: ingest {r['ingest_s']:.1f}s, index {r['index_build_s']:.1f}s,"
                f" p50 {r['search_p50_ms']:.2f} ms",
                flush=True,
            )
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()

    exponents = {
        key: [
            math.log(b[key] / a[key]) / math.log(b["rows"] / a["rows"])
            for a, b in zip(results, results[1:], strict=False)
        ]
        for _, key in GROWTH_METRICS
    }
    payload = {
        "benchmark": "growth",
        "sizes": sizes,
        "dim": args.dim,
        "queries": args.queries,
        "maintenance_work_mem": args.maintenance_work_mem,
        "library": langchain_pgvstore.__file__,
        "results": results,
        "exponents": exponents,
        "environment": env,
    }
    print(f"\n{growth_table(payload)}")
    print("b: metric ~ rows^b between the two sizes (1 linear, 0 flat)")
    path = write_report(out, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
