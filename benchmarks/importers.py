"""Import throughput: the importers against add_embeddings of the same rows from memory.

    python benchmarks/importers.py [--rows 10000] [--dim 384] [--repeats 3] [--batch-size 1000]

The sources are written once by the real packages: langchain-postgres' `PGVector`
and `PGVectorStore` (two metadata columns) into a database of their own on the
same server, run from the `sources` virtualenv that scripts/dev installs with
PGVSTORE_SOURCES=1 (`PGVSTORE_SOURCES_PYTHON`), and chromadb into a temporary directory. Each repeat
runs every workload once into a fresh collection (`index=None`, so no ANN index
is maintained), in a rotating order. Workloads:

- add_embeddings: the rows already in memory, in the same batches: the floor
  for writing them, and the baseline the ratios are against.
- from PGVector / from PGVectorStore / from Chroma: the importers, end to end
  (reading the source, checks, writing; each batch commits with its checkpoint).
- from PGVector, HNSW store: the same into a store with the default HNSW index,
  which the first batch builds and later batches insert into.
- from PGVector, then create_index: into a store without an index, then
  `create_index(HNSWIndex())` once: what docs/migrating.md advises for large
  collections.

Prints medians and ratios, and writes benchmarks/results/importers.json (a run with
other settings needs --out). Run it through `PGVSTORE_SOURCES=1 PGVSTORE_CHROMA=1
scripts/dev run`, which provides both sources.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    clustered_vectors,
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
from langchain_pgvstore.importers import (  # noqa: E402
    import_from_chroma,
    import_from_pgvector,
    import_from_pgvectorstore,
)

WRITER = Path(__file__).resolve().parents[1] / "tests" / "importing" / "writer.py"


def write_source(job: dict[str, Any]) -> None:
    python = os.environ.get("PGVSTORE_SOURCES_PYTHON")
    if not python:
        sys.exit(
            "PGVSTORE_SOURCES_PYTHON is not set: run through PGVSTORE_SOURCES=1 scripts/dev run"
        )
    out = subprocess.run(
        [python, str(WRITER)], input=json.dumps(job), capture_output=True, text=True
    )
    if out.returncode:
        sys.exit(out.stderr[-3000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "importers")
    n, dim, batch = args.rows, args.dim, args.batch_size

    dsn, server = server_dsn()
    texts, metas, ids = documents(n)
    vecs = clustered_vectors(n, dim)
    source_db = f"import_src_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(source_db)))
    source = psycopg.conninfo.make_conninfo(dsn, dbname=source_db)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    rows = {
        "texts": texts,
        "metadatas": metas,
        "vectors": vecs.astype(np.float64).tolist(),
        "queries": [],
        "k": 1,
    }
    print("writing the sources ...", flush=True)
    write_source(
        {
            "kind": "pgvector",
            "conninfo": source,
            "distance": "cosine",
            "collection": "bench",
            "ids": ids,
            **rows,
        }
    )
    v2_metas = [{k: v for k, v in m.items() if k != "n"} | {"n": m["n"]} for m in metas]
    write_source(
        {
            "kind": "pgvectorstore",
            "conninfo": source,
            "distance": "cosine",
            "table": "bench_v2",
            "schema": "public",
            "metadata_columns": [
                {"name": "source", "data_type": "TEXT", "nullable": True},
                {"name": "n", "data_type": "INTEGER", "nullable": True},
            ],
            "ids": [str(uuid.UUID(int=i)) for i in range(n)],
            **rows,
            "metadatas": v2_metas,
        }
    )
    import chromadb

    chroma_dir = tempfile.mkdtemp(prefix="pgvstore-bench-chroma-")
    collection = chromadb.PersistentClient(path=chroma_dir).create_collection(
        "bench", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    for start in range(0, n, 5000):
        part = slice(start, start + 5000)
        collection.add(
            ids=ids[part], embeddings=vecs[part], documents=texts[part], metadatas=metas[part]
        )

    def fresh(index: HNSWIndex | None = None) -> PGVStore:
        store = PGVStore(
            DeterministicFakeEmbedding(size=dim),
            connection=dsn,
            collection=f"imp_{uuid.uuid4().hex[:10]}",
            index=index,
        )
        store.get_by_ids([])  # open the pool outside the timing
        return store

    def from_memory(store: PGVStore) -> None:
        for start in range(0, n, batch):
            part = slice(start, start + batch)
            store.add_embeddings(texts[part], vecs[part], metas[part], ids=ids[part])

    workloads: dict[str, tuple[Callable[[PGVStore], Any], HNSWIndex | None]] = {
        "add_embeddings": (from_memory, None),
        "from PGVector": (
            lambda s: import_from_pgvector(s, "bench", source=source, batch_size=batch),
            None,
        ),
        "from PGVectorStore": (
            lambda s: import_from_pgvectorstore(s, "bench_v2", source=source, batch_size=batch),
            None,
        ),
        "from Chroma": (lambda s: import_from_chroma(s, collection, batch_size=batch), None),
        "from PGVector, HNSW store": (
            lambda s: import_from_pgvector(s, "bench", source=source, batch_size=batch),
            HNSWIndex(),
        ),
        "from PGVector, then create_index": (
            lambda s: (
                import_from_pgvector(s, "bench", source=source, batch_size=batch),
                s.create_index(HNSWIndex()),
            ),
            None,
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in workloads}
    names = list(workloads)
    try:
        for r in range(args.repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn, index = workloads[name]
                store = fresh(index)
                try:
                    times[name].append(timed(lambda fn=fn, store=store: fn(store)))
                    with psycopg.connect(dsn) as conn:
                        count = conn.execute(
                            sql.SQL("SELECT count(*) FROM {}").format(
                                sql.Identifier(store.collection)
                            )
                        ).fetchone()[0]
                    assert count == n, (name, count)
                finally:
                    store.delete_collection()
                    store.close()
            print(
                f"repeat {r + 1}/{args.repeats}: "
                + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                flush=True,
            )
        env = environment(dsn)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(source_db))
            )
        if server is not None:
            server.stop()

    base = median(times["add_embeddings"])
    table: list[list[Any]] = []
    results: dict[str, Any] = {}
    for name, ts in times.items():
        m = median(ts)
        results[name] = {
            "seconds": ts,
            "median_s": m,
            "rows_per_s": n / m,
            "throughput_ratio_vs_add_embeddings": base / m,
        }
        table.append([name, m, n / m, f"{base / m:.2f}x"])
    print()
    print(
        f"import {n:,} x {dim}-d in batches of {batch:,}, {args.repeats} repeats (medians);"
        f" load average {' '.join(f'{x:.2f}' for x in env['loadavg'])}"
    )
    print_table(["workload", "median s", "rows/s", "vs add_embeddings"], table)
    path = write_report(
        out,
        {
            "benchmark": "importers",
            "rows": n,
            "dim": dim,
            "batch_size": batch,
            "repeats": args.repeats,
            "chromadb": chromadb.__version__,
            "results": results,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
