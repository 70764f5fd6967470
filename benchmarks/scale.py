"""A million rows on one node: ingest until searchable, the index build, every search kind.

    python benchmarks/scale.py [--rows 1000000] [--dim 384] [--queries 100]
                               [--text-queries 10] [--filtered-queries 10]
                               [--maintenance-work-mem 3GB] [--workers 2]
                               [--ef-search 100] [--reuse-ingest FILE] [--out PATH]

Rows: unit vectors of low intrinsic dimension (`_common.latent_vectors`),
texts of words drawn from a Zipf distribution over SciFact's vocabulary
(about 120 words each), metadata with the flags of `filtered.py` (50 %, 10 %,
1 %, 0.1 %) and a unique number. The store is created with `index=None` and
loaded with `add_embeddings` in calls of 100,000 rows (a large import in
several calls, as docs/performance.md advises), then `create_index()` builds
the default HNSW index with `--maintenance-work-mem` and `--workers` parallel
maintenance workers. Measured:

- ingest: the load, the build, and the two together (until searchable); the
  index's size, the server processes' peak resident memory during the build,
  and whether pgvector reported the graph outgrowing `maintenance_work_mem`;
- p50 / p95 of `--queries` calls each: similarity (k=10) at the default
  `ef_search` and at `--ef-search`, MMR (k=10, fetch_k=50); of `--text-queries`
  calls (fewer: over ten seconds each at a million rows): keyword search and
  hybrid search (k=10) with SciFact claims as queries (the hybrid leg's vector
  is a stand-in: latency only);
- recall@10 of the similarity searches against an exact scan;
- filtered search at 50 / 10 / 1 / 0.1 % against raw exact and raw iterative
  HNSW (`filtered.compare`, `--filtered-queries` queries, `--ef-search`).

A smaller `--rows` (say 20000) is a quick check of the whole path.
`--reuse-ingest FILE` skips the load and the build on a server where an
earlier run of the same command left the collection (`PGVSTORE_BENCH_DSN`),
taking their figures from that run's report FILE; the report says so. Writes
benchmarks/results/scale.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
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
    server_dsn,
    write_report,
    zipf_texts,
)
from filtered import compare, flag_metadata, print_results  # noqa: E402

from langchain_pgvstore import HNSWIndex, PGVStore  # noqa: E402


class MemoryWatch:
    """Peak resident memory (sum of VmRSS) of the server's processes, sampled twice a second."""

    def __init__(self, dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            data_dir = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
        self.postmaster = int(Path(data_dir, "postmaster.pid").read_text().split()[0])
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == self.postmaster:
                    pids.append(int(entry.name))
        return [self.postmaster, *pids]

    def _rss(self) -> int:
        total = 0
        for pid in self._children():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self._rss())
            self._stop.wait(0.5)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed_calls(call: Callable[[int], Any], n: int) -> tuple[dict[str, float], list[Any]]:
    for i in range(min(3, n)):
        call(i)
    lat, out = [], []
    for i in range(n):
        t0 = time.perf_counter()
        out.append(call(i))
        lat.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(lat), "p95_ms": float(np.percentile(lat, 95))}, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--filtered-queries", type=int, default=10)
    parser.add_argument("--maintenance-work-mem", default="3GB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ef-search", type=int, default=100)
    parser.add_argument("--text-queries", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--reuse-ingest",
        type=Path,
        help="the collection is already loaded and indexed on this server by an earlier run of"
        " the same command: skip the load and the build, and take their figures from this"
        " JSON file (that run's report, or its `ingest` part)",
    )
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "scale", neutral=("reuse_ingest",))

    dsn, server = server_dsn()
    started = time.perf_counter()
    load_start = os.getloadavg()
    report: dict[str, Any] = {"benchmark": "scale", "rows": args.rows, "dim": args.dim}
    try:
        if args.reuse_ingest is not None:
            store = PGVStore(
                LookupEmbedding(args.dim),  # type: ignore[arg-type]
                connection=dsn,
                collection=f"scale_{args.rows}x{args.dim}",
                index=None,
            )
            if store.count() != args.rows:
                raise SystemExit(
                    f"--reuse-ingest: {store.collection} does not hold {args.rows} rows"
                )
            earlier = json.loads(args.reuse_ingest.read_text())
            report["ingest"] = earlier.get("ingest", earlier)
            report["ingest"]["from_an_earlier_run"] = True
        else:
            store = ingest(dsn, args, report)
        embedding: LookupEmbedding = store.embeddings  # type: ignore[assignment]
        print(f"ingest {report['ingest']}", flush=True)
        searches_and_filters(dsn, store, embedding, args, report)
        store.close()
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()
    finish(args, report, env, started, load_start, out)


