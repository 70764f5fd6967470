"""Search overhead: PGVStore vs its own SQL run raw with psycopg, and vs langchain-postgres.

    python benchmarks/perf_search.py [--rows 100000] [--dim 384] [--queries 200] [--passes 3]
                                     [--no-incumbents] [--out PATH]

Loads `rows` clustered unit vectors into a PGVStore collection (HNSW m=16,
ef_construction=64, cosine), copies the same rows server-side into a
langchain-postgres v2 `PGVectorStore` table (HNSW via `apply_vector_index`,
GIN tsvector via `apply_hybrid_search_index`) and into v1 `PGVector`'s
shared table (HNSW built by hand: v1 has no index API). Then, for each
query vector and workload, runs every contender once, in a random (seeded)
order per query: the table and index do not fit in the server's shared
buffers, and the second contender to run a query finds its graph path
already in them, so a fixed or rotated order would favour whoever always
follows the store on the shared table:

- `similarity_search_by_vector` and `..._with_score_by_vector`, k=10;
- filtered (`{"source": "s3"}`, 10% of rows), k=10;
- MMR, k=10, fetch_k=50, lambda_mult=0.5;
- hybrid (vector + keyword, RRF), k=10, with keyword queries of three
  document numbers (selective terms; v1 has no hybrid search).

"raw psycopg" is the exact statement the store sends (taken from the store's
own builders), with its parameters built beforehand, run on one open
autocommit connection: no pool, no Documents, no validation. The filtered
statement runs with its `set_config` settings in one pipeline (an implicit
transaction: 2 round trips). The MMR baseline fetches candidates and
vectors in binary (with the store's settings: it raises ef_search to
fetch_k) and runs the same numpy MMR. Everything is sync: v2's
sync methods go through its background event loop, as its users' do.

A second pass runs each workload once through a counting proxy
(`_common.RoundTripProxy`) and reports client round trips per call (including
work a client does on its connection after returning, such as v2's reset).

Prints p50/p95 latency, the ratio of p50 to raw psycopg and the client CPU
time per call (`time.process_time`, all threads: the store's own overhead, which CPU
contention from other processes inflates less than wall time), and writes
benchmarks/results/perf_search.json (other settings, or a patched library on
`PYTHONPATH`: `--out`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    Incumbents,
    LookupEmbedding,
    RoundTripProxy,
    dataset_name,
    environment,
    hybrid_statement,
    load_ours,
    output_argument,
    print_table,
    queries,
    report_path,
    search_statement,
    server_dsn,
    shuffled,
    summary_ms,
    write_report,
)

import langchain_pgvstore  # noqa: E402
from langchain_pgvstore import PGVStore  # noqa: E402
from langchain_pgvstore.mmr import mmr_select  # noqa: E402

FILTER = {"source": "s3"}

Workload = Callable[[int], int]  # query index -> rows returned


class Statements:
    """The store's own statements for each query, rendered once, for the raw baseline."""

    def __init__(self, store: PGVStore, conn: psycopg.Connection[Any], qs: np.ndarray, k: int,
                 fetch_k: int, texts: list[str]) -> None:  # fmt: skip
        store.similarity_search_by_vector(list(qs[0]), k=1)  # the collection is looked up
        self.knn: list[tuple[bytes, tuple[Any, ...]]] = []
        self.filtered: list[tuple[bytes, tuple[Any, ...], list[tuple[bytes, tuple[Any, ...]]]]] = []
        self.mmr: list[tuple[bytes, tuple[Any, ...], list[tuple[bytes, tuple[Any, ...]]]]] = []
        self.hybrid: list[tuple[bytes, tuple[Any, ...]]] = []
        self.vectors: list[np.ndarray] = []
        for i, q in enumerate(qs):
            vec = store._query_vector(q)
            self.vectors.append(vec)
            frag, pre = search_statement(store, vec, k)
            assert not pre
            self.knn.append((frag.sql.as_bytes(conn), frag.params))
            frag, pre = search_statement(store, vec, k, FILTER)
            settings = [(p.sql.as_bytes(conn), p.params) for p in pre]
            self.filtered.append((frag.sql.as_bytes(conn), frag.params, settings))
            frag, pre = search_statement(store, vec, fetch_k, with_embedding=True)
            settings = [(p.sql.as_bytes(conn), p.params) for p in pre]  # ef_search >= fetch_k
            self.mmr.append((frag.sql.as_bytes(conn), frag.params, settings))
            text = texts[i]
            hvec = store._query_vector(store.embeddings.embed_query(text))
            frag = hybrid_statement(store, text, hvec, k)
            self.hybrid.append((frag.sql.as_bytes(conn), frag.params))
        self.statement_text = {
            "knn": self.knn[0][0].decode(),
            "filtered": self.filtered[0][0].decode(),
            "filtered_settings": [
                (s.decode(), [str(x) for x in p]) for s, p in self.filtered[0][2]
            ],
            "mmr": self.mmr[0][0].decode(),
            "hybrid": self.hybrid[0][0].decode(),
        }


