"""Retrieval quality on SciFact: nDCG@10 and Recall@100 of dense, lexical and hybrid search.

    python benchmarks/retrieval_quality.py [--dsn DSN] [--data DIR] [--queries N] [--out PATH]

Loads the BEIR SciFact training corpus (5,183 abstracts; document text
title + "\\n" + abstract, ids the corpus `_id`s) into a PGVStore collection
(HNSW, cosine) with all-MiniLM-L6-v2 vectors, and ranks the top 100 documents
for each of the 807 claims with:

- dense: `similarity_search_with_score`, through the HNSW index (the store
  raises `hnsw.ef_search` to k) and exactly (`exact=True`);
- lexical: `ts_rank` (`_common.ts_rank_search` with any-term and all-terms
  queries, run with psycopg), our BM25 (`keyword_search_with_score`, k1=1.2, b=0.75),
  bm25s (Lucene BM25, k1=1.2, b=0.75, PyStemmer's English stemmer, bm25s's
  English stop words), and, as a control, bm25s over PostgreSQL's own lexemes;
- hybrid: `hybrid_search_with_score(k=100, fetch_k=100)`, fused by RRF (k=60)
  or by weighted sums of min-max normalised scores; and, as the external
  baseline, RRF (k=60) of bm25s and the same dense ranking, in Python.

Metrics follow BEIR/trec_eval for binary judgments: nDCG@10 (log2 discount,
ideal DCG from the number of relevant documents) and Recall@100, averaged over
the queries. The table also has hybrid search at its default depth (k=10,
fetch_k unset). The targets are checked with paired differences of per-query
nDCG@10 and a 95% bootstrap interval. A sweep of fusion parameters and depths
follows, computed in Python over the store's own two legs (the SQL fusion does
the same arithmetic). Before the tables, the run shows one claim whose cited
abstract only the keyword leg, and so hybrid search, finds.

Latencies are medians of end-to-end calls, all methods interleaved query by
query. Query vectors are precomputed (the store looks them up by text), so no
method pays for the model. Document and query vectors are cached in
benchmarks/results/.cache/ (file names carry a hash of the texts). Writes
benchmarks/results/retrieval_quality.json (other settings: `--out`). Needs the
`local` extra (MiniLM) and bm25s + PyStemmer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    RESULTS,
    environment,
    median,
    output_argument,
    p95,
    print_table,
    report_path,
    server_dsn,
    ts_rank_search,
    write_report,
)
from langchain_core.embeddings import Embeddings  # noqa: E402

from langchain_pgvstore import PGVStore  # noqa: E402
from langchain_pgvstore._sql import Frag  # noqa: E402
from langchain_pgvstore.config import Table  # noqa: E402

SCIFACT = Path("/work/shared/datasets/scifact-train")
CACHE = RESULTS / ".cache"
DEPTH = 100  # ranks kept per query: Recall@100, and each hybrid leg's fetch_k
RRF_K = 60
K1, B = 1.2, 0.75
WARMUP = 5
EXAMPLE = "199"  # "CCL19 is predominantly present within dLNs."

Leg = list[tuple[str, float]]  # (id, score), best first; higher score is better


# -- data -------------------------------------------------------------------------------


@dataclass
class SciFact:
    ids: list[str]
    texts: list[str]
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, set[str]]


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_scifact(root: Path) -> SciFact:
    corpus = read_jsonl(root / "corpus.jsonl")
    queries = read_jsonl(root / "queries.jsonl")
    qrels: dict[str, set[str]] = {}
    with (root / "qrels" / "train.tsv").open(encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            qid, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, set()).add(doc_id)
    return SciFact(
        ids=[d["_id"] for d in corpus],
        texts=[d["title"] + "\n" + d["text"] for d in corpus],
        query_ids=[q["_id"] for q in queries],
        queries=[q["text"] for q in queries],
        qrels=qrels,
    )


def embed_cached(name: str, texts: list[str]) -> np.ndarray:
    """MiniLM vectors of `texts`, cached in a file whose name carries a hash of the texts.

    The hash keeps this cache apart from caches of other texts (for example
    title + " " + text): vectors are only reused for exactly the same inputs.
    """
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
    path = CACHE / f"{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    from langchain_pgvstore.embeddings import MiniLMEmbeddings

    t0 = time.perf_counter()
    vectors = np.asarray(MiniLMEmbeddings(batch_size=64).embed_documents(texts), dtype=np.float32)
    print(f"embedded {len(texts):,} texts in {time.perf_counter() - t0:.0f}s", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # a by-product, never a result to commit
    np.save(path, vectors)
    return vectors


class QueryVectors(Embeddings):
    """Precomputed query vectors, looked up by text; MiniLM for any other text."""

    model = "all-MiniLM-L6-v2"

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._by_text = dict(zip(texts, vectors, strict=True))
        self._model: Embeddings | None = None

    def embed_query(self, text: str) -> list[float]:
        vector = self._by_text.get(text)
        if vector is None:
            if self._model is None:
                from langchain_pgvstore.embeddings import MiniLMEmbeddings

                self._model = MiniLMEmbeddings()
            return self._model.embed_query(text)
        result: list[float] = vector.tolist()
        return result

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


# -- metrics ----------------------------------------------------------------------------


def _dedupe(ranking: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    return [d for d in ranking if not (d in seen or seen.add(d))]


def ndcg_at(ranking: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Binary nDCG@k: a relevant document at rank i (from 1) adds 1/log2(i + 1)."""
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(_dedupe(ranking)[:k]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def recall_at(ranking: Sequence[str], relevant: set[str], k: int = 100) -> float:
    """The fraction of the relevant documents found in the top k."""
    return len(set(_dedupe(ranking)[:k]) & relevant) / len(relevant)


def _check_metrics() -> None:
    # hand-computed values: a wrong discount or ideal DCG fails here, not in the table
    other = [f"x{i}" for i in range(100)]
    assert ndcg_at(["r"], {"r"}) == 1.0
    assert abs(ndcg_at(["x", "r"], {"r"}) - 0.63093) < 1e-5
    assert (
        abs(ndcg_at(["x", "a", "y", "b"], {"a", "b", "c"}) - (0.63093 + 0.43068) / 2.13093) < 1e-5
    )
    assert ndcg_at(other[:10] + ["r"], {"r"}) == 0.0
    assert ndcg_at(["r", "r"], {"r", "s"}) == 1 / (1 + 1 / math.log2(3))
    assert recall_at(["a", "x", "b"], {"a", "b", "c", "d"}) == 0.5
    assert recall_at(other + ["a"], {"a"}) == 0.0


def per_query(
    ranking: dict[int, Leg], data: SciFact, indices: list[int], k: int = 10
) -> np.ndarray:
    return np.array(
        [ndcg_at([d for d, _ in ranking[i]], data.qrels[data.query_ids[i]], k) for i in indices]
    )


def mean_recall(ranking: dict[int, Leg], data: SciFact, indices: list[int]) -> float:
    return float(
        np.mean(
            [
                recall_at([d for d, _ in ranking[i]], data.qrels[data.query_ids[i]], DEPTH)
                for i in indices
            ]
        )
    )


def paired(a: np.ndarray, b: np.ndarray, resamples: int = 10_000) -> tuple[float, float, float]:
    """Mean of a - b over queries, and its 95% bootstrap interval (queries resampled)."""
    diff = a - b
    picks = np.random.default_rng(0).integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[picks].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# -- fusion (reference, in Python) -------------------------------------------------------


def rrf(legs: Sequence[Leg], k: int = RRF_K, weights: Sequence[float] | None = None) -> Leg:
    """Reciprocal rank fusion: sum of weight / (k + rank); ties by id."""
    fused: dict[str, float] = {}
    for w, leg in zip(weights or [1.0] * len(legs), legs, strict=True):
        for rank, (doc, _) in enumerate(leg, start=1):
            fused[doc] = fused.get(doc, 0.0) + w / (k + rank)
    return sorted(fused.items(), key=lambda p: (-p[1], p[0]))


def weighted(legs: Sequence[Leg], weights: Sequence[float]) -> Leg:
    """Sum of weight * min-max normalised score (a constant leg maps to 1); ties by id."""
    fused: dict[str, float] = {}
    for w, leg in zip(weights, legs, strict=True):
        if not leg:
            continue
        lo, hi = min(s for _, s in leg), max(s for _, s in leg)
        for doc, s in leg:
            fused[doc] = fused.get(doc, 0.0) + w * (1.0 if hi == lo else (s - lo) / (hi - lo))
    return sorted(fused.items(), key=lambda p: (-p[1], p[0]))


# -- bm25s -------------------------------------------------------------------------------


class Bm25s:
    """bm25s, Lucene variant, PyStemmer's English (Snowball) stemmer, bm25s's English stop words."""

    settings = {
        "version": None,
        "method": "lucene",
        "k1": K1,
        "b": B,
        "tokenizer": "bm25s.tokenize(texts, lower=True, stopwords='en',"
        " stemmer=Stemmer.Stemmer('english'))",
        "token_pattern": r"(?u)\b\w\w+\b",
        "stopwords": "bm25s 'en': Lucene's 33 English stop words",
        "zero_score_documents": "dropped (they match no query term)",
    }

    def __init__(self, ids: list[str], tokens: Any | None = None, texts: list[str] | None = None):
        try:
            import bm25s
            import Stemmer
        except ImportError as e:
            raise SystemExit(
                f"this benchmark needs bm25s and PyStemmer: pip install bm25s PyStemmer ({e})"
            ) from e
        self.settings = {**Bm25s.settings, "version": bm25s.__version__}
        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        self._ids = ids
        if tokens is None:
            tokens = self.tokenize(texts or [])
        self._index = bm25s.BM25(method="lucene", k1=K1, b=B)
        self._index.index(tokens, show_progress=False)

    def tokenize(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(
            texts, lower=True, stopwords="en", stemmer=self._stemmer, show_progress=False
        )

    def search(self, query: str | list[str], k: int) -> Leg:
        """Top k for a text, or for a list of tokens (used as they are)."""
        if isinstance(query, str):
            tokens: Any = self.tokenize([query])
            if not tokens.ids[0]:
                return []
        else:
            known = [t for t in query if t in self._index.vocab_dict]
            if not known:
                return []
            tokens = [known]
        docs, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        hits = [(self._ids[int(i)], float(s)) for i, s in zip(docs[0], scores[0], strict=True)]
        # bm25s fills k with zero-score documents, which match no query term
        return sorted([h for h in hits if h[1] > 0], key=lambda p: (-p[1], p[0]))


def lexemes_sql(expr: sql.Composable) -> sql.Composed:
    """A tsvector expanded to one element per position (tf copies of each lexeme)."""
    return sql.SQL(
        "coalesce((SELECT array_agg(u.lexeme) FROM unnest({}) AS u,"
        " generate_series(1, coalesce(cardinality(u.positions), 1))), '{{}}')"
    ).format(expr)


# -- running ----------------------------------------------------------------------------


@dataclass
class Method:
    name: str
    run: Callable[[int], Leg]  # query index -> ranking
    call: str
    rankings: dict[int, Leg] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)


def build(store: PGVStore, data: SciFact, vectors: np.ndarray, dsn: str) -> float:
    t0 = time.perf_counter()
    store.add_embeddings(data.texts, vectors, ids=data.ids)
    seconds = time.perf_counter() - t0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(store.collection)))
    return seconds


