"""Ingest until searchable: PGVStore vs raw binary COPY + index by hand, and langchain-postgres.

    python benchmarks/perf_ingest.py [--rows 100000] [--dim 384] [--repeats 3]
                                     [--upsert-rows 10000] [--incumbent-rows 10000]
                                     [--maintenance-work-mem 1GB] [--no-incumbents]
                                     [--out PATH]

Precomputed embeddings (clustered unit vectors) and the standard synthetic
documents. Each repeat runs every unit below once, in an order that rotates
from repeat to repeat, each into fresh tables on the same server:

- raw COPY: binary `COPY ... FROM STDIN` with psycopg `write_row`
  (pgvector-python's loading example) into a table with the store's columns
  and GIN indexes, no ANN index.
- raw COPY + HNSW, then raw upsert: the same plus `CREATE INDEX ... USING
  hnsw` (m=16, ef_construction=64) in the same transaction: the throughput
  target's baseline. Then `--upsert-rows` of its ids are upserted by hand
  (COPY into a temporary table + `INSERT ... ON CONFLICT DO UPDATE`) with new
  texts and vectors, and `--upsert-rows` rows with new ids are COPYed straight
  into the indexed table: the floor for any write that keeps the HNSW graph
  current.
- the same without the ANN index (raw COPY then the upsert by hand, and
  pgvstore with `index=None`), to show what maintaining the HNSW graph costs.
- pgvstore, then pgvstore upsert: `add_embeddings` into a new collection
  (provisioning, staging, merge, HNSW build, GIN cleanup and ANALYZE, one
  transaction), then `add_embeddings` of the same `--upsert-rows` ids with new
  texts and vectors, then the same call again (unchanged rows, as a re-run of
  an ingest job sends them).
- at `--incumbent-rows` (a subset, because langchain-postgres inserts row by
  row): raw COPY + HNSW, pgvstore, langchain-postgres v1 `PGVector.add_embeddings`
  (no ANN index: v1 has none) and v2 `PGVectorStore.add_embeddings` followed by
  `apply_vector_index(HNSWIndex())`.

`maintenance_work_mem` is set server-wide on the embedded server (v2 has no
per-call knob), so every index build gets the same memory.

Prints medians and ratios. The reported sizes, 100,000 x 384 and (`--rows 10000
--dim 1536`) 10,000 x 1,536, each replace their own entry in
benchmarks/results/perf_ingest.json; other settings need `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    HNSW_BY_HAND,
    INSTALL_HINT,
    LookupEmbedding,
    clustered_vectors,
    copy_rows,
    create_raw_table,
    documents,
    environment,
    median,
    output_argument,
    print_table,
    report_path,
    rotated,
    server_dsn,
    sqlalchemy_url,
    v2_ids,
    write_report,
)

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore import HNSWIndex, PGVStore  # noqa: E402

Data = tuple[list[str], list[dict[str, Any]], list[str], np.ndarray]

#: Writing rows into a table whose HNSW index is current, with nothing else to do:
#: the floor for any upsert that keeps the index current.
APPEND = "raw COPY of new rows into the HNSW table"


def _copy_rows(conn: psycopg.Connection[Any], target: sql.Composable, data: Data) -> None:
    texts, metas, ids, vecs = data
    copy_rows(conn, target, texts, metas, ids, vecs)


def raw_load(
    dsn: str,
    data: Data,
    *,
    hnsw: bool,
    mwm: str,
    upsert: Data | None = None,
    new_rows: Data | None = None,
) -> dict[str, float]:
    """Fresh table, COPY, optionally the HNSW build, an upsert by hand, and then a plain
    COPY of `new_rows` (ids not in the table) into the same table, indexes and all."""
    table = sql.Identifier(f"raw_{uuid.uuid4().hex[:10]}")
    out: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        try:
            t0 = time.perf_counter()
            with conn.transaction():
                create_raw_table(conn, table, data[3].shape[1])
                _copy_rows(conn, table, data)
                if hnsw:
                    conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (mwm,))
                    conn.execute(HNSW_BY_HAND.format(table))
            out["load"] = time.perf_counter() - t0
            if upsert is not None:
                t0 = time.perf_counter()
                with conn.transaction():
                    conn.execute(
                        sql.SQL(
                            "CREATE TEMPORARY TABLE stage (id text, content text, metadata jsonb,"
                            " embedding vector({})) ON COMMIT DROP"
                        ).format(sql.Literal(upsert[3].shape[1]))
                    )
                    _copy_rows(conn, sql.Identifier("stage"), upsert)
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (id, content, metadata, embedding)"
                            " SELECT id, content, metadata, embedding FROM stage"
                            " ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content,"
                            " metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding,"
                            " updated_at = now()"
                        ).format(table)
                    )
                out["upsert"] = time.perf_counter() - t0
            if new_rows is not None:
                t0 = time.perf_counter()
                with conn.transaction():
                    _copy_rows(conn, table, new_rows)
                out["append"] = time.perf_counter() - t0
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    return out


def ours_load(
    dsn: str, data: Data, mwm: str, upsert: Data | None = None, *, ann: bool = True
) -> dict[str, float]:
    texts, metas, ids, vecs = data
    store = PGVStore(
        LookupEmbedding(vecs.shape[1]),  # type: ignore[arg-type]
        connection=dsn,
        collection=f"ours_{uuid.uuid4().hex[:10]}",
        index=HNSWIndex() if ann else None,
        maintenance_work_mem=mwm,
    )
    out: dict[str, float] = {}
    try:
        store.similarity_search_by_vector([0.0] * vecs.shape[1], k=1)  # open the pool first
        t0 = time.perf_counter()
        store.add_embeddings(texts, vecs, metas, ids=ids)
        out["load"] = time.perf_counter() - t0
        if upsert is not None:
            t0 = time.perf_counter()
            store.add_embeddings(upsert[0], upsert[3], upsert[1], ids=upsert[2])
            out["upsert"] = time.perf_counter() - t0
            # the same rows again, as a re-run of an ingest job sends them
            t0 = time.perf_counter()
            store.add_embeddings(upsert[0], upsert[3], upsert[1], ids=upsert[2])
            out["unchanged"] = time.perf_counter() - t0
    finally:
        store.delete_collection()
        store.close()
    return out


def v1_load(dsn: str, data: Data, own_server: bool) -> dict[str, float]:
    """langchain-postgres v1: `add_embeddings` into a new collection, at most 10,000 rows a
    call (it sends one INSERT with 5 parameters a row; PostgreSQL allows 65,535).

    On the benchmark's own server v1's shared tables are dropped before and after,
    so each run starts empty; on another server only the collection is removed.
    """
    from langchain_postgres import PGVector

    texts, metas, ids, vecs = data
    if own_server:
        _drop_v1_tables(dsn)
    store = PGVector(
        LookupEmbedding(vecs.shape[1]),
        connection=sqlalchemy_url(dsn, "psycopg"),
        collection_name=f"ingest_{uuid.uuid4().hex[:8]}",
        embedding_length=vecs.shape[1],
    )
    lists = vecs.tolist()
    t0 = time.perf_counter()
    for start in range(0, len(ids), 10_000):
        end = start + 10_000
        store.add_embeddings(texts[start:end], lists[start:end], metas[start:end], ids[start:end])
    out = {"load": time.perf_counter() - t0}
    store.delete_collection()
    store._engine.dispose()  # type: ignore[union-attr]
    if own_server:
        _drop_v1_tables(dsn)
    return out


def _drop_v1_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS langchain_pg_embedding, langchain_pg_collection CASCADE")


def v2_load(dsn: str, data: Data) -> dict[str, float]:
    """langchain-postgres v2: `init_vectorstore_table`, `add_embeddings`, `apply_vector_index`."""
    from langchain_postgres import PGEngine, PGVectorStore
    from langchain_postgres.v2.indexes import HNSWIndex as V2HNSW

    texts, metas, _ids, vecs = data
    table = f"v2_{uuid.uuid4().hex[:10]}"
    engine = PGEngine.from_connection_string(sqlalchemy_url(dsn, "asyncpg"))
    out: dict[str, float] = {}
    try:
        engine.init_vectorstore_table(table, vecs.shape[1])
        store = PGVectorStore.create_sync(
            engine=engine, table_name=table, embedding_service=LookupEmbedding(vecs.shape[1])
        )
        lists = vecs.tolist()
        t0 = time.perf_counter()
        store.add_embeddings(texts, lists, metas, ids=v2_ids(len(texts)))
        out["insert"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.apply_vector_index(V2HNSW())
        out["index"] = time.perf_counter() - t0
        out["load"] = out["insert"] + out["index"]
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        engine._run_as_sync(engine.close())
    return out


#: The sizes docs/performance.md reports; each has its entry in benchmarks/results/perf_ingest.json.
REPORTED = ((100_000, 384), (10_000, 1536))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--upsert-rows", type=int, default=10_000)
    parser.add_argument("--incumbent-rows", type=int, default=10_000)
    parser.add_argument("--maintenance-work-mem", default="1GB")
    parser.add_argument("--no-incumbents", action="store_true")
    output_argument(parser)
    args = parser.parse_args()
    # one process per size: langchain-postgres v1 fixes its vector size once per process
    reported = (args.rows, args.dim) in REPORTED
    neutral = ["rows", "dim", "no_incumbents"] if reported else []
    out = report_path(parser, args, "perf_ingest", neutral=neutral)
    if not args.no_incumbents:
        try:
            import langchain_postgres  # noqa: F401
        except ImportError:
            raise SystemExit(INSTALL_HINT) from None

    dsn, server = server_dsn()
    mwm = args.maintenance_work_mem
    if server is not None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET maintenance_work_mem = {}").format(sql.Literal(mwm))
            )
            conn.execute("SELECT pg_reload_conf()")
    else:
        print(
            "note: an external server; v2 builds its index with the server's maintenance_work_mem"
        )
    try:
        run = one_config(args, dsn, server is not None, args.rows, args.dim)
    finally:
        if server is not None:
            server.stop()
    # the report keeps one run per size; this run replaces its size's entry
    report = json.loads(out.read_text()) if out.exists() else {"benchmark": "perf_ingest"}
    report.setdefault("runs", {})[f"{args.rows}x{args.dim}"] = {
        **run,
        "library": langchain_pgvstore.__file__,
    }
    path = write_report(out, report)
    print(f"wrote {path}")


def one_config(
    args: argparse.Namespace, dsn: str, own_server: bool, rows: int, dim: int
) -> dict[str, Any]:
    """Every workload at one size, `--repeats` times in rotating order; the report of that size."""
    texts, metas, ids = documents(rows)
    vecs = clustered_vectors(rows, dim)
    data: Data = (texts, metas, ids, vecs)
    n_up = min(args.upsert_rows, rows)
    up_vecs = clustered_vectors(n_up, dim, seed=1)
    upsert: Data = ([t + " revised" for t in texts[:n_up]], metas[:n_up], ids[:n_up], up_vecs)
    new_ids = [f"new-{i}" for i in range(n_up)]
    appended: Data = (
        texts[:n_up],
        metas[:n_up],
        new_ids,
        clustered_vectors(n_up, dim, seed=2),
    )
    n_sub = min(args.incumbent_rows, rows)
    subset: Data = (texts[:n_sub], metas[:n_sub], ids[:n_sub], vecs[:n_sub])
    mwm = args.maintenance_work_mem
    units: dict[str, Callable[[], dict[str, dict[str, float]]]] = {
        "raw COPY": lambda: _split(
            raw_load(dsn, data, hnsw=False, mwm=mwm, upsert=upsert),
            load="raw COPY",
            upsert="raw upsert by hand, no ANN index",
        ),
        "raw COPY + HNSW": lambda: _split(
            raw_load(dsn, data, hnsw=True, mwm=mwm, upsert=upsert, new_rows=appended),
            load="raw COPY + HNSW",
            upsert="raw upsert by hand (COPY + INSERT ON CONFLICT)",
            append=APPEND,
        ),
        "pgvstore index=None": lambda: _split(
            ours_load(dsn, data, mwm, upsert, ann=False),
            load="pgvstore add_embeddings, index=None",
            upsert="pgvstore upsert, index=None",
            unchanged="pgvstore upsert of unchanged rows, index=None",
        ),
        "pgvstore": lambda: _split(
            ours_load(dsn, data, mwm, upsert),
            load="pgvstore add_embeddings",
            upsert="pgvstore upsert",
            unchanged="pgvstore upsert of unchanged rows",
        ),
    }
    if n_sub < rows:
        units["subset raw"] = lambda: {
            "raw COPY + HNSW (subset)": raw_load(dsn, subset, hnsw=True, mwm=mwm)
        }
        units["subset pgvstore"] = lambda: {
            "pgvstore add_embeddings (subset)": ours_load(dsn, subset, mwm)
        }
    if not args.no_incumbents:
        units["v1"] = lambda: {
            "langchain-postgres v1 add_embeddings (no index)": v1_load(dsn, subset, own_server)
        }
        units["v2"] = lambda: {"langchain-postgres v2 add_embeddings + HNSW": v2_load(dsn, subset)}

    times: dict[str, dict[str, list[float]]] = {}
    for r in range(args.repeats):
        for unit in rotated(list(units), r):
            for name, parts in units[unit]().items():
                for part, secs in parts.items():
                    times.setdefault(name, {}).setdefault(part, []).append(secs)
                print(f"  {name}: {parts['load']:.1f}s", flush=True)
        print(f"{rows}x{dim}: repeat {r + 1}/{args.repeats} done", flush=True)
    env = environment(dsn)

    def rows_of(name: str) -> int:
        if "subset" in name or "langchain-postgres" in name:
            return n_sub
        return n_up if "upsert" in name or name == APPEND else rows

    med = {name: {part: median(v) for part, v in parts.items()} for name, parts in times.items()}
    rate = {name: rows_of(name) / m["load"] for name, m in med.items()}
    baselines = {
        "raw COPY + HNSW": "raw COPY",
        "pgvstore add_embeddings": "raw COPY + HNSW",
        "pgvstore upsert": "raw COPY",
        "raw upsert by hand (COPY + INSERT ON CONFLICT)": "raw COPY",
        "raw upsert by hand, no ANN index": "raw COPY",
        "pgvstore add_embeddings, index=None": "raw COPY",
        "pgvstore upsert, index=None": "raw COPY",
        "pgvstore upsert of unchanged rows": "raw COPY",
        "pgvstore upsert of unchanged rows, index=None": "raw COPY",
        APPEND: "raw COPY",
        "raw COPY + HNSW (subset)": "raw COPY + HNSW (subset)",
        "pgvstore add_embeddings (subset)": "raw COPY + HNSW (subset)",
        "langchain-postgres v1 add_embeddings (no index)": "raw COPY + HNSW (subset)",
        "langchain-postgres v2 add_embeddings + HNSW": "raw COPY + HNSW (subset)",
    }
    if n_sub == rows:
        for name, base in baselines.items():
            if base == "raw COPY + HNSW (subset)":
                baselines[name] = "raw COPY + HNSW"
    results: dict[str, Any] = {}
    table_rows: list[list[Any]] = []
    for name, m in med.items():
        base = baselines.get(name)
        ratio = rate[name] / rate[base] if base in rate else None
        results[name] = {
            "rows": rows_of(name),
            "seconds": times[name],
            "median_s": m,
            "rows_per_s": rate[name],
            "baseline": base,
            "throughput_ratio": ratio,
        }
        detail = ", ".join(f"{p} {s:.1f}s" for p, s in m.items() if p != "load")
        table_rows.append(
            [
                name,
                rows_of(name),
                m["load"],
                rate[name],
                "" if ratio is None else f"{ratio:.2f}x of {base}",
                detail,
            ]
        )
    extra = {}
    if "pgvstore upsert" in rate and "raw upsert by hand (COPY + INSERT ON CONFLICT)" in rate:
        extra["pgvstore upsert vs raw upsert by hand"] = (
            rate["pgvstore upsert"] / rate["raw upsert by hand (COPY + INSERT ON CONFLICT)"]
        )
    if "pgvstore upsert" in rate and APPEND in rate:
        extra["pgvstore upsert vs raw COPY of new rows into the HNSW table"] = (
            rate["pgvstore upsert"] / rate[APPEND]
        )
    print(
        f"\ningest {rows:,} x {dim}-d (precomputed embeddings), upsert {n_up:,} existing"
        f" ids, incumbents on {n_sub:,} rows; {args.repeats} repeats, medians;"
        f" maintenance_work_mem={mwm}"
    )
    print_table(["workload", "rows", "median s", "rows/s", "throughput ratio", "parts"], table_rows)
    for k, v in extra.items():
        print(f"{k}: {v:.2f}x")
    return {
        "rows": rows,
        "dim": dim,
        "repeats": args.repeats,
        "upsert_rows": n_up,
        "incumbent_rows": n_sub,
        "maintenance_work_mem": mwm,
        "results": results,
        "ratios": extra,
        "environment": env,
    }


def _split(parts: dict[str, float], **names: str) -> dict[str, dict[str, float]]:
    """One raw_load/ours_load run's timings, each part under its workload's name."""
    return {names[part]: {"load": secs} for part, secs in parts.items() if part in names}


if __name__ == "__main__":
    main()
