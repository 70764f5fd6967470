"""Index choice: exact scan vs HNSW vs IVFFlat vs halfvec vs binary quantization.

    python benchmarks/indexes.py [--random-rows 10000] [--random-dim 1536] [--random-queries 100]
                                 [--scifact-queries 200] [--scifact-dir DIR] [--k 10]
                                 [--build-repeats 3] [--out PATH]

Two data sets, one after the other on the same server:

- random: `random-rows` unit-normalised Gaussian vectors of `random-dim`
  dimensions, queried with `random-queries` other random unit vectors (the
  hardest case for an ANN index: no structure at all);
- scifact: the SciFact corpus (title + " " + text, 5,183 abstracts) embedded
  with `MiniLMEmbeddings` (384-d), queried with `scifact-queries` of its 807
  claims, also embedded. The vectors are cached in benchmarks/results/.cache/
  (git-ignored), so only the first run pays for the model.

Each data set is loaded into one collection per variant (cosine distance,
loaded with `index=None`, then `VACUUM ANALYZE`d); a second store on the same
collection, configured with the variant's index, builds it with
`create_index(maintenance_work_mem="1GB")`, timed `build-repeats` times
(median; dropped in between). Variants:

- HNSW (m=16, ef_construction=64) on `vector`, swept over ef_search 10 … 320;
- IVFFlat on `vector`, lists = rows / 1000 but at least 10, swept over probes 1 … 32;
- the same HNSW on `halfvec`;
- the same HNSW with `quantization="binary"` (when the library has it), swept
  over the re-rank pool 10 … 320.

The exact baseline is `exact=True` on the HNSW collection: the same table,
read by a sequential scan.

Every query runs through every configuration, in an order rotated per query,
twice: end to end through `similarity_search_with_score_by_vector` (client
call to rows), and through `store.explain(..., analyze=True)` for the server's
"Execution Time" and the plan's scan node. Where the planner chose a
sequential scan over the ANN index, the same statement is run again with
psycopg and `enable_seqscan = off` to show what the index would have cost.
Recall@10 is against numpy brute force over the float32 vectors; a returned
row counts when its true distance is within 1e-5 of the 10th nearest's (ties).
Prints Markdown tables; writes benchmarks/results/indexes.json and
benchmarks/results/indexes-recall-latency.png (needs matplotlib); other
settings write to `--out` and a plot beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from _common import (  # noqa: E402
    RESULTS,
    companion,
    environment,
    median,
    output_argument,
    p95,
    report_path,
    server_dsn,
    write_report,
)
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from report import markdown_table  # noqa: E402

from langchain_pgvstore import HNSWIndex, IVFFlatIndex, PGVStore  # noqa: E402

SCIFACT = Path("/work/shared/datasets/scifact-train")
CACHE = RESULTS / ".cache"
EF_SEARCH = (10, 20, 40, 80, 160, 320)
PROBES = (1, 2, 4, 8, 16, 32)
RERANK_POOL = (10, 20, 40, 80, 160, 320)
MIN_LISTS = 10
TIE_EPS = 1e-5
BUILD_MEM = "1GB"
WARMUP = 3
#: binary quantization arrived in HNSWIndex while this benchmark was written
HAS_BQ = "quantization" in getattr(HNSWIndex, "__dataclass_fields__", {})


@dataclass(frozen=True)
class Variant:
    """One collection: a storage type, an ANN index, and the per-call knob swept."""

    name: str
    label: str
    vector_type: str
    knob: str
    values: tuple[int, ...]
    colour: str

    def index(self, rows: int) -> HNSWIndex | IVFFlatIndex:
        if self.name == "ivfflat":
            return IVFFlatIndex(lists=lists_for(rows))
        if self.name == "hnsw-bq":
            return HNSWIndex(m=16, ef_construction=64, quantization="binary")
        return HNSWIndex(m=16, ef_construction=64)

    def params(self, rows: int) -> str:
        if self.name == "ivfflat":
            return f"lists {lists_for(rows)}"
        return "m 16, ef_construction 64"


VARIANTS = [
    Variant("hnsw", "HNSW, vector", "vector", "ef_search", EF_SEARCH, "tab:blue"),
    Variant("ivfflat", "IVFFlat, vector", "vector", "probes", PROBES, "tab:green"),
    Variant("hnsw-halfvec", "HNSW, halfvec", "halfvec", "ef_search", EF_SEARCH, "tab:orange"),
]
if HAS_BQ:
    VARIANTS.append(
        Variant(
            "hnsw-bq", "HNSW, binary quantized", "vector", "rerank_pool", RERANK_POOL, "tab:red"
        )
    )
BY_NAME = {v.name: v for v in VARIANTS}
LABELS = {"exact": "exact (seq scan)"} | {v.name: v.label for v in VARIANTS}


@dataclass
class DataSet:
    name: str
    vectors: np.ndarray  # float32, unit length
    queries: np.ndarray
    texts: list[str]
    note: str


@dataclass
class Config:
    variant: str  # exact, hnsw, ivfflat, hnsw-halfvec
    knob: str | None  # ef_search, probes
    value: int | None
    latency_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    planning_ms: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    plans: Counter[str] = field(default_factory=Counter)

    @property
    def kwargs(self) -> dict[str, Any]:
        if self.variant == "exact":
            return {"exact": True}
        assert self.knob is not None
        return {self.knob: self.value}

    @property
    def collection(self) -> str:
        return "hnsw" if self.variant == "exact" else self.variant


# -- data ---------------------------------------------------------------------------


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def random_set(rows: int, dim: int, queries: int) -> DataSet:
    vecs = unit(np.random.default_rng(0).normal(size=(rows, dim)))
    qs = unit(np.random.default_rng(1).normal(size=(queries, dim)))
    return DataSet(
        "random",
        vecs,
        qs,
        [f"random vector {i}" for i in range(rows)],
        f"{rows:,} x {dim}-d unit Gaussian vectors, {queries} random unit queries",
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _embed_cached(name: str, texts: list[str]) -> np.ndarray:
    """MiniLM vectors of `texts`, from `.cache/<name>.npy` when it was made from these texts."""
    path = CACHE / f"{name}.npy"
    digest_path = CACHE / f"{name}.sha256"
    # other benchmarks share the directory: never reuse vectors of other inputs
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    if path.exists() and digest_path.exists() and digest_path.read_text().strip() == digest:
        cached: np.ndarray = np.load(path).astype(np.float32)
        return cached
    from langchain_pgvstore.embeddings import MiniLMEmbeddings

    t0 = time.perf_counter()
    vecs = np.asarray(MiniLMEmbeddings(batch_size=64).embed_documents(texts), dtype=np.float32)
    print(
        f"embedded {len(texts):,} texts for {name} in {time.perf_counter() - t0:.0f}s", flush=True
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # a by-product, never a result to commit
    np.save(path, vecs)
    digest_path.write_text(digest + "\n")
    return vecs


def scifact_set(root: Path, queries: int) -> DataSet:
    corpus = _read_jsonl(root / "corpus.jsonl")
    texts = [f"{d.get('title', '')} {d.get('text', '')}".strip() for d in corpus]
    claims = [q["text"] for q in _read_jsonl(root / "queries.jsonl")]
    vecs = _embed_cached("scifact-minilm", texts)
    qvecs = _embed_cached("scifact-minilm-queries", claims)
    pick = np.sort(np.random.default_rng(2).choice(len(claims), size=queries, replace=False))
    return DataSet(
        "scifact",
        unit(vecs),
        unit(qvecs[pick]),
        texts,
        f"SciFact corpus, {len(texts):,} x {vecs.shape[1]}-d all-MiniLM-L6-v2,"
        f" {queries} of its {len(claims)} claims as queries",
    )


# -- build ----------------------------------------------------------------------------


def lists_for(rows: int) -> int:
    """pgvector's rows / 1000, but never fewer than MIN_LISTS lists."""
    return max(MIN_LISTS, rows // 1000)


def build(
    dsn: str, data: DataSet, variant: Variant, repeats: int
) -> tuple[PGVStore, dict[str, Any]]:
    """Load the rows with no index, then time `create_index()` of the store's own index."""
    rows, dim = data.vectors.shape
    collection = f"indexes_{data.name}_{variant.name.replace('-', '_')}_{uuid.uuid4().hex[:6]}"

    def open_store(index: HNSWIndex | IVFFlatIndex | None) -> PGVStore:
        return PGVStore(
            DeterministicFakeEmbedding(size=dim),
            connection=dsn,
            collection=collection,
            vector_type=variant.vector_type,
            index=index,
        )

    loader = open_store(None)
    t0 = time.perf_counter()
    loader.add_embeddings(data.texts, data.vectors, ids=[str(i) for i in range(rows)])
    load_s = time.perf_counter() - t0
    loader.close()
    table = sql.Identifier(collection)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
    # The query shape follows the index the store is configured with (a
    # binary-quantized index is searched by Hamming distance, then re-ranked),
    # so the searching store names its index, and builds it.
    store = open_store(variant.index(rows))
    build_s = []
    for r in range(repeats):
        if r:
            store.drop_index()
        t0 = time.perf_counter()
        store.create_index(maintenance_work_mem=BUILD_MEM)
        build_s.append(time.perf_counter() - t0)
    ann = [i for i in store.index_status() if i.kind in ("hnsw", "ivfflat")]
    assert len(ann) == 1 and ann[0].valid, ann
    with psycopg.connect(dsn, autocommit=True) as conn:
        sizes = conn.execute(
            sql.SQL(
                "SELECT pg_table_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid),"
                " pg_relation_size(%s::regclass), (SELECT sum(pg_column_size({emb})) FROM {tbl})"
                " FROM pg_class c WHERE c.oid = %s::regclass"
            ).format(emb=sql.Identifier("embedding"), tbl=table),
            (ann[0].name, collection),
        ).fetchone()
    assert sizes is not None
    table_b, indexes_b, total_b, ann_b, column_b = (int(x) for x in sizes)
    info = {
        "vector_type": variant.vector_type,
        "index": ann[0].definition,
        "params": variant.params(rows),
        "load_s": load_s,
        "build_s": median(build_s),
        "build_s_all": build_s,
        "ann_index_bytes": ann[0].size_bytes,
        "ann_index_bytes_pg_relation_size": ann_b,
        "table_bytes": table_b,
        "all_indexes_bytes": indexes_b,
        "total_relation_bytes": total_b,
        "embedding_column_bytes": column_b,
    }
    print(
        f"{data.name} {variant.name}: loaded in {load_s:.1f}s, index built in"
        f" {', '.join(f'{b:.1f}' for b in build_s)}s ({ann[0].size_bytes / 2**20:.1f} MiB)",
        flush=True,
    )
    return store, info


# -- measure --------------------------------------------------------------------------

_EXEC = re.compile(r"Execution Time: ([0-9.]+) ms")
_PLAN = re.compile(r"Planning Time: ([0-9.]+) ms")


def scan_node(plan: str) -> str:
    """The scan that produced the rows, in a few words."""
    m = re.search(r"Index Scan using (\S+)", plan)
    if m:
        return "ivfflat index" if m.group(1).endswith("_ivfflat") else "hnsw index"
    if "Parallel Seq Scan" in plan:
        return "parallel seq scan"
    if "Seq Scan" in plan:
        return "seq scan"
    return "other"


def true_neighbours(data: DataSet, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine distances (1 - dot on unit vectors) of every row, and the k-th nearest."""
    dist = 1.0 - data.queries @ data.vectors.T
    kth = np.partition(dist, k - 1, axis=1)[:, k - 1]
    return dist, kth


def measure(data: DataSet, stores: dict[str, PGVStore], configs: list[Config], k: int) -> None:
    dist, kth = true_neighbours(data, k)
    qlists = [q.tolist() for q in data.queries]
    n = len(configs)
    for qi in range(-WARMUP, len(qlists)):
        q = qlists[qi % len(qlists)]
        order = [configs[(j + qi) % n] for j in range(n)]  # rotate who goes first
        for cfg in order:
            store = stores[cfg.collection]
            t0 = time.perf_counter()
            hits = store.similarity_search_with_score_by_vector(q, k=k, **cfg.kwargs)
            elapsed = (time.perf_counter() - t0) * 1000
            if qi < 0:
                continue
            cfg.latency_ms.append(elapsed)
            found = np.array([int(doc.id) for doc, _ in hits if doc.id], dtype=np.int64)
            good = int(np.sum(dist[qi, found] <= kth[qi] + TIE_EPS)) if len(found) else 0
            cfg.recall.append(min(good, k) / k)
        for cfg in order:
            plan = stores[cfg.collection].explain(q, k=k, analyze=True, **cfg.kwargs)
            if qi < 0:
                continue
            ex, pl = _EXEC.search(plan), _PLAN.search(plan)
            assert ex is not None and pl is not None, plan
            cfg.server_ms.append(float(ex.group(1)))
            cfg.planning_ms.append(float(pl.group(1)))
            cfg.plans[scan_node(plan) + (" + JIT" if "JIT:" in plan else "")] += 1
        if (qi + 1) % 50 == 0:
            print(f"{data.name}: {qi + 1}/{len(qlists)} queries", flush=True)


def _raw_knn(variant: Variant, table: str, dim: int) -> sql.Composed:
    """The statement the store sends for `variant`, as plain SQL (ids only)."""
    q = sql.SQL("CAST(%(q)s AS {})").format(sql.SQL(variant.vector_type))
    dist = sql.SQL("embedding <=> {}").format(q)
    if variant.name == "hnsw-bq":
        bits = sql.SQL("::bit({})").format(sql.Literal(dim))
        return sql.SQL(
            "SELECT id FROM (SELECT id, {dist} AS d FROM {t}"
            " ORDER BY binary_quantize(embedding){bits} <~> binary_quantize({q}){bits}"
            " LIMIT %(pool)s) c ORDER BY d LIMIT %(k)s"
        ).format(dist=dist, t=sql.Identifier(table), bits=bits, q=q)
    return sql.SQL("SELECT id FROM {t} ORDER BY {dist} LIMIT %(k)s").format(
        t=sql.Identifier(table), dist=dist
    )


def force_index(
    dsn: str, data: DataSet, stores: dict[str, PGVStore], configs: list[Config], k: int
) -> list[dict[str, Any]]:
    """Where the planner chose a sequential scan over the index, what the index would cost.

    The same statement, sent with psycopg and `enable_seqscan = off` (plus the
    knob), transaction-local; server time from EXPLAIN ANALYZE.
    """
    dist, kth = true_neighbours(data, k)
    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        for cfg in configs:
            if cfg.variant == "exact" or "index" in cfg.plans.most_common(1)[0][0]:
                continue
            variant = BY_NAME[cfg.variant]
            query = _raw_knn(variant, stores[cfg.variant].collection, data.vectors.shape[1])
            assert cfg.value is not None
            if variant.knob == "probes":
                knob = ("ivfflat.probes", cfg.value)
            elif variant.knob == "rerank_pool":
                knob = ("hnsw.ef_search", max(40, cfg.value))
            else:
                knob = ("hnsw.ef_search", cfg.value)
            server, recall, plans = [], [], Counter[str]()
            for qi, q in enumerate(data.queries):
                params = {"q": q, "k": k, "pool": cfg.value}
                with conn.transaction():
                    conn.execute("SELECT set_config(%s, %s, true)", (knob[0], str(knob[1])))
                    conn.execute("SELECT set_config('enable_seqscan', 'off', true)")
                    plan = "\n".join(
                        r[0] for r in conn.execute(sql.SQL("EXPLAIN (ANALYZE) ") + query, params)
                    )
                    ids = [int(r[0]) for r in conn.execute(query, params)]
                ex = _EXEC.search(plan)
                assert ex is not None, plan
                server.append(float(ex.group(1)))
                plans[scan_node(plan)] += 1
                good = int(np.sum(dist[qi, ids] <= kth[qi] + TIE_EPS)) if ids else 0
                recall.append(min(good, k) / k)
            out.append(
                {
                    "variant": cfg.variant,
                    "knob": cfg.knob,
                    "value": cfg.value,
                    "planner_server_p50_ms": median(cfg.server_ms),
                    "planner_recall_at_10": float(np.mean(cfg.recall)),
                    "forced_server_p50_ms": median(server),
                    "forced_recall_at_10": float(np.mean(recall)),
                    "forced_plans": dict(plans),
                }
            )
    return out


def summary(cfg: Config) -> dict[str, Any]:
    return {
        "variant": cfg.variant,
        "knob": cfg.knob,
        "value": cfg.value,
        "recall_at_10": float(np.mean(cfg.recall)),
        "p50_ms": median(cfg.latency_ms),
        "p95_ms": p95(cfg.latency_ms),
        "server_p50_ms": median(cfg.server_ms),
        "server_p95_ms": p95(cfg.server_ms),
        "planning_p50_ms": median(cfg.planning_ms),
        "plans": dict(cfg.plans),
    }


def run_data_set(dsn: str, data: DataSet, k: int, build_repeats: int) -> dict[str, Any]:
    stores: dict[str, PGVStore] = {}
    builds: dict[str, Any] = {}
    try:
        for variant in VARIANTS:
            stores[variant.name], builds[variant.name] = build(dsn, data, variant, build_repeats)
        configs = [Config("exact", None, None)]
        for variant in VARIANTS:
            configs += [Config(variant.name, variant.knob, v) for v in variant.values]
        t0 = time.perf_counter()
        measure(data, stores, configs, k)
        forced = force_index(dsn, data, stores, configs, k)
        print(f"{data.name}: measured in {time.perf_counter() - t0:.0f}s", flush=True)
    finally:
        for store in stores.values():
            store.delete_collection()
            store.close()
    return {
        "description": data.note,
        "k": k,
        "rows": int(data.vectors.shape[0]),
        "dim": int(data.vectors.shape[1]),
        "queries": int(data.queries.shape[0]),
        "builds": builds,
        "results": [summary(c) for c in configs],
        "forced_index": forced,
    }


# -- report -----------------------------------------------------------------------------


def print_markdown(headers: list[str], rows: list[list[Any]]) -> None:
    print(markdown_table(headers, rows))


def mib(n: int) -> float:
    return n / 2**20


def knob_label(r: dict[str, Any]) -> str:
    return "-" if r["knob"] is None else f"{r['knob']} {r['value']}"


def plan_label(plans: dict[str, int]) -> str:
    if len(plans) == 1:
        return next(iter(plans))
    return ", ".join(f"{name} ×{n}" for name, n in sorted(plans.items(), key=lambda x: -x[1]))


def report(results: dict[str, Any], k: int) -> None:
    for name, res in results.items():
        print(f"\n### {name}: {res['description']}\n")
        rows = []
        for r in res["results"]:
            rows.append(
                [
                    LABELS[r["variant"]],
                    knob_label(r),
                    f"{r['recall_at_10']:.3f}",
                    r["p50_ms"],
                    r["p95_ms"],
                    r["server_p50_ms"],
                    plan_label(r["plans"]),
                ]
            )
        print_markdown(
            ["index", "setting", f"recall@{k}", "p50 ms", "p95 ms", "server p50 ms", "plan"], rows
        )

    print("\n### Build time and size\n")
    rows = []
    for name, res in results.items():
        hnsw = res["builds"]["hnsw"]
        rows.append(
            [
                name,
                "exact (no ANN index), vector",
                "-",
                "-",
                mib(hnsw["table_bytes"]),
                mib(hnsw["total_relation_bytes"] - hnsw["ann_index_bytes"]),
            ]
        )
        for variant, b in res["builds"].items():
            rows.append(
                [
                    name,
                    f"{LABELS[variant]} ({b['params']})",
                    b["build_s"],
                    mib(b["ann_index_bytes"]),
                    mib(b["table_bytes"]),
                    mib(b["total_relation_bytes"]),
                ]
            )
    print_markdown(
        ["data set", "index", "build s", "ANN index MiB", "table MiB", "total relation MiB"], rows
    )

    print("\n### Storage against the float32 HNSW collection (table = heap + TOAST)\n")
    rows = []
    for name, res in results.items():
        base = res["builds"]["hnsw"]
        by = {(r["variant"], r["value"]): r for r in res["results"]}
        for variant in ("hnsw-halfvec", "hnsw-bq"):
            if variant not in res["builds"]:
                continue
            b = res["builds"][variant]
            r, rv = by[(variant, 40)], by[("hnsw", 40)]
            setting = "ef_search 40" if variant == "hnsw-halfvec" else "rerank_pool 40"
            rows.append(
                [
                    name,
                    LABELS[variant],
                    f"{b['embedding_column_bytes'] / base['embedding_column_bytes']:.2f}",
                    f"{b['ann_index_bytes'] / base['ann_index_bytes']:.2f}",
                    f"{(b['table_bytes'] + b['ann_index_bytes']) / (base['table_bytes'] + base['ann_index_bytes']):.2f}",
                    f"{b['build_s'] / base['build_s']:.2f}",
                    f"{setting}: {r['recall_at_10']:.3f} vs {rv['recall_at_10']:.3f}",
                    f"{r['p50_ms']:.2f} vs {rv['p50_ms']:.2f}",
                    f"{r['server_p50_ms']:.2f} vs {rv['server_p50_ms']:.2f}",
                ]
            )
    print_markdown(
        [
            "data set",
            "variant",
            "vector column",
            "ANN index",
            "table + index",
            "build time",
            "recall@10 at the default (vs vector)",
            "p50 ms (vs vector)",
            "server p50 ms (vs vector)",
        ],
        rows,
    )

    forced = [(name, f) for name, res in results.items() for f in res["forced_index"]]
    if forced:
        print("\n### Where the planner chose a sequential scan: the same query, index forced\n")
        print_markdown(
            [
                "data set",
                "index",
                "setting",
                "planner's plan: recall@10",
                "server p50 ms",
                "index forced: recall@10",
                "server p50 ms",
            ],
            [
                [
                    name,
                    LABELS[f["variant"]],
                    knob_label(f),
                    f"{f['planner_recall_at_10']:.3f}",
                    f["planner_server_p50_ms"],
                    f"{f['forced_recall_at_10']:.3f}",
                    f["forced_server_p50_ms"],
                ]
                for name, f in forced
            ],
        )


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    latencies = [("p50_ms", "p50 latency, end to end"), ("server_p50_ms", "p50 server time")]
    fig, axes = plt.subplots(
        len(latencies), len(results), figsize=(6.5 * len(results), 10), squeeze=False
    )
    for col, (name, res) in enumerate(results.items()):
        for row, (key, what) in enumerate(latencies):
            ax = axes[row][col]
            for n, variant in enumerate(VARIANTS):
                pts = [r for r in res["results"] if r["variant"] == variant.name]
                xs = [r[key] for r in pts]
                ys = [r["recall_at_10"] for r in pts]
                c = variant.colour
                ax.plot(xs, ys, "-", color=c, label=f"{variant.label} ({variant.knob})")
                for r, x, y in zip(pts, xs, ys, strict=True):
                    # hollow: the planner read the table instead of the index
                    indexed = "index" in max(r["plans"], key=r["plans"].get)
                    ax.plot([x], [y], "o", color=c, markerfacecolor=c if indexed else "white")
                    ax.annotate(
                        str(r["value"]),
                        (x, y),
                        textcoords="offset points",
                        xytext=(4, 4 if n % 2 == 0 else -11),
                        fontsize=7,
                        color=c,
                    )
            exact = next(r for r in res["results"] if r["variant"] == "exact")
            ax.plot(
                [exact[key]], [exact["recall_at_10"]], "k*", markersize=12, label=LABELS["exact"]
            )
            ax.plot(
                [], [], "o", color="grey", markerfacecolor="white", label="planner chose a seq scan"
            )
            lowest = min(r["recall_at_10"] for r in res["results"])
            ax.set_ylim(max(0.0, np.floor((lowest - 0.05) * 10) / 10), 1.02)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
            ax.set_xlabel(f"{what} (ms, log scale)")
            ax.set_ylabel(f"recall@{res['k']}")
            ax.set_title(
                f"{name}: {res['rows']:,} x {res['dim']}-d, {res['queries']} queries: {what}",
                fontsize=10,
            )
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    k = next(iter(results.values()))["k"]
    fig.suptitle(
        f"k={k}, cosine distance. Point labels: the per-call knob (in the legend)."
        " Server time: EXPLAIN ANALYZE Execution Time.",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-rows", type=int, default=10_000)
    parser.add_argument("--random-dim", type=int, default=1536)
    parser.add_argument("--random-queries", type=int, default=100)
    parser.add_argument("--scifact-queries", type=int, default=200)
    parser.add_argument("--scifact-dir", type=Path, default=SCIFACT)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--build-repeats", type=int, default=3)
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "indexes", neutral=["scifact_dir"])

    started = time.perf_counter()
    data_sets = [
        random_set(args.random_rows, args.random_dim, args.random_queries),
        scifact_set(args.scifact_dir, args.scifact_queries),
    ]
    dsn, server = server_dsn()
    results: dict[str, Any] = {}
    try:
        for data in data_sets:
            results[data.name] = run_data_set(dsn, data, args.k, args.build_repeats)
        env = environment(dsn)
    finally:
        if server is not None:
            server.stop()

    report(results, args.k)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = companion(out, "recall-latency.png")
    plot(results, png)
    path = write_report(
        out,
        {
            "benchmark": "indexes",
            "k": args.k,
            "distance": "cosine",
            "hnsw": {"m": 16, "ef_construction": 64},
            "ivfflat_lists": f"max({MIN_LISTS}, rows // 1000)",
            "binary_quantization": HAS_BQ,
            "build_repeats": args.build_repeats,
            "maintenance_work_mem": BUILD_MEM,
            "recall_tie_epsilon": TIE_EPS,
            "data_sets": results,
            "total_s": time.perf_counter() - started,
            "environment": env,
        },
    )
    print(f"\nwrote {path} and {png} in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
