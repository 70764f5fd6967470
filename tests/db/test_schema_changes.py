"""A store survives what another process does to its collection (docs/reliability.md, class 4).

Store `a` knows its collection; store `b` (another process, as far as `a` can
tell) drops it, or drops and recreates it with another shape. `a` must notice:
re-provision for a write, answer empty for a read, or raise `SchemaError` /
`DimensionError` naming what changed; never a raw `UndefinedTable` or
`DataException`, and it keeps working for other calls afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import DimensionError, PGVStore, SchemaError

DIM = 8


def _store(dsn: str, name: str, dim: int = DIM, **kwargs: Any) -> PGVStore:
    return PGVStore(DeterministicFakeEmbedding(size=dim), connection=dsn, collection=name, **kwargs)


async def _run(store: PGVStore, mode: str, method: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return getattr(store, method)(*args, **kwargs)
    return await getattr(store, "a" + method)(*args, **kwargs)


READS = [
    ("similarity_search", ("alpha",), {"k": 2}),
    ("similarity_search", ("alpha",), {"k": 2, "filter": {"n": 1}}),
    ("max_marginal_relevance_search", ("alpha",), {"k": 2}),
    ("keyword_search", ("alpha",), {"k": 2}),
    ("hybrid_search", ("alpha",), {"k": 2}),
    ("get_by_ids", (["x"],), {}),
    ("get", (), {}),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_dropped_collection_reads_empty_and_writes_recreate(dsn, collection_name, mode):
    a = _store(dsn, collection_name)
    b = _store(dsn, collection_name)
    try:
        await _run(
            a, mode, "add_texts", ["alpha one", "alpha two"], [{"n": 1}, {"n": 2}], ids=["x", "y"]
        )
        await _run(b, mode, "delete_collection")
        for method, args, kwargs in READS:
            assert await _run(a, mode, method, *args, **kwargs) == [], method
        assert await _run(a, mode, "add_texts", ["alpha three"], ids=["z"]) == ["z"]
        assert [d.id for d in await _run(a, mode, "get")] == ["z"]
        assert await _run(a, mode, "count") == 1
        # and again, now that a knows the recreated collection
        await _run(b, mode, "delete_collection")
        assert await _run(a, mode, "delete", ["z"]) is True
        assert await _run(a, mode, "add_texts", ["alpha four"], [{"n": 1}], ids=["w"]) == ["w"]
        for method, args, kwargs in READS[:5]:
            assert await _run(a, mode, method, *args, **kwargs), method
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_recreated_with_other_dimensions_is_named(dsn, collection_name, mode):
    a = _store(dsn, collection_name)  # dimensions inferred from its model: 8
    pinned = _store(dsn, collection_name, dimensions=DIM)
    b = _store(dsn, collection_name, dim=DIM * 2)
    try:
        await _run(a, mode, "add_texts", ["alpha one"], ids=["x"])
        await _run(pinned, mode, "similarity_search", "alpha", k=1)
        await _run(b, mode, "delete_collection")
        await _run(b, mode, "add_texts", ["alpha sixteen"], ids=["s"])
        with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 8"):
            await _run(a, mode, "add_texts", ["alpha two"], ids=["t"])
        with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 8"):
            await _run(a, mode, "similarity_search", "alpha", k=1)
        with pytest.raises(DimensionError, match="expected 16 dimensions, got 8"):
            await _run(a, mode, "add_embeddings", ["v"], [[1.0] * DIM], ids=["v"])
        # a store that asked for 8 dimensions says so once it looks the collection up
        with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 8"):
            await _run(pinned, mode, "similarity_search", "alpha", k=1)
        # calls that do not depend on the vector size keep working
        assert [d.id for d in await _run(a, mode, "keyword_search", "sixteen", k=1)] == ["s"]
        assert [d.id for d in await _run(a, mode, "get_by_ids", ["s", "x"])] == ["s"]
        assert await _run(a, mode, "count") == 1
    finally:
        for s in (a, pinned, b):
            await s.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_recreated_with_another_distance_is_named(dsn, collection_name, mode, monkeypatch):
    """No statement fails when only the distance changed: the store notices when it next
    looks the collection up, at most `SPEC_TTL` seconds later (0 here)."""
    monkeypatch.setattr("langchain_pgvstore._core.SPEC_TTL", 0.0)
    a = _store(dsn, collection_name)
    b = _store(dsn, collection_name, distance="l2")
    try:
        await _run(a, mode, "add_texts", ["alpha one"], ids=["x"])
        await _run(b, mode, "delete_collection")
        await _run(b, mode, "add_texts", ["alpha two"], ids=["y"])
        with pytest.raises(SchemaError, match="created with distance 'l2'"):
            await _run(a, mode, "similarity_search", "alpha", k=1)
        with pytest.raises(SchemaError, match="created with distance 'l2'"):
            await _run(a, mode, "add_texts", ["alpha three"])
    finally:
        await a.aclose()
        await b.aclose()
