"""Retrieval quality on SciFact through a Citus-distributed collection, and BM25 statistics scopes.

    python benchmarks/citus_quality.py [--citus-dsn DSN] [--queries N] [--out PATH]

Two parts, on the 5,183 abstracts and 807 claims of SciFact train (loaded and
embedded as in `retrieval_quality.py`: all-MiniLM-L6-v2, vectors cached in
benchmarks/results/.cache/):

1. The same collection through `PGVStore` on one server (the embedded
   PostgreSQL 18 + pgvector, or `PGVSTORE_BENCH_DSN`) and distributed over the
   Citus cluster of `--citus-dsn` (default `$PGVSTORE_CITUS_DSN`;
   `distributed=True`, by id, the default shard count). Each claim is searched
   with `keyword_search_with_score(q, k=10)`, `hybrid_search_with_score(q, k=10)`
   (the store's default fusion), `similarity_search_with_score(q, k=10)` (the
   HNSW index) and the same with `exact=True`; nDCG@10 of each, the difference
   (with a 95% bootstrap interval over claims), how many claims get the same
   top 10 on both, and p50 latencies, both stores interleaved claim by claim.
   On the cluster BM25's statistics are kept by the store's write statements
   (no triggers on distributed tables), so keyword search should rank exactly
   as on one server.
2. Per-tenant or per-collection BM25 statistics for a multi-tenant collection:
   SciFact split at random into 5 and 50 tenants; each claim searched within the
   tenant of its first cited abstract (relevance restricted to that tenant's
   abstracts); the tenant's candidates scored with the tenant's own N, avgdl and
   df, or with the collection's. Scored in Python from PostgreSQL's own lexemes
   (read from the one-server table); the scorer is first checked against the
   store's keyword search on the whole collection.

Writes benchmarks/results/citus_quality.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    environment,
    output_argument,
    print_table,
    report_path,
    server_dsn,
    shuffled,
    summary_ms,
    write_report,
)
from retrieval_quality import (  # noqa: E402
    SCIFACT,
    QueryVectors,
    SciFact,
    embed_cached,
    load_scifact,
    ndcg_at,
    paired,
)

from langchain_pgvstore import PGVStore  # noqa: E402

K1, B = 1.2, 0.75
WARMUP = 10
Ranking = list[str]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- part 1: the store on one server and on the cluster ------------------------------------


def searches(store: PGVStore) -> dict[str, Callable[[str], Ranking]]:
    def ids(pairs: list[Any]) -> Ranking:
        return [str(d.id) for d, _ in pairs]

    return {
        "keyword": lambda q: ids(store.keyword_search_with_score(q, k=10)),
        "hybrid": lambda q: ids(store.hybrid_search_with_score(q, k=10)),
        "dense": lambda q: ids(store.similarity_search_with_score(q, k=10)),
        "dense, exact": lambda q: ids(store.similarity_search_with_score(q, k=10, exact=True)),
    }


def compare(stores: dict[str, PGVStore], data: SciFact, indices: list[int]) -> dict[str, Any]:
    calls = {
        (where, method): run
        for where, store in stores.items()
        for method, run in searches(store).items()
    }
    names = list(calls)
    keys = [f"{w}|{m}" for w, m in names]
    for i in indices[:WARMUP]:
        for name in names:
            calls[name](data.queries[i])
    rng = np.random.default_rng(3)
    ranked: dict[tuple[str, str], dict[int, Ranking]] = {n: {} for n in names}
    seconds: dict[tuple[str, str], list[float]] = {n: [] for n in names}
    before = loadavg()
    for i in indices:
        for key in shuffled(keys, rng):
            name = (key.split("|")[0], key.split("|")[1])
            t0 = time.perf_counter()
            ranked[name][i] = calls[name](data.queries[i])
            seconds[name].append(time.perf_counter() - t0)
    after = loadavg()
    relevant = {i: data.qrels[data.query_ids[i]] for i in indices}
    methods: dict[str, Any] = {}
    for method in searches(next(iter(stores.values()))):
        one = np.array([ndcg_at(ranked[("one server", method)][i], relevant[i]) for i in indices])
        many = np.array([ndcg_at(ranked[("citus", method)][i], relevant[i]) for i in indices])
        diff, lo, hi = paired(many, one)
        p50_one = summary_ms(seconds[("one server", method)])["p50_ms"]
        p50_many = summary_ms(seconds[("citus", method)])["p50_ms"]
        methods[method] = {
            "ndcg_at_10_one_server": float(one.mean()),
            "ndcg_at_10_citus": float(many.mean()),
            "citus_minus_one_server": diff,
            "ci95": [lo, hi],
            "same_top10": int(
                sum(
                    ranked[("citus", method)][i] == ranked[("one server", method)][i]
                    for i in indices
                )
            ),  # fmt: skip
            "p50_ms_one_server": p50_one,
            "p50_ms_citus": p50_many,
            "p50_ratio": p50_many / p50_one,
        }
    return {"loadavg_before": before, "loadavg_after": after, "methods": methods}


# -- part 2: statistics per tenant or per collection ----------------------------------------


class Corpus:
    """Per-document lexeme counts (tf) and lengths, as the store's tsvector holds them."""

    def __init__(self, rows: list[tuple[str, str, int]], lengths: dict[str, int]) -> None:
        self.postings: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for doc, lexeme, tf in rows:
            self.postings[lexeme].append((doc, tf))
        self.dl = lengths

    def stats(self, docs: set[str] | None) -> tuple[float, float, dict[str, int]]:
        """N, avgdl and df over `docs` (None: every document)."""
        ids = self.dl.keys() if docs is None else docs
        n = len(ids)
        avgdl = sum(self.dl[d] for d in ids) / n
        df = {
            t: sum(1 for d, _ in p if docs is None or d in docs) for t, p in self.postings.items()
        }
        return n, avgdl, df

    def search(
        self,
        query: list[tuple[str, int]],
        stats: tuple[float, float, dict[str, int]],
        allowed: set[str] | None,
        k: int = 10,
    ) -> Ranking:
        """BM25 top k over the `allowed` documents, scored with `stats`."""
        n, avgdl, df = stats
        scores: dict[str, float] = defaultdict(float)
        for term, qtf in query:
            d = df.get(term, 0)
            idf = math.log(1 + (n - d + 0.5) / (d + 0.5))
            for doc, tf in self.postings.get(term, ()):
                if allowed is None or doc in allowed:
                    scores[doc] += qtf * idf * tf / (tf + K1 * (1 - B + B * self.dl[doc] / avgdl))
        return [d for d, _ in sorted(scores.items(), key=lambda p: (-p[1], p[0].encode()))[:k]]


