"""Sixteen concurrent clients, threads and asyncio: the store against raw psycopg on the same pool.

    python benchmarks/concurrency.py [--rows 100000] [--dim 384] [--clients 16] [--pool 8]
                                     [--calls 8] [--rounds 30] [--k 10] [--out PATH]

Loads `rows` clustered vectors (`_common.load_ours`: the default HNSW index,
cosine; an existing collection with the same rows on `PGVSTORE_BENCH_DSN` is
reused). Each round starts `--clients` clients at once, each making `--calls`
similarity searches (k=10) one after another, and waits for all of them;
throughput is calls / the round's wall time. Contenders, each run the same way
with threads (a pool of `--clients` threads) and with asyncio (`--clients`
tasks on one event loop):

- raw psycopg: `pool.connection()` and the store's own statement, rendered
  once per query vector from its builders;
- pgvstore, lent pool: `PGVStore(connection=pool)` on that same pool;
- pgvstore, own pool: `PGVStore(connection=dsn, pool_size=--pool)`.

Every pool holds `--pool` connections (min = max, autocommit, pgvector types
registered). Rounds alternate between contenders in a random (seeded) order
per round; medians over rounds, each contender's ratio to raw psycopg of the
same kind (threads or asyncio), the calls' p50 / p95, the rows each call
returned, and the client process's CPU time per call. Writes
benchmarks/results/concurrency.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector, register_vector_async
from psycopg_pool import AsyncConnectionPool, ConnectionPool

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    LookupEmbedding,
    dataset_name,
    environment,
    load_ours,
    output_argument,
    print_table,
    queries,
    report_path,
    search_query,
    server_dsn,
    shuffled,
    write_report,
)

from langchain_pgvstore import PGVStore  # noqa: E402

Sync = Callable[[int], int]
Async = Callable[[int], Awaitable[int]]


def summary(
    rounds: list[float], latencies: list[float], rows: list[int], cpu: list[float], calls: int
) -> dict[str, Any]:
    return {
        "round_seconds": rounds,
        "median_round_s": statistics.median(rounds),
        "throughput_qps": calls / statistics.median(rounds),
        "call_p50_ms": statistics.median(latencies) * 1000,
        "call_p95_ms": float(np.percentile(latencies, 95)) * 1000,
        "min_rows": min(rows),
        "client_cpu_per_call_ms": statistics.median(cpu) * 1000,
    }


def run_threads(
    contenders: dict[str, Sync], clients: int, calls: int, rounds: int, n_queries: int
) -> dict[str, Any]:
    per_round: dict[str, list[float]] = {name: [] for name in contenders}
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    rows: dict[str, list[int]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}

    def client(name: str, first: int) -> None:
        fn = contenders[name]
        for j in range(calls):
            start = time.perf_counter()
            got = fn((first + j) % n_queries)
            latencies[name].append(time.perf_counter() - start)
            rows[name].append(got)

    with ThreadPoolExecutor(clients) as pool:
        for fn in contenders.values():  # warm-up: pools, sessions, prepared statements
            list(pool.map(fn, range(clients * 3)))
        rng = np.random.default_rng(11)
        for r in range(rounds):
            for name in shuffled(list(contenders), rng):
                base = r * clients * calls
                cpu0, start = time.process_time(), time.perf_counter()
                futures = [pool.submit(client, name, base + c * calls) for c in range(clients)]
                for f in futures:
                    f.result()
                per_round[name].append(time.perf_counter() - start)
                cpu[name].append((time.process_time() - cpu0) / (clients * calls))
    total = clients * calls
    return {
        name: summary(per_round[name], latencies[name], rows[name], cpu[name], total)
        for name in contenders
    }


async def run_async(
    contenders: dict[str, Async], clients: int, calls: int, rounds: int, n_queries: int
) -> dict[str, Any]:
    per_round: dict[str, list[float]] = {name: [] for name in contenders}
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    rows: dict[str, list[int]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}

    async def client(name: str, first: int) -> None:
        fn = contenders[name]
        for j in range(calls):
            start = time.perf_counter()
            got = await fn((first + j) % n_queries)
            latencies[name].append(time.perf_counter() - start)
            rows[name].append(got)

    for fn in contenders.values():
        for _ in range(3):
            await asyncio.gather(*(fn(i) for i in range(clients)))
    rng = np.random.default_rng(12)
    for r in range(rounds):
        for name in shuffled(list(contenders), rng):
            base = r * clients * calls
            cpu0, start = time.process_time(), time.perf_counter()
            await asyncio.gather(*(client(name, base + c * calls) for c in range(clients)))
            per_round[name].append(time.perf_counter() - start)
            cpu[name].append((time.process_time() - cpu0) / (clients * calls))
    total = clients * calls
    return {
        name: summary(per_round[name], latencies[name], rows[name], cpu[name], total)
        for name in contenders
    }


def measure(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    qs = queries(256, args.dim)
    qlists = [[float(x) for x in q] for q in qs]
    collection = dataset_name(args.rows, args.dim)
    emb = LookupEmbedding(args.dim)

    def pool_kwargs() -> dict[str, Any]:
        return {"min_size": args.pool, "max_size": args.pool, "kwargs": {"autocommit": True}}

    pool: ConnectionPool[Any] = ConnectionPool(
        dsn, configure=register_vector, open=True, **pool_kwargs()
    )
    lent = PGVStore(emb, connection=pool, collection=collection)  # type: ignore[arg-type]
    own = PGVStore(emb, connection=dsn, collection=collection, pool_size=args.pool)  # type: ignore[arg-type]
    # the store's own statement for each query vector, rendered once
    with pool.connection() as conn:
        statements = []
        for q in qs:
            query = search_query(lent, lent._query_vector(q), args.k)
            assert not query.settings, query.settings
            statements.append((query.frag.sql.as_bytes(conn), query.frag.params))

    def raw(i: int) -> int:
        sql_, params = statements[i]
        with pool.connection() as conn:
            return len(conn.execute(sql_, params).fetchall())

    threads: dict[str, Sync] = {
        "raw psycopg": raw,
        "pgvstore, lent pool": lambda i: len(lent.similarity_search_by_vector(qlists[i], k=args.k)),
        "pgvstore, own pool": lambda i: len(own.similarity_search_by_vector(qlists[i], k=args.k)),
    }
    try:
        print("threads...", flush=True)
        by_threads = run_threads(threads, args.clients, args.calls, args.rounds, len(qs))
    finally:
        lent.close()
        pool.close()

    async def with_asyncio() -> dict[str, Any]:
        apool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn, configure=register_vector_async, open=False, **pool_kwargs()
        )
        await apool.open(wait=True)
        alent = PGVStore(emb, connection=apool, collection=collection)  # type: ignore[arg-type]

        async def araw(i: int) -> int:
            sql_, params = statements[i]
            async with apool.connection() as conn:
                cur = await conn.execute(sql_, params)
                return len(await cur.fetchall())

        async def ours_lent(i: int) -> int:
            return len(await alent.asimilarity_search_by_vector(qlists[i], k=args.k))

        async def ours_own(i: int) -> int:
            return len(await own.asimilarity_search_by_vector(qlists[i], k=args.k))

        contenders: dict[str, Async] = {
            "raw psycopg": araw,
            "pgvstore, lent pool": ours_lent,
            "pgvstore, own pool": ours_own,
        }
        try:
            return await run_async(contenders, args.clients, args.calls, args.rounds, len(qs))
        finally:
            await alent.aclose()
            await own.aclose()
            await apool.close()

    print("asyncio...", flush=True)
    by_asyncio = asyncio.run(with_asyncio())
    own.close()
    results = {"threads": by_threads, "asyncio": by_asyncio}
    for part in results.values():
        base = part["raw psycopg"]["throughput_qps"]
        for r in part.values():
            r["ratio_vs_raw"] = r["throughput_qps"] / base
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--k", type=int, default=10)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "concurrency")

    dsn, server = server_dsn()
    try:
        t0 = time.perf_counter()
        load_ours(dsn, dataset_name(args.rows, args.dim), args.rows, args.dim).close()
        print(f"data ready in {time.perf_counter() - t0:.0f}s", flush=True)
        load_start = os.getloadavg()
        results = measure(args, dsn)
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()

    payload = {
        "benchmark": "concurrency",
        "rows": args.rows,
        "dim": args.dim,
        "clients": args.clients,
        "pool": args.pool,
        "calls_per_client": args.calls,
        "rounds": args.rounds,
        "k": args.k,
        "loadavg_start": load_start,
        "results": results,
        "environment": env,
    }
    print(
        f"\n{args.clients} clients x {args.calls} calls per round, pool of {args.pool},"
        f" {args.rows:,} x {args.dim}-d; load average {load_start} at the start,"
        f" {env['loadavg']} at the end"
    )
    for kind, part in results.items():
        print_table(
            [kind, "queries/s", "vs raw", "p50 ms", "p95 ms", "client CPU ms/call", "min rows"],
            [[name, r["throughput_qps"], f"{r['ratio_vs_raw']:.2f}x", r["call_p50_ms"],
              r["call_p95_ms"], r["client_cpu_per_call_ms"], r["min_rows"]]
             for name, r in part.items()],
        )  # fmt: skip
    path = write_report(out, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
