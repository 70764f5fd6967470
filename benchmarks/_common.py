"""Shared benchmark plumbing: results, servers, data, timing, raw baselines, the incumbents.

Every benchmark writes one JSON report. Run with its default settings (the run
the docs quote) it goes to `benchmarks/results/<benchmark>.json`, the one
canonical result of that benchmark; any other run needs `--out PATH`
(`report_path`), so an experiment never replaces what the docs cite.

The incumbents are langchain-postgres' v1 `PGVector` (SQLAlchemy + psycopg) and
v2 `PGVectorStore` (SQLAlchemy + asyncpg, sync calls through a background
event loop). They are optional: install them into the benchmark environment
with `pip install langchain-postgres` (see benchmarks/README.md for why that
needs `--no-deps`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import selectors
import socket
import statistics
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from langchain_pgvstore._sql import Frag
from langchain_pgvstore._sql.bm25_search import or_tsquery
from langchain_pgvstore.config import Table

RESULTS = Path(__file__).parent / "results"


# -- results -------------------------------------------------------------------------


def output_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--out`: where a run with other settings than the reported ones writes its JSON."""
    parser.add_argument(
        "--out",
        type=Path,
        help="write the JSON report here; required when a setting differs from the reported"
        " run, whose report is benchmarks/results/<benchmark>.json",
    )


def report_path(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    name: str,
    *,
    neutral: Iterable[str] = (),
) -> Path:
    """Where this run's JSON report goes; decided before the run, so a mistake costs nothing.

    With the parser's defaults (the run the docs quote) it is `benchmarks/results/<name>.json`.
    A run with any other setting must name its own file with `--out`. Options listed in
    `neutral` (which server, where the data set lives) do not change what is measured.
    """
    if args.out is not None:
        return Path(args.out)
    changed = sorted(
        key
        for key, value in vars(args).items()
        if key not in {"out", *neutral} and value != parser.get_default(key)
    )
    if changed:
        flags = ", ".join("--" + key.replace("_", "-") for key in changed)
        parser.error(
            f"{flags}: not the reported run, so pass --out PATH"
            f" (benchmarks/results/{name}.json keeps the run the docs quote)"
        )
    return RESULTS / f"{name}.json"


def companion(report: Path, suffix: str) -> Path:
    """A file written beside a report (a profile, a plot): `<report stem>-<suffix>`."""
    return report.with_name(f"{report.stem}-{suffix}")


def write_report(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def environment(dsn: str) -> dict[str, Any]:
    """Package versions, server settings and machine load, stored with every result."""
    packages = {}
    for name in (
        "langchain-pgvstore",
        "psycopg",
        "psycopg-pool",
        "pgvector",
        "numpy",
        "langchain-core",
        "langchain-postgres",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    with psycopg.connect(dsn) as conn:
        server = conn.execute("SELECT version()").fetchone()[0]
        ext = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        settings = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name = ANY(%s)",
                (
                    [
                        "shared_buffers",
                        "work_mem",
                        "maintenance_work_mem",
                        "max_parallel_workers",
                        "max_parallel_maintenance_workers",
                        "jit",
                        "synchronous_commit",
                    ],
                ),
            ).fetchall()
        )
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "server": server,
        "pgvector": ext[0] if ext else None,
        "settings": settings,
        "packages": packages,
    }


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for j, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


# -- servers and data ---------------------------------------------------------------


def server_dsn() -> tuple[str, Any]:
    """`PGVSTORE_BENCH_DSN`, or a fresh embedded server in a temporary directory."""
    dsn = os.environ.get("PGVSTORE_BENCH_DSN")
    if dsn:
        return dsn, None
    from langchain_pgvstore.server import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="pgvstore-bench-")) / "pgdata")
    server.start()
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return server.dsn, server


