"""A store survives what another process does to its collection (docs/reliability.md, class 4).

Store `a` knows its collection; store `b` (another process, as far as `a` can
tell) drops it, or drops and recreates it with another shape. `a` must notice:
re-provision for a write, answer empty for a read, or raise `SchemaError` /
`DimensionError` naming what changed; never a raw `UndefinedTable` or
`DataException`, and it keeps working for other calls afterwards.
"""

from __future__ import annotations

import pytest

from langchain_pgvstore import DimensionError, SchemaError

DIM = 8


READS = [
    ("similarity_search", ("alpha",), {"k": 2}),
    ("similarity_search", ("alpha",), {"k": 2, "filter": {"n": 1}}),
    ("max_marginal_relevance_search", ("alpha",), {"k": 2}),
    ("keyword_search", ("alpha",), {"k": 2}),
    ("hybrid_search", ("alpha",), {"k": 2}),
    ("get_by_ids", (["x"],), {}),
    ("get", (), {}),
]


async def test_dropped_collection_reads_empty_and_writes_recreate(api, make_store):
    a, b = api.on(make_store(DIM)), api.on(make_store(DIM))
    await a("add_texts", ["alpha one", "alpha two"], [{"n": 1}, {"n": 2}], ids=["x", "y"])
    await b("delete_collection")
    for method, args, kwargs in READS:
        assert await a(method, *args, **kwargs) == [], method
    assert await a("add_texts", ["alpha three"], ids=["z"]) == ["z"]
    assert [d.id for d in await a("get")] == ["z"]
    assert await a("count") == 1
    # and again, now that a knows the recreated collection
    await b("delete_collection")
    assert await a("delete", ["z"]) is True
    assert await a("add_texts", ["alpha four"], [{"n": 1}], ids=["w"]) == ["w"]
    for method, args, kwargs in READS[:5]:
        assert await a(method, *args, **kwargs), method


async def test_recreated_with_other_dimensions_is_named(api, make_store):
    a = api.on(make_store(DIM))  # dimensions inferred from its model: 8
    pinned = api.on(make_store(DIM, dimensions=DIM))
    b = api.on(make_store(DIM * 2))
    await a("add_texts", ["alpha one"], ids=["x"])
    await pinned("similarity_search", "alpha", k=1)
    await b("delete_collection")
    await b("add_texts", ["alpha sixteen"], ids=["s"])
    with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 8"):
        await a("add_texts", ["alpha two"], ids=["t"])
    with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 8"):
        await a("similarity_search", "alpha", k=1)
    with pytest.raises(DimensionError, match="expected 16 dimensions, got 8"):
        await a("add_embeddings", ["v"], [[1.0] * DIM], ids=["v"])
    # a store that asked for 8 dimensions says so once it looks the collection up
    with pytest.raises(SchemaError, match="created with 16 dimensions, but this store uses 8"):
        await pinned("similarity_search", "alpha", k=1)
    # calls that do not depend on the vector size keep working
    assert [d.id for d in await a("keyword_search", "sixteen", k=1)] == ["s"]
    assert [d.id for d in await a("get_by_ids", ["s", "x"])] == ["s"]
    assert await a("count") == 1


async def test_recreated_with_another_distance_is_named(api, make_store, monkeypatch):
    """No statement fails when only the distance changed: the store notices when it next
    looks the collection up, at most `SPEC_TTL` seconds later (0 here)."""
    monkeypatch.setattr("langchain_pgvstore._core.SPEC_TTL", 0.0)
    a = api.on(make_store(DIM))
    b = api.on(make_store(DIM, distance="l2"))
    await a("add_texts", ["alpha one"], ids=["x"])
    await b("delete_collection")
    await b("add_texts", ["alpha two"], ids=["y"])
    with pytest.raises(SchemaError, match="created with distance 'l2'"):
        await a("similarity_search", "alpha", k=1)
    with pytest.raises(SchemaError, match="created with distance 'l2'"):
        await a("add_texts", ["alpha three"])
