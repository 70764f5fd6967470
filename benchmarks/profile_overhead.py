"""Where the time goes: per-call Python overhead of search, and the phases of an ingest.

    python benchmarks/profile_overhead.py search [--rows 20000] [--dim 384] [--calls 1000] [--out PATH]
    python benchmarks/profile_overhead.py ingest [--rows 100000] [--dim 384] [--out PATH]

`search` loads a collection, then

1. times `similarity_search_with_score_by_vector` (unfiltered, filtered, MMR)
   against the same statement run raw on one psycopg connection, alternating
   call by call: the median difference is the store's whole overhead per call;
2. times each client-side stage alone (validation, statement building,
   rendering the SQL, pool checkout, building Documents, ...);
3. profiles the store's calls with pyinstrument (and py-spy, if it can attach)
   and writes their reports beside the JSON report (`-pyinstrument.txt`,
   `-py-spy.txt`).

`ingest` runs `add_embeddings` into a new collection, then an upsert of
`--upsert-rows` existing ids, with every statement the store sends timed (the
runner's step function is wrapped), next to the same work done by hand (binary COPY with psycopg `write_row`, `CREATE INDEX`),
and profiles the client side with pyinstrument.

Writes benchmarks/results/profile_overhead-<search|ingest>.json (other settings:
`--out`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    HNSW_BY_HAND,
    LookupEmbedding,
    clustered_vectors,
    companion,
    copy_rows,
    create_raw_table,
    documents,
    environment,
    load_ours,
    output_argument,
    print_table,
    queries,
    report_path,
    search_statement,
    server_dsn,
    write_report,
)
from langchain_core.documents import Document  # noqa: E402

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore import PGVStore  # noqa: E402
from langchain_pgvstore import _runner as runner_module  # noqa: E402
from langchain_pgvstore._core import as_array as _as_array  # noqa: E402
from langchain_pgvstore._ingest import encode_copy, prepare_batch  # noqa: E402
from langchain_pgvstore.mmr import mmr_select  # noqa: E402

FILTER = {"source": "s3"}


def _us(fn: Any, n: int) -> float:
    fn()
    return timeit.timeit(fn, number=n) / n * 1e6


def search(args: argparse.Namespace) -> None:
    dsn, server = server_dsn()
    store: PGVStore | None = None
    try:
        store = load_ours(dsn, f"profile_{uuid.uuid4().hex[:6]}", args.rows, args.dim)
        qs = queries(200, args.dim)
        qlists = [[float(x) for x in q] for q in qs]
        raw = psycopg.connect(dsn, autocommit=True)
        register_vector(raw)

        # 1. end to end, alternating call by call
        def stmt(i: int, **kw: Any) -> tuple[bytes, tuple[Any, ...], list[Any]]:
            vec = store._query_vector(qs[i])
            frag, pre = search_statement(store, vec, kw.pop("k", 10), kw.pop("filter", None), **kw)
            settings = [(p.sql.as_bytes(raw), p.params) for p in pre]
            return frag.sql.as_bytes(raw), frag.params, settings

        pre_knn = [stmt(i) for i in range(len(qs))]
        pre_flt = [stmt(i, filter=FILTER) for i in range(len(qs))]
        pre_mmr = [stmt(i, k=50, with_embedding=True) for i in range(len(qs))]

        def raw_call(s: tuple[bytes, tuple[Any, ...], list[Any]], binary: bool = False) -> Any:
            if not s[2]:
                return raw.execute(s[0], s[1], binary=binary).fetchall()
            with raw.pipeline():
                for s_sql, s_params in s[2]:
                    raw.execute(s_sql, s_params)
                return raw.execute(s[0], s[1], binary=binary).fetchall()

        def raw_mmr(i: int) -> Any:
            rows = raw_call(pre_mmr[i], binary=True)
            cands = np.stack([np.asarray(r[4].to_numpy(), dtype=np.float32) for r in rows])
            return mmr_select(qs[i], cands, 10, 0.5)

        pairs = {
            "unfiltered k=10": (
                lambda i: store.similarity_search_with_score_by_vector(qlists[i], k=10),
                lambda i: raw_call(pre_knn[i]),
            ),
            "filtered 10% k=10": (
                lambda i: store.similarity_search_with_score_by_vector(
                    qlists[i], k=10, filter=FILTER
                ),
                lambda i: raw_call(pre_flt[i]),
            ),
            "MMR k=10 fetch_k=50": (
                lambda i: store.max_marginal_relevance_search_with_score_by_vector(
                    qlists[i], k=10, fetch_k=50
                ),
                raw_mmr,
            ),
        }
        end_to_end: dict[str, dict[str, float]] = {}
        for name, (ours, base) in pairs.items():
            for i in range(10):
                ours(i)
                base(i)
            t_ours: list[float] = []
            t_raw: list[float] = []
            for j in range(args.calls):
                i = j % len(qs)
                order = [(ours, t_ours), (base, t_raw)]
                for fn, sink in order if j % 2 else order[::-1]:
                    start = time.perf_counter()
                    fn(i)
                    sink.append(time.perf_counter() - start)
            diffs = [(a - b) * 1e6 for a, b in zip(t_ours, t_raw, strict=True)]
            end_to_end[name] = {
                "ours_p50_us": statistics.median(t_ours) * 1e6,
                "raw_p50_us": statistics.median(t_raw) * 1e6,
                "median_difference_us": statistics.median(diffs),
                "ratio_p50": statistics.median(t_ours) / statistics.median(t_raw),
            }

        # 2. stages, alone
        n = args.stage_calls
        vec = store._query_vector(qlists[0])
        frag, _ = search_statement(store, vec, 10)
        ffrag, fpre = search_statement(store, vec, 10, FILTER)
        mfrag, _ = search_statement(store, vec, 50, with_embedding=True)
        rows = raw.execute(frag.sql, frag.params).fetchall()
        mrows = raw.execute(mfrag.sql, mfrag.params, binary=True).fetchall()
        pool = store._connector.sync_pool()

        def pool_roundtrip() -> None:
            with pool.connection():
                pass

        def documents_10() -> Any:
            return [
                (Document(id=r[0], page_content=r[1], metadata=r[2]), float(r[3])) for r in rows
            ]

        def documents_10_construct() -> Any:
            return [
                (Document.model_construct(id=r[0], page_content=r[1], metadata=r[2]), float(r[3]))
                for r in rows
            ]

        stages = {
            "query vector: _query_vector(list[float])": lambda: store._query_vector(qlists[0]),
            "query vector: np.asarray(list, float32) + isfinite": lambda: np.isfinite(
                np.asarray(qlists[0], dtype=np.float32)
            ).all(),
            "build statement: _search(unfiltered)": lambda: search_statement(store, vec, 10),
            "build statement: _search(filtered)": lambda: search_statement(store, vec, 10, FILTER),
            "render SQL: knn Composed.as_bytes": lambda: frag.sql.as_bytes(raw),
            "render SQL: filtered Composed.as_bytes + settings": lambda: [
                f.sql.as_bytes(raw) for f in (ffrag, *fpre)
            ],
            "render SQL: cached bytes (lookup only)": lambda: pre_knn[0][0],
            "pool: checkout + return": pool_roundtrip,
            "results: 10 x Document(...)": documents_10,
            "results: 10 x Document.model_construct(...)": documents_10_construct,
            "MMR: 50 x _as_array + np.stack": lambda: np.stack([_as_array(r[4]) for r in mrows]),
            "MMR: mmr_select(50 x d, k=10)": lambda: mmr_select(
                vec, np.stack([_as_array(r[4]) for r in mrows]), 10, 0.5
            ),
        }
        stage_us = {name: _us(fn, n) for name, fn in stages.items()}

        # 3. profiles
        profiles: dict[str, str] = {}
        try:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.0002)
            prof.start()
            for j in range(args.calls):
                store.similarity_search_with_score_by_vector(qlists[j % len(qs)], k=10)
            prof.stop()
            text = prof.output_text(short_mode=False, show_all=False)
            path = companion(args.out, "pyinstrument.txt")
            path.write_text(text)
            profiles["pyinstrument"] = path.name
        except ImportError:
            print("pyinstrument not installed: skipping its profile")
        spy = shutil.which("py-spy")
        if spy:
            out = Path(tempfile.mkdtemp()) / "spy.txt"
            proc = subprocess.Popen(
                [spy, "record", "--pid", str(os.getpid()), "--format", "raw", "--rate", "500",
                 "--output", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            time.sleep(1.0)
            for j in range(args.calls * 2):
                store.similarity_search_with_score_by_vector(qlists[j % len(qs)], k=10)
            proc.send_signal(2)
            proc.wait(timeout=30)
            if out.exists():
                path = companion(args.out, "py-spy.txt")
                path.write_text(_collapse(out.read_text()))
                profiles["py-spy"] = path.name
            else:
                print("py-spy could not attach:", proc.stderr.read().decode()[-300:])  # type: ignore[union-attr]
        raw.close()
        env = environment(dsn)
    finally:
        if store is not None:
            store.delete_collection()
            store.close()
        if server is not None:
            server.stop()

    print(
        f"\nend to end, alternating with raw psycopg ({args.calls} calls each, {args.rows:,} x {args.dim}-d)"
    )
    print_table(
        ["workload", "pgvstore p50 us", "raw p50 us", "median extra us", "ratio"],
        [
            [
                k,
                v["ours_p50_us"],
                v["raw_p50_us"],
                v["median_difference_us"],
                f"{v['ratio_p50']:.2f}x",
            ]
            for k, v in end_to_end.items()
        ],
    )
    print(f"\nclient-side stages, alone ({n} calls each)")
    print_table(["stage", "us per call"], [[k, v] for k, v in stage_us.items()])
    for name, path in profiles.items():
        print(f"{name} profile: {path}")
    out_path = write_report(
        args.out,
        {
            "benchmark": "profile_overhead search",
            "rows": args.rows,
            "dim": args.dim,
            "calls": args.calls,
            "library": langchain_pgvstore.__file__,
            "end_to_end": end_to_end,
            "stages_us": stage_us,
            "profiles": profiles,
            "environment": env,
        },
    )
    print(f"wrote {out_path}")


def _collapse(raw: str) -> str:
    """py-spy's collapsed stacks as inclusive and self sample counts per function."""
    inclusive: dict[str, int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        total += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
                  for f in stack.split(";")]  # fmt: skip
        for f in set(frames):
            inclusive[f] += count
        own[frames[-1]] += count
    lines = [f"{total} samples; inclusive% self% function (file)"]
    for f, c in sorted(inclusive.items(), key=lambda kv: -kv[1])[:60]:
        lines.append(f"{100 * c / total:6.1f} {100 * own.get(f, 0) / total:6.1f}  {f}")
    return "\n".join(lines) + "\n"