def clustered_vectors(n: int, dim: int, clusters: int = 100, seed: int = 0) -> np.ndarray:
    """Unit vectors around `clusters` random centres: closer to real embeddings than noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, size=n)
    vecs = centres[labels] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def latent_vectors(
    n: int, dim: int, *, intrinsic: int = 24, clusters: int = 200, seed: int = 0, data_seed: int = 0
) -> np.ndarray:
    """Unit vectors with a low intrinsic dimension: a mixture of `clusters` Gaussians in
    `intrinsic` dimensions, projected into `dim` and slightly blurred.

    Text embeddings have far fewer degrees of freedom than coordinates; isotropic
    noise in all 384 dimensions (`clustered_vectors`) makes every point of a
    cluster almost equally far from a query, so recall@10 measures ties. Here
    neighbours are well separated. `data_seed` fixes the mixture and projection
    (data and queries share it); `seed` draws the points.
    """
    base = np.random.default_rng(data_seed)
    centres = base.normal(size=(clusters, intrinsic))
    spread = base.uniform(0.3, 1.0, size=clusters)
    project = base.normal(size=(intrinsic, dim)) / np.sqrt(intrinsic)
    rng = np.random.default_rng(seed + 1)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        labels = rng.integers(0, clusters, size=m)
        z = centres[labels] + spread[labels, None] * rng.normal(size=(m, intrinsic))
        x = z @ project + 0.02 * rng.normal(size=(m, dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x
    return out


SCIFACT = Path("/work/shared/datasets/scifact-train")


def scifact_vocabulary(root: Path = SCIFACT) -> list[str]:
    """SciFact's corpus words (lower-case, letters and digits), most frequent first."""
    import re
    from collections import Counter

    counts: Counter[str] = Counter()
    with (root / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            counts.update(re.findall(r"[a-z0-9]+", (doc["title"] + " " + doc["text"]).lower()))
    return [w for w, _ in counts.most_common()]


def zipf_texts(
    n: int,
    vocabulary: Sequence[str],
    *,
    mean_words: int = 120,
    exponent: float = 1.0,
    seed: int = 0,
) -> Iterator[str]:
    """`n` texts of words drawn from a Zipf distribution over `vocabulary` (rank r has
    weight 1/r^exponent), lengths log-normal around `mean_words`; generated in chunks."""  # fmt: skip
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary, dtype=object)
    weights = 1.0 / np.arange(1, len(words) + 1) ** exponent
    cumulative = np.cumsum(weights / weights.sum())
    step = 20_000
    for start in range(0, n, step):
        m = min(step, n - start)
        lengths = np.maximum(
            5, rng.lognormal(np.log(mean_words) - 0.18, 0.6, size=m).astype(np.int64)
        )
        drawn = np.searchsorted(cumulative, rng.random(int(lengths.sum())))
        drawn = np.minimum(drawn, len(words) - 1)
        ends = np.cumsum(lengths)
        for begin, end in zip(ends - lengths, ends, strict=True):
            yield " ".join(words[drawn[begin:end]])


def queries(n: int, dim: int, seed: int = 7) -> np.ndarray:
    """Query vectors near the data's cluster centres (same generator as `clustered_vectors`)."""
    rng = np.random.default_rng(seed + 1000)
    qs = clustered_vectors(n, dim, seed=0)  # seed 0: the data's centres
    qs = qs[rng.permutation(n)] + 0.05 * rng.normal(size=qs.shape).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    return qs.astype(np.float32)


def documents(n: int, seed: int = 0) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(seed)
    words = [
        "vector",
        "postgres",
        "index",
        "search",
        "query",
        "table",
        "filter",
        "embedding",
        "latency",
        "recall",
        "graph",
        "cluster",
        "memory",
        "batch",
        "stream",
        "token",
    ]
    texts = [" ".join(rng.choice(words, size=12)) + f" document {i}" for i in range(n)]
    metas = [
        {"source": f"s{i % 10}", "n": int(i), "tags": ["a", "b"][: 1 + i % 2]} for i in range(n)
    ]
    ids = [f"doc-{i}" for i in range(n)]
    return texts, metas, ids


