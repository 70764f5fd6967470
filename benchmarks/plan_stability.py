"""Plan stability: the store's queries keep using the ANN index at every ef_search and probes.

    python benchmarks/plan_stability.py [--rows 100000] [--dim 1536]     # the reported case; ~35 min
    python benchmarks/plan_stability.py --rows 20000 --out PATH          # a quicker check, ~4 min

Loads the same rows (clustered unit vectors, 10% of rows with `source = s3`)
into:

- a PGVStore collection (HNSW; the store sets `STORAGE MAIN` on the
  embedding column, so vectors stay in the heap page);
- a table created the langchain-postgres v2 way (`init_vectorstore_table`,
  default `EXTENDED` storage: 1,536-d vectors go out of line to TOAST), with
  its HNSW index from `apply_vector_index(HNSWIndex())`. Without
  langchain-postgres installed, the same DDL is run by hand;
- unless `--no-ivfflat`, a PGVStore collection with `IVFFlatIndex()`.

Both HNSW tables are analysed. Then for each `hnsw.ef_search` (or
`ivfflat.probes`) value it runs EXPLAIN, and EXPLAIN ANALYZE for the
timings, of:

- `store.explain(vec, k=10, ef_search=e)`, unfiltered and filtered
  (`{"source": "s3"}`, whose ANN branch must use the index);
- langchain-postgres' own statement shape on its table, with
  `SET LOCAL hnsw.ef_search = e` as its `HNSWQueryOptions` does, unfiltered
  and with its filter (`langchain_metadata->>'source' = 's3'`).

Unfiltered, it also EXPLAINs one bare statement (`ORDER BY embedding <=> q
LIMIT 10`, only `hnsw.ef_search` set) on both tables: what the vectors'
storage alone does to the plan, without the store pinning the index.

A check fails when a store plan has no `Index Scan using ..._hnsw` (or
`_ivfflat`) node. Writes benchmarks/results/plan_stability.json (other settings:
`--out`) and exits non-zero if any store plan lost its index.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    environment,
    load_ours,
    output_argument,
    print_table,
    queries,
    report_path,
    server_dsn,
    sqlalchemy_url,
    write_report,
)

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore import IVFFlatIndex, PGVStore  # noqa: E402

FILTER = {"source": "s3"}
EF = [10, 20, 40, 80, 100, 200, 300, 400, 500, 600, 800, 1000]
LC_TABLE = "lc_default_storage"
_EXEC = re.compile(r"Execution Time: ([0-9.]+) ms")


def scan_of(plan: str) -> str:
    """The access path on the vector table: `Index Scan using <name>`, or the scan type."""
    for line in plan.splitlines():
        m = re.search(r"(Index Scan using \S+|Index Only Scan using \S+)", line)
        if m and ("hnsw" in m.group(1) or "ivfflat" in m.group(1)):
            return m.group(1)
    for kind in ("Parallel Seq Scan", "Seq Scan", "Bitmap Heap Scan", "Index Scan"):
        if kind in plan:
            return kind
    return plan.splitlines()[0].strip()


def _short(scan: str) -> str:
    return "index" if scan.startswith("Index") else scan


def exec_ms(plan: str) -> float:
    m = _EXEC.search(plan)
    return float(m.group(1)) if m else float("nan")


def create_lc_table(dsn: str, source: str, dim: int) -> str:
    """The langchain-postgres v2 table (default storage) with the same rows and its HNSW."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s)",
            (LC_TABLE, "%hnsw%"),
        ).fetchone()
    if row and row[0] and _count(dsn, LC_TABLE) == _count(dsn, source):
        return "reused from an earlier run on this server"
    try:
        from langchain_postgres import PGEngine, PGVectorStore
        from langchain_postgres.v2.indexes import HNSWIndex

        engine = PGEngine.from_connection_string(sqlalchemy_url(dsn, "asyncpg"))
        engine.init_vectorstore_table(LC_TABLE, dim, overwrite_existing=True)
        how = "langchain-postgres v2 init_vectorstore_table + apply_vector_index(HNSWIndex())"
    except ImportError:
        engine = None
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(LC_TABLE)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (langchain_id UUID PRIMARY KEY, content TEXT NOT NULL,"
                    " embedding vector({}) NOT NULL, langchain_metadata JSON)"
                ).format(sql.Identifier(LC_TABLE), sql.Literal(dim))
            )
        how = "langchain-postgres v2's DDL by hand (package not installed)"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (langchain_id, content, embedding, langchain_metadata)"
                " SELECT md5(id)::uuid, content, embedding, metadata::json FROM {}"
            ).format(sql.Identifier(LC_TABLE), sql.Identifier(source))
        )
    if engine is not None:
        from langchain_core.embeddings import DeterministicFakeEmbedding

        store = PGVectorStore.create_sync(
            engine=engine,
            table_name=LC_TABLE,
            embedding_service=DeterministicFakeEmbedding(size=dim),
        )
        store.apply_vector_index(HNSWIndex())
        engine._run_as_sync(engine.close())
    else:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops)"
                    " WITH (m = 16, ef_construction = 64)"
                ).format(
                    sql.Identifier(LC_TABLE + "_langchainvectorindex"), sql.Identifier(LC_TABLE)
                )
            )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(LC_TABLE)))
    return how


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        return int(row.fetchone()[0])  # type: ignore[index]


