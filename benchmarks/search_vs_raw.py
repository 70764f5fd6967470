"""Similarity search against the same statement run raw: HNSW and IVFFlat, with and without knobs.

    python benchmarks/search_vs_raw.py [--sizes 10000 100000] [--dim 384] [--queries 200]
                                       [--passes 2] [--out PATH]

For each size, the same rows (`_common.documents`, clustered unit vectors) are
loaded into two collections, one with the default HNSW index and one with
IVFFlat (rows / 1000 lists). Each collection is searched (k=10) in two
workloads:

- `default`: `similarity_search_with_score_by_vector(q, k=10)`;
- `knobs`: the same with `ef_search=100` (HNSW) or `probes=10` (IVFFlat).

Contenders, for each workload:

- `pgvstore`: a store of its own per workload (its own pool): on the store's
  own connections the settings are session settings, sent when they differ
  from what the connection has;
- `raw psycopg`: the store's own statement (rendered from its builders before
  timing, parameters prebuilt) on one autocommit connection that has the same
  settings as session settings (`set_config(..., false)` once);
- with knobs also `pgvstore, lent pool` (a `ConnectionPool` passed as
  `connection=`: the settings are transaction-local, in one pipeline with the
  query) against `raw psycopg, pipeline` (the same `set_config(..., true)` and
  query in one pipeline on one connection).

All contenders of a collection run interleaved, query by query, in a random
(seeded) order. Each call's rows are checked: k rows, the same ids as its raw
baseline, and recall@10 against an exact scan. Prints p50/p95, the ratio of
each p50 to its raw baseline's, the CPU per call on both sides (client
process time, and the server backend's run time from /proc/PID/schedstat:
on a loaded machine wall time is mostly waiting for a core) and its ratio,
and the load average;
writes benchmarks/results/search_vs_raw.json (other settings: `--out`).
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
from psycopg_pool import ConnectionPool

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    LookupEmbedding,
    backend_cpu,
    clustered_vectors,
    documents,
    environment,
    output_argument,
    pool_pids,
    print_table,
    queries,
    report_path,
    search_query,
    server_dsn,
    shuffled,
    summary_ms,
    write_report,
)

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore import HNSWIndex, IVFFlatIndex, PGVStore  # noqa: E402
from langchain_pgvstore._sql.settings import set_configs  # noqa: E402

KNOBS = {
    "hnsw": {"ef_search": 100},
    "ivfflat": {"probes": 10},
}  # probes: sqrt(lists) at 100,000 rows
Call = Callable[[int], list[str]]  # query index -> ids returned


def load(dsn: str, name: str, index: Any, texts: list[str], metas: list[Any], ids: list[str],
         vecs: np.ndarray, dim: int) -> None:  # fmt: skip
    store = PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=dsn,
        collection=name,
        index=index,
        maintenance_work_mem="1GB",
    )
    try:
        store.delete_collection()
        store.add_embeddings(texts, vecs, metas, ids=ids)
    finally:
        store.close()


def exact_ids(conn: psycopg.Connection[Any], table: str, qs: np.ndarray, k: int) -> list[set[str]]:
    stmt = sql.SQL("SELECT id FROM {} ORDER BY (embedding <=> %s) + 0 LIMIT %s").format(
        sql.Identifier(table)
    )
    return [{r[0] for r in conn.execute(stmt, (Vector(q), k)).fetchall()} for q in qs]


def run_collection(
    dsn: str, name: str, kind: str, qs: np.ndarray, k: int, passes: int, rng: np.random.Generator
) -> dict[str, Any]:
    qlists = [[float(x) for x in q] for q in qs]  # what an embedding model hands over
    knobs = KNOBS[kind]
    closers: list[Callable[[], None]] = []

    def store(**kwargs: Any) -> PGVStore:
        s = PGVStore(LookupEmbedding(len(qs[0])), collection=name, **kwargs)  # type: ignore[arg-type]
        closers.append(s.close)
        return s

    def raw_conn() -> psycopg.Connection[Any]:
        c = psycopg.connect(dsn, autocommit=True)
        register_vector(c)
        closers.append(c.close)
        return c

    lent = ConnectionPool(dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True)
    closers.append(lent.close)
    plain, tuned, tuned_lent = store(connection=dsn), store(connection=dsn), store(connection=lent)
    raw_plain, raw_tuned, raw_pipe = raw_conn(), raw_conn(), raw_conn()

    # the store's own statements, rendered once
    plain.similarity_search_by_vector(qlists[0], k=1)
    stmts: dict[str, list[tuple[bytes, tuple[Any, ...]]]] = {"default": [], "knobs": []}
    local: list[tuple[bytes, tuple[Any, ...]]] = []
    for q in qs:
        vec = plain._query_vector(q)
        query = search_query(plain, vec, k)
        assert not query.settings, query.settings
        stmts["default"].append((query.frag.sql.as_bytes(raw_plain), query.frag.params))
        query = search_query(plain, vec, k, **knobs)
        stmts["knobs"].append((query.frag.sql.as_bytes(raw_plain), query.frag.params))
        settings = query.settings
    assert settings.ef_search_at_least is None
    names, values = zip(*settings.values, strict=True)
    session = set_configs(list(names), list(values), local=False)
    raw_tuned.execute(session.sql, session.params)
    local = [(f.sql.as_bytes(raw_pipe), f.params) for f in settings.local_frags()]

    def raw_fetch(conn: psycopg.Connection[Any], workload: str) -> Call:
        def call(i: int) -> list[str]:
            sql_, params = stmts[workload][i]
            return [r[0] for r in conn.execute(sql_, params).fetchall()]

        return call

    def raw_pipeline(i: int) -> list[str]:
        sql_, params = stmts["knobs"][i]
        with raw_pipe.pipeline():
            for s_sql, s_params in local:
                raw_pipe.execute(s_sql, s_params, prepare=False)
            cur = raw_pipe.execute(sql_, params, prepare=False)
        return [r[0] for r in cur.fetchall()]

    def ours(s: PGVStore, **kw: Any) -> Call:
        return lambda i: [
            d.id
            for d, _ in s.similarity_search_with_score_by_vector(qlists[i], k=k, **kw)  # type: ignore[misc]
        ]

    # (workload, contender) -> (call, its baseline)
    contenders: dict[tuple[str, str], tuple[Call, str]] = {
        ("default", "pgvstore"): (ours(plain), "raw psycopg"),
        ("default", "raw psycopg"): (raw_fetch(raw_plain, "default"), "raw psycopg"),
        ("knobs", "pgvstore"): (ours(tuned, **knobs), "raw psycopg"),
        ("knobs", "raw psycopg"): (raw_fetch(raw_tuned, "knobs"), "raw psycopg"),
        ("knobs", "pgvstore, lent pool"): (ours(tuned_lent, **knobs), "raw psycopg, pipeline"),
        ("knobs", "raw psycopg, pipeline"): (raw_pipeline, "raw psycopg, pipeline"),
    }
    pids = {
        ("default", "pgvstore"): lambda: pool_pids(plain),
        ("default", "raw psycopg"): lambda: [raw_plain.info.backend_pid],
        ("knobs", "pgvstore"): lambda: pool_pids(tuned),
        ("knobs", "raw psycopg"): lambda: [raw_tuned.info.backend_pid],
        ("knobs", "pgvstore, lent pool"): lambda: [c.info.backend_pid for c in list(lent._pool)],
        ("knobs", "raw psycopg, pipeline"): lambda: [raw_pipe.info.backend_pid],
    }
    truth = exact_ids(raw_plain, name, qs, k)
    try:
        for call, _ in contenders.values():  # warm-up: pools, sessions, prepared statements
            for i in range(8):
                call(i)
        backends = {key: pids[key]() for key in contenders}
        lat: dict[tuple[str, str], list[float]] = {c: [] for c in contenders}
        cpu: dict[tuple[str, str], list[float]] = {c: [] for c in contenders}
        server: dict[tuple[str, str], list[float]] = {c: [] for c in contenders}
        rec: dict[tuple[str, str], list[float]] = {c: [] for c in contenders}
        rows: dict[tuple[str, str], list[int]] = {c: [] for c in contenders}
        same: dict[tuple[str, str], list[bool]] = {c: [] for c in contenders}
        keys = list(contenders)
        for _ in range(passes):
            for i in range(len(qs)):
                got: dict[tuple[str, str], list[str]] = {}
                for key in shuffled(keys, rng):
                    call = contenders[key][0]
                    s0, c0 = backend_cpu(backends[key]), time.process_time()
                    t0 = time.perf_counter()
                    ids = call(i)
                    lat[key].append(time.perf_counter() - t0)
                    cpu[key].append(time.process_time() - c0)
                    server[key].append(backend_cpu(backends[key]) - s0)
                    got[key] = ids
                for key in keys:
                    ids = got[key]
                    rows[key].append(len(ids))
                    rec[key].append(len(truth[i] & set(ids)) / k)
                    base = got[(key[0], contenders[key][1])]
                    same[key].append(ids == base)
    finally:
        for close in reversed(closers):
            close()
    out: dict[str, Any] = {}
    for key in keys:
        s = summary_ms(lat[key])
        base = summary_ms(lat[(key[0], contenders[key][1])])
        s["baseline"] = contenders[key][1]
        s["ratio_p50"] = s["p50_ms"] / base["p50_ms"]
        s["client_cpu_ms"] = statistics.median(cpu[key]) * 1000
        s["server_cpu_ms"] = statistics.median(server[key]) * 1000
        both = [a + b for a, b in zip(cpu[key], server[key], strict=True)]
        base_key = (key[0], contenders[key][1])
        base_both = [a + b for a, b in zip(cpu[base_key], server[base_key], strict=True)]
        s["cpu_ms"] = statistics.median(both) * 1000
        s["cpu_ratio"] = statistics.median(both) / statistics.median(base_both)
        s["recall_at_10"] = float(np.mean(rec[key]))
        s["min_rows"] = int(min(rows[key]))
        s["same_ids_as_baseline"] = float(np.mean(same[key]))
        out.setdefault(key[0], {})[key[1]] = s
    out["knobs_used"] = knobs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "search_vs_raw")

    dsn, server = server_dsn()
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    rng = np.random.default_rng(5)
    try:
        for rows in args.sizes:
            texts, metas, ids = documents(rows)
            vecs = clustered_vectors(rows, args.dim)
            qs = queries(args.queries, args.dim)
            for kind, index in (("hnsw", HNSWIndex()), ("ivfflat", IVFFlatIndex())):
                name = f"svr_{kind}_{rows}"
                t0 = time.perf_counter()
                load(dsn, name, index, texts, metas, ids, vecs, args.dim)
                print(f"loaded {name} in {time.perf_counter() - t0:.0f}s", flush=True)
                key = f"{rows}/{kind}"
                results[key] = run_collection(dsn, name, kind, qs, args.k, args.passes, rng)
                results[key]["loadavg"] = os.getloadavg()
                print_results(key, results[key])
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()
    print(f"\nload average at the start {load_start}, at the end {env['loadavg']}")
    path = write_report(
        out,
        {
            "benchmark": "search_vs_raw",
            "sizes": args.sizes,
            "dim": args.dim,
            "queries": args.queries,
            "passes": args.passes,
            "k": args.k,
            "library": langchain_pgvstore.__file__,
            "loadavg_start": load_start,
            "results": results,
            "environment": env,
        },
    )
    print(f"wrote {path}")


def print_results(key: str, r: dict[str, Any]) -> None:
    rows = []
    for workload in ("default", "knobs"):
        for name, s in r[workload].items():
            rows.append(
                [
                    workload,
                    name,
                    s["p50_ms"],
                    s["p95_ms"],
                    f"{s['ratio_p50']:.2f}x",
                    s["client_cpu_ms"],
                    s["server_cpu_ms"],
                    f"{s['cpu_ratio']:.2f}x",
                    s["recall_at_10"],
                    s["min_rows"],
                    f"{s['same_ids_as_baseline']:.2f}",
                ]
            )
    la = ", ".join(f"{x:.1f}" for x in r["loadavg"])
    print(f"\n{key} (knobs {r['knobs_used']}; load average {la})")
    print_table(
        ["workload", "contender", "p50 ms", "p95 ms", "p50/base", "client CPU ms",
         "server CPU ms", "CPU/base", "recall@10", "min rows", "same ids"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