class LookupEmbedding:
    """An `Embeddings` that returns precomputed vectors for known texts, at no cost.

    Used where a workload takes a query text (hybrid search), so that every
    store pays the same (zero) embedding time and only its own overhead shows.
    """

    def __init__(self, dim: int, table: dict[str, list[float]] | None = None) -> None:
        self.dim = dim
        self.table = table if table is not None else {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        vec = self.table.get(text)
        if vec is None:
            rng = np.random.default_rng(abs(hash(text)) % 2**32)
            vec = [float(x) for x in rng.normal(size=self.dim)]
            self.table[text] = vec
        return vec

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


def dataset_name(rows: int, dim: int) -> str:
    """The collection perf_search, perf_async and perf_memory share on one server."""
    return f"bench_{rows}x{dim}"


def load_ours(dsn: str, collection: str, rows: int, dim: int, **store_kwargs: Any) -> Any:
    """A PGVStore collection with `rows` clustered vectors and the standard documents."""
    from langchain_pgvstore import PGVStore

    store = PGVStore(
        LookupEmbedding(dim),  # type: ignore[arg-type]
        connection=dsn,
        collection=collection,
        maintenance_work_mem=store_kwargs.pop("maintenance_work_mem", "1GB"),
        **store_kwargs,
    )
    if store_kwargs.pop("reuse", True) and _row_count(dsn, collection) == rows:
        return store  # same deterministic data, loaded by an earlier run on this server
    texts, metas, ids = documents(rows)
    vecs = clustered_vectors(rows, dim)
    step = 100_000
    for start in range(0, rows, step):
        end = min(rows, start + step)
        store.add_embeddings(
            texts[start:end], vecs[start:end], metas[start:end], ids=ids[start:end]
        )
    return store


def _row_count(dsn: str, table: str) -> int | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        return int(row.fetchone()[0])  # type: ignore[index]


# -- timing -------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rotated(names: Sequence[str], i: int) -> list[str]:
    """`names` starting at position `i`: each workload runs first equally often.

    The server's shared buffers do not hold a 100k-row table and its index, so
    the first workload of a round warms pages the others then find; rotating
    the order spreads that advantage evenly.
    """
    j = i % len(names)
    return [*names[j:], *names[:j]]


def shuffled(names: Sequence[str], rng: np.random.Generator) -> list[str]:
    """`names` in a random order from a seeded generator.

    Contenders that share a table warm its pages for each other: whoever runs a
    query second finds the graph path of the same query vector in shared
    buffers. A rotated order keeps each contender's predecessor fixed (the one
    before it in the cycle always warms its pages); a random order gives each
    contender every position and every predecessor equally often.
    """
    return [names[i] for i in rng.permutation(len(names))]


def backend_cpu(pids: Iterable[int]) -> float:
    """Seconds the server processes `pids` have run on a CPU so far (/proc/PID/schedstat).

    On a shared, loaded machine a call's wall time is mostly waiting for a
    core; the CPU both sides spend per call is what the work costs, and it
    moves far less with the load. Only for a server on this machine (the
    embedded one).
    """
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except OSError:  # a connection closed meanwhile
            continue
    return total / 1e9


def pool_pids(store: Any) -> list[int]:
    """Backend pids of the connections in a store's own sync pool (benchmarks only)."""
    pool = store._connector.sync_pool()
    return [conn.info.backend_pid for conn in list(pool._pool)]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": statistics.fmean(ms),
    }


# -- raw baselines ------------------------------------------------------------------


HNSW_BY_HAND = sql.SQL(
    "CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
)