def methods(
    store: PGVStore, data: SciFact, conn: psycopg.Connection[Any], bm25s_index: Bm25s
) -> list[Method]:
    q = data.queries
    table = Table("public", store.collection)
    everything = Frag(sql.SQL("TRUE"))
    rows = conn.execute(
        sql.SQL("SELECT {}, {} FROM {}").format(table.id, lexemes_sql(table.tsv), table.qualname)
    ).fetchall()
    pg_bm25s = Bm25s([r[0] for r in rows], tokens=[r[1] for r in rows])
    query_lexemes = sql.SQL("SELECT {}").format(lexemes_sql(sql.SQL("to_tsvector('english', %s)")))
    dense_rankings: dict[int, Leg] = {}
    bm25s_rankings: dict[int, Leg] = {}

    def similar(**kw: Any) -> Callable[[int], Leg]:
        def run(i: int) -> Leg:
            # distance: lower is closer; negate so every leg is higher-is-better
            pairs = store.similarity_search_with_score(q[i], k=DEPTH, **kw)
            return [(d.id or "", -s) for d, s in pairs]

        return run

    def dense(i: int) -> Leg:
        dense_rankings[i] = similar()(i)
        return dense_rankings[i]

    def ts_rank(match: Any) -> Callable[[int], Leg]:
        def run(i: int) -> Leg:
            frag = ts_rank_search(table, q[i], DEPTH, everything, "english", match=match)
            return [(r[0], r[1]) for r in conn.execute(frag.sql, frag.params).fetchall()]

        return run

    def keyword(i: int) -> Leg:
        pairs = store.keyword_search_with_score(q[i], k=DEPTH, k1=K1, b=B)
        return [(d.id or "", s) for d, s in pairs]

    def external(i: int) -> Leg:
        bm25s_rankings[i] = bm25s_index.search(q[i], DEPTH)
        return bm25s_rankings[i]

    def external_on_lexemes(i: int) -> Leg:
        tokens = conn.execute(query_lexemes, (q[i],)).fetchone()
        return pg_bm25s.search(tokens[0] if tokens else [], DEPTH)

    def hybrid(k: int = DEPTH, fetch_k: int | None = DEPTH, **kw: Any) -> Callable[[int], Leg]:
        def run(i: int) -> Leg:
            pairs = store.hybrid_search_with_score(q[i], k=k, fetch_k=fetch_k, **kw)
            return [(d.id or "", s) for d, s in pairs]

        return run

    def external_rrf(i: int) -> Leg:
        # both rankings were just made for this query: only the fusion is timed
        return rrf([dense_rankings[i], bm25s_rankings[i]], RRF_K)[:DEPTH]

    w = "hybrid_search_with_score(q, k=100, fetch_k=100, fusion='weighted'"
    return [
        Method("dense (HNSW)", dense, "similarity_search_with_score(q, k=100)"),
        Method(
            "dense (exact)",
            similar(exact=True),
            "similarity_search_with_score(q, k=100, exact=True)",
        ),
        Method("ts_rank, any term", ts_rank("any"), "ts_rank_search(..., match='any')"),
        Method("ts_rank, all terms", ts_rank("all"), "ts_rank_search(..., match='all')"),
        Method("BM25 (ours)", keyword, "keyword_search_with_score(q, k=100)"),
        Method("bm25s", external, "bm25s, settings in the JSON"),
        Method(
            "bm25s on PostgreSQL's lexemes", external_on_lexemes, "bm25s over to_tsvector lexemes"
        ),
        Method("hybrid RRF k=60", hybrid(), "hybrid_search_with_score(q, k=100, fetch_k=100)"),
        Method("hybrid weighted 0.7/0.3", hybrid(fusion="weighted"), w + ")"),
        Method(
            "hybrid weighted 0.5/0.5",
            hybrid(fusion="weighted", weights=(0.5, 0.5)),
            w + ", weights=(0.5, 0.5))",
        ),
        Method(
            "hybrid weighted 0.3/0.7",
            hybrid(fusion="weighted", weights=(0.3, 0.7)),
            w + ", weights=(0.3, 0.7))",
        ),
        Method(
            "RRF k=60 of bm25s + dense (Python)", external_rrf, "rrf([dense (HNSW), bm25s], k=60)"
        ),
        # the defaults at k=10: fetch_k unset is max(20, 2k) = 20 rows per leg
        Method(
            "k=10: hybrid RRF k=60, fetch_k default",
            hybrid(10, None),
            "hybrid_search_with_score(q, k=10)",
        ),
        Method(
            "k=10: hybrid RRF k=60, fetch_k=100",
            hybrid(10, DEPTH),
            "hybrid_search_with_score(q, k=10, fetch_k=100)",
        ),
        Method(
            "k=10: hybrid weighted 0.5/0.5, fetch_k default",
            hybrid(10, None, fusion="weighted", weights=(0.5, 0.5)),
            "hybrid_search_with_score(q, k=10, fusion='weighted', weights=(0.5, 0.5))",
        ),
        Method(
            "k=10: hybrid weighted 0.5/0.5, fetch_k=100",
            hybrid(10, DEPTH, fusion="weighted", weights=(0.5, 0.5)),
            "... , fetch_k=100)",
        ),
    ]


