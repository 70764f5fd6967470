"""What a search costs under each way of keeping failed statements from poisoning a connection.

    python benchmarks/prepared_statements.py [--rows 10000] [--dim 384] [--queries 300] [--out PATH]

psycopg prepares a statement on the server after its fifth execution on a
connection. When such a statement runs in a pipeline that fails, psycopg can
believe a statement is prepared that the server never kept, and every later
execution of that shape fails on that connection. The ways out, each measured
here on its own raw psycopg connection with the statement the store sends
(HNSW, k=10, `ef_search=40`, with and without a metadata filter):

- `session settings, prepared`: what the store does on its own pools. The
  settings are session settings, sent only when they change and never in a
  pipeline with the search, so the search alone is sent and psycopg prepares
  it as usual.
- `never prepared`: `prepare_threshold=None`; every execution is parsed and
  planned again.
- `pipeline, prepared`: the settings as `set_config(..., true)` and the search
  in one pipeline and transaction, prepared: the shape that could be poisoned.
- `pipeline, never prepared`: transaction-local settings (a connection a user
  lent the store goes back to the user without them) and the search in one
  pipeline, nothing prepared.
- `transaction, prepared`: the same settings and search in an explicit
  transaction without a pipeline (BEGIN, the settings, the search, COMMIT:
  four round trips), the search prepared as usual.

Deallocating every statement after a failure costs nothing on success (it
is the first row's cost) and re-prepares after the next five executions.

Calls alternate between the shapes query by query; the report has the median
and p95 per shape and each median as a ratio to the first.

Writes benchmarks/results/prepared_statements.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from langchain_pgvstore._sql.settings import set_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    dataset_name,
    environment,
    load_ours,
    median,
    output_argument,
    p95,
    print_table,
    queries,
    report_path,
    search_statement,
    timed,
    write_report,
)

SHAPES = (
    "session settings, prepared",
    "never prepared",
    "pipeline, prepared",
    "pipeline, never prepared",
    "transaction, prepared",
)


def session_settings(store: Any, vector: Any, flt: Any) -> list[tuple[str, str]]:
    """The settings of a k=10 search as (name, value) pairs, as the store resolves them."""
    from langchain_pgvstore._flow import known_flow
    from langchain_pgvstore._options import parse_options

    spec = store._drive(known_flow())
    query = store._search(
        spec, vector, 10, store._compile(flt), parse_options("similarity", 10, {})
    )
    return list(query.settings.resolved())


def connect(dsn: str, prepared: bool) -> psycopg.Connection[Any]:
    conn = psycopg.connect(dsn, autocommit=True)
    register_vector(conn)
    conn.prepare_threshold = 5 if prepared else None
    return conn


def runner(
    shape: str, conn: psycopg.Connection[Any], query: sql.Composable, settings: list[Any]
) -> Any:
    """A function running one search of `shape` on `conn` with the given parameters."""
    if shape.startswith("transaction"):

        def in_transaction(params: list[Any]) -> Any:
            with conn.transaction():
                for setting in settings:
                    conn.execute(setting.sql, setting.params)
                return conn.execute(query, params).fetchall()

        return in_transaction
    if shape.startswith("pipeline"):

        def in_pipeline(params: list[Any]) -> Any:
            with conn.transaction(), conn.pipeline():
                for setting in settings:
                    conn.execute(setting.sql, setting.params)
                cur = conn.execute(query, params)
            return cur.fetchall()

        return in_pipeline

    def alone(params: list[Any]) -> Any:
        return conn.execute(query, params).fetchall()

    return alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "prepared_statements")

    from benchmarks._common import server_dsn

    dsn, server = server_dsn()
    try:
        store = load_ours(dsn, dataset_name(args.rows, args.dim), args.rows, args.dim)
        results: dict[str, Any] = {}
        rows = []
        for label, flt in (("unfiltered", None), ("filtered", {"category": "c3"})):
            qs = queries(args.queries, args.dim)
            frag, settings = search_statement(store, qs[0], 10, flt)
            conns = {shape: connect(dsn, prepared=shape.endswith(", prepared")) for shape in SHAPES}
            for name, value in session_settings(store, qs[0], flt):
                # the store's own pools: session settings, sent once, outside any pipeline
                setting = set_config(name, value, local=False)
                conns[SHAPES[0]].execute(setting.sql, setting.params)
            run = {
                shape: runner(
                    shape, conns[shape], frag.sql, settings if "pipeline" in shape else []
                )
                for shape in SHAPES
            }
            times: dict[str, list[float]] = {shape: [] for shape in SHAPES}
            for i, q in enumerate(qs):
                frag_i, _ = search_statement(store, q, 10, flt)
                order = SHAPES[i % len(SHAPES) :] + SHAPES[: i % len(SHAPES)]
                for shape in order:
                    times[shape].append(timed(partial(run[shape], frag_i.params)))
            for conn in conns.values():
                conn.close()
            base = median(times[SHAPES[0]][10:])
            results[label] = {}
            for shape in SHAPES:
                warm = times[shape][10:]  # past psycopg's prepare threshold
                results[label][shape] = {
                    "p50_ms": median(warm) * 1e3,
                    "p95_ms": p95(warm) * 1e3,
                    "ratio": median(warm) / base,
                }
                r = results[label][shape]
                rows.append(
                    [label, shape, f"{r['p50_ms']:.3f}", f"{r['p95_ms']:.3f}", f"{r['ratio']:.2f}"]
                )
        load = os.getloadavg()
        print_table(["search", "shape", "p50 ms", "p95 ms", "p50 / first"], rows)
        print(f"load average {load[0]:.2f}")
        write_report(
            out,
            {
                "benchmark": "prepared_statements",
                "rows": args.rows,
                "dim": args.dim,
                "queries": args.queries,
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
