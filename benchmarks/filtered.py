"""Filtered search by cost: the store's default against raw exact and raw iterative HNSW.

    python benchmarks/filtered.py [--rows 100000] [--dim 384] [--queries 50]
                                  [--ef-search 100] [--out PATH]

Loads `rows` unit vectors of low intrinsic dimension (`_common.latent_vectors`)
into a PGVStore collection (default HNSW, cosine). Each row's metadata holds
flags `p50`, `p10`, `p1`, `p01`, set independently at random with those
probabilities, and a unique number `n` (so the planner's statistics hold no
whole-value frequencies, as with real metadata). For each selectivity,
`queries` query vectors are searched (k=10) with a filter on the flag by:

- raw exact: `... WHERE metadata @> f ORDER BY (embedding <=> q) + 0 LIMIT k`,
  the planner's choice of GIN bitmap or sequential scan, server defaults;
- raw iterative HNSW: the pgvector-documented statement for relaxed-order
  iterative scans (a materialized CTE, re-sorted), the index scan forced, with
  `hnsw.ef_search = --ef-search`;
- post-filter HNSW: the same without iterative scans (what most integrations
  send): it returns fewer than k rows when the filter is selective;
- pgvstore: `similarity_search_with_score_by_vector(q, k, filter=f,
  ef_search=--ef-search)`, the store's cost-based choice.

Each raw contender runs on its own connection with its settings made once.
Besides wall time, each call's CPU time is measured on both sides (the
client process, and the server backend's run time from /proc/PID/schedstat):
on a loaded machine wall time is mostly waiting for a core. Recall@10 is measured against an exact scan of the same filter. Every
contender runs once per query, in a random (seeded) order. The ratios are the
store's p50 (wall, and CPU) over the faster raw contender's. Writes
benchmarks/results/filtered.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
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
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    LookupEmbedding,
    backend_cpu,
    environment,
    latent_vectors,
    output_argument,
    pool_pids,
    print_table,
    report_path,
    server_dsn,
    shuffled,
    write_report,
)

from langchain_pgvstore import PGVStore  # noqa: E402

SELECTIVITIES = {"p50": 0.5, "p10": 0.1, "p1": 0.01, "p01": 0.001}
RAW = ("raw exact", "raw iterative HNSW")


def flag_metadata(rows: int, seed: int = 1) -> list[dict[str, Any]]:
    """Independent flags at each selectivity, and a unique number per row."""
    rng = np.random.default_rng(seed)
    flags = {name: rng.random(rows) < p for name, p in SELECTIVITIES.items()}
    return [
        {**{name: True for name in SELECTIVITIES if flags[name][i]}, "n": i} for i in range(rows)
    ]


def load(dsn: str, collection: str, rows: int, dim: int) -> PGVStore:
    """The collection, loaded unless an earlier run left it with `rows` rows."""
    store = PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=dsn,
        collection=collection,
        maintenance_work_mem="1GB",
        bulk_rebuild_rows=max(1, rows // 2),
    )
    if store.count() == rows:
        return store
    store.delete_collection()
    vecs = latent_vectors(rows, dim)
    metas = flag_metadata(rows)
    step = 100_000
    for start in range(0, rows, step):
        end = min(rows, start + step)
        store.add_embeddings(
            [f"row {i}" for i in range(start, end)],
            vecs[start:end],
            metas[start:end],
            ids=[str(i) for i in range(start, end)],
        )
    return store


def compare(
    dsn: str, store: PGVStore, qs: np.ndarray, k: int, ef_search: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Every contender at every selectivity; the summary per selectivity."""
    table = sql.Identifier(store._configured.table.schema, store.collection)
    head = sql.SQL(
        "SELECT id, content, metadata, embedding <=> %(q)s AS distance FROM {} WHERE metadata @> %(f)s"
    ).format(table)
    exact = head + sql.SQL(" ORDER BY (embedding <=> %(q)s) + 0 LIMIT %(k)s")
    ann = (
        sql.SQL("WITH a AS MATERIALIZED (")
        + head
        + sql.SQL(" ORDER BY embedding <=> %(q)s LIMIT %(k)s) SELECT * FROM a ORDER BY distance")
    )
    conns: list[psycopg.Connection[Any]] = []

    def connect(*settings: str) -> psycopg.Connection[Any]:
        conn = psycopg.connect(dsn, autocommit=True)
        register_vector(conn)
        for name_value in settings:
            name, value = name_value.split("=")
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        conns.append(conn)
        return conn

    forced = ("enable_seqscan=off", "enable_bitmapscan=off", f"hnsw.ef_search={ef_search}")
    truth_conn = connect("enable_indexscan=off")
    raw: dict[str, tuple[psycopg.Connection[Any], sql.Composable]] = {
        "raw exact": (connect(), exact),
        "raw iterative HNSW": (connect("hnsw.iterative_scan=relaxed_order", *forced), ann),
        "post-filter HNSW": (connect(*forced), ann),
    }
    results: dict[str, Any] = {}
    try:
        for flag, p in SELECTIVITIES.items():
            f = Jsonb({flag: True})
            filt = {flag: True}
            truth = [
                {r[0] for r in truth_conn.execute(exact, {"q": Vector(q), "f": f, "k": k})}
                for q in qs
            ]
            pids = {name: [c.info.backend_pid] for name, (c, _) in raw.items()}
            pids["pgvstore"] = pool_pids(store)
            calls: dict[str, Callable[[int], list[str]]] = {
                name: (
                    lambda i, c=c, s=s, f=f: [
                        r[0] for r in c.execute(s, {"q": Vector(qs[i]), "f": f, "k": k}).fetchall()
                    ]
                )
                for name, (c, s) in raw.items()
            }
            calls["pgvstore"] = lambda i, filt=filt: [
                d.id  # type: ignore[misc]
                for d, _ in store.similarity_search_with_score_by_vector(
                    [float(x) for x in qs[i]], k=k, filter=filt, ef_search=ef_search
                )
            ]
            for call in calls.values():  # warm-up: sessions, prepared statements
                for i in range(3):
                    call(i)
            lat: dict[str, list[float]] = {n: [] for n in calls}
            cpu: dict[str, list[float]] = {n: [] for n in calls}
            rec: dict[str, list[float]] = {n: [] for n in calls}
            got: dict[str, list[int]] = {n: [] for n in calls}
            for i in range(len(qs)):
                for name in shuffled(list(calls), rng):
                    s0, c0 = backend_cpu(pids[name]), time.process_time()
                    t0 = time.perf_counter()
                    ids = calls[name](i)
                    lat[name].append((time.perf_counter() - t0) * 1000)
                    cpu[name].append(
                        (time.process_time() - c0 + backend_cpu(pids[name]) - s0) * 1000
                    )
                    rec[name].append(len(truth[i] & set(ids)) / max(1, len(truth[i])))
                    got[name].append(len(ids))
            best = min(statistics.median(lat[n]) for n in RAW)
            best_cpu = min(statistics.median(cpu[n]) for n in RAW)
            results[flag] = {
                "selectivity": p,
                "contenders": {
                    n: {
                        "p50_ms": statistics.median(lat[n]),
                        "p95_ms": float(np.percentile(lat[n], 95)),
                        "recall_at_10": float(np.mean(rec[n])),
                        "min_rows": int(min(got[n])),
                        "ratio_p50_vs_faster_raw": statistics.median(lat[n]) / best,
                        "cpu_p50_ms": statistics.median(cpu[n]),
                        "cpu_ratio_vs_faster_raw": statistics.median(cpu[n]) / best_cpu,
                    }
                    for n in calls
                },
                "loadavg": os.getloadavg(),
            }
            print(f"selectivity {p:.1%} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        for conn in conns:
            conn.close()
    return results


def print_results(title: str, results: dict[str, Any]) -> None:
    rows = []
    for r in results.values():
        for name, c in r["contenders"].items():
            rows.append(
                [
                    f"{r['selectivity']:.1%}",
                    name,
                    c["p50_ms"],
                    c["p95_ms"],
                    f"{c['ratio_p50_vs_faster_raw']:.2f}x",
                    c["cpu_p50_ms"],
                    f"{c['cpu_ratio_vs_faster_raw']:.2f}x",
                    c["recall_at_10"],
                    c["min_rows"],
                ]
            )
    print(f"\n{title}")
    print_table(
        ["selectivity", "contender", "p50 ms", "p95 ms", "p50 / faster raw", "CPU ms",
         "CPU / faster raw", "recall@10", "min rows"],
        rows,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ef-search", type=int, default=100)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "filtered")

    dsn, server = server_dsn()
    load_start = os.getloadavg()
    try:
        t0 = time.perf_counter()
        store = load(dsn, f"filtered_{args.rows}x{args.dim}", args.rows, args.dim)
        print(f"loaded {args.rows:,} x {args.dim}-d in {time.perf_counter() - t0:.1f}s", flush=True)
        qs = latent_vectors(args.queries, args.dim, seed=99)
        try:
            results = compare(dsn, store, qs, args.k, args.ef_search, np.random.default_rng(3))
        finally:
            store.close()
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()
    print_results(
        f"filtered k={args.k} search, {args.rows:,} x {args.dim}-d, HNSW m=16 ef_construction=64,"
        f" ef_search={args.ef_search}, {args.queries} queries; load average {load_start} at the"
        f" start, {env['loadavg']} at the end",
        results,
    )
    path = write_report(
        out,
        {
            "benchmark": "filtered",
            "rows": args.rows,
            "dim": args.dim,
            "queries": args.queries,
            "k": args.k,
            "ef_search": args.ef_search,
            "loadavg_start": load_start,
            "results": results,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
