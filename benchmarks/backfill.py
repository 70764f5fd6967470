"""Backfilling an existing table in place: `embed_pending()` against the same work in raw SQL.

    python benchmarks/backfill.py [--rows 100000] [--dim 384] [--batch 512]
                                  [--changed 0.01] [--rounds 2] [--out PATH]

An application's table `(sku text PRIMARY KEY, description text, price integer)`
holds `--rows` rows whose descriptions are about 120 words drawn from a Zipf
distribution over SciFact's vocabulary. Embeddings come from a lookup of
precomputed clustered vectors, so the model costs nothing and only the
backfill's own work shows (with a real model the model dominates: the e5
model embeds about 100 sentences a second on this machine's CPU).

Contenders, each on a fresh copy of the table, `--rounds` rounds in alternating
order, `--batch` rows per transaction:

- **raw**: `ALTER TABLE ... ADD COLUMN embedding vector(dim)`, then per batch
  a keyset `SELECT sku, description ... WHERE embedding IS NULL AND sku > $last
  ORDER BY sku LIMIT n`, a binary COPY of the vectors into a temporary table
  and `UPDATE ... FROM` it, committed: the least work an in-place, resumable
  backfill can do;
- **store**: `adopt(add_embedding_column=True, add_metadata_column=True)` and
  `embed_pending()`;
- **store, track_changes**: the same with the content-hash column, which the
  backfill writes with each embedding;
- **new collection**: the rows loaded with `add_embeddings` into a fresh
  collection of the store's own (`full_text=False`, `index=None`): what
  copying the table out would cost instead.

Then the incremental case: the application updates the descriptions of
`--changed` of the rows with plain SQL, and `embed_pending()` finds and
re-embeds them (`count_pending()` first, as a scheduler would); against a raw
query that finds the same rows. Writes benchmarks/results/backfill.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    LookupEmbedding,
    clustered_vectors,
    environment,
    output_argument,
    print_table,
    report_path,
    scifact_vocabulary,
    server_dsn,
    write_report,
    zipf_texts,
)

from langchain_pgvstore import ExistingTable, PGVStore  # noqa: E402

CONTENDERS = ("raw", "store", "store, track_changes", "new collection")


def make_table(conn: psycopg.Connection[Any], name: str, texts: list[str]) -> None:
    t = sql.Identifier(name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
    conn.execute(
        sql.SQL("CREATE TABLE {} (sku text PRIMARY KEY, description text, price integer)").format(t)
    )
    with conn.cursor().copy(
        sql.SQL("COPY {} (sku, description, price) FROM STDIN").format(t)
    ) as copy:
        for i, text in enumerate(texts):
            copy.write_row((f"sku{i:08d}", text, i % 1000))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(t))


def raw_backfill(dsn: str, name: str, lookup: dict[str, np.ndarray], dim: int, batch: int) -> int:
    t = sql.Identifier(name)
    done = 0
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN embedding vector({})").format(t, dim))
        conn.commit()
        last = ""
        while True:
            rows = conn.execute(
                sql.SQL(
                    "SELECT sku, description FROM {} WHERE description IS NOT NULL"
                    " AND embedding IS NULL AND sku > %s ORDER BY sku LIMIT %s"
                ).format(t),
                (last, batch),
            ).fetchall()
            if not rows:
                conn.commit()
                return done
            conn.execute(
                sql.SQL(
                    "CREATE TEMPORARY TABLE s (sku text, description text, embedding vector({}))"
                    " ON COMMIT DROP"
                ).format(dim)
            )
            with conn.cursor().copy("COPY s FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "text", "vector"])
                for sku, text in rows:
                    copy.write_row((sku, text, lookup[text]))
            conn.execute(
                sql.SQL(
                    "UPDATE {} AS t SET embedding = s.embedding FROM s"
                    " WHERE t.sku = s.sku AND t.description = s.description"
                ).format(t)
            )
            conn.commit()
            done += len(rows)
            last = rows[-1][0]


def store_backfill(
    dsn: str, name: str, model: LookupEmbedding, dim: int, batch: int, track: bool
) -> int:
    with PGVStore(
        model,
        connection=dsn,
        collection=name,
        existing_table=ExistingTable(id="sku", content="description"),
        dimensions=dim,
        batch_size=batch,
        index=None,
    ) as store:
        store.adopt(add_embedding_column=True, add_metadata_column=True, track_changes=track)
        return store.embed_pending().embedded


def new_collection(dsn: str, name: str, texts: list[str], vecs: np.ndarray, batch: int) -> int:
    with PGVStore(
        LookupEmbedding(vecs.shape[1]),
        connection=dsn,
        collection=name,
        full_text=False,
        index=None,
    ) as store:
        step = 50_000
        for start in range(0, len(texts), step):
            end = min(len(texts), start + step)
            store.add_embeddings(
                texts[start:end], vecs[start:end], ids=[f"sku{i:08d}" for i in range(start, end)]
            )
        return len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=2)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "backfill")
    dsn, server = server_dsn()
    try:
        texts = list(zipf_texts(args.rows, scifact_vocabulary(), seed=3))
        texts = [f"{i} {text}" for i, text in enumerate(texts)]  # unique, as descriptions are
        vecs = clustered_vectors(args.rows, args.dim, seed=3).astype(np.float32)
        lookup = dict(zip(texts, vecs, strict=True))
        model = LookupEmbedding(args.dim, {t: [float(x) for x in v] for t, v in lookup.items()})
        seconds: dict[str, list[float]] = {c: [] for c in CONTENDERS}
        with psycopg.connect(dsn, autocommit=True) as admin:
            for r in range(args.rounds):
                order = CONTENDERS if r % 2 == 0 else tuple(reversed(CONTENDERS))
                for contender in order:
                    name = "bench_backfill"
                    admin.execute("DROP TABLE IF EXISTS bench_backfill_new")
                    if _has_registry(admin):
                        admin.execute(
                            "DELETE FROM pgvstore_collections WHERE collection IN"
                            " ('bench_backfill', 'bench_backfill_new')"
                        )
                    if contender != "new collection":
                        make_table(admin, name, texts)
                    start = time.perf_counter()
                    if contender == "raw":
                        n = raw_backfill(dsn, name, lookup, args.dim, args.batch)
                    elif contender == "new collection":
                        n = new_collection(dsn, "bench_backfill_new", texts, vecs, args.batch)
                    else:
                        track = contender == "store, track_changes"
                        n = store_backfill(dsn, name, model, args.dim, args.batch, track)
                    seconds[contender].append(time.perf_counter() - start)
                    assert n == args.rows, (contender, n)
                    print(f"round {r + 1} {contender}: {seconds[contender][-1]:.1f} s", flush=True)
            incremental = measure_incremental(admin, dsn, texts, model, args)
            load = list(map(float, Path("/proc/loadavg").read_text().split()[:3]))
        best = {c: min(s) for c, s in seconds.items()}
        rows = [
            [c, f"{best[c]:.1f}", f"{args.rows / best[c]:,.0f}", f"{best['raw'] / best[c]:.2f}"]
            for c in CONTENDERS
        ]
        print_table(["contender", "seconds (best)", "rows/s", "× raw speed"], rows)
        print_table(
            ["incremental", "ms"],
            [[k, f"{v:.0f}"] for k, v in incremental.items() if k.endswith("_ms")],
        )
        write_report(
            out,
            {
                "benchmark": "backfill",
                "settings": vars(args) | {"out": str(args.out) if args.out else None},
                "seconds": seconds,
                "best_seconds": best,
                "rows_per_s": {c: args.rows / best[c] for c in CONTENDERS},
                "ratio_vs_raw": {c: best["raw"] / best[c] for c in CONTENDERS},
                "incremental": incremental,
                "loadavg_end": load,
                "environment": environment(dsn),
            },
        )
        print(f"wrote {out}")
    finally:
        if server is not None:
            server.stop()


def _has_registry(admin: psycopg.Connection[Any]) -> bool:
    found = admin.execute("SELECT to_regclass('pgvstore_collections') IS NOT NULL").fetchone()
    return bool(found and found[0])


def measure_incremental(
    admin: psycopg.Connection[Any],
    dsn: str,
    texts: list[str],
    model: LookupEmbedding,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """After a tracked backfill: the application changes `--changed` of the descriptions."""
    admin.execute("DELETE FROM pgvstore_collections WHERE collection = 'bench_backfill'")
    make_table(admin, "bench_backfill", texts)
    store_backfill(dsn, "bench_backfill", model, args.dim, args.batch, track=True)
    every = max(1, round(1 / args.changed))
    changed = admin.execute(
        "UPDATE bench_backfill SET description = description || ' (revised)'"
        " WHERE substr(sku, 4)::int %% %s = 0",
        (every,),
    ).rowcount
    admin.execute("VACUUM ANALYZE bench_backfill")
    start = time.perf_counter()
    raw_found = admin.execute(
        "SELECT count(*) FROM bench_backfill WHERE description IS NOT NULL AND (embedding IS NULL"
        " OR pgvstore_content_sha256 IS DISTINCT FROM sha256(convert_to(description, 'UTF8')))"
    ).fetchone()[0]  # type: ignore[index]
    raw_ms = (time.perf_counter() - start) * 1000
    with PGVStore(
        model,
        connection=dsn,
        collection="bench_backfill",
        existing_table=ExistingTable(id="sku", content="description"),
        dimensions=args.dim,
        batch_size=args.batch,
        index=None,
    ) as store:
        start = time.perf_counter()
        pending = store.count_pending()
        count_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        report = store.embed_pending()
        embed_ms = (time.perf_counter() - start) * 1000
    assert pending == raw_found == changed == report.embedded, (pending, raw_found, changed)
    return {
        "changed_rows": changed,
        "raw_find_changed_ms": raw_ms,
        "count_pending_ms": count_ms,
        "embed_pending_ms": embed_ms,
        "embedded": report.embedded,
    }


if __name__ == "__main__":
    main()