def create_raw_table(
    conn: psycopg.Connection[Any], table: sql.Identifier, dim: int, *, secondary: bool = True
) -> None:
    """The raw baselines' table: the store's columns (vectors stored inline, as the store
    does) and, with `secondary`, its GIN indexes on metadata and the tsvector."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id text PRIMARY KEY, content text NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({}) NOT NULL,"
            " tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(table, sql.Literal(dim))
    )
    conn.execute(sql.SQL("ALTER TABLE {} ALTER embedding SET STORAGE MAIN").format(table))
    if secondary:
        conn.execute(
            sql.SQL("CREATE INDEX ON {} USING gin (metadata jsonb_path_ops)").format(table)
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gin (tsv)").format(table))


def copy_rows(
    conn: psycopg.Connection[Any],
    target: sql.Composable,
    texts: list[str],
    metas: list[dict[str, Any]],
    ids: list[str],
    vecs: np.ndarray,
) -> None:
    """pgvector-python's loading example: binary COPY with `write_row`."""
    with conn.cursor().copy(
        sql.SQL("COPY {} (id, content, metadata, embedding) FROM STDIN (FORMAT BINARY)").format(
            target
        )
    ) as copy:
        copy.set_types(["text", "text", "jsonb", "vector"])
        for i in range(len(ids)):
            copy.write_row((ids[i], texts[i], Jsonb(metas[i]), vecs[i]))


def relation_sizes(conn: psycopg.Connection[Any], table: str) -> dict[str, int]:
    """Heap, TOAST and index bytes of `table` (a qualified or plain name)."""
    row = conn.execute(
        "SELECT pg_relation_size(c.oid), coalesce(pg_total_relation_size(c.reltoastrelid), 0),"
        " pg_indexes_size(c.oid), pg_total_relation_size(c.oid)"
        " FROM pg_class c WHERE c.oid = %s::regclass",
        (table,),
    ).fetchone()
    assert row is not None
    heap, toast, indexes, total = row
    return {"heap": heap, "toast": toast, "indexes": indexes, "total": total}


def index_sizes(conn: psycopg.Connection[Any], table: str) -> dict[str, tuple[str, int]]:
    """Each index of `table`: access method and bytes."""
    rows = conn.execute(
        "SELECT ic.relname, am.amname, pg_relation_size(ic.oid) FROM pg_index i"
        " JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam"
        " WHERE i.indrelid = %s::regclass ORDER BY ic.relname",
        (table,),
    ).fetchall()
    return {name: (am, size) for name, am, size in rows}


# -- the ts_rank baseline -----------------------------------------------------------