def ingest(dsn: str, args: argparse.Namespace, report: dict[str, Any]) -> PGVStore:
    """Generate the rows, load them, build the index; the figures go to `report["ingest"]`."""
    t0 = time.perf_counter()
    vocabulary = scifact_vocabulary()
    texts = list(zipf_texts(args.rows, vocabulary, seed=2))
    vectors = latent_vectors(args.rows, args.dim, seed=2)
    metas = flag_metadata(args.rows, seed=2)
    print(f"generated in {time.perf_counter() - t0:.0f}s", flush=True)
    embedding = LookupEmbedding(args.dim)
    store = PGVStore(
        embedding,  # type: ignore[arg-type]
        connection=dsn,
        collection=f"scale_{args.rows}x{args.dim}",
        index=None,
    )
    store.delete_collection()
    step = 100_000
    t0 = time.perf_counter()
    for start in range(0, args.rows, step):
        end = min(args.rows, start + step)
        store.add_embeddings(
            texts[start:end], vectors[start:end], metas[start:end],
            ids=[str(i) for i in range(start, end)],
        )  # fmt: skip
        print(f"  {end:,} rows, {time.perf_counter() - t0:.0f}s", flush=True)
    ingest_s = time.perf_counter() - t0
    del texts
    with MemoryWatch(dsn) as memory:
        t0 = time.perf_counter()
        store.create_index(
            HNSWIndex(),
            maintenance_work_mem=args.maintenance_work_mem,
            max_parallel_maintenance_workers=args.workers,
        )
        build_s = time.perf_counter() - t0
    with psycopg.connect(dsn, autocommit=True) as conn:
        mwm = conn.execute("SELECT pg_size_bytes(%s)", (args.maintenance_work_mem,)).fetchone()
        sizes = dict(
            conn.execute(
                "SELECT am.amname, pg_relation_size(i.indexrelid) FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam"
                " WHERE i.indrelid = %s::regclass",
                (store.collection,),
            ).fetchall()
        )
        total = conn.execute(
            "SELECT pg_total_relation_size(%s::regclass)", (store.collection,)
        ).fetchone()[0]  # type: ignore[index]
    report["ingest"] = {
        "load_s": ingest_s,
        "index_build_s": build_s,
        "until_searchable_s": ingest_s + build_s,
        "rows_per_s_until_searchable": args.rows / (ingest_s + build_s),
        "maintenance_work_mem": args.maintenance_work_mem,
        "parallel_workers": args.workers,
        "hnsw_bytes": sizes.get("hnsw"),
        "total_relation_bytes": total,
        "server_peak_rss_mib": memory.peak_kib / 1024,
        # pgvector builds in memory while the graph fits, then slows down several-fold
        "graph_fits_maintenance_work_mem": (sizes.get("hnsw") or 0) <= mwm[0],  # type: ignore[index]
    }
    return store