def lc_explain(
    conn: psycopg.Connection[Any], vec: np.ndarray, ef: int, filtered: bool, analyze: bool
) -> str:
    """langchain-postgres v2's dense query (`__query_collection`) under its HNSWQueryOptions."""
    where = "WHERE (langchain_metadata->>'source')::text = %s" if filtered else ""
    query = (
        f"SELECT langchain_id, content, embedding, langchain_metadata,"  # noqa: S608
        f" cosine_distance(embedding, %s) as distance FROM {LC_TABLE} {where}"
        f" ORDER BY embedding <=> %s LIMIT %s"
    )
    params: tuple[Any, ...] = (
        (Vector(vec), "s3", Vector(vec), 10) if filtered else (Vector(vec), Vector(vec), 10)
    )
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
        rows = conn.execute(prefix + query, params).fetchall()  # type: ignore[operator]
    return "\n".join(r[0] for r in rows)


def plain_scan(conn: psycopg.Connection[Any], table: str, vec: np.ndarray, ef: int) -> str:
    """The scan the planner picks for the bare nearest-neighbour statement, nothing pinned."""
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
        rows = conn.execute(
            sql.SQL(
                "EXPLAIN SELECT embedding <=> %s AS d FROM {} ORDER BY embedding <=> %s LIMIT 10"
            ).format(sql.Identifier(table)),
            (Vector(vec), Vector(vec)),
        ).fetchall()
    return scan_of("\n".join(r[0] for r in rows))