def ts_rank_search(
    table: Table,
    query: str,
    k: int,
    where: Frag,
    ts_config: str,
    *,
    match: Literal["any", "all"] = "any",
) -> Frag:
    """Top `k` rows `(id, score)` by PostgreSQL's `ts_rank`, best first, ties by id.

    The baseline `retrieval_quality.py` ranks BM25 against. `match="any"` uses
    the store's own any-lexeme query (the one `keyword_search` matches with);
    `match="all"` uses `plainto_tsquery` (every lexeme must occur).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if match == "any":
        tsquery = or_tsquery(ts_config, query)
    elif match == "all":
        tsquery = Frag(sql.SQL("plainto_tsquery(%s::regconfig, %s)"), (ts_config, query))
    else:
        raise ValueError(f"match must be 'any' or 'all', got {match!r}")
    # The tsquery appears twice (rank and match) so that both stay plan-time
    # constants; the parameters are bound twice accordingly.
    return (
        Frag(sql.SQL("SELECT {id} AS id, ts_rank({tsv}, ").format(id=table.id, tsv=table.tsv))
        + tsquery
        + Frag(
            sql.SQL(")::float8 AS score FROM {table} WHERE {tsv} @@ ").format(
                table=table.qualname, tsv=table.tsv
            )
        )
        + tsquery
        + Frag(sql.SQL(" AND ("))
        + where
        + Frag(sql.SQL(') ORDER BY score DESC, id COLLATE "C" LIMIT %s'), (k,))
    )


# -- langchain-postgres -------------------------------------------------------------


INSTALL_HINT = (
    "the langchain-postgres workloads need it in this environment:"
    " pip install --no-deps langchain-postgres 'sqlalchemy[asyncio]>=2' asyncpg"
    " (or pass --no-incumbents)"
)


def langchain_postgres() -> Any:
    """The `langchain_postgres` module, or exit with the install hint."""
    try:
        import langchain_postgres as lcpg
    except ImportError as e:
        raise SystemExit(f"{INSTALL_HINT} ({e})") from None
    return lcpg


def sqlalchemy_url(dsn: str, driver: str) -> str:
    """A libpq DSN (URI or key=value, unix socket or TCP) as a SQLAlchemy URL."""
    p = conninfo_to_dict(dsn)
    user = p.get("user") or "postgres"
    password = f":{p['password']}" if p.get("password") else ""
    host = p.get("host") or "localhost"
    port = p.get("port") or "5432"
    db = p.get("dbname") or "postgres"
    if host.startswith("/"):
        # a unix socket directory goes in the query string for both drivers
        return f"postgresql+{driver}://{user}{password}@/{db}?host={host}&port={port}"
    return f"postgresql+{driver}://{user}{password}@{host}:{port}/{db}"


def v2_ids(n: int, start: int = 0) -> list[str]:
    """langchain-postgres v2 tables key rows by UUID by default."""
    return [str(uuid.UUID(int=i + 1)) for i in range(start, start + n)]


class Incumbents:
    """langchain-postgres v1 and v2 stores over copies of one PGVStore collection.

    The rows are copied server-side (`INSERT ... SELECT`), so all stores hold
    the same ids, texts, metadata and vectors. Each gets the HNSW index
    (m=16, ef_construction=64, cosine) the way its users build it: v2 with
    `apply_vector_index(HNSWIndex())`, v1 (which has no index API) with
    `CREATE INDEX ... USING hnsw` on its shared embedding table.
    """

    V1_COLLECTION = "bench"

    def __init__(self, dsn: str, dim: int, *, v2_table: str = "lcpg_v2", async_pool: int = 5):
        lcpg = langchain_postgres()
        from langchain_postgres.v2.hybrid_search_config import HybridSearchConfig

        self.lcpg = lcpg
        self.dim = dim
        self.dsn = dsn
        self.v2_table = v2_table
        self.embedding = LookupEmbedding(dim)
        self.hybrid_config = HybridSearchConfig
        # from_connection_string starts v2's background event loop, which its sync
        # methods need; the pool is SQLAlchemy's (asyncpg), sized like ours
        self.engine = lcpg.PGEngine.from_connection_string(
            sqlalchemy_url(dsn, "asyncpg"), pool_size=async_pool, max_overflow=0
        )
        self._v2: Any = None
        self._v2_hybrid: Any = None
        self._v1: Any = None

    def create_v2(self, source_table: str) -> None:
        """Create the v2 table (with its hybrid tsvector column) and copy the rows in."""
        from langchain_postgres.v2.indexes import HNSWIndex

        if _row_count(self.dsn, self.v2_table) == _row_count(self.dsn, source_table):
            return  # copied by an earlier run on this server
        cfg = self.hybrid_config(tsv_column="content_tsv")
        self.engine.init_vectorstore_table(
            self.v2_table, self.dim, overwrite_existing=True, hybrid_search_config=cfg
        )
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (langchain_id, content, embedding, content_tsv,"
                    " langchain_metadata) SELECT md5(id)::uuid, content, embedding,"
                    " to_tsvector('pg_catalog.english', content), metadata::json FROM {}"
                ).format(sql.Identifier(self.v2_table), sql.Identifier(source_table))
            )
        self.v2().apply_vector_index(HNSWIndex())
        self.v2_hybrid().apply_hybrid_search_index()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(self.v2_table)))

    def v2(self) -> Any:
        if self._v2 is None:
            self._v2 = self.lcpg.PGVectorStore.create_sync(
                engine=self.engine, table_name=self.v2_table, embedding_service=self.embedding
            )
        return self._v2

    def v2_hybrid(self) -> Any:
        if self._v2_hybrid is None:
            self._v2_hybrid = self.lcpg.PGVectorStore.create_sync(
                engine=self.engine,
                table_name=self.v2_table,
                embedding_service=self.embedding,
                hybrid_search_config=self.hybrid_config(tsv_column="content_tsv"),
            )
        return self._v2_hybrid

    def hybrid_config_for(self, query: str, k: int, fetch_k: int) -> Any:
        """A fresh config per call: v2 writes the first query into a shared one."""
        return self.hybrid_config(
            tsv_column="content_tsv",
            fts_query=query,
            primary_top_k=fetch_k,
            secondary_top_k=fetch_k,
        )

    def create_v1(self, source_table: str) -> None:
        """Create v1's tables and collection and copy the rows in; HNSW by hand."""
        self.v1()  # creates v1's tables and the collection row
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            (cid,) = conn.execute(
                "SELECT uuid FROM langchain_pg_collection WHERE name = %s", (self.V1_COLLECTION,)
            ).fetchone()  # type: ignore[misc]
            (have,) = conn.execute(
                "SELECT count(*) FROM langchain_pg_embedding WHERE collection_id = %s", (cid,)
            ).fetchone()  # type: ignore[misc]
            if have == _row_count(self.dsn, source_table):
                return  # copied by an earlier run on this server
            conn.execute("DELETE FROM langchain_pg_embedding WHERE collection_id = %s", (cid,))
            conn.execute(
                sql.SQL(
                    "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document,"
                    " cmetadata) SELECT id, %s, embedding, content, metadata FROM {}"
                ).format(sql.Identifier(source_table)),
                (cid,),
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS lcpg_v1_hnsw ON langchain_pg_embedding"
                " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            conn.execute("ANALYZE langchain_pg_embedding")

    def v1(self) -> Any:
        if self._v1 is None:
            self._v1 = self.lcpg.PGVector(
                self.embedding,
                connection=sqlalchemy_url(self.dsn, "psycopg"),
                collection_name=self.V1_COLLECTION,
                embedding_length=self.dim,
            )
        return self._v1

    def close(self) -> None:
        if self._v1 is not None:
            self._v1._engine.dispose()
        self.engine._run_as_sync(self.engine.close())


# -- counting round trips ---------------------------------------------------------


class RoundTripProxy:
    """A unix-socket proxy in front of the server that counts protocol round trips.

    It forwards bytes unchanged and parses the message framing of both
    directions. Per call it reports:

    - `waits`: how often the client sent something after the server had
      answered, i.e. how many times the client had to wait for a reply before
      it could go on. A pipelined batch is one wait; N statements sent one by
      one are N waits.
    - `syncs`: ReadyForQuery messages from the server (one per simple query or
      extended-protocol Sync), i.e. how many protocol exchanges completed.
    - `statements`: Query ('Q') and Execute ('E') messages from the client.

    It is driver-neutral, so psycopg, SQLAlchemy + psycopg and asyncpg are
    counted the same way. It adds latency, so it is used for counting only,
    never for timing.
    """

    def __init__(self, dsn: str) -> None:
        params = conninfo_to_dict(dsn)
        host = params.get("host") or "/tmp"
        if not host.startswith("/"):
            raise ValueError("RoundTripProxy needs a unix-socket server (the embedded one)")
        self._port = int(params.get("port") or 5432)
        self._target = os.path.join(host, f".s.PGSQL.{self._port}")
        self._dir = tempfile.mkdtemp(prefix="pgv-rt-")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(os.path.join(self._dir, f".s.PGSQL.{self._port}"))
        self._listener.listen(64)
        self.dsn = make_conninfo(dsn, host=self._dir)
        self._lock = threading.Lock()
        self.waits = 0
        self.syncs = 0
        self.statements = 0
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="rt-proxy")
        self._thread.start()

    @contextlib.contextmanager
    def counting(self) -> Iterator[dict[str, int]]:
        """Yields a dict filled with the counts of what ran inside the block."""
        with self._lock:
            before = (self.waits, self.syncs, self.statements)
        out: dict[str, int] = {}
        yield out
        with self._lock:
            out["waits"] = self.waits - before[0]
            out["syncs"] = self.syncs - before[1]
            out["statements"] = self.statements - before[2]

    def close(self) -> None:
        self._stop = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self._target)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, "c")
        sel.register(server, selectors.EVENT_READ, "s")
        frames = {"c": _Framer(startup=True), "s": _Framer(startup=False)}
        answered = True  # the server spoke last (or nobody yet)
        try:
            while True:
                for key, _ in sel.select():
                    side = key.data
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    (server if side == "c" else client).sendall(data)
                    kinds = frames[side].feed(data)
                    with self._lock:
                        if side == "c":
                            if answered and not frames["c"].in_startup:
                                self.waits += 1
                            answered = False
                            self.statements += sum(1 for k in kinds if k in (b"Q", b"E"))
                        else:
                            answered = True
                            self.syncs += sum(1 for k in kinds if k == b"Z")
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            server.close()


