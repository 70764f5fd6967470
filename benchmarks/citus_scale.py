"""Collections distributed over Citus against the same collections on one node, through PGVStore.

    python benchmarks/citus_scale.py [--citus-dsn DSN] [--rows 100000] [--dim 384]
                                     [--queries 50] [--out PATH]

Runs on a Citus coordinator (`--citus-dsn`, default `$PGVSTORE_CITUS_DSN`; the
local test cluster is `../shared/citus/cluster up`: a coordinator and two
workers on this machine). The one-node baseline is a plain collection on the
coordinator itself, made by the same store without `distributed=True` (schema
`citus_scale_local`): same server binary, same machine, same data, so the
ratios compare distribution against one node and nothing else.

`--rows` clustered unit vectors × `--dim` (`_common.clustered_vectors`) and the
standard documents, in five collections:

- `single`: one node, not distributed; `dist32`: distributed by id with the
  default shard count (`citus.shard_count`, 32); `dist4`: `shard_count=4`;
- `tenants`: one node, `multi_tenant=True`; `tenants_dist`: multi-tenant and
  distributed (by tenant, default shard count). Rows are assigned to tenants at
  random: `t10pct` holds 10% of them, `t1pct` 1%, the rest spread over 100
  tenants, so a tenant's rows are scattered over the vector space.

Ingest: `add_embeddings` of all rows into a fresh collection created with
`index=None` (the store's binary COPY, the BM25 statistics, the GIN indexes),
then `create_index()` (HNSW, m=16, ef_construction=64, maintenance_work_mem
1GB) timed apart; a multi-tenant collection is loaded one `for_tenant(t)` call
per tenant. Searches then go through stores opened with that index, as an
application opens them (a store opened with `index=None` searches as one
without an ANN index: a tenant's search would not take the filtered path). The baseline is raw binary COPY (pgvector-python's example) into a
plain local table with the same columns and GIN indexes, in one transaction.

Search: `similarity_search_by_vector(q, k=10)` with the store's defaults, on
the whole collection (fan-out: every shard answers from its own HNSW, the
coordinator merges) and on one tenant (`for_tenant(t)`: routed to one shard).
Contenders run interleaved, query by query in a seeded random order, after a
warm-up; p50 and the ratio to the one-node contender of the same group.
Recall@10 is against exact search in numpy over the same vectors (the tenant's
rows for a tenant search).

The cluster shares this machine's cores with everything else: read the
ratios and the recall, and the load averages recorded before and after each
part. Writes benchmarks/results/citus_scale.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    LookupEmbedding,
    clustered_vectors,
    copy_rows,
    create_raw_table,
    documents,
    environment,
    output_argument,
    print_table,
    queries,
    report_path,
    shuffled,
    summary_ms,
    write_report,
)

from langchain_pgvstore import HNSWIndex, PGVStore  # noqa: E402

LOCAL = "citus_scale_local"
WARMUP = 5
INDEX = HNSWIndex(m=16, ef_construction=64)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def tenants_of(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    order = rng.permutation(rows)
    tenant = np.array([f"t{i:03d}" for i in rng.integers(0, 100, size=rows)], dtype=object)
    tenant[order[: rows // 10]] = "t10pct"
    tenant[order[rows // 10 : rows // 10 + rows // 100]] = "t1pct"
    return tenant


def open_store(dsn: str, name: str, dim: int, index: HNSWIndex | None, **kw: Any) -> PGVStore:
    return PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=dsn,
        collection=name,
        index=index,
        maintenance_work_mem="1GB",
        **kw,
    )


def exact_top(vecs: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> set[int]:
    idx = np.arange(len(vecs)) if rows is None else rows
    scores = vecs[idx] @ q
    return {int(i) for i in idx[np.argsort(-scores)[:k]]}


def ingest(
    dsn: str, stores: dict[str, PGVStore], data: dict[str, Any], tenant: np.ndarray
) -> dict[str, Any]:
    texts, metas, ids, vecs = data["texts"], data["metas"], data["ids"], data["vecs"]
    rows = len(ids)
    out: dict[str, Any] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        raw = sql.Identifier(LOCAL, "raw_copy")
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(raw))
        create_raw_table(conn, raw, vecs.shape[1])
        register_vector(conn)
        before = load()
        t0 = time.perf_counter()
        with conn.transaction():
            copy_rows(conn, raw, texts, metas, ids, vecs)
        seconds = time.perf_counter() - t0
        conn.execute(sql.SQL("DROP TABLE {}").format(raw))
    out["raw COPY, local table"] = {
        "load_s": seconds,
        "docs_per_s": rows / seconds,
        "loadavg_before": before,
    }
    groups = {t: np.flatnonzero(tenant == t) for t in sorted(set(tenant))}
    for name, store in stores.items():
        before = load()
        t0 = time.perf_counter()
        if store.tenant is None and name.startswith("tenants"):
            for t, rows_of in groups.items():
                store.for_tenant(t).add_embeddings(
                    [texts[i] for i in rows_of],
                    vecs[rows_of],
                    [metas[i] for i in rows_of],
                    ids=[ids[i] for i in rows_of],
                )
        else:
            store.add_embeddings(texts, vecs, metas, ids=ids)
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        store.create_index(INDEX)
        build = time.perf_counter() - t1
        with psycopg.connect(dsn, autocommit=True) as conn:
            schema = LOCAL if name in ("single", "tenants") else "public"
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, store.collection)))
        out[name] = {
            "load_s": seconds,
            "docs_per_s": rows / seconds,
            "hnsw_build_s": build,
            "loadavg_before": before,
        }
        print(f"{name}: {rows / seconds:,.0f} docs/s, HNSW {build:.1f} s", flush=True)
    return out


def search_group(
    contenders: dict[str, tuple[Callable[[list[float]], list[str]], np.ndarray | None]],
    vecs: np.ndarray,
    qs: np.ndarray,
    k: int,
    baseline: str,
) -> dict[str, Any]:
    """Each contender: (search by vector -> ids, the rows it searches or None for all)."""
    rng = np.random.default_rng(11)
    names = list(contenders)
    for q in qs[:WARMUP]:
        for name in names:
            contenders[name][0](q.tolist())
    seconds: dict[str, list[float]] = {n: [] for n in names}
    recall: dict[str, list[float]] = {n: [] for n in names}
    before = load()
    for q in qs:
        vector = q.tolist()
        for name in shuffled(names, rng):
            run, rows = contenders[name]
            t0 = time.perf_counter()
            found = run(vector)
            seconds[name].append(time.perf_counter() - t0)
            truth = exact_top(vecs, q, k, rows)
            recall[name].append(len({int(i.removeprefix("doc-")) for i in found} & truth) / k)
    base = summary_ms(seconds[baseline])["p50_ms"]
    result = {}
    for name in names:
        s = summary_ms(seconds[name])
        result[name] = {
            **s,
            "vs_one_node": s["p50_ms"] / base,
            "recall_at_10": float(np.mean(recall[name])),
        }
    return {"loadavg_before": before, "loadavg_after": load(), "contenders": result}


def searcher(store: PGVStore, k: int) -> Callable[[list[float]], list[str]]:
    def run(vector: list[float]) -> list[str]:
        return [str(d.id) for d in store.similarity_search_by_vector(vector, k=k)]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--citus-dsn", default=os.environ.get("PGVSTORE_CITUS_DSN"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "citus_scale", neutral=("citus_dsn",))
    if not args.citus_dsn:
        parser.error("a Citus coordinator is needed: --citus-dsn or PGVSTORE_CITUS_DSN")
    dsn = args.citus_dsn
    started = time.perf_counter()
    texts, metas, ids = documents(args.rows)
    vecs = clustered_vectors(args.rows, args.dim)
    qs = queries(args.queries + WARMUP, args.dim)
    tenant = tenants_of(args.rows)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(LOCAL)))
        shards = conn.execute("SHOW citus.shard_count").fetchone()[0]  # type: ignore[index]
        workers = conn.execute("SELECT count(*) FROM pg_dist_node WHERE groupid <> 0").fetchone()
    env = environment(dsn)
    layouts: dict[str, tuple[str, dict[str, Any]]] = {
        "single": ("citus_scale_single", {"schema": LOCAL}),
        "dist32": ("citus_scale_dist32", {"distributed": True}),
        "dist4": ("citus_scale_dist4", {"distributed": True, "shard_count": 4}),
        "tenants": ("citus_scale_tenants", {"schema": LOCAL, "multi_tenant": True}),
        "tenants_dist": ("citus_scale_tenants_dist", {"multi_tenant": True, "distributed": True}),
    }
    # loaded without an index (built afterwards, timed apart); searched through stores
    # opened as an application opens them, with the index the collection has
    stores = {n: open_store(dsn, c, args.dim, None, **kw) for n, (c, kw) in layouts.items()}
    try:
        for store in stores.values():
            store.delete_collection()
        loading = ingest(
            dsn, stores, {"texts": texts, "metas": metas, "ids": ids, "vecs": vecs}, tenant
        )
        for store in stores.values():
            store.close()
        stores = {n: open_store(dsn, c, args.dim, INDEX, **kw) for n, (c, kw) in layouts.items()}
        body = qs[WARMUP:]
        k = args.k
        fan_out = search_group(
            {
                "one node": (searcher(stores["single"], k), None),
                f"distributed by id, {shards} shards": (searcher(stores["dist32"], k), None),
                "distributed by id, 4 shards": (searcher(stores["dist4"], k), None),
            },
            vecs,
            np.vstack([qs[:WARMUP], body]),
            k,
            "one node",
        )
        routed = {}
        for t in ("t1pct", "t10pct"):
            rows_of = np.flatnonzero(tenant == t)
            routed[t] = search_group(
                {
                    "one node, multi-tenant": (
                        searcher(stores["tenants"].for_tenant(t), k),
                        rows_of,
                    ),
                    f"distributed by tenant, {shards} shards": (
                        searcher(stores["tenants_dist"].for_tenant(t), k),
                        rows_of,
                    ),
                },  # fmt: skip
                vecs,
                np.vstack([qs[:WARMUP], body]),
                k,
                "one node, multi-tenant",
            )
            routed[t]["rows"] = len(rows_of)
    finally:
        for store in stores.values():
            store.delete_collection()
            store.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(LOCAL)))

    print(f"\nIngest, {args.rows:,} × {args.dim} (load before each)")
    raw = loading["raw COPY, local table"]["docs_per_s"]
    print_table(
        ["collection", "docs/s", "vs raw COPY", "HNSW build s", "load"],
        [
            [n, v["docs_per_s"], v["docs_per_s"] / raw, v.get("hnsw_build_s", "-"),
             v["loadavg_before"][0]]
            for n, v in loading.items()
        ],
    )  # fmt: skip
    for title, group in [("fan-out, whole collection", fan_out)] + [
        (f"tenant {t} ({g['rows']:,} rows)", g) for t, g in routed.items()
    ]:
        print(
            f"\nSearch k={k}, {title}; load {group['loadavg_before']} -> {group['loadavg_after']}"
        )
        print_table(
            ["contender", "p50 ms", "p95 ms", "vs one node", "recall@10"],
            [
                [n, v["p50_ms"], v["p95_ms"], v["vs_one_node"], v["recall_at_10"]]
                for n, v in group["contenders"].items()
            ],
        )
    path = write_report(
        out,
        {
            "benchmark": "citus_scale",
            "rows": args.rows,
            "dim": args.dim,
            "queries": args.queries,
            "k": k,
            "workers": workers[0] if workers else None,
            "default_shard_count": int(shards),
            "ingest": loading,
            "fan_out": fan_out,
            "tenant_routed": routed,
            "seconds": time.perf_counter() - started,
            "loadavg_end": load(),
            "environment": env,
        },
    )
    print(f"\nwrote {path} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
