"""A search service over a collection: FastAPI, a response cache, Prometheus metrics.

    pip install '.[embedded,e5,examples]'                # from a checkout
    python examples/search_api.py --seed                 # embedded database, demo corpus
    PGVSTORE_DSN=postgresql://user:pass@host/db PGVSTORE_COLLECTION=docs \\
        python examples/search_api.py --host 0.0.0.0 --port 8000

    curl -s localhost:8000/search -H 'content-type: application/json' \\
        -d '{"query": "fast lookups", "top_k": 3, "filter": {"topic": "databases"}}'

Endpoints:

- `POST /search` with `{"query": str, "top_k": 10, "min_score": null, "filter": {...} | null,
  "mode": "similarity" | "mmr" | "hybrid"}` returns
  `{"results": [{"id", "content", "score", "metadata"}], "cached": bool}`.
  For `similarity` and `mmr`, `score` is the relevance in [0, 1] of the store's
  distance (`store.distance.relevance()`, see docs/schema.md) and `min_score`
  defaults to 0.7. For `hybrid` it is the fused score, which lives on another
  scale (reciprocal rank fusion gives about 0.03 to a top hit), so there
  `min_score` defaults to 0. Results come ranked: by score for similarity and
  hybrid, in selection order for MMR.
- `GET /healthz`: 200 when a one-row read through the store succeeds within
  `HEALTH_TIMEOUT` (1.5 s), else 503. While the database is down it answers
  503 at once (the store fails fast once it knows); the first request after the
  database is back reconnects.
- `GET /metrics`: Prometheus text format.

The service embeds the query once per request and searches with that vector
(hybrid search takes the text, and the store embeds it for its vector leg).
Responses are cached in memory (LRU,
bounded, with a TTL) under the sha256 of the query vector and the canonical
JSON of the other parameters, so a cached answer may be up to
`PGVSTORE_CACHE_TTL` seconds old after the collection changes.

A bad filter or argument (`FilterError`, `InputError`: our `ValueError`s) is a
422 with the library's message; so is a malformed body (FastAPI's own
validation). A database that cannot be reached is a 503, a statement timeout a 504.

Configuration: `PGVSTORE_DSN` (default: the embedded server),
`PGVSTORE_COLLECTION` (default `search_demo`), `PGVSTORE_CACHE_SIZE` (entries,
default 1024; 0 turns the cache off), `PGVSTORE_CACHE_TTL` (seconds, default
60); `--host`, `--port` and `--seed` on the command line. Embeddings are the
local multilingual-e5-small (`E5SmallEmbeddings`, no API key). Tests build the app with
`create_app(store, embeddings)`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field

from langchain_pgvstore import (
    DatabaseUnavailableError,
    FilterError,
    PGVStore,
    PGVStoreError,
    QueryTimeoutError,
)

Mode = Literal["similarity", "mmr", "hybrid"]

#: `min_score` when the request gives none: relevance for similarity and MMR,
#: none for hybrid, whose fused scores are not relevances.
DEFAULT_MIN_SCORE: dict[str, float] = {"similarity": 0.7, "mmr": 0.7, "hybrid": 0.0}
MMR_LAMBDA = 0.5
#: seconds `/healthz` waits for its read before answering 503: a load balancer's
#: probe must not hang while the store waits out a restart (up to `pool_timeout`)
HEALTH_TIMEOUT = 1.5

# A small corpus for `--seed`, by topic; ids are "<topic>-<n>".
DEMO_CORPUS: dict[str, list[str]] = {
    "databases": [
        "A B-tree index speeds up equality and range lookups on a column.",
        "An HNSW index answers approximate nearest-neighbour queries on vectors.",
        "A GIN index serves containment queries on jsonb documents.",
        "VACUUM reclaims the space of updated and deleted rows.",
        "Binary COPY is the fastest way to load many rows into PostgreSQL.",
        "A transaction either commits all of its changes or none of them.",
        "Full-text search matches the stemmed words of a tsvector column.",
        "Connection pools reuse database connections across requests.",
    ],
    "retrieval": [
        "An embedding maps a text to a vector so similar texts lie close together.",
        "Cosine distance compares the directions of two vectors.",
        "Maximal marginal relevance trades relevance for diversity.",
        "Reciprocal rank fusion merges rankings from several retrievers.",
        "BM25 scores documents by term frequency and inverse document frequency.",
        "Retrieval-augmented generation grounds a language model in documents.",
        "A reranker reorders the top results with a slower, stronger model.",
        "Quantising vectors to half precision halves their storage.",
    ],
    "web": [
        "An HTTP 422 status means the request body failed validation.",
        "A response cache answers repeated requests without recomputing them.",
        "An LRU cache evicts the entry that was used least recently.",
        "Prometheus scrapes metrics from an HTTP endpoint in a text format.",
        "A histogram metric counts observations in configurable buckets.",
        "A health check lets a load balancer skip an instance that is down.",
        "Async handlers let one process serve many slow requests at once.",
        "A time-to-live bounds how stale a cached response can become.",
    ],
}


def demo_rows() -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Ids, texts and metadatas (`topic`, `year`) of `DEMO_CORPUS`."""
    ids: list[str] = []
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for topic, sentences in DEMO_CORPUS.items():
        for n, text in enumerate(sentences, start=1):
            ids.append(f"{topic}-{n}")
            texts.append(text)
            metadatas.append({"topic": topic, "year": 2017 + n})
    return ids, texts, metadatas