def store_plan(
    store: PGVStore, vec: Any, index: str, knob: str, value: int, filtered: bool, analyze: bool
) -> dict[str, Any]:
    """EXPLAIN (and EXPLAIN ANALYZE) of one tuned store search, and whether it uses the index."""
    flt = FILTER if filtered else None
    plan = store.explain(vec, k=10, filter=flt, **{knob: value})
    timed = store.explain(vec, k=10, filter=flt, analyze=True, **{knob: value}) if analyze else ""
    return {
        "index": index,
        "knob": knob,
        "value": value,
        "filtered": filtered,
        "pgvstore_scan": scan_of(plan),
        "pgvstore_uses_index": f"_{index}" in scan_of(plan),
        "pgvstore_ms": exec_ms(timed),
        "pgvstore_plan": plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--ef", default=",".join(map(str, EF)))
    parser.add_argument("--probes", default="1,2,5,10,20,50,100")
    parser.add_argument("--no-ivfflat", action="store_true")
    parser.add_argument("--no-analyze", action="store_true", help="EXPLAIN only, no timings")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "plan_stability")
    efs = [int(x) for x in args.ef.split(",")]
    probes = [int(x) for x in args.probes.split(",")]

    dsn, server = server_dsn()
    checks: list[dict[str, Any]] = []
    stores: list[PGVStore] = []
    try:
        t0 = time.perf_counter()
        store = load_ours(dsn, f"plan_{args.rows}x{args.dim}", args.rows, args.dim)
        stores.append(store)
        print(f"pgvstore HNSW collection ready in {time.perf_counter() - t0:.0f}s", flush=True)
        t0 = time.perf_counter()
        how = create_lc_table(dsn, store.collection, args.dim)
        print(f"{how}: ready in {time.perf_counter() - t0:.0f}s", flush=True)
        ivf: PGVStore | None = None
        if not args.no_ivfflat:
            t0 = time.perf_counter()
            ivf = load_ours(
                dsn, f"plan_{args.rows}x{args.dim}_ivf", args.rows, args.dim, index=IVFFlatIndex()
            )
            stores.append(ivf)
            print(
                f"pgvstore IVFFlat collection ready in {time.perf_counter() - t0:.0f}s", flush=True
            )
        with psycopg.connect(dsn, autocommit=True) as conn:
            storage = dict(
                conn.execute(
                    "SELECT c.relname, a.attstorage FROM pg_attribute a JOIN pg_class c"
                    " ON c.oid = a.attrelid WHERE a.attname = 'embedding' AND c.relname = ANY(%s)",
                    ([store.collection, LC_TABLE],),
                ).fetchall()
            )
        vec = queries(1, args.dim)[0]
        raw = psycopg.connect(dsn, autocommit=True)
        register_vector(raw)
        analyze = not args.no_analyze
        for ef in efs:
            for filtered in (False, True):
                lc_plan = lc_explain(raw, vec, ef, filtered, False)
                lc_timed = lc_explain(raw, vec, ef, filtered, True) if analyze else ""
                unpinned = {}
                if not filtered:
                    # the same bare statement on both tables, without the store's pinning:
                    # what the storage of the vectors alone does to the plan
                    unpinned = {
                        "same_statement_pgvstore_table": plain_scan(raw, store.collection, vec, ef),
                        "same_statement_langchain_table": plain_scan(raw, LC_TABLE, vec, ef),
                    }
                checks.append(
                    {
                        **unpinned,
                        **store_plan(store, vec, "hnsw", "ef_search", ef, filtered, analyze),
                        "langchain_postgres_scan": scan_of(lc_plan),
                        "langchain_postgres_uses_index": scan_of(lc_plan).startswith("Index"),
                        "langchain_postgres_ms": exec_ms(lc_timed),
                        "langchain_postgres_plan": lc_plan,
                    }
                )
            print(f"ef_search={ef} done", flush=True)
        if ivf is not None:
            for p in probes:
                for filtered in (False, True):
                    checks.append(store_plan(ivf, vec, "ivfflat", "probes", p, filtered, analyze))
        raw.close()
        env = environment(dsn)
    finally:
        for s in stores:
            s.close()
        if server is not None:
            server.stop()

    failures = [c for c in checks if not c["pgvstore_uses_index"]]
    print(
        f"\nplans at {args.rows:,} x {args.dim}-d; embedding storage: pgvstore"
        f" {storage.get(store.collection)!r}, langchain-postgres {storage.get(LC_TABLE)!r}"
        " (m = main, x = extended)"
    )
    rows = []
    for c in checks:
        rows.append(
            [
                f"{c['index']} {c['knob']}={c['value']}" + (" filtered" if c["filtered"] else ""),
                c["pgvstore_scan"].replace("Index Scan using ", "Index "),
                c["pgvstore_ms"],
                c.get("langchain_postgres_scan", "").replace("Index Scan using ", "Index "),
                c.get("langchain_postgres_ms", float("nan")),
                _short(c.get("same_statement_pgvstore_table", "")),
                _short(c.get("same_statement_langchain_table", "")),
            ]
        )
    print_table(
        [
            "query",
            "pgvstore plan",
            "ms",
            "langchain-postgres plan",
            "ms",
            "bare stmt: main storage",
            "bare stmt: default storage",
        ],
        rows,
    )
    print(f"\n{len(checks) - len(failures)}/{len(checks)} store plans use the ANN index")
    path = write_report(
        out,
        {
            "benchmark": "plan_stability",
            "rows": args.rows,
            "dim": args.dim,
            "langchain_postgres_table": how,
            "embedding_storage": storage,
            "library": langchain_pgvstore.__file__,
            "checks": checks,
            "failures": len(failures),
            "environment": env,
        },
    )
    print(f"wrote {path}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
