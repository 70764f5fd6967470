"""Ingest throughput: PGVStore.add_embeddings vs raw binary COPY into an equivalent table.

    python benchmarks/ingest.py [--rows 10000] [--dim 384] [--repeats 3] [--out PATH]

Each repeat runs every workload once, interleaved, into a fresh table on the
same server, so a noisy neighbour slows all of them alike. Workloads:

- raw COPY: `COPY ... FROM STDIN (FORMAT BINARY)` with psycopg `write_row`
  (pgvector-python's loading example) into a table with the same columns and
  secondary indexes the store provisions; no ANN index.
- raw COPY + HNSW: the same, then `CREATE INDEX ... USING hnsw` by hand.
- pgvstore: `add_embeddings` into a new collection (provisioning, staging,
  upsert, and the HNSW build of the index policy, in one transaction).
- pgvstore upsert: `add_embeddings` of the same ids again (all conflicts).

Prints medians and ratios, and writes benchmarks/results/ingest.json (other
settings: `--out`).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    HNSW_BY_HAND,
    clustered_vectors,
    copy_rows,
    create_raw_table,
    documents,
    environment,
    median,
    output_argument,
    print_table,
    report_path,
    server_dsn,
    timed,
    write_report,
)
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

from langchain_pgvstore import HNSWIndex, PGVStore  # noqa: E402


def raw_copy(dsn: str, texts, metas, ids, vecs, build_index: bool, mwm: str) -> None:
    table = sql.Identifier(f"raw_{uuid.uuid4().hex[:10]}")
    dim = vecs.shape[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        try:
            with conn.transaction():
                create_raw_table(conn, table, dim)
                copy_rows(conn, table, texts, metas, ids, vecs)
                if build_index:
                    conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (mwm,))
                    conn.execute(HNSW_BY_HAND.format(table))
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))


def ours(
    dsn: str, texts, metas, ids, vecs, mwm: str, upsert_too: bool
) -> tuple[float, float | None]:
    store = PGVStore(
        DeterministicFakeEmbedding(size=vecs.shape[1]),
        connection=dsn,
        collection=f"ours_{uuid.uuid4().hex[:10]}",
        index=HNSWIndex(),
        maintenance_work_mem=mwm,
    )
    try:
        store.similarity_search_by_vector(list(vecs[0]), k=1)  # open the pool outside the timing
        t_new = timed(lambda: store.add_embeddings(texts, vecs, metas, ids=ids))
        t_up = (
            timed(lambda: store.add_embeddings(texts, vecs, metas, ids=ids)) if upsert_too else None
        )
        return t_new, t_up
    finally:
        store.delete_collection()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--maintenance-work-mem", default="512MB")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "ingest")

    dsn, server = server_dsn()
    texts, metas, ids = documents(args.rows)
    vecs = clustered_vectors(args.rows, args.dim)
    mwm = args.maintenance_work_mem
    times: dict[str, list[float]] = {
        "raw COPY": [],
        "raw COPY + HNSW": [],
        "pgvstore": [],
        "pgvstore upsert": [],
    }
    try:
        for r in range(args.repeats):
            times["raw COPY"].append(
                timed(lambda: raw_copy(dsn, texts, metas, ids, vecs, False, mwm))
            )
            times["raw COPY + HNSW"].append(
                timed(lambda: raw_copy(dsn, texts, metas, ids, vecs, True, mwm))
            )
            t_new, t_up = ours(dsn, texts, metas, ids, vecs, mwm, upsert_too=True)
            times["pgvstore"].append(t_new)
            assert t_up is not None
            times["pgvstore upsert"].append(t_up)
            print(
                f"repeat {r + 1}/{args.repeats}: "
                + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                flush=True,
            )
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()

    raw = median(times["raw COPY"])
    raw_hnsw = median(times["raw COPY + HNSW"])
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for name, ts in times.items():
        m = median(ts)
        baseline = raw_hnsw if name == "pgvstore" else raw
        results[name] = {
            "seconds": ts,
            "median_s": m,
            "rows_per_s": args.rows / m,
            "throughput_ratio_vs_baseline": baseline / m,
        }
        rows.append(
            [
                name,
                m,
                args.rows / m,
                f"{baseline / m:.2f}x of "
                + ("raw COPY + HNSW" if name == "pgvstore" else "raw COPY"),
            ]
        )
    print()
    print(
        f"ingest {args.rows:,} x {args.dim}-d, precomputed embeddings, {args.repeats} repeats (medians)"
    )
    print_table(["workload", "median s", "rows/s", "throughput ratio"], rows)
    print(f"\npgvstore vs raw COPY without index build: {raw / median(times['pgvstore']):.2f}x")
    path = write_report(
        out,
        {
            "benchmark": "ingest",
            "rows": args.rows,
            "dim": args.dim,
            "repeats": args.repeats,
            "maintenance_work_mem": mwm,
            "results": results,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