def _label(frag: Any) -> str:
    text = frag.as_string()
    words = text.split()
    if text.startswith("SELECT set_config"):
        return "set_config (" + str(frag.params[0]) + ")"
    if words[:2] == ["CREATE", "INDEX"] and " hnsw " in text:
        return "CREATE INDEX ... USING hnsw"
    if words[:2] == ["CREATE", "INDEX"]:
        return "CREATE INDEX (gin)"
    if text.startswith("INSERT INTO") and "pgvstore_staging" in text:
        return "INSERT ... SELECT FROM staging ON CONFLICT (merge)"
    if text.startswith("COPY") and "pgvstore_staging" in text:
        return "COPY staging FROM STDIN (binary; encode + send)"
    if text.startswith("COPY"):
        return "COPY table FROM STDIN (binary; encode + send, tsvector, GIN, BM25 trigger)"
    if text.startswith("CREATE TEMPORARY"):
        return "CREATE TEMPORARY TABLE staging"
    if "gin_clean_pending_list" in text:
        return "gin_clean_pending_list"
    if text.startswith("ANALYZE"):
        return "ANALYZE"
    if text.startswith(("CREATE", "ALTER", "DROP")):
        return "DDL: " + " ".join(words[:3])
    return "other: " + " ".join(words[:4])[:40]


