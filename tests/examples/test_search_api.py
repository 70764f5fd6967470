"""examples/search_api.py over real HTTP: uvicorn in a thread, a temporary collection.

The embeddings are `DeterministicFakeEmbedding`, so a query equal to a stored
text has relevance 1 to it and about 0.5 to everything else.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from langchain_core.embeddings import DeterministicFakeEmbedding
from prometheus_client.parser import text_string_to_metric_families

from langchain_pgvstore import PGVStore
from tests.fix_replica import ReplicaBed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "search_api.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_api_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


api = _load_example()
IDS, TEXTS, METADATAS = api.demo_rows()
TEXT = dict(zip(IDS, TEXTS, strict=True))


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free port; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", ws="none", http="h11", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive(), "the server stopped during start-up"
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert not thread.is_alive(), "the server did not shut down"


@pytest.fixture(scope="module")
def base_url(dsn: str) -> Iterator[str]:
    collection = f"t_api_{uuid.uuid4().hex[:12]}"
    store = PGVStore(DeterministicFakeEmbedding(size=64), connection=dsn, collection=collection)
    # the app seeds the demo corpus and closes the store, all on the server's own loop
    app = api.create_app(store, cache_size=64, cache_ttl=300, seed=True, close_store=True)
    try:
        with serving(app) as url:
            yield url
    finally:
        # the library's own drop: the table, its registry row and anything else it made
        with PGVStore(store.embeddings, connection=dsn, collection=collection) as cleanup:
            cleanup.delete_collection()


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def search(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/search", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def metric(client: httpx.Client, sample_name: str, **labels: str) -> float:
    """The value of one sample in /metrics (0 when it has not been recorded yet)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == sample_name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("mode", ["similarity", "mmr"])
def test_relevance_modes_are_ranked_and_above_min_score(client: httpx.Client, mode: str) -> None:
    query = TEXT["databases-3"]
    data = search(client, query=query, top_k=6, min_score=0.3, mode=mode)
    results = data["results"]
    assert data["cached"] is False
    assert 1 < len(results) <= 6
    assert results[0]["id"] == "databases-3"
    assert results[0]["content"] == query
    assert results[0]["metadata"] == {"topic": "databases", "year": 2020}
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    scores = [r["score"] for r in results]
    assert all(0.3 <= s <= 1.0 for s in scores)
    if mode == "similarity":
        assert scores == sorted(scores, reverse=True)
    assert len({r["id"] for r in results}) == len(results)


@pytest.mark.parametrize("mode", ["similarity", "mmr"])
def test_default_min_score_keeps_only_relevant_hits(client: httpx.Client, mode: str) -> None:
    # unrelated fake vectors score about 0.5, far below the default 0.7
    data = search(client, query=TEXT["web-2"], mode=mode)
    assert [r["id"] for r in data["results"]] == ["web-2"]


def test_filter_is_applied(client: httpx.Client) -> None:
    data = search(
        client,
        query=TEXT["databases-3"],
        top_k=5,
        min_score=0,
        filter={"topic": "web", "year": {"$gte": 2020}},
    )
    assert data["results"]
    for r in data["results"]:
        assert r["metadata"]["topic"] == "web" and r["metadata"]["year"] >= 2020


def test_hybrid_is_ranked_by_fused_score(client: httpx.Client) -> None:
    query = TEXT["retrieval-4"]  # first in both the vector and the keyword leg
    data = search(client, query=query, top_k=5, mode="hybrid")
    results = data["results"]
    assert results and results[0]["id"] == "retrieval-4"
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(s > 0 for s in scores)
    # min_score applies to the fused score
    cut = search(client, query=query, top_k=5, mode="hybrid", min_score=scores[0])
    assert [r["id"] for r in cut["results"]] == ["retrieval-4"]


