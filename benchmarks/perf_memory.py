"""Storage: halfvec vs vector collections, table + indexes, by `pg_total_relation_size`.

    python benchmarks/perf_memory.py [--configs 100000x384,10000x1536] [--out PATH]

For each `rows x dim`, loads the same rows into two PGVStore collections that
differ only in `vector_type` (`vector`, float32, and `halfvec`, float16), both
with the default HNSW index, and reports:

- `pg_total_relation_size` of each collection table (heap + TOAST + every
  index: primary key, metadata GIN, tsvector GIN, HNSW), and the ratio;
- the part that depends on the vector type: the embedding column
  (`sum(pg_column_size(embedding))`) plus the HNSW index, and its ratio;
- heap, TOAST and each index separately, and the BM25 statistics table.

A `vector` collection with the same rows on `PGVSTORE_BENCH_DSN` (from
perf_search.py) is reused. Writes benchmarks/results/perf_memory.json (other
configurations: `--out`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    dataset_name,
    environment,
    index_sizes,
    load_ours,
    output_argument,
    relation_sizes,
    report_path,
    server_dsn,
    write_report,
)
from report import memory as memory_table  # noqa: E402

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore._sql.bm25_schema import stats_table  # noqa: E402
from langchain_pgvstore.config import Table  # noqa: E402


def measure(dsn: str, collection: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(collection)))
        sizes: dict[str, Any] = relation_sizes(conn, collection)
        indexes = index_sizes(conn, collection)
        sizes["indexes_by_name"] = {name: size for name, (_am, size) in indexes.items()}
        sizes["hnsw"] = sum(size for am, size in indexes.values() if am == "hnsw")
        row = conn.execute(
            sql.SQL("SELECT sum(pg_column_size(embedding)) FROM {}").format(
                sql.Identifier(collection)
            )
        ).fetchone()
        sizes["embedding_column"] = int(row[0]) if row and row[0] is not None else 0
        sizes["vector_part"] = sizes["embedding_column"] + sizes["hnsw"]
        stats = stats_table(Table("public", collection)).as_string()
        row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (stats,)).fetchone()
        sizes["bm25_statistics_table"] = int(row[0]) if row else 0
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="100000x384,10000x1536")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "perf_memory")
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]

    dsn, server = server_dsn()
    results: dict[str, Any] = {}
    try:
        for rows, dim in configs:
            name = f"{rows}x{dim}"
            results[name] = {}
            for vtype in ("vector", "halfvec"):
                collection = dataset_name(rows, dim) + ("" if vtype == "vector" else "_halfvec")
                t0 = time.perf_counter()
                store = load_ours(dsn, collection, rows, dim, vector_type=vtype)
                store.close()
                print(f"{name} {vtype}: ready in {time.perf_counter() - t0:.0f}s", flush=True)
                results[name][vtype] = measure(dsn, collection)
            v, h = results[name]["vector"], results[name]["halfvec"]
            results[name]["ratio_total"] = h["total"] / v["total"]
            results[name]["ratio_vector_part"] = h["vector_part"] / v["vector_part"]
            results[name]["ratio_hnsw"] = h["hnsw"] / v["hnsw"]
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()

    payload = {
        "benchmark": "perf_memory",
        "configs": args.configs,
        "library": langchain_pgvstore.__file__,
        "results": results,
        "environment": env,
    }
    print(f"\n{memory_table(payload)}")
    path = write_report(out, payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