def sweep(
    data: SciFact, indices: list[int], dense: dict[int, Leg], lexical: dict[str, dict[int, Leg]]
) -> list[dict[str, Any]]:
    """nDCG@10 and Recall@100 of fusion settings over fixed legs, fused in Python."""
    configs: list[tuple[str, int, Callable[[Leg, Leg], Leg]]] = []
    for k in (5, 10, 20, 40, 60, 100):
        configs.append((f"RRF k={k}", DEPTH, lambda v, x, k=k: rrf([v, x], k)))
    for wl in (0.5, 0.75, 1.5, 2.0):
        configs.append(
            (f"RRF k=60, weights (1, {wl})", DEPTH, lambda v, x, wl=wl: rrf([v, x], 60, [1, wl]))
        )
    for wv in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2):
        ws = (wv, round(1 - wv, 2))
        configs.append(
            (f"weighted {ws[0]}/{ws[1]}", DEPTH, lambda v, x, ws=ws: weighted([v, x], ws))
        )
    for depth in (10, 20, 50):
        configs.append(("RRF k=60", depth, lambda v, x: rrf([v, x], 60)))
        configs.append(("weighted 0.7/0.3", depth, lambda v, x: weighted([v, x], (0.7, 0.3))))
        configs.append(("weighted 0.5/0.5", depth, lambda v, x: weighted([v, x], (0.5, 0.5))))
    out = []
    for label, depth, fuse in configs:
        row: dict[str, Any] = {"fusion": label, "fetch_k": depth}
        for name, leg in lexical.items():
            fused = {i: fuse(dense[i][:depth], leg[i][:depth])[:DEPTH] for i in indices}
            row[name] = {
                "ndcg_at_10": float(per_query(fused, data, indices).mean()),
                "recall_at_100": mean_recall(fused, data, indices),
            }
        out.append(row)
    return out


