"""Searching one tenant of a multi-tenant collection against a table of its own.

    python benchmarks/tenant_recall.py [--rows 100000] [--dim 384] [--queries 50] [--out PATH]

One multi-tenant collection of `--rows` vectors with a low intrinsic dimension
(`_common.latent_vectors`, whose neighbours are well separated, as text
embeddings' are) holds three measured tenants of 0.1 %, 1 % and 10 % of the rows
and one tenant with the rest; each measured tenant's rows are also loaded into
a collection of their own. Both are loaded without an index, then given the
default HNSW index (`create_index()`, the bulk-load recipe).

For each measured tenant and `ef_search` in (default, 100, 200), the tenant's
`similarity_search_by_vector(k=10)` through `for_tenant()` and the same search
on its own collection alternate query by query: p50 latency, recall@10 against
the exact top 10 of the tenant's rows (numpy), and the fewest rows returned.

Writes benchmarks/results/tenant_recall.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    LookupEmbedding,
    environment,
    latent_vectors,
    median,
    output_argument,
    print_table,
    report_path,
    server_dsn,
    write_report,
)
from langchain_pgvstore import HNSWIndex, PGVStore  # noqa: E402

SHARES = {"0.1%": 0.001, "1%": 0.01, "10%": 0.1}
EF = (None, 100, 200)


def tenants_of(rows: int, seed: int = 3) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(rows)
    out = np.array(["rest"] * rows, dtype=object)
    start = 0
    for name, share in SHARES.items():
        size = int(rows * share)
        out[order[start : start + size]] = name
        start += size
    return out


def own_name(tenant: str) -> str:
    return "tenant_recall_own_" + tenant.rstrip("%").replace(".", "_")


def open_store(dsn: str, name: str, dim: int, **kw: Any) -> PGVStore:
    return PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=dsn,
        collection=name,
        index=None,
        maintenance_work_mem="1GB",
        **kw,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "tenant_recall")

    dsn, server = server_dsn()
    try:
        vecs = latent_vectors(args.rows, args.dim)
        queries = latent_vectors(args.queries, args.dim, seed=99)
        tenant = tenants_of(args.rows)
        ids = np.array([str(i) for i in range(args.rows)], dtype=object)

        started = time.perf_counter()
        shared = open_store(dsn, "tenant_recall_shared", args.dim, multi_tenant=True)
        for name in [*SHARES, "rest"]:
            rows = np.flatnonzero(tenant == name)
            view = shared.for_tenant(name)
            for s in range(0, len(rows), 50_000):
                part = rows[s : s + 50_000]
                view.add_embeddings(list(ids[part]), vecs[part], ids=list(ids[part]))
        shared.create_index(HNSWIndex())
        load_shared = time.perf_counter() - started
        own: dict[str, PGVStore] = {}
        for name in SHARES:
            rows = np.flatnonzero(tenant == name)
            own[name] = open_store(
                dsn, f"tenant_recall_own_{name[:-1].replace('.', '_')}", args.dim
            )
            own[name].add_embeddings(list(ids[rows]), vecs[rows], ids=list(ids[rows]))
            own[name].create_index(HNSWIndex())
        # reopened, as an application would open them after the load
        shared = open_store(dsn, "tenant_recall_shared", args.dim, multi_tenant=True)
        for name in SHARES:
            own[name] = open_store(dsn, own_name(name), args.dim)

        results: dict[str, Any] = {}
        table = []
        for name in SHARES:
            rows = np.flatnonzero(tenant == name)
            mine = vecs[rows]
            view = shared.for_tenant(name)
            for ef in EF:
                knobs = {} if ef is None else {"ef_search": ef}
                stats: dict[str, dict[str, list[float]]] = {
                    side: {"ms": [], "recall": [], "rows": []} for side in ("shared", "own")
                }
                for i, q in enumerate(queries):
                    exact = set(ids[rows[np.argsort(-(mine @ q))[:10]]])
                    order = ("shared", "own") if i % 2 == 0 else ("own", "shared")
                    for side in order:
                        store = view if side == "shared" else own[name]
                        t = time.perf_counter()
                        found = store.similarity_search_by_vector(list(q), k=10, **knobs)
                        stats[side]["ms"].append((time.perf_counter() - t) * 1e3)
                        got = {d.id for d in found}
                        stats[side]["recall"].append(len(exact & got) / len(exact))
                        stats[side]["rows"].append(len(found))
                label = "default" if ef is None else str(ef)
                entry = {
                    side: {
                        "p50_ms": median(s["ms"]),
                        "recall_at_10": float(np.mean(s["recall"])),
                        "fewest_rows": int(min(s["rows"])),
                    }
                    for side, s in stats.items()
                }
                entry["p50_ratio"] = entry["shared"]["p50_ms"] / entry["own"]["p50_ms"]
                results.setdefault(name, {})[label] = entry
                table.append(
                    [
                        name,
                        label,
                        f"{entry['shared']['recall_at_10']:.3f}",
                        f"{entry['own']['recall_at_10']:.3f}",
                        f"{entry['shared']['p50_ms']:.2f}",
                        f"{entry['own']['p50_ms']:.2f}",
                        f"{entry['p50_ratio']:.2f}",
                        min(entry["shared"]["fewest_rows"], entry["own"]["fewest_rows"]),
                    ]
                )
        load = os.getloadavg()
        print_table(
            [
                "tenant",
                "ef_search",
                "recall shared",
                "recall own",
                "p50 ms shared",
                "p50 ms own",
                "shared / own",
                "fewest rows",
            ],
            table,
        )
        print(f"load {load_shared:.0f} s; load average {load[0]:.2f}")
        write_report(
            out,
            {
                "benchmark": "tenant_recall",
                "rows": args.rows,
                "dim": args.dim,
                "queries": args.queries,
                "vectors": "latent_vectors (intrinsic dimension 24)",
                "load_shared_s": load_shared,
                "load_average": list(load),
                "environment": environment(dsn),
                "results": results,
            },
        )
        print(f"wrote {out}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
