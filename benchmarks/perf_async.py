"""Async throughput: 32 concurrent searches on a pool of 8 connections, PGVStore vs raw psycopg.

    python benchmarks/perf_async.py [--rows 100000] [--dim 384] [--concurrency 32] [--pool 8]
                                    [--rounds 40] [--no-incumbents] [--out PATH]

Loads `rows` clustered vectors (HNSW, cosine; an existing collection with the
same rows on `PGVSTORE_BENCH_DSN` is reused). One `AsyncConnectionPool`
(min = max = `--pool`, autocommit, pgvector types registered on connect) is
shared by:

- pgvstore: `PGVStore(connection=pool)`, `asimilarity_search_by_vector(q, k=10)`;
- raw psycopg: `async with pool.connection()` + the store's exact statement;

and, on their own pools of the same size, langchain-postgres v2
(`PGVectorStore` on a SQLAlchemy asyncpg engine, pool_size=8) and v1
(`PGVector(async_mode=True)` on a SQLAlchemy psycopg engine, pool_size=8).

A round launches `--concurrency` calls at once (`asyncio.gather`) and waits
for all; throughput is calls / round wall time. Rounds alternate between
contenders, in a random (seeded) order per round (pgvstore and raw share a
table, so a fixed order would let one always warm pages for the other),
and the medians are reported with
each contender's ratio to raw psycopg and the client process's CPU time per
call (`time.process_time` over the round / calls: on a 2-core machine the
client's single event loop thread competes with the 8 server backends, so
client CPU per call bounds throughput). Writes benchmarks/results/perf_async.json
(other settings, or a patched library on `PYTHONPATH`: `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector, register_vector_async
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    Incumbents,
    LookupEmbedding,
    dataset_name,
    environment,
    load_ours,
    output_argument,
    queries,
    report_path,
    server_dsn,
    shuffled,
    sqlalchemy_url,
    write_report,
)
from report import asyncs as async_table  # noqa: E402

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore import PGVStore  # noqa: E402

Call = Callable[[int], Awaitable[int]]


async def run(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    qs = queries(256, args.dim)
    qlists = [[float(x) for x in q] for q in qs]
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        min_size=args.pool,
        max_size=args.pool,
        kwargs={"autocommit": True},
        configure=register_vector_async,
        open=False,
    )
    await pool.open(wait=True)
    store = PGVStore(
        LookupEmbedding(args.dim),  # type: ignore[arg-type]
        connection=pool,
        collection=dataset_name(args.rows, args.dim),
    )
    # the store's own statement for each query, rendered once
    sync_conn = psycopg.connect(dsn, autocommit=True)
    register_vector(sync_conn)
    spec = await store._aensure(args.dim)
    assert spec is not None
    statements = []
    for q in qs:
        frag, pre = store._search(spec, store._query_vector(q), args.k, None, {})
        assert not pre
        statements.append((frag.sql.as_bytes(sync_conn), frag.params))
    sync_conn.close()

    async def ours(i: int) -> int:
        return len(await store.asimilarity_search_by_vector(qlists[i], k=args.k))

    async def raw(i: int) -> int:
        query, params = statements[i]
        async with pool.connection() as conn:
            cur = await conn.execute(query, params)
            return len(await cur.fetchall())

    contenders: dict[str, Call] = {"pgvstore": ours, "raw psycopg": raw}
    closers: list[Callable[[], Awaitable[Any]]] = [pool.close]
    if not args.no_incumbents:
        from langchain_postgres import PGEngine, PGVector, PGVectorStore
        from sqlalchemy.ext.asyncio import create_async_engine

        emb = LookupEmbedding(args.dim)
        a_engine = create_async_engine(
            sqlalchemy_url(dsn, "asyncpg"), pool_size=args.pool, max_overflow=0
        )
        v2 = await PGVectorStore.create(
            engine=PGEngine.from_engine(a_engine), table_name="lcpg_v2", embedding_service=emb
        )
        p_engine = create_async_engine(
            sqlalchemy_url(dsn, "psycopg"), pool_size=args.pool, max_overflow=0
        )
        v1 = PGVector(
            emb,
            connection=p_engine,
            collection_name=Incumbents.V1_COLLECTION,
            embedding_length=args.dim,
            async_mode=True,
        )

        async def v2_call(i: int) -> int:
            return len(await v2.asimilarity_search_by_vector(qlists[i], k=args.k))

        async def v1_call(i: int) -> int:
            return len(await v1.asimilarity_search_by_vector(qlists[i], k=args.k))

        contenders["langchain-postgres v2"] = v2_call
        contenders["langchain-postgres v1"] = v1_call
        closers += [a_engine.dispose, p_engine.dispose]

    n = args.concurrency
    per_round: dict[str, list[float]] = {name: [] for name in contenders}
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    returned: dict[str, int] = {name: 0 for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}

    async def timed(fn: Call, i: int, sink: list[float]) -> int:
        start = time.perf_counter()
        got = await fn(i)
        sink.append(time.perf_counter() - start)
        return got

    try:
        for fn in contenders.values():  # warm-up: pools, type registration, prepares
            for _ in range(3):
                await asyncio.gather(*(fn(i) for i in range(n)))
        rng = np.random.default_rng(11)
        for r in range(args.rounds):
            for name in shuffled(list(contenders), rng):
                fn = contenders[name]
                base = (r * n) % len(qs)
                cpu0 = time.process_time()
                start = time.perf_counter()
                got = await asyncio.gather(
                    *(timed(fn, (base + j) % len(qs), latencies[name]) for j in range(n))
                )
                per_round[name].append(time.perf_counter() - start)
                cpu[name].append((time.process_time() - cpu0) / n)
                returned[name] += sum(got)
    finally:
        await store.aclose()
        for close in closers:
            await close()

    results: dict[str, Any] = {}
    base_qps = n / statistics.median(per_round["raw psycopg"])
    for name in contenders:
        qps = n / statistics.median(per_round[name])
        results[name] = {
            "round_seconds": per_round[name],
            "median_round_s": statistics.median(per_round[name]),
            "throughput_qps": qps,
            "ratio_vs_raw": qps / base_qps,
            "call_p50_ms": statistics.median(latencies[name]) * 1000,
            "call_p95_ms": sorted(latencies[name])[int(0.95 * len(latencies[name]))] * 1000,
            "rows_per_call": returned[name] / (args.rounds * n),
            "client_cpu_per_call_ms": statistics.median(cpu[name]) * 1000,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-incumbents", action="store_true")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "perf_async")

    dsn, server = server_dsn()
    try:
        t0 = time.perf_counter()
        collection = dataset_name(args.rows, args.dim)
        store = load_ours(dsn, collection, args.rows, args.dim)
        store.close()
        if not args.no_incumbents:
            inc = Incumbents(dsn, args.dim)
            inc.create_v2(collection)
            inc.create_v1(collection)
            inc.close()
        print(f"data ready in {time.perf_counter() - t0:.0f}s", flush=True)
        results = asyncio.run(run(args, dsn))
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()

    payload = {
        "benchmark": "perf_async",
        "rows": args.rows,
        "dim": args.dim,
        "concurrency": args.concurrency,
        "pool": args.pool,
        "rounds": args.rounds,
        "k": args.k,
        "library": langchain_pgvstore.__file__,
        "results": results,
        "environment": env,
    }
    print(f"\n{async_table(payload)}")
    path = write_report(out, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