def workloads(
    store: PGVStore,
    raw: psycopg.Connection[Any],
    inc: Incumbents | None,
    st: Statements,
    qs: np.ndarray,
    texts: list[str],
    k: int,
    fetch_k: int,
) -> dict[str, dict[str, Workload]]:
    qlists = [[float(x) for x in q] for q in qs]  # what an embedding model hands over

    def raw_fetch(sql_: bytes, params: tuple[Any, ...], binary: bool = False) -> list[Any]:
        return raw.execute(sql_, params, binary=binary).fetchall()

    def raw_with_settings(
        stmt: tuple[bytes, tuple[Any, ...], list[tuple[bytes, tuple[Any, ...]]]],
        binary: bool = False,
    ) -> list[Any]:
        sql_, params, settings = stmt
        if not settings:
            return raw_fetch(sql_, params, binary)
        with raw.pipeline():  # one implicit transaction up to the Sync
            for s_sql, s_params in settings:
                raw.execute(s_sql, s_params)
            return raw.execute(sql_, params, binary=binary).fetchall()

    def raw_mmr(i: int) -> int:
        rows = raw_with_settings(st.mmr[i], binary=True)
        cands = np.stack([np.asarray(r[4].to_numpy(), dtype=np.float32) for r in rows])
        return len(mmr_select(st.vectors[i], cands, k, 0.5))

    groups: dict[str, dict[str, Workload]] = {
        "similarity_search_by_vector": {
            "pgvstore": lambda i: len(store.similarity_search_by_vector(qlists[i], k=k)),
            "raw psycopg": lambda i: len(raw_fetch(*st.knn[i])),
        },
        "similarity_search_with_score_by_vector": {
            "pgvstore": lambda i: len(store.similarity_search_with_score_by_vector(qlists[i], k=k)),
            "raw psycopg": lambda i: len(raw_fetch(*st.knn[i])),
        },
        "filtered 10% (source = s3)": {
            "pgvstore": lambda i: len(
                store.similarity_search_by_vector(qlists[i], k=k, filter=FILTER)
            ),
            "raw psycopg": lambda i: len(raw_with_settings(st.filtered[i])),
        },
        f"MMR k={k} fetch_k={fetch_k}": {
            "pgvstore": lambda i: len(
                store.max_marginal_relevance_search_by_vector(qlists[i], k=k, fetch_k=fetch_k)
            ),
            "raw psycopg": raw_mmr,
        },
        "hybrid (vector + keyword, RRF)": {
            "pgvstore": lambda i: len(store.hybrid_search_with_score(texts[i], k=k)),
            "raw psycopg": lambda i: len(raw_fetch(*st.hybrid[i])),
        },
    }
    if inc is not None:
        v1, v2, v2h = inc.v1(), inc.v2(), inc.v2_hybrid()
        n_cand = max(20, 2 * k)  # the candidates per leg of our hybrid search
        for name, store_ in (("langchain-postgres v2", v2), ("langchain-postgres v1", v1)):
            g = groups
            g["similarity_search_by_vector"][name] = lambda i, s=store_: len(
                s.similarity_search_by_vector(qlists[i], k=k)
            )
            g["similarity_search_with_score_by_vector"][name] = lambda i, s=store_: len(
                s.similarity_search_with_score_by_vector(qlists[i], k=k)
            )
            g["filtered 10% (source = s3)"][name] = lambda i, s=store_: len(
                s.similarity_search_by_vector(qlists[i], k=k, filter=FILTER)
            )
            g[f"MMR k={k} fetch_k={fetch_k}"][name] = lambda i, s=store_: len(
                s.max_marginal_relevance_search_by_vector(qlists[i], k=k, fetch_k=fetch_k)
            )
        groups["hybrid (vector + keyword, RRF)"]["langchain-postgres v2"] = lambda i: len(
            v2h.similarity_search_with_score(
                texts[i], k=k, hybrid_search_config=inc.hybrid_config_for(texts[i], k, n_cand)
            )
        )
    return groups


