"""What full text costs at ingest: COPY into the store's table, object by object, and the options.

    python benchmarks/ingest_fulltext.py [--rows 100000] [--dim 384] [--repeats 1] [--out PATH]

Rows: unit vectors of low intrinsic dimension, texts of words drawn from a
Zipf distribution over SciFact's vocabulary (about 120 words, log-normal
lengths), metadata `{"n": i, "source": "s<i % 10>"}`. Every variant receives
the same pre-encoded binary COPY stream (the store's own encoder, so the
client's share is the same everywhere and the differences are server work),
into a fresh table, one transaction, timed to the commit:

- `plain`: id, content, metadata, embedding (STORAGE MAIN), timestamps, primary key;
- `+ metadata GIN`: and the `jsonb_path_ops` index that serves filters;
- `+ tsv`: and the generated `tsvector` column (one `to_tsvector` per row);
- `+ tsv_len`: and the generated length column (a second `to_tsvector`);
- `+ tsv GIN`: and the GIN index on the tsvector;
- `store table`: the table the store provisions (`index=None`), with its BM25
  statistics triggers, loaded by the same COPY;
- `add_embeddings`: the store's own call into a fresh collection (`index=None`):
  validation, encoding, the load path and its post-load upkeep;
- `add_embeddings (full_text=False)`: the same call into a collection created
  without full text (no `tsv`, no full-text GIN, no BM25 statistics);
- `raw COPY (write_row)`: pgvector-python's binary COPY example into `plain`,
  the baseline of `perf_ingest.py` and of the issue's ratio.

Prototypes of the options, in plain SQL:

- `deferred full text`: COPY into `+ metadata GIN`, then build the full-text
  objects once after the load (`ADD COLUMN ... GENERATED` rewrites the table;
  GIN; statistics by one aggregate), timed separately and in total;
- `statistics by one aggregate`: `+ tsv GIN` (no `tsv_len`, no triggers), then
  the statistics table filled by one `GROUP BY` over the rows;
- `no full text`: `+ metadata GIN` is what a collection without full text would load.

It also times, on the loaded store table, how long the BM25 statistics of 50
SciFact claims take to read from the statistics table against counting each
lexeme's documents through the GIN index at query time (the alternative to
keeping statistics at all). The HNSW build is the same statement for every
variant; it is timed once on `plain` to give until-searchable figures. Writes
benchmarks/results/ingest_fulltext.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    SCIFACT,
    LookupEmbedding,
    copy_rows,
    environment,
    latent_vectors,
    output_argument,
    print_table,
    report_path,
    rotated,
    scifact_vocabulary,
    server_dsn,
    write_report,
    zipf_texts,
)

from langchain_pgvstore import PGVStore  # noqa: E402
from langchain_pgvstore._ingest import encode_copy, prepare_batch  # noqa: E402
from langchain_pgvstore.config import VectorType  # noqa: E402

SCHEMA = "ftbench"
CONFIG = "english"
TSV = "to_tsvector('english'::regconfig, left(content, 1000000))"
LEN = (
    "(SELECT coalesce(sum(coalesce(cardinality(u.positions), 1)), 0)::integer FROM unnest($1) AS u)"
)


def ddl(table: sql.Identifier, dim: int, *, meta: bool, tsv: bool, tsv_len: bool, gin: bool,
        len_fn: sql.Identifier) -> list[sql.Composable]:  # fmt: skip
    out: list[sql.Composable] = [
        sql.SQL(
            "CREATE TABLE {} (id text PRIMARY KEY, content text NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({}) NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(table, sql.Literal(dim)),
        sql.SQL("ALTER TABLE {} ALTER embedding SET STORAGE MAIN").format(table),
    ]
    if meta:
        out.append(sql.SQL("CREATE INDEX ON {} USING gin (metadata jsonb_path_ops)").format(table))
    if tsv:
        out.append(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({}) STORED"
            ).format(table, sql.SQL(TSV))
        )
        out.append(sql.SQL("ALTER TABLE {} ALTER tsv SET STORAGE MAIN").format(table))
    if tsv_len:
        out.append(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN tsv_len integer GENERATED ALWAYS AS ({}({})) STORED"
            ).format(table, len_fn, sql.SQL(TSV))
        )
    if gin:
        out.append(sql.SQL("CREATE INDEX ON {} USING gin (tsv)").format(table))
    return out


def stats_by_aggregate(table: sql.Identifier, stats: sql.Identifier) -> list[sql.Composable]:
    """The BM25 statistics table filled by one aggregate over the rows."""
    return [
        sql.SQL(
            'CREATE TABLE {} (term text COLLATE "C" NOT NULL, docs bigint NOT NULL,'
            " tokens bigint NOT NULL)"
        ).format(stats),
        sql.SQL(
            "INSERT INTO {stats} (term, docs, tokens)"
            " SELECT u.lexeme, count(*), sum(coalesce(cardinality(u.positions), 1))"
            " FROM {table}, unnest(tsv) AS u GROUP BY u.lexeme"
            " UNION ALL SELECT '', count(*), coalesce(sum((SELECT sum(coalesce(cardinality("
            "v.positions), 1)) FROM unnest(tsv) AS v)), 0) FROM {table}"
        ).format(stats=stats, table=table),
        sql.SQL("CREATE INDEX ON {} (term)").format(stats),
    ]


class Bench:
    def __init__(self, dsn: str, rows: int, dim: int) -> None:
        self.dsn = dsn
        self.rows = rows
        self.dim = dim
        vocabulary = scifact_vocabulary()
        self.texts = list(zipf_texts(rows, vocabulary, seed=1))
        self.vectors = latent_vectors(rows, dim, seed=1)
        self.metas = [{"n": i, "source": f"s{i % 10}"} for i in range(rows)]
        self.ids = [f"doc-{i}" for i in range(rows)]
        batch = prepare_batch(self.texts, self.metas, self.ids, self.vectors, dim)
        self.stream = list(encode_copy(batch, VectorType.VECTOR, with_ord=False))
        self.len_fn = sql.Identifier(SCHEMA, "bench_len")
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
            conn.execute(
                sql.SQL(
                    "CREATE FUNCTION {}(tsvector) RETURNS integer LANGUAGE sql IMMUTABLE STRICT"
                    " PARALLEL SAFE AS {}"
                ).format(self.len_fn, sql.Literal(LEN))
            )

    def connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=True)
        register_vector(conn)
        return conn

    def fresh(self) -> sql.Identifier:
        return sql.Identifier(SCHEMA, f"t_{uuid.uuid4().hex[:10]}")

    def copy_stream(self, conn: psycopg.Connection[Any], table: sql.Identifier) -> None:
        with conn.cursor().copy(
            sql.SQL("COPY {} (id, content, metadata, embedding) FROM STDIN (FORMAT BINARY)").format(
                table
            )
        ) as copy:
            for chunk in self.stream:
                copy.write(chunk)

    def variant(self, **shape: bool) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            table = self.fresh()
            with self.connect() as conn:
                for stmt in ddl(table, self.dim, len_fn=self.len_fn, **shape):
                    conn.execute(stmt)
                t0 = time.perf_counter()
                with conn.transaction():
                    self.copy_stream(conn, table)
                seconds = time.perf_counter() - t0
                conn.execute(sql.SQL("DROP TABLE {}").format(table))
            return {"load_s": seconds}

        return run

    def write_row(self) -> dict[str, float]:
        table = self.fresh()
        with self.connect() as conn:
            for stmt in ddl(table, self.dim, len_fn=self.len_fn, meta=False, tsv=False,
                            tsv_len=False, gin=False):  # fmt: skip
                conn.execute(stmt)
            t0 = time.perf_counter()
            with conn.transaction():
                copy_rows(conn, table, self.texts, self.metas, self.ids, self.vectors)
            seconds = time.perf_counter() - t0
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
        return {"load_s": seconds}

    def store_table(self) -> dict[str, float]:
        store = self._store()
        try:
            store.add_embeddings(self.texts[:1], self.vectors[:1], self.metas[:1], ids=["x"])
            store.delete(ids=["x"])
            table = sql.Identifier(SCHEMA, store.collection)
            with self.connect() as conn:
                t0 = time.perf_counter()
                with conn.transaction():
                    self.copy_stream(conn, table)
                seconds = time.perf_counter() - t0
        finally:
            store.delete_collection()
            store.close()
        return {"load_s": seconds}

    def add_embeddings(self, full_text: bool = True) -> dict[str, float]:
        store = self._store(full_text)
        try:
            t0 = time.perf_counter()
            store.add_embeddings(self.texts, self.vectors, self.metas, ids=self.ids)
            seconds = time.perf_counter() - t0
        finally:
            store.delete_collection()
            store.close()
        return {"load_s": seconds}

    def deferred(self) -> dict[str, float]:
        table = self.fresh()
        stats = sql.Identifier(SCHEMA, f"s_{uuid.uuid4().hex[:10]}")
        with self.connect() as conn:
            for stmt in ddl(table, self.dim, len_fn=self.len_fn, meta=True, tsv=False,
                            tsv_len=False, gin=False):  # fmt: skip
                conn.execute(stmt)
            t0 = time.perf_counter()
            with conn.transaction():
                self.copy_stream(conn, table)
            loaded = time.perf_counter() - t0
            t1 = time.perf_counter()
            with conn.transaction():
                conn.execute(
                    sql.SQL(
                        "ALTER TABLE {t} ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({tsv}) STORED,"
                        " ADD COLUMN tsv_len integer GENERATED ALWAYS AS ({fn}({tsv})) STORED"
                    ).format(t=table, tsv=sql.SQL(TSV), fn=self.len_fn)
                )
                conn.execute(sql.SQL("CREATE INDEX ON {} USING gin (tsv)").format(table))
                for stmt in stats_by_aggregate(table, stats):
                    conn.execute(stmt)
            built = time.perf_counter() - t1
            conn.execute(sql.SQL("DROP TABLE {}, {}").format(table, stats))
        return {"load_s": loaded, "full_text_build_s": built, "total_s": loaded + built}

    def aggregate_stats(self) -> dict[str, float]:
        table = self.fresh()
        stats = sql.Identifier(SCHEMA, f"s_{uuid.uuid4().hex[:10]}")
        with self.connect() as conn:
            for stmt in ddl(table, self.dim, len_fn=self.len_fn, meta=True, tsv=True,
                            tsv_len=False, gin=True):  # fmt: skip
                conn.execute(stmt)
            t0 = time.perf_counter()
            with conn.transaction():
                self.copy_stream(conn, table)
            loaded = time.perf_counter() - t0
            t1 = time.perf_counter()
            with conn.transaction():
                for stmt in stats_by_aggregate(table, stats):
                    conn.execute(stmt)
            counted = time.perf_counter() - t1
            conn.execute(sql.SQL("DROP TABLE {}, {}").format(table, stats))
        return {"load_s": loaded, "statistics_s": counted, "total_s": loaded + counted}

    def hnsw(self) -> float:
        table = self.fresh()
        with self.connect() as conn:
            for stmt in ddl(table, self.dim, len_fn=self.len_fn, meta=False, tsv=False,
                            tsv_len=False, gin=False):  # fmt: skip
                conn.execute(stmt)
            with conn.transaction():
                self.copy_stream(conn, table)
            conn.execute("SET maintenance_work_mem = '1GB'")
            t0 = time.perf_counter()
            conn.execute(HNSW_BY_HAND.format(table))
            seconds = time.perf_counter() - t0
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
        return seconds

    def statistics_at_query_time(self, n_queries: int = 50) -> dict[str, Any]:
        """BM25 statistics of claims' lexemes: read from the statistics table, or counted."""
        store = self._store()
        try:
            store.add_embeddings(self.texts, self.vectors, self.metas, ids=self.ids)
            with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as f:
                claims = [json.loads(line)["text"] for line in f][:n_queries]
            table = sql.Identifier(SCHEMA, store.collection)
            from langchain_pgvstore._sql.bm25_schema import stats_table

            stats = stats_table(store._configured.table)
            read = sql.SQL(
                "SELECT u.lexeme, sum(s.docs) FROM unnest(tsvector_to_array("
                "to_tsvector('english'::regconfig, %s))) AS u(lexeme)"
                " LEFT JOIN {} s ON s.term = u.lexeme GROUP BY u.lexeme"
            ).format(stats)
            count = sql.SQL(
                "SELECT u.lexeme, (SELECT count(*) FROM {} t WHERE t.tsv @@ u.lexeme::tsquery)"
                " FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, %s)))"
                " AS u(lexeme)"
            ).format(table)
            timings: dict[str, list[float]] = {"statistics table": [], "GIN count": []}
            with self.connect() as conn:
                for claim in claims[:3]:
                    conn.execute(read, (claim,)).fetchall()
                    conn.execute(count, (claim,)).fetchall()
                for claim in claims:
                    for name, stmt in (("statistics table", read), ("GIN count", count)):
                        t0 = time.perf_counter()
                        conn.execute(stmt, (claim,)).fetchall()
                        timings[name].append((time.perf_counter() - t0) * 1000)
        finally:
            store.delete_collection()
            store.close()
        return {name: {"p50_ms": statistics.median(t), "p95_ms": float(np.percentile(t, 95))}
                for name, t in timings.items()}  # fmt: skip

    def _store(self, full_text: bool = True) -> PGVStore:
        return PGVStore(
            LookupEmbedding(self.dim),  # type: ignore[arg-type]
            connection=self.dsn,
            schema=SCHEMA,
            collection=f"c_{uuid.uuid4().hex[:10]}",
            index=None,
            full_text=full_text,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=1)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "ingest_fulltext")

    dsn, server = server_dsn()
    load_start = os.getloadavg()
    try:
        bench = Bench(dsn, args.rows, args.dim)
        none = {"meta": False, "tsv": False, "tsv_len": False, "gin": False}
        variants: dict[str, Callable[[], dict[str, float]]] = {
            "plain": bench.variant(**none),
            "+ metadata GIN": bench.variant(**{**none, "meta": True}),
            "+ tsv": bench.variant(meta=True, tsv=True, tsv_len=False, gin=False),
            "+ tsv_len": bench.variant(meta=True, tsv=True, tsv_len=True, gin=False),
            "+ tsv GIN": bench.variant(meta=True, tsv=True, tsv_len=True, gin=True),
            "store table (+ BM25 triggers)": bench.store_table,
            "add_embeddings (index=None)": bench.add_embeddings,
            "add_embeddings (index=None, full_text=False)": lambda: bench.add_embeddings(False),
            "raw COPY (write_row) into plain": bench.write_row,
            "deferred full text": bench.deferred,
            "statistics by one aggregate": bench.aggregate_stats,
        }
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.repeats):
            for name in rotated(names, r):
                runs[name].append(variants[name]())
                print(f"repeat {r + 1}: {name} {runs[name][-1]}", flush=True)
        hnsw_s = bench.hnsw()
        print(f"HNSW build on plain: {hnsw_s:.1f}s", flush=True)
        at_query = bench.statistics_at_query_time()
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()

    medians = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
    }
    plain = medians["plain"]["load_s"]
    raw = medians["raw COPY (write_row) into plain"]["load_s"]
    table_rows = []
    for name, m in medians.items():
        total = m.get("total_s", m["load_s"])
        table_rows.append(
            [
                name,
                m["load_s"],
                m.get("full_text_build_s", m.get("statistics_s", "")),
                total,
                f"{plain / total:.2f}x",
                f"{raw / total:.2f}x",
                f"{(raw + hnsw_s) / (total + hnsw_s):.2f}x",
            ]
        )
    print(
        f"\n{args.rows:,} x {args.dim}-d, Zipf texts over SciFact's vocabulary, medians of"
        f" {args.repeats}; HNSW build {hnsw_s:.1f}s; load average {load_start} at the start,"
        f" {env['loadavg']} at the end"
    )
    print_table(
        ["variant", "load s", "after-load s", "total s", "vs plain COPY", "vs raw COPY",
         "until searchable vs raw"],
        table_rows,
    )  # fmt: skip
    print("\nBM25 statistics of a claim's lexemes, 50 SciFact claims")
    print_table(["source", "p50 ms", "p95 ms"],
                [[n, v["p50_ms"], v["p95_ms"]] for n, v in at_query.items()])  # fmt: skip
    path = write_report(
        out,
        {
            "benchmark": "ingest_fulltext",
            "rows": args.rows,
            "dim": args.dim,
            "repeats": args.repeats,
            "loadavg_start": load_start,
            "runs": runs,
            "medians": medians,
            "hnsw_build_s": hnsw_s,
            "statistics_at_query_time": at_query,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