# -- request and response -------------------------------------------------------------


class SearchRequest(BaseModel):
    """The body of `POST /search`."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=10, ge=1, le=100)
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    filter: dict[str, Any] | None = None
    mode: Mode = "similarity"

    def threshold(self) -> float:
        """`min_score`, or the mode's default."""
        return DEFAULT_MIN_SCORE[self.mode] if self.min_score is None else self.min_score


class SearchHit(BaseModel):
    """One result."""

    id: str
    content: str
    score: float
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    """The body `POST /search` returns."""

    results: list[SearchHit]
    cached: bool


# -- the response cache ---------------------------------------------------------------

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A bounded LRU cache whose entries also expire `ttl` seconds after they were put."""

    def __init__(
        self, maxsize: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if maxsize < 0 or ttl < 0:
            raise ValueError(f"maxsize and ttl must not be negative, got {maxsize}, {ttl}")
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        """The live value under `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        """Store `value`, evicting the least recently used entries beyond `maxsize`."""
        if self.maxsize == 0:
            return
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)


def cache_key(vector: Sequence[float], params: dict[str, Any]) -> str:
    """sha256 of the query vector's float64 bytes and the parameters' canonical JSON."""
    digest = hashlib.sha256(np.asarray(vector, dtype="<f8").tobytes())
    digest.update(b"\x00")
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest.update(canonical.encode("utf-8"))
    return digest.hexdigest()


# -- metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    """The service's Prometheus metrics, in a registry of their own."""

    registry: CollectorRegistry
    search_latency: Histogram
    result_count: Histogram
    cache_hits: Counter
    cache_misses: Counter
    embedding_latency: Histogram

    @classmethod
    def create(cls) -> Metrics:
        """Fresh metrics; one registry per app, so several apps can live in one process."""
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            search_latency=Histogram(
                "pgvstore_search_latency_seconds",
                "Time to answer POST /search, embedding and cache included.",
                ["mode"],
                registry=registry,
            ),
            result_count=Histogram(
                "pgvstore_search_results",
                "Results returned per search, after min_score.",
                ["mode"],
                buckets=(0, 1, 2, 5, 10, 20, 50, 100),
                registry=registry,
            ),
            cache_hits=Counter(
                "pgvstore_search_cache_hits",
                "Searches answered from the response cache.",
                ["mode"],
                registry=registry,
            ),
            cache_misses=Counter(
                "pgvstore_search_cache_misses",
                "Searches that had to query the database.",
                ["mode"],
                registry=registry,
            ),
            embedding_latency=Histogram(
                "pgvstore_embedding_latency_seconds",
                "Time to embed one query.",
                registry=registry,
            ),
        )


# -- the app --------------------------------------------------------------------------


def _hits(pairs: Sequence[tuple[Document, float]], min_score: float) -> list[SearchHit]:
    return [
        SearchHit(id=str(doc.id), content=doc.page_content, score=score, metadata=doc.metadata)
        for doc, score in pairs
        if score >= min_score
    ]


def _index_settings(candidates: int) -> dict[str, Any]:
    # An HNSW scan yields at most hnsw.ef_search rows (40 unless configured), so
    # asking for more candidates than that needs a wider search.
    return {"ef_search": min(candidates, 1000)} if candidates > 40 else {}


async def run_search(
    store: PGVStore, request: SearchRequest, vector: list[float]
) -> list[SearchHit]:
    """One search with the store's native async methods; scores as described above."""
    k = request.top_k
    if request.mode == "hybrid":
        # each leg ranks max(20, 2k) candidates before fusion
        fused = await store.ahybrid_search_with_score(
            request.query, k=k, filter=request.filter, **_index_settings(max(20, 2 * k))
        )
        return _hits(fused, request.threshold())
    if request.mode == "mmr":
        fetch_k = max(20, 4 * k)
        pairs = await store.amax_marginal_relevance_search_with_score_by_vector(
            vector,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=MMR_LAMBDA,
            filter=request.filter,
            **_index_settings(fetch_k),
        )
    else:
        pairs = await store.asimilarity_search_with_score_by_vector(
            vector, k=k, filter=request.filter, **_index_settings(k)
        )
    relevance = store.distance.relevance()
    return _hits([(doc, relevance(d)) for doc, d in pairs], request.threshold())


def _error(status: int, exc: BaseException, **extra: Any) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"detail": str(exc), "error": type(exc).__name__, **extra}
    )


def create_app(
    store: PGVStore,
    embeddings: Embeddings | None = None,
    *,
    cache_size: int = 1024,
    cache_ttl: float = 60.0,
    seed: bool = False,
    close_store: bool = False,
) -> FastAPI:
    """The service for one store.

    `embeddings` embed the queries (default: the store's own model, which
    must be the one the collection was built with). `seed=True` upserts
    `DEMO_CORPUS` at start-up; `close_store=True` closes the store's pools at
    shutdown (the app then owns the store).
    """
    embedder = embeddings if embeddings is not None else store.embeddings
    cache: TTLCache[list[SearchHit]] = TTLCache(cache_size, cache_ttl)
    metrics = Metrics.create()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if seed:
            ids, texts, metadatas = demo_rows()
            await store.aadd_texts(texts, metadatas, ids=ids)
        try:
            yield
        finally:
            if close_store:
                await store.aclose()

    app = FastAPI(title="langchain-pgvstore search", lifespan=lifespan)
    app.state.store = store
    app.state.cache = cache
    app.state.metrics = metrics

    @app.exception_handler(PGVStoreError)
    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, FilterError):
            return _error(422, exc, path=exc.path)
        if isinstance(exc, ValueError):  # InputError, ConfigError: a bad argument
            return _error(422, exc)
        if isinstance(exc, QueryTimeoutError):
            return _error(504, exc)
        if isinstance(exc, DatabaseUnavailableError):
            return _error(503, exc)
        return _error(500, exc)

    @app.post("/search")
    async def search(request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        with metrics.embedding_latency.time():
            vector = await embedder.aembed_query(request.query)
        params = request.model_dump(exclude={"query"}) | {"min_score": request.threshold()}
        key = cache_key(vector, params)
        hits = cache.get(key)
        cached = hits is not None
        if hits is None:
            metrics.cache_misses.labels(request.mode).inc()
            hits = await run_search(store, request, vector)
            cache.put(key, hits)
        else:
            metrics.cache_hits.labels(request.mode).inc()
        metrics.result_count.labels(request.mode).observe(len(hits))
        metrics.search_latency.labels(request.mode).observe(time.perf_counter() - started)
        return SearchResponse(results=hits, cached=cached)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            await asyncio.wait_for(store.aget(limit=1), HEALTH_TIMEOUT)
        except Exception as e:  # any failure means this instance cannot serve
            detail = str(e) or f"no answer from the database within {HEALTH_TIMEOUT:g} s"
            return JSONResponse(
                status_code=503, content={"status": "unavailable", "detail": detail}
            )
        return JSONResponse({"status": "ok", "collection": store.collection})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    from langchain_pgvstore.embeddings import E5SmallEmbeddings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", action="store_true", help="upsert the demo corpus at start-up")
    args = parser.parse_args(argv)

    embeddings = E5SmallEmbeddings()
    store = PGVStore(
        embeddings,
        connection=os.environ.get("PGVSTORE_DSN") or None,
        collection=os.environ.get("PGVSTORE_COLLECTION", "search_demo"),
    )
    app = create_app(
        store,
        embeddings,
        cache_size=int(os.environ.get("PGVSTORE_CACHE_SIZE", "1024")),
        cache_ttl=float(os.environ.get("PGVSTORE_CACHE_TTL", "60")),
        seed=args.seed,
        close_store=True,
    )
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