class _Framer:
    """Splits a protocol byte stream into messages and returns their type bytes."""

    def __init__(self, startup: bool) -> None:
        self._buf = b""
        self._startup = startup
        self.in_startup = startup

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        kinds: list[bytes] = []
        while True:
            if self._startup:
                if len(self._buf) < 4:
                    break
                (length,) = struct.unpack(">i", self._buf[:4])
                if len(self._buf) < length:
                    break
                self._buf = self._buf[length:]
                self._startup = False
                continue
            if len(self._buf) < 5:
                break
            kind = self._buf[:1]
            (length,) = struct.unpack(">i", self._buf[1:5])
            if len(self._buf) < 1 + length:
                break
            self._buf = self._buf[1 + length :]
            kinds.append(kind)
            if kind in (b"Q", b"P", b"B"):
                self.in_startup = False  # authentication is over once queries flow
        return kinds


def search_query(
    store: Any,
    vector: Any,
    k: int,
    filter: Any = None,
    *,
    with_embedding: bool = False,
    **knobs: Any,
) -> Any:
    """The `Query` a similarity search with these knobs sends (its statement and its
    `Settings`), exactly as the store builds it (for a raw baseline)."""  # fmt: skip
    from langchain_pgvstore._flow import known_flow
    from langchain_pgvstore._options import parse_options

    spec = store._drive(known_flow())
    options = parse_options("similarity", k, knobs)
    return store._search(
        spec, vector, k, store._compile(filter), options, with_embedding=with_embedding
    )


def search_statement(
    store: Any,
    vector: Any,
    k: int,
    filter: Any = None,
    *,
    with_embedding: bool = False,
    **knobs: Any,
) -> tuple[Any, list[Any]]:
    """The statement a similarity search sends, and its settings as transaction-local
    statements, exactly as the store builds them (for a raw baseline)."""  # fmt: skip
    query = search_query(store, vector, k, filter, with_embedding=with_embedding, **knobs)
    return query.frag, query.settings.local_frags()


def hybrid_statement(store: Any, text: str, vector: Any, k: int) -> Any:
    """The statement an unfiltered hybrid search sends, as the store builds it."""
    from langchain_pgvstore._flow import LOOKUP, known_flow
    from langchain_pgvstore._options import SearchOptions
    from langchain_pgvstore._sql.filters import TRUE

    spec = store._drive(known_flow())
    flow = store._hybrid(text, vector, k, TRUE, SearchOptions())
    assert next(flow) is LOOKUP
    return flow.send(spec).frag