def searches_and_filters(
    dsn: str,
    store: PGVStore,
    embedding: LookupEmbedding,
    args: argparse.Namespace,
    report: dict[str, Any],
) -> None:
    """Every search kind's p50/p95 (recall for similarity), then filtered search by cost."""  # fmt: skip
    k = args.k
    qs = latent_vectors(args.queries, args.dim, seed=99)
    qlists = [[float(x) for x in q] for q in qs]
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as f:
        claims = [json.loads(line)["text"] for line in f][: args.text_queries]
    for claim in claims:
        embedding.embed_query(claim)
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("SET enable_indexscan = off")
        exact = sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT %s").format(
            sql.Identifier(store.collection)
        )
        truth = [{r[0] for r in conn.execute(exact, (Vector(q), k))} for q in qs]
    print("exact answers computed", flush=True)

    def ids_of(pairs: list[Any]) -> list[str]:
        return [d.id for d, _ in pairs]

    workloads: dict[str, Callable[[int], Any]] = {
        "similarity, ef_search 40": lambda i: ids_of(
            store.similarity_search_with_score_by_vector(qlists[i], k=k)
        ),
        f"similarity, ef_search {args.ef_search}": lambda i: ids_of(
            store.similarity_search_with_score_by_vector(qlists[i], k=k, ef_search=args.ef_search)
        ),
        "MMR, fetch_k 50": lambda i: [
            d.id for d in store.max_marginal_relevance_search_by_vector(qlists[i], k=k, fetch_k=50)
        ],
        "keyword": lambda i: ids_of(store.keyword_search_with_score(claims[i], k=k)),
        "hybrid": lambda i: ids_of(store.hybrid_search_with_score(claims[i], k=k)),
    }
    searches: dict[str, Any] = {}
    for name, call in workloads.items():
        text = name in ("keyword", "hybrid")
        summary, got = timed_calls(call, args.text_queries if text else args.queries)
        summary["queries"] = args.text_queries if text else args.queries
        if name.startswith("similarity"):
            summary["recall_at_10"] = float(
                np.mean([len(truth[i] & set(g)) / k for i, g in enumerate(got)])
            )
        summary["min_rows"] = min(len(g) for g in got)
        searches[name] = summary
        print(f"{name}: {summary}", flush=True)
    report["searches"] = searches
    report["filtered"] = compare(
        dsn, store, qs[: args.filtered_queries], k, args.ef_search, np.random.default_rng(4)
    )


def finish(args: argparse.Namespace, report: dict[str, Any], env: dict[str, Any],
           started: float, load_start: Any, out: Path) -> None:  # fmt: skip
    k = args.k
    report.update(
        {
            "queries": args.queries,
            "filtered_queries": args.filtered_queries,
            "ef_search": args.ef_search,
            "k": k,
            "wall_clock_s": time.perf_counter() - started,
            "loadavg_start": load_start,
            "environment": env,
        }
    )
    ing = report["ingest"]
    print(
        f"\n{args.rows:,} x {args.dim}-d; load average {load_start} at the start,"
        f" {env['loadavg']} at the end; the whole run took {report['wall_clock_s'] / 60:.0f} min"
    )
    print_table(
        ["ingest", "value"],
        [
            ["add_embeddings (index=None), s", ing["load_s"]],
            [f"create_index (HNSW, {args.maintenance_work_mem}, {args.workers} workers), s",
             ing["index_build_s"]],
            ["until searchable, s", ing["until_searchable_s"]],
            ["rows/s until searchable", ing["rows_per_s_until_searchable"]],
            ["HNSW size, MiB", (ing["hnsw_bytes"] or 0) / 2**20],
            ["table + indexes, MiB", ing["total_relation_bytes"] / 2**20],
            ["server peak RSS during the build, MiB", ing["server_peak_rss_mib"]],
        ],
    )  # fmt: skip
    print_table(
        ["search", "p50 ms", "p95 ms", "recall@10", "min rows"],
        [[n, s["p50_ms"], s["p95_ms"], s.get("recall_at_10", ""), s["min_rows"]]
         for n, s in report["searches"].items()],
    )  # fmt: skip
    print_results("filtered search", report["filtered"])
    path = write_report(out, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
