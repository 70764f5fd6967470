"""Why an IVFFlat build on the store's table takes longer than on a raw one: the heap's width.

    python benchmarks/ivfflat_build.py [--rows 100000] [--dim 384] [--lists 100]
                                       [--repeats 3] [--out PATH]

The same rows (unit vectors of low intrinsic dimension, texts of about 120
words drawn from a Zipf distribution over SciFact's vocabulary, metadata
`{"n": i}`) in four tables:

- `raw, vectors only`: `(id text PRIMARY KEY, embedding vector(dim))`;
- `raw, document columns`: `(id, content, metadata jsonb, embedding)`, the
  table a hand-written RAG schema has (and the baseline an outside harness
  measured the store against);
- `store`: a collection with full text (the store's default: the generated
  `tsv` and `tsv_len` columns make the heap wider);
- `store, full_text=False`: a collection without them.

Each table gets the same statement, `CREATE INDEX ... USING ivfflat (embedding
vector_cosine_ops) WITH (lists = N)`, `--repeats` times in a rotating order
(the index dropped in between; `maintenance_work_mem` 1GB, no parallel
workers, so one backend does all the work), and the store's own
`create_index(IVFFlatIndex(lists=N))` on the store's tables. IVFFlat reads the
whole heap twice (a sample for k-means, then every row to assign it to a
list), so its build time follows the heap's size; HNSW's is dominated by the
graph. Writes benchmarks/results/ivfflat_build.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
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

from langchain_pgvstore import IVFFlatIndex, PGVStore  # noqa: E402

VARIANTS = ("raw, vectors only", "raw, document columns", "store", "store, full_text=False")
TABLES = {
    "raw, vectors only": "ivf_raw_vectors",
    "raw, document columns": "ivf_raw_documents",
    "store": "ivf_store",
    "store, full_text=False": "ivf_store_no_fts",
}


def load_raw(
    conn: psycopg.Connection[Any], name: str, texts: list[str], vecs: np.ndarray, *, wide: bool
) -> None:
    t = sql.Identifier(name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
    columns = (
        "id text PRIMARY KEY, content text NOT NULL, metadata jsonb NOT NULL,"
        if wide
        else ("id text PRIMARY KEY,")
    )
    conn.execute(
        sql.SQL("CREATE TABLE {} (" + columns + " embedding vector({}) NOT NULL)").format(
            t, sql.Literal(vecs.shape[1])
        )
    )
    conn.execute(sql.SQL("ALTER TABLE {} ALTER embedding SET STORAGE MAIN").format(t))
    names = "id, content, metadata, embedding" if wide else "id, embedding"
    with conn.cursor().copy(
        sql.SQL("COPY {} (" + names + ") FROM STDIN (FORMAT BINARY)").format(t)
    ) as copy:
        copy.set_types(["text", "text", "jsonb", "vector"] if wide else ["text", "vector"])
        for i in range(len(texts)):
            row = (str(i), texts[i], Jsonb({"n": i}), vecs[i]) if wide else (str(i), vecs[i])
            copy.write_row(row)
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(t))


def load_store(
    dsn: str, name: str, texts: list[str], vecs: np.ndarray, full_text: bool
) -> PGVStore:
    store = PGVStore(
        LookupEmbedding(vecs.shape[1]),  # type: ignore[arg-type]
        connection=dsn,
        collection=name,
        index=None,
        full_text=full_text,
    )
    store.delete_collection()
    store.add_embeddings(
        texts, vecs, [{"n": i} for i in range(len(texts))], ids=[str(i) for i in range(len(texts))]
    )
    return store


def heap_mib(conn: psycopg.Connection[Any], name: str) -> float:
    row = conn.execute(
        "SELECT pg_relation_size(c.oid) + coalesce(pg_total_relation_size(c.reltoastrelid), 0)"
        " FROM pg_class c WHERE c.oid = %s::regclass",
        (name,),
    ).fetchone()
    assert row is not None
    return float(row[0]) / 2**20


def build_raw(conn: psycopg.Connection[Any], name: str, lists: int) -> float:
    index = sql.Identifier(f"{name}_ivf_bench")
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(index))
    start = time.perf_counter()
    conn.execute(
        sql.SQL(
            "CREATE INDEX {} ON {} USING ivfflat (embedding vector_cosine_ops) WITH (lists = {})"
        ).format(index, sql.Identifier(name), sql.Literal(lists))
    )
    seconds = time.perf_counter() - start
    conn.execute(sql.SQL("DROP INDEX {}").format(index))
    return seconds


def build_store(store: PGVStore, lists: int) -> float:
    start = time.perf_counter()
    store.create_index(
        IVFFlatIndex(lists=lists),
        replace=True,
        maintenance_work_mem="1GB",
        max_parallel_maintenance_workers=0,
    )
    seconds = time.perf_counter() - start
    store.drop_index()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--lists", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "ivfflat_build")
    dsn, server = server_dsn()
    load_start = list(map(float, Path("/proc/loadavg").read_text().split()[:3]))
    try:
        texts = list(zipf_texts(args.rows, scifact_vocabulary(), seed=4))
        vecs = latent_vectors(args.rows, args.dim, seed=4).astype(np.float32)
        stores: dict[str, PGVStore] = {}
        with psycopg.connect(dsn, autocommit=True) as conn:
            register_vector(conn)
            load_raw(conn, TABLES["raw, vectors only"], texts, vecs, wide=False)
            load_raw(conn, TABLES["raw, document columns"], texts, vecs, wide=True)
            stores["store"] = load_store(dsn, TABLES["store"], texts, vecs, True)
            stores["store, full_text=False"] = load_store(
                dsn, TABLES["store, full_text=False"], texts, vecs, False
            )
            for name in TABLES.values():
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(name)))
            conn.execute("SET maintenance_work_mem = '1GB'")
            conn.execute("SET max_parallel_maintenance_workers = 0")
            raw_s: dict[str, list[float]] = {v: [] for v in VARIANTS}
            store_s: dict[str, list[float]] = {v: [] for v in stores}
            for r in range(args.repeats):
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    raw_s[variant].append(build_raw(conn, TABLES[variant], args.lists))
                    if variant in stores:
                        store_s[variant].append(build_store(stores[variant], args.lists))
                print(f"round {r + 1} done", flush=True)
            heaps = {v: heap_mib(conn, TABLES[v]) for v in VARIANTS}
        for store in stores.values():
            store.close()
        base = statistics.median(raw_s["raw, document columns"])
        results: dict[str, Any] = {}
        rows = []
        for variant in VARIANTS:
            med = statistics.median(raw_s[variant])
            results[variant] = {
                "heap_mib": heaps[variant],
                "build_s": raw_s[variant],
                "build_s_median": med,
                "ratio_vs_raw_document_columns": med / base,
            }
            own = None
            if variant in store_s:
                own = statistics.median(store_s[variant])
                results[variant]["create_index_s"] = store_s[variant]
                results[variant]["create_index_s_median"] = own
                results[variant]["create_index_ratio_vs_raw_document_columns"] = own / base
            rows.append(
                [
                    variant,
                    f"{heaps[variant]:,.0f}",
                    f"{med:.2f}",
                    f"{med / base:.2f}",
                    "" if own is None else f"{own:.2f}",
                    "" if own is None else f"{own / base:.2f}",
                ]
            )
        print_table(
            ["table", "heap MiB", "CREATE INDEX s", "× raw", "create_index() s", "× raw"], rows
        )
        load_end = list(map(float, Path("/proc/loadavg").read_text().split()[:3]))
        write_report(
            out,
            {
                "benchmark": "ivfflat_build",
                "settings": {k: v for k, v in vars(args).items() if k != "out"},
                "results": results,
                "loadavg_start": load_start,
                "loadavg_end": load_end,
                "environment": environment(dsn),
            },
        )
        print(f"wrote {out}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