def read_corpus(dsn: str, table: str, data: SciFact, indices: list[int]) -> tuple[Corpus, Any]:
    name = sql.Identifier(table)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT id, u.lexeme, coalesce(cardinality(u.positions), 1) FROM {}, unnest(tsv) u"
            ).format(name)
        ).fetchall()
        lengths = dict(conn.execute(sql.SQL("SELECT id, tsv_len FROM {}").format(name)).fetchall())
        lexemes = {
            i: conn.execute(
                "SELECT u.lexeme, coalesce(cardinality(u.positions), 1)"
                " FROM unnest(to_tsvector('english', %s)) AS u",
                (data.queries[i],),
            ).fetchall()
            for i in indices
        }
    return Corpus(rows, lengths), lexemes


def scopes(
    corpus: Corpus,
    lexemes: dict[int, list[tuple[str, int]]],
    data: SciFact,
    indices: list[int],
    store_keyword: dict[int, Ranking],
    tenant_counts: tuple[int, ...] = (5, 50),
) -> dict[str, Any]:
    relevant = {i: data.qrels[data.query_ids[i]] for i in indices}
    everything = corpus.stats(None)
    whole = {i: corpus.search(lexemes[i], everything, None) for i in indices}
    out: dict[str, Any] = {
        "scorer_same_top10_as_store": int(sum(whole[i] == store_keyword[i] for i in indices)),
        "queries": len(indices),
    }
    rng = np.random.default_rng(0)
    for count in tenant_counts:
        tenant_of = {
            d: int(x) for d, x in zip(data.ids, rng.integers(0, count, size=len(data.ids)),
                                      strict=True)
        }  # fmt: skip
        members: dict[int, set[str]] = defaultdict(set)
        for d, t in tenant_of.items():
            members[t].add(d)
        own = {t: corpus.stats(ds) for t, ds in members.items()}
        per_tenant, per_collection = [], []
        same = 0
        for i in indices:
            t = tenant_of[sorted(relevant[i])[0]]
            rel = {d for d in relevant[i] if tenant_of[d] == t}
            a = corpus.search(lexemes[i], own[t], members[t])
            b = corpus.search(lexemes[i], everything, members[t])
            per_tenant.append(ndcg_at(a, rel))
            per_collection.append(ndcg_at(b, rel))
            same += a == b
        diff, lo, hi = paired(np.array(per_tenant), np.array(per_collection))
        out[f"{count} tenants"] = {
            "docs_per_tenant": len(data.ids) / count,
            "ndcg_at_10_per_tenant": float(np.mean(per_tenant)),
            "ndcg_at_10_per_collection": float(np.mean(per_collection)),
            "per_tenant_minus_per_collection": diff,
            "ci95": [lo, hi],
            "same_top10": same,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--citus-dsn", default=os.environ.get("PGVSTORE_CITUS_DSN"))
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument("--queries", type=int, default=0, help="first N claims (0: all)")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "citus_quality", neutral=("citus_dsn", "data"))
    if not args.citus_dsn:
        parser.error("a Citus coordinator is needed: --citus-dsn or PGVSTORE_CITUS_DSN")
    started = time.perf_counter()
    data = load_scifact(args.data)
    vectors = embed_cached("scifact-corpus-nl-minilm", data.texts)
    qvecs = embed_cached("scifact-queries-minilm", data.queries)
    indices = [i for i, q in enumerate(data.query_ids) if q in data.qrels]
    if args.queries:
        indices = indices[: args.queries]
    dsn, server = server_dsn()
    name = f"scifact_{uuid.uuid4().hex[:8]}"
    embeddings = QueryVectors(data.queries, qvecs)
    stores = {
        "one server": PGVStore(embeddings, connection=dsn, collection=name),
        "citus": PGVStore(embeddings, connection=args.citus_dsn, collection=name, distributed=True),
    }
    try:
        env = {"one server": environment(dsn), "citus": environment(args.citus_dsn)}
        with psycopg.connect(args.citus_dsn) as conn:
            shards = conn.execute("SHOW citus.shard_count").fetchone()[0]  # type: ignore[index]
        for store in stores.values():
            store.add_embeddings(data.texts, vectors, ids=data.ids)
        for where, store_dsn in (("one server", dsn), ("citus", args.citus_dsn)):
            with psycopg.connect(store_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(name)))
            print(f"loaded {where}", flush=True)
        through = compare(stores, data, indices)
        corpus, lexemes = read_corpus(dsn, name, data, indices)
        keyword = {
            i: [str(d.id) for d, _ in stores["one server"].keyword_search_with_score(
                data.queries[i], k=10)]
            for i in indices
        }  # fmt: skip
        statistics = scopes(corpus, lexemes, data, indices, keyword)
    finally:
        for store in stores.values():
            store.delete_collection()
            store.close()
        if server is not None:
            server.stop()

    print(f"\nSciFact train, {len(indices)} claims, k=10; one server vs Citus ({shards} shards);"
          f" load {through['loadavg_before']} -> {through['loadavg_after']}")  # fmt: skip
    print_table(
        ["search", "nDCG@10 one server", "nDCG@10 Citus", "Citus - one", "same top 10",
         "p50 ms one", "p50 ms Citus", "ratio"],
        [
            [m, v["ndcg_at_10_one_server"], v["ndcg_at_10_citus"],
             f"{v['citus_minus_one_server']:+.4f}", v["same_top10"], v["p50_ms_one_server"],
             v["p50_ms_citus"], v["p50_ratio"]]
            for m, v in through["methods"].items()
        ],
    )  # fmt: skip
    print(
        f"\nBM25 statistics scopes (Python scorer = the store's keyword search for"
        f" {statistics['scorer_same_top10_as_store']} of {statistics['queries']} claims)"
    )
    print_table(
        ["tenants", "docs per tenant", "per tenant", "per collection", "difference", "95% CI",
         "same top 10"],
        [
            [k, v["docs_per_tenant"], v["ndcg_at_10_per_tenant"], v["ndcg_at_10_per_collection"],
             f"{v['per_tenant_minus_per_collection']:+.4f}",
             f"[{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]", v["same_top10"]]
            for k, v in statistics.items() if k.endswith("tenants")
        ],
    )  # fmt: skip
    path = write_report(
        out,
        {
            "benchmark": "citus_quality",
            "claims": len(indices),
            "documents": len(data.ids),
            "shard_count": int(shards),
            "through_the_store": through,
            "statistics_scopes": statistics,
            "seconds": time.perf_counter() - started,
            "loadavg_end": loadavg(),
            "environment": env,
        },
    )
    print(f"\nwrote {path} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