def query_texts(n: int, rows: int, seed: int = 3) -> list[str]:
    """Keyword queries of three document numbers: each matches about three documents.

    The synthetic texts draw their words from 16, so a query with any of those
    words matches half the collection and the keyword leg would score 50,000
    documents per query: a benchmark of BM25 over near-stop-words, not of the
    store's overhead. A document's number (`... document 4242`) is rare.
    """
    rng = np.random.default_rng(seed)
    return [" ".join(str(x) for x in rng.integers(0, rows, size=3)) for _ in range(n)]


def count_round_trips(
    dsn: str, collection: str, dim: int, qs: np.ndarray, texts: list[str], k: int, fetch_k: int,
    embedding: LookupEmbedding, incumbents: bool,
) -> dict[str, dict[str, dict[str, int]]]:  # fmt: skip
    proxy = RoundTripProxy(dsn)
    store = PGVStore(embedding, connection=proxy.dsn, collection=collection)  # type: ignore[arg-type]
    raw = psycopg.connect(proxy.dsn, autocommit=True)
    register_vector(raw)
    inc = Incumbents(proxy.dsn, dim) if incumbents else None
    if inc is not None:
        inc.embedding = embedding
    try:
        st = Statements(store, raw, qs[:2], k, fetch_k, texts[:2])
        groups = workloads(store, raw, inc, st, qs[:2], texts[:2], k, fetch_k)
        out: dict[str, dict[str, dict[str, int]]] = {}
        for group, fns in groups.items():
            out[group] = {}
            for name, fn in fns.items():
                fn(0)  # warm: pool connections, type registration, v1's session
                time.sleep(0.3)  # let work a client finishes in the background settle
                with proxy.counting() as counts:
                    fn(1)
                    time.sleep(0.3)  # and count the contender's own (v2 resets connections)
                out[group][name] = counts
        return out
    finally:
        store.close()
        raw.close()
        if inc is not None:
            inc.close()
        proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--fetch-k", type=int, default=50)
    parser.add_argument("--no-incumbents", action="store_true")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "perf_search")
    k, fetch_k = args.k, args.fetch_k

    dsn, server = server_dsn()
    store: PGVStore | None = None
    inc: Incumbents | None = None
    try:
        t0 = time.perf_counter()
        collection = dataset_name(args.rows, args.dim)
        store = load_ours(dsn, collection, args.rows, args.dim)
        print(f"loaded pgvstore {args.rows:,} x {args.dim}-d in {time.perf_counter() - t0:.0f}s")
        embedding: LookupEmbedding = store.embeddings  # type: ignore[assignment]
        if not args.no_incumbents:
            t0 = time.perf_counter()
            inc = Incumbents(dsn, args.dim)
            inc.embedding = embedding
            inc.create_v2(collection)
            inc.create_v1(collection)
            print(f"copied to langchain-postgres v1 and v2 in {time.perf_counter() - t0:.0f}s")
        qs = queries(args.queries, args.dim)
        texts = query_texts(args.queries, args.rows)
        for text in texts:
            embedding.embed_query(text)  # fill the lookup table outside the timing
        raw = psycopg.connect(dsn, autocommit=True)
        register_vector(raw)
        st = Statements(store, raw, qs, k, fetch_k, texts)
        groups = workloads(store, raw, inc, st, qs, texts, k, fetch_k)
        for fns in groups.values():  # warm-up: pools, sessions, prepared statements
            for fn in fns.values():
                for i in range(6):
                    fn(i)

        lat: dict[str, dict[str, list[float]]] = {g: {n: [] for n in f} for g, f in groups.items()}
        got: dict[str, dict[str, list[int]]] = {g: {n: [] for n in f} for g, f in groups.items()}
        cpu: dict[str, dict[str, list[float]]] = {g: {n: [] for n in f} for g, f in groups.items()}
        group_names = list(groups)
        rng = np.random.default_rng(11)
        for p in range(args.passes):
            for i in range(len(qs)):
                for group in shuffled(group_names, rng):
                    fns = groups[group]
                    for name in shuffled(list(fns), rng):
                        cpu0 = time.process_time()
                        start = time.perf_counter()
                        n = fns[name](i)
                        lat[group][name].append(time.perf_counter() - start)
                        cpu[group][name].append(time.process_time() - cpu0)
                        got[group][name].append(n)
            print(f"pass {p + 1}/{args.passes} done", flush=True)
        raw.close()
        rt = count_round_trips(
            dsn, collection, args.dim, qs, texts, k, fetch_k, embedding, not args.no_incumbents
        )
        env = environment(dsn)
    finally:
        if inc is not None:
            inc.close()
        if store is not None:
            store.close()
        if server is not None:
            server.stop()

    results: dict[str, Any] = {}
    print(
        f"\nsearch latency, {args.rows:,} x {args.dim}-d, HNSW m=16 ef_construction=64,"
        f" ef_search=40, {args.queries} queries x {args.passes} passes, k={k}"
    )
    for group, by_name in lat.items():
        base = summary_ms(by_name["raw psycopg"])["p50_ms"]
        base_cpu = statistics.median(cpu[group]["raw psycopg"]) * 1000
        rows = []
        results[group] = {}
        for name, secs in by_name.items():
            s = summary_ms(secs)
            s["ratio_p50_vs_raw"] = s["p50_ms"] / base
            s["client_cpu_p50_ms"] = statistics.median(cpu[group][name]) * 1000
            s["client_cpu_extra_ms"] = s["client_cpu_p50_ms"] - base_cpu
            s["mean_rows"] = float(np.mean(got[group][name]))
            s["round_trips"] = rt[group][name]
            results[group][name] = s
            rows.append(
                [
                    name,
                    s["p50_ms"],
                    s["p95_ms"],
                    f"{s['ratio_p50_vs_raw']:.2f}x",
                    s["client_cpu_p50_ms"],
                    f"{s['mean_rows']:.1f}",
                    rt[group][name]["waits"],
                    rt[group][name]["statements"],
                ]
            )
        print(f"\n{group}")
        print_table(
            [
                "contender",
                "p50 ms",
                "p95 ms",
                "p50 vs raw",
                "client CPU ms",
                "rows",
                "round trips",
                "statements",
            ],
            rows,
        )
    path = write_report(
        out,
        {
            "benchmark": "perf_search",
            "rows": args.rows,
            "dim": args.dim,
            "queries": args.queries,
            "passes": args.passes,
            "k": k,
            "fetch_k": fetch_k,
            "filter": FILTER,
            "library": langchain_pgvstore.__file__,
            "results": results,
            "statements": st.statement_text,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