def test_repeat_is_served_from_cache(client: httpx.Client) -> None:
    body = {"query": TEXT["web-5"], "top_k": 3, "min_score": 0.1, "filter": {"topic": "web"}}
    hits = metric(client, "pgvstore_search_cache_hits_total", mode="similarity")
    misses = metric(client, "pgvstore_search_cache_misses_total", mode="similarity")

    first = search(client, **body)
    second = search(client, **body)
    assert first["cached"] is False
    assert second["cached"] is True
    assert second["results"] == first["results"]
    assert metric(client, "pgvstore_search_cache_hits_total", mode="similarity") == hits + 1
    assert metric(client, "pgvstore_search_cache_misses_total", mode="similarity") == misses + 1

    # any other parameter is another entry; so is the same filter written in another key order
    assert search(client, **{**body, "top_k": 2})["cached"] is False
    reordered = {**body, "filter": {"topic": "web"}, "min_score": 0.1}
    assert search(client, **reordered)["cached"] is True


def test_bad_filter_is_422_with_the_filter_error(client: httpx.Client) -> None:
    response = client.post("/search", json={"query": "x", "filter": {"topic": {"$regex": "^w"}}})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "FilterError"
    assert body["detail"].startswith("unknown operator '$regex' at filter.topic;")
    assert body["path"] == "filter.topic"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"top_k": 3}, "query"),
        ({"query": ""}, "query"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "min_score": 1.5}, "min_score"),
        ({"query": "x", "filter": [1]}, "filter"),
        ({"query": "x", "k": 3}, "k"),
    ],
)
def test_bad_body_is_422(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"][-1] == field for e in errors), errors


def test_malformed_json_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_metrics_exposes_the_families(client: httpx.Client) -> None:
    search(client, query=TEXT["databases-1"], top_k=2)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families["pgvstore_search_latency_seconds"] == "histogram"
    assert families["pgvstore_search_results"] == "histogram"
    assert families["pgvstore_search_cache_hits"] == "counter"
    assert families["pgvstore_search_cache_misses"] == "counter"
    assert families["pgvstore_embedding_latency_seconds"] == "histogram"
    assert metric(client, "pgvstore_search_latency_seconds_count", mode="similarity") >= 1
    assert metric(client, "pgvstore_embedding_latency_seconds_count") >= 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_is_lru_and_expires() -> None:
    clock = FakeClock()
    cache = api.TTLCache(maxsize=2, ttl=10, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)  # evicts b
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    clock.now = 10.0
    assert cache.get("a") is None and len(cache) == 1
    assert api.TTLCache(maxsize=0, ttl=10).get("x") is None


def test_cache_key_depends_on_vector_and_canonical_params() -> None:
    params = {"mode": "similarity", "top_k": 3, "filter": {"a": 1, "b": [1, 2]}}
    reordered = {"filter": {"b": [1, 2], "a": 1}, "top_k": 3, "mode": "similarity"}
    key = api.cache_key([0.1, 0.2], params)
    assert key == api.cache_key([0.1, 0.2], reordered)
    assert key != api.cache_key([0.1, 0.2000001], params)
    assert key != api.cache_key([0.1, 0.2], {**params, "top_k": 4})
    assert len(key) == 64


def test_healthz_answers_while_the_database_is_down_and_recovers(replica_bed: ReplicaBed) -> None:
    """A real server stops and starts again (the replica bed's primary, used alone)."""
    database = replica_bed.primary
    store = PGVStore(
        DeterministicFakeEmbedding(size=64), connection=database.dsn,
        collection=f"t_api_{uuid.uuid4().hex[:12]}", pool_timeout=30,
    )  # fmt: skip
    app = api.create_app(store, cache_size=0, seed=True, close_store=True)
    timings = []
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=2.0) as client:
            assert client.get("/healthz").status_code == 200
            database.stop("immediate")
            for _ in range(3):  # a read timeout (2 s) would fail the test
                t0 = time.monotonic()
                response = client.get("/healthz")
                timings.append(round(time.monotonic() - t0, 3))
                assert response.status_code == 503, response.text
                assert response.json()["status"] == "unavailable"
            database.start()
            t0 = time.monotonic()
            response = client.get("/healthz")  # the first request after it is back
            back = time.monotonic() - t0
            assert response.status_code == 200, response.text
            assert client.post("/search", json={"query": TEXTS[0]}).status_code == 200
    finally:
        if database.running:
            with PGVStore(
                store.embeddings, connection=database.dsn, collection=store.collection
            ) as s:
                s.delete_collection()
    print(f"\n/healthz while down: {timings} s; first request after the restart {back:.3f} s")