def ingest(args: argparse.Namespace) -> None:
    dsn, server = server_dsn()
    texts, metas, ids = documents(args.rows)
    vecs = clustered_vectors(args.rows, args.dim)
    steps: dict[str, float] = defaultdict(float)
    original = runner_module._perform

    def timed_perform(conn: Any, step: Any, prepare: bool = True) -> Any:
        start = time.perf_counter()
        try:
            return original(conn, step, prepare)
        finally:
            steps[_label(step.frag)] += time.perf_counter() - start

    try:
        # client-side pieces, alone
        t0 = time.perf_counter()
        batch = prepare_batch(texts, metas, ids, vecs, args.dim)
        t_validate = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_bytes = sum(len(c) for c in encode_copy(batch, langchain_pgvstore.VectorType.VECTOR))
        t_encode = time.perf_counter() - t0

        store = PGVStore(
            LookupEmbedding(args.dim),  # type: ignore[arg-type]
            connection=dsn,
            collection=f"prof_ingest_{uuid.uuid4().hex[:6]}",
            maintenance_work_mem=args.maintenance_work_mem,
        )
        store.similarity_search_by_vector([0.0] * args.dim, k=1)  # open the pool
        runner_module._perform = timed_perform  # type: ignore[assignment]
        try:
            from pyinstrument import Profiler

            prof: Any = Profiler(interval=0.001)
        except ImportError:
            prof = None
        if prof is not None:
            prof.start()
        t0 = time.perf_counter()
        store.add_embeddings(texts, vecs, metas, ids=ids)
        t_total = time.perf_counter() - t0
        if prof is not None:
            prof.stop()
            path = companion(args.out, "pyinstrument.txt")
            path.write_text(prof.output_text())
        # then an upsert of `--upsert-rows` existing ids with new texts and vectors
        n_up = min(args.upsert_rows, args.rows)
        load_steps = dict(steps)
        steps.clear()
        up_vecs = clustered_vectors(n_up, args.dim, seed=1)
        up_texts = [t + " revised" for t in texts[:n_up]]
        t0 = time.perf_counter()
        store.add_embeddings(up_texts, up_vecs, metas[:n_up], ids=ids[:n_up])
        t_upsert = time.perf_counter() - t0
        upsert_steps = dict(steps)
        steps.clear()
        steps.update(load_steps)
        runner_module._perform = original  # type: ignore[assignment]
        store.delete_collection()
        store.close()

        # the same work by hand
        manual: dict[str, float] = {}
        table = sql.Identifier(f"prof_raw_{uuid.uuid4().hex[:6]}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            register_vector(conn)
            create_raw_table(conn, table, args.dim, secondary=False)
            with conn.transaction():
                t0 = time.perf_counter()
                copy_rows(conn, table, texts, metas, ids, vecs)
                manual["raw binary COPY (write_row), the store's columns, no GIN indexes"] = (
                    time.perf_counter() - t0
                )
                conn.execute(
                    "SELECT set_config('maintenance_work_mem', %s, true)",
                    (args.maintenance_work_mem,),
                )
                t0 = time.perf_counter()
                conn.execute(HNSW_BY_HAND.format(table))
                manual["CREATE INDEX ... USING hnsw (by hand)"] = time.perf_counter() - t0
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
        env = environment(dsn)
    finally:
        runner_module._perform = original  # type: ignore[assignment]
        if server is not None:
            server.stop()

    print(f"\nadd_embeddings, {args.rows:,} x {args.dim}-d into a new collection: {t_total:.1f}s")
    rows = [
        ["client: prepare_batch (validation)", t_validate, f"{100 * t_validate / t_total:.0f}%"]
    ]
    rows.append(
        [
            "client: encode_copy alone (included in COPY below)",
            t_encode,
            f"{100 * t_encode / t_total:.0f}%",
        ]
    )
    for name, secs in sorted(steps.items(), key=lambda kv: -kv[1]):
        rows.append([name, secs, f"{100 * secs / t_total:.0f}%"])
    other = t_total - t_validate - sum(steps.values())
    rows.append(
        [
            "client: the rest (runner, provisioning plan, Python)",
            other,
            f"{100 * other / t_total:.0f}%",
        ]
    )
    print_table(["phase", "seconds", "share"], rows)
    print(f"\nthen add_embeddings of {n_up:,} existing ids (upsert): {t_upsert:.1f}s")
    up_rows = [
        [name, secs, f"{100 * secs / t_upsert:.0f}%"]
        for name, secs in sorted(upsert_steps.items(), key=lambda kv: -kv[1])
    ]
    print_table(["statement", "seconds", "share"], up_rows)
    print("\nthe same by hand")
    print_table(["step", "seconds"], [[k, v] for k, v in manual.items()])
    out_path = write_report(
        args.out,
        {
            "benchmark": "profile_overhead ingest",
            "rows": args.rows,
            "dim": args.dim,
            "maintenance_work_mem": args.maintenance_work_mem,
            "library": langchain_pgvstore.__file__,
            "total_s": t_total,
            "validate_s": t_validate,
            "encode_s": t_encode,
            "copy_bytes": n_bytes,
            "steps_s": dict(steps),
            "upsert_rows": n_up,
            "upsert_s": t_upsert,
            "upsert_steps_s": upsert_steps,
            "manual_s": manual,
            "environment": env,
        },
    )
    print(f"wrote {out_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search", help="per-call overhead of search")
    s.add_argument("--rows", type=int, default=20_000)
    s.add_argument("--dim", type=int, default=384)
    s.add_argument("--calls", type=int, default=1000)
    s.add_argument("--stage-calls", type=int, default=2000)
    output_argument(s)
    i = sub.add_parser("ingest", help="phases of add_embeddings")
    i.add_argument("--rows", type=int, default=100_000)
    i.add_argument("--dim", type=int, default=384)
    i.add_argument("--maintenance-work-mem", default="1GB")
    i.add_argument("--upsert-rows", type=int, default=10_000)
    output_argument(i)
    args = parser.parse_args()
    command = s if args.command == "search" else i
    args.out = report_path(command, args, f"profile_overhead-{args.command}", neutral=["command"])
    args.out.parent.mkdir(parents=True, exist_ok=True)  # profiles are written before the report
    search(args) if args.command == "search" else ingest(args)


if __name__ == "__main__":
    main()
