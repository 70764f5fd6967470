"""Multi-tenant collections: a store bound to a tenant sees and changes that tenant's rows only.

Every row of a multi-tenant collection carries a tenant, and `(tenant, id)` is
its primary key, so two tenants may use the same id. Each read, write, delete,
count and search kind is checked to stay within the bound tenant, an unbound
store to refuse everything but the admin calls, and a hypothesis model to
agree with the store over random operations on several tenants.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import ConfigError, InputError, PGVStore, SchemaError
from tests.fix_db import unique_name

DIM = 8
EMB = DeterministicFakeEmbedding(size=DIM)


@pytest.fixture
def shared(make_store) -> PGVStore:
    return make_store(EMB, multi_tenant=True)


SEARCHES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("similarity_search", ("apple",), {"k": 10}),
    ("similarity_search", ("apple",), {"k": 10, "filter": {"kind": "fruit"}}),
    ("similarity_search_by_vector", ([1.0] * DIM,), {"k": 10}),
    ("max_marginal_relevance_search", ("apple",), {"k": 3, "fetch_k": 10}),
    ("keyword_search", ("apple",), {"k": 10}),
    ("hybrid_search", ("apple",), {"k": 10}),
    ("hybrid_search", ("apple",), {"k": 10, "filter": {"kind": "fruit"}, "fusion": "rrf"}),
    ("get", (), {}),
    ("get", ({"kind": "fruit"},), {}),
]


async def test_each_tenant_sees_only_its_rows(shared: PGVStore, api) -> None:
    a, b = api.on(shared.for_tenant("acme")), api.on(shared.for_tenant("globex"))
    await a("add_texts", ["apple pie", "apple tart"], [{"kind": "fruit"}] * 2, ids=["1", "2"])
    await b("add_texts", ["apple juice", "pear"], [{"kind": "fruit"}] * 2, ids=["1", "3"])
    for method, args, kwargs in SEARCHES:
        got_a = await a(method, *args, **kwargs)
        got_b = await b(method, *args, **kwargs)
        assert got_a and got_b, method
        assert {d.page_content for d in got_a} <= {"apple pie", "apple tart"}, method
        assert {d.page_content for d in got_b} <= {"apple juice", "pear"}, method
    assert [d.page_content for d in await a("get_by_ids", ["1", "3"])] == ["apple pie"]
    assert [d.page_content for d in await b("get_by_ids", ["1", "2"])] == ["apple juice"]
    assert await a("count") == 2 and await b("count") == 2
    # a metadata field named like the tenant column is only metadata
    assert await a("get", {"tenant": "globex"}) == []
    docs = await api.on(a.target.as_retriever(search_kwargs={"k": 10}))("invoke", "apple")
    assert {d.page_content for d in docs} <= {"apple pie", "apple tart"} and docs


async def test_writes_and_deletes_stay_within_the_tenant(shared: PGVStore, api) -> None:
    unbound = api.on(shared)
    a, b = api.on(shared.for_tenant("acme")), api.on(shared.for_tenant("globex"))
    await a("add_texts", ["a one", "a two"], ids=["1", "2"])
    await b("add_texts", ["b one", "b two"], ids=["1", "2"])
    await a("add_texts", ["a one, changed"], ids=["1"])  # an upsert of acme's 1
    assert [d.page_content for d in await b("get_by_ids", ["1"])] == ["b one"]
    assert await a("delete", ["1"]) is True
    assert [d.id for d in await b("get")] == ["1", "2"]
    await b("delete", filter={"missing": {"$exists": False}})
    assert await b("count") == 0
    assert [d.page_content for d in await a("get")] == ["a two"]
    assert await unbound("tenants") == {"acme": 1}


async def test_the_unbound_store_only_administers(shared: PGVStore, api) -> None:
    unbound = api.on(shared)
    await api.on(shared.for_tenant("acme"))("add_texts", ["x"], ids=["1"])
    await api.on(shared.for_tenant("globex"))("add_texts", ["y", "z"], ids=["1", "2"])
    for method, args, kwargs in [
        *SEARCHES,
        ("add_texts", (["w"],), {}),
        ("get_by_ids", (["1"],), {}),
        ("delete", (["1"],), {}),
        ("count", (), {}),
    ]:
        with pytest.raises(InputError, match="is multi-tenant: use store.for_tenant"):
            await unbound(method, *args, **kwargs)
    assert await unbound("tenants") == {"acme": 1, "globex": 2}
    assert await unbound("delete_tenant", "globex") == 2
    assert await unbound("tenants") == {"acme": 1}
    assert await unbound("delete_tenant", "nobody") == 0


def test_tenant_arguments_are_checked(make_store, collection_name: str, shared: PGVStore) -> None:
    with pytest.raises(ConfigError, match="tenant= needs multi_tenant=True"):
        make_store(EMB, tenant="acme")
    with pytest.raises(ConfigError, match="tenant must not be empty"):
        make_store(EMB, multi_tenant=True, tenant="")
    for bad in ("", "a\x00b", 7, None):
        with pytest.raises(InputError, match="tenant"):
            shared.for_tenant(bad)  # type: ignore[arg-type]
    plain = make_store(EMB, collection=collection_name + "_p")
    with pytest.raises(InputError, match="needs a multi-tenant collection"):
        plain.for_tenant("acme")
    with pytest.raises(InputError, match="needs a multi-tenant collection"):
        plain.tenants()


def test_the_collection_kind_must_match(make_store, shared: PGVStore) -> None:
    shared.for_tenant("acme").add_texts(["x"], ids=["1"])
    plain = make_store(EMB)
    with pytest.raises(SchemaError, match="is multi-tenant; open it with multi_tenant=True"):
        plain.similarity_search("x")
    other = unique_name()
    make_store(EMB, collection=other).add_texts(["x"], ids=["1"])
    opened = make_store(EMB, collection=other, multi_tenant=True, tenant="acme")
    with pytest.raises(SchemaError, match="is not multi-tenant; open it with multi_tenant=False"):
        opened.add_texts(["y"])


def test_a_bound_store_and_its_views_share_pools(make_store) -> None:
    store = make_store(EMB, multi_tenant=True, tenant="acme")
    store.add_texts(["x"], ids=["1"])
    view = store.for_tenant("globex")
    view.add_texts(["y"], ids=["1"])
    view.close()  # owns nothing: the store keeps working
    assert [d.page_content for d in store.get_by_ids(["1"])] == ["x"]
    assert store.tenant == "acme" and view.tenant == "globex"


# -- a model of several tenants, against the store ---------------------------------------

TENANTS = ["t0", "t1", "t2"]
IDS = ["a", "b", "c"]
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"), st.sampled_from(TENANTS), st.sampled_from(IDS), st.integers(0, 9)
        ),
        st.tuples(st.just("delete"), st.sampled_from(TENANTS), st.sampled_from(IDS), st.just(0)),
        st.tuples(st.just("drop"), st.sampled_from(TENANTS), st.just(""), st.just(0)),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def model_store(make_module_store) -> PGVStore:
    return make_module_store(EMB, collection=unique_name("model"), multi_tenant=True)


@settings(max_examples=25, deadline=None)
@given(ops)
def test_tenants_behave_like_separate_collections(model_store: PGVStore, operations) -> None:
    store = model_store
    for tenant in list(store.tenants()):
        store.delete_tenant(tenant)
    model: dict[str, dict[str, str]] = {t: {} for t in TENANTS}
    for op, tenant, id_, n in operations:
        view = store.for_tenant(tenant)
        if op == "add":
            view.add_texts([f"{tenant} {id_} v{n}"], [{"n": n}], ids=[id_])
            model[tenant][id_] = f"{tenant} {id_} v{n}"
        elif op == "delete":
            view.delete([id_])
            model[tenant].pop(id_, None)
        else:
            store.delete_tenant(tenant)
            model[tenant].clear()
    for tenant in TENANTS:
        view = store.for_tenant(tenant)
        assert {d.id: d.page_content for d in view.get()} == model[tenant]
        found = view.similarity_search_by_vector([1.0] * DIM, k=10)
        assert sorted(d.id for d in found) == sorted(model[tenant])
    assert store.tenants() == {t: len(m) for t, m in model.items() if m}


# -- searching one tenant is as good as a table of its own -------------------------------


@pytest.mark.slow
def test_tenant_search_recall_for_small_and_large_tenants(make_store) -> None:
    """Tenants holding 0.1%, 1% and 10% of 20,000 rows: k rows always, recall@10 >= 0.95."""
    rng = np.random.default_rng(7)
    rows, dim = 20_000, 32
    centres = rng.normal(size=(40, dim))
    vectors = centres[rng.integers(0, 40, rows)] + 0.3 * rng.normal(size=(rows, dim))
    sizes = {"small": 20, "medium": 200, "large": 2_000}
    tenants = np.array(["rest"] * rows, dtype=object)
    order = rng.permutation(rows)
    start = 0
    for name, size in sizes.items():
        tenants[order[start : start + size]] = name
        start += size
    store = make_store(dim, multi_tenant=True)
    for name in [*sizes, "rest"]:
        mask = tenants == name
        store.for_tenant(name).add_embeddings(
            [f"{name} {i}" for i in np.flatnonzero(mask)],
            vectors[mask],
            ids=[str(i) for i in np.flatnonzero(mask)],
        )
    queries = centres[:20] + 0.3 * rng.normal(size=(20, dim))
    for name in sizes:
        mask = tenants == name
        own = vectors[mask]
        ids = np.flatnonzero(mask)
        view = store.for_tenant(name)
        hits = []
        for q in queries:
            found = view.similarity_search_by_vector(list(q), k=10)
            assert len(found) == 10
            cos = own @ q / (np.linalg.norm(own, axis=1) * np.linalg.norm(q))
            exact = {str(i) for i in ids[np.argsort(-cos)[:10]]}
            hits.append(len(exact & {d.id for d in found}) / 10)
        assert np.mean(hits) >= 0.95, (name, np.mean(hits))