def example(store: PGVStore, data: SciFact, query_id: str) -> dict[str, Any]:
    """Where the relevant document ranks for one query, in each leg and fused."""
    query = data.queries[data.query_ids.index(query_id)]
    relevant = data.qrels[query_id]
    calls = {
        # exact, over the whole corpus: the rank is the model's, not the index's
        "dense": store.similarity_search_with_score(query, k=len(data.ids), exact=True),
        "keyword": store.keyword_search_with_score(query, k=DEPTH),
        "hybrid": store.hybrid_search_with_score(query, k=10),
    }
    out: dict[str, Any] = {"query_id": query_id, "query": query, "relevant": sorted(relevant)}
    print(f"\nexample: query {query_id}: {query!r}; relevant: {', '.join(sorted(relevant))}")
    for name, pairs in calls.items():
        ids = [d.id for d, _ in pairs]
        ranks = {r: (ids.index(r) + 1 if r in ids else None) for r in sorted(relevant)}
        out[name] = {
            "ranks": ranks,
            "top3": [[d.id, s, d.page_content.split("\n")[0]] for d, s in pairs[:3]],
        }
        shown = ", ".join(
            f"{r}: {'not in top ' + str(len(ids)) if n is None else n}" for r, n in ranks.items()
        )
        print(f"  {name}: rank of relevant ({shown})")
        for d, s in pairs[:3]:
            mark = "*" if d.id in relevant else " "
            print(f"    {mark} {d.id:>9}  {s:8.4f}  {d.page_content.split(chr(10))[0][:70]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="PostgreSQL with pgvector; default: a fresh embedded server")
    parser.add_argument("--data", type=Path, default=SCIFACT, help="BEIR SciFact train folder")
    parser.add_argument("--queries", type=int, default=None, help="only the first N queries")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "retrieval_quality", neutral=["dsn", "data"])
    _check_metrics()

    data = load_scifact(args.data)
    indices = list(range(len(data.queries)))[: args.queries]
    vectors = embed_cached("scifact-corpus-nl-minilm", data.texts)
    query_vectors = embed_cached("scifact-queries-minilm", data.queries)
    t0 = time.perf_counter()
    bm25s_index = Bm25s(data.ids, texts=data.texts)
    bm25s_s = time.perf_counter() - t0

    if args.dsn:
        dsn, server = args.dsn, None
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
    else:
        dsn, server = server_dsn()
    store = PGVStore(
        QueryVectors(data.queries, query_vectors),
        connection=dsn,
        collection=f"scifact_{uuid.uuid4().hex[:8]}",
    )
    try:
        load_s = build(store, data, vectors, dsn)
        print(f"loaded {len(data.ids):,} documents in {load_s:.1f}s", flush=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            runs = methods(store, data, conn, bm25s_index)
            for i in indices[:WARMUP]:
                for m in runs:
                    m.run(i)
            for n, i in enumerate(indices, start=1):
                for m in runs:
                    start = time.perf_counter()
                    m.rankings[i] = m.run(i)
                    m.latency_ms.append((time.perf_counter() - start) * 1000)
                if n % 200 == 0:
                    print(f"{n} queries done", flush=True)
        shown = example(store, data, EXAMPLE) if EXAMPLE in data.query_ids else None
        env = environment(dsn)
    finally:
        store.delete_collection()
        store.close()
        if server is not None:
            server.stop()

    by_name = {m.name: m for m in runs}
    ndcg = {m.name: per_query(m.rankings, data, indices) for m in runs}
    results: dict[str, dict[str, Any]] = {}
    rows = []
    for m in runs:
        k10 = m.name.startswith("k=10")
        results[m.name] = {
            "call": m.call,
            "ndcg_at_10": float(ndcg[m.name].mean()),
            "recall_at_100": None if k10 else mean_recall(m.rankings, data, indices),
            "mean_results": float(np.mean([len(r) for r in m.rankings.values()])),
            "p50_ms": median(m.latency_ms),
            "p95_ms": p95(m.latency_ms),
        }
        r = results[m.name]
        rows.append(
            [m.name, r["ndcg_at_10"], "–" if k10 else r["recall_at_100"], r["p50_ms"], r["p95_ms"]]
        )
    print(f"\nSciFact train: {len(indices)} queries, {len(data.ids):,} documents, all-MiniLM-L6-v2")
    print_table(["method", "nDCG@10", "Recall@100", "p50 ms", "p95 ms"], rows)

    checks = [
        ("BM25 (ours) - bm25s", "BM25 (ours)", "bm25s", "|diff| <= 0.01"),
        (
            "BM25 (ours) - bm25s on PostgreSQL's lexemes",
            "BM25 (ours)",
            "bm25s on PostgreSQL's lexemes",
            "= 0",
        ),
        ("hybrid RRF - dense", "hybrid RRF k=60", "dense (HNSW)", "> 0"),
        ("hybrid RRF - BM25 (ours)", "hybrid RRF k=60", "BM25 (ours)", "> 0"),
        (
            "hybrid RRF - RRF(bm25s, dense)",
            "hybrid RRF k=60",
            "RRF k=60 of bm25s + dense (Python)",
            "> 0",
        ),
        ("hybrid weighted 0.5/0.5 - BM25 (ours)", "hybrid weighted 0.5/0.5", "BM25 (ours)", "> 0"),
        (
            "hybrid weighted 0.5/0.5 - hybrid RRF",
            "hybrid weighted 0.5/0.5",
            "hybrid RRF k=60",
            "> 0",
        ),
        (
            "hybrid weighted 0.5/0.5 - RRF(bm25s, dense)",
            "hybrid weighted 0.5/0.5",
            "RRF k=60 of bm25s + dense (Python)",
            "> 0",
        ),
    ]
    targets = []
    for label, a, b, goal in checks:
        mean, lo, hi = paired(ndcg[a], ndcg[b])
        targets.append({"comparison": label, "goal": goal, "diff": mean, "ci95": [lo, hi]})
    print("\npaired nDCG@10 differences (95% bootstrap interval over queries)")
    print_table(
        ["comparison", "goal", "diff", "95% interval"],
        [
            [
                t["comparison"],
                t["goal"],
                f"{t['diff']:+.4f}",
                f"[{t['ci95'][0]:+.4f}, {t['ci95'][1]:+.4f}]",
            ]
            for t in targets
        ],
    )

    # the store's RRF must be exactly the Python fusion of the store's two legs
    legs = {"BM25 (ours)": by_name["BM25 (ours)"].rankings, "bm25s": by_name["bm25s"].rankings}
    dense_legs = by_name["dense (HNSW)"].rankings
    same = sum(
        [d for d, _ in rrf([dense_legs[i], legs["BM25 (ours)"][i]])[:DEPTH]]
        == [d for d, _ in by_name["hybrid RRF k=60"].rankings[i]]
        for i in indices
    )
    print(f"\nstore RRF = Python RRF of the store's legs for {same} of {len(indices)} queries")
    sweeps = sweep(data, indices, dense_legs, legs)
    print("\nfusion sweep (Python, over the dense (HNSW) leg and a lexical leg, fetch_k rows each)")
    print_table(
        ["fusion", "fetch_k", "nDCG@10 ours", "nDCG@10 bm25s", "R@100 ours", "R@100 bm25s"],
        [
            [
                s["fusion"],
                s["fetch_k"],
                s["BM25 (ours)"]["ndcg_at_10"],
                s["bm25s"]["ndcg_at_10"],
                s["BM25 (ours)"]["recall_at_100"],
                s["bm25s"]["recall_at_100"],
            ]
            for s in sweeps
        ],
    )
    path = write_report(
        out,
        {
            "benchmark": "retrieval_quality",
            "dataset": "BEIR SciFact train split",
            "documents": len(data.ids),
            "queries": len(indices),
            "depth": DEPTH,
            "load_seconds": load_s,
            "bm25s_index_seconds": bm25s_s,
            "bm25s": bm25s_index.settings,
            "results": results,
            "targets": targets,
            "store_rrf_equals_python_rrf": same,
            "fusion_sweep": sweeps,
            "example": shown,
            "environment": env,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
