"""A cached statement never answers for another filter (docs/reliability.md, class 2).

Search statements are cached per shape. The key holds the filter's compiled
SQL text, never its `repr`, and the values always come from this call's own
compilation: a `Mapping` whose `repr` lies, or `str`/`int` subclasses, cannot
make one filter's cached statement serve another's rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import FilterError, PGVStore
from tests.fix_db import unique_name

DIM = 8
EMB = DeterministicFakeEmbedding(size=DIM)
TENANTS = ["acme", "globex", "initech"]
ROWS = 60
VECTOR = [1.0] * DIM


class Lying(Mapping[str, Any]):
    """A mapping whose repr claims one filter while its items are another's."""

    def __init__(self, items: dict[str, Any], shown: str) -> None:
        self._items = items
        self._shown = shown

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return self._shown


class SneakyStr(str):
    def __repr__(self) -> str:
        return "'acme'"


class SneakyInt(int):
    def __repr__(self) -> str:
        return "1"


@pytest.fixture(scope="module")
def stores(make_module_store) -> tuple[PGVStore, str]:
    store = make_module_store(EMB, collection=unique_name("cache"), index=None)
    store.add_embeddings(
        [f"doc {i}" for i in range(ROWS)],
        [[float((i * 7 + j) % 11) + 1.0 for j in range(DIM)] for i in range(ROWS)],
        [{"tenant": TENANTS[i % 3], "n": i % 5, "flag": i % 2 == 0} for i in range(ROWS)],
        ids=[f"r{i}" for i in range(ROWS)],
    )
    return store, store.collection


def _fresh(dsn: str, name: str) -> PGVStore:
    """A store that has cached nothing yet (built in each hypothesis example, which may
    not use the function-scoped `make_store`; the caller closes it)."""
    return PGVStore(EMB, connection=dsn, collection=name, index=None)


def _ids(pairs: list[Any]) -> list[str]:
    return [str(d.id) for d, _ in pairs]


SEARCHES = {
    "similarity": lambda s, f: s.similarity_search_with_score_by_vector(VECTOR, k=ROWS, filter=f),
    "hybrid": lambda s, f: s.hybrid_search_with_score_by_vector("doc", VECTOR, k=ROWS, filter=f),
    "keyword": lambda s, f: s.keyword_search_with_score("doc", k=ROWS, filter=f),
}


@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_a_lying_repr_gets_its_own_rows(stores, dsn, search) -> None:
    store, name = stores
    run = SEARCHES[search]
    for tenant in TENANTS:
        honest = run(store, {"tenant": tenant})
        lying = run(store, Lying({"tenant": tenant}, "{'tenant': 'acme'}"))
        assert _ids(lying) == _ids(honest)
        assert lying and all(d.metadata["tenant"] == tenant for d, _ in lying)


def test_str_and_int_subclasses_are_refused_like_a_fresh_compile(stores, make_store) -> None:
    store, name = stores
    for bad in ({"tenant": SneakyStr("globex")}, {"n": SneakyInt(3)}):
        with pytest.raises(FilterError):
            store.similarity_search_by_vector(VECTOR, k=3, filter=bad)
        fresh = make_store(EMB, collection=name, index=None)  # a store that has cached nothing
        with pytest.raises(FilterError):
            fresh.similarity_search_by_vector(VECTOR, k=3, filter=bad)
    # a str subclass as a key is read as its characters, whatever its methods say
    keyed = store.similarity_search_by_vector(VECTOR, k=ROWS, filter={SneakyStr("tenant"): "acme"})
    assert {d.metadata["tenant"] for d in keyed} == {"acme"}


values = st.one_of(
    st.sampled_from(TENANTS),
    st.integers(0, 4),
    st.booleans(),
)
fields = st.sampled_from(["tenant", "n", "flag"])
leaves = (
    st.builds(lambda f, v: {f: v}, fields, values)
    | st.builds(lambda f, v: {f: {"$ne": v}}, fields, values)
    | st.builds(lambda vs: {"n": {"$in": vs}}, st.lists(st.integers(0, 4), max_size=3))
)
filters = st.recursive(
    leaves,
    lambda inner: (
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3))
    ),
    max_leaves=5,
)


def _wrapped(filter: dict[str, Any], how: str, decoy: dict[str, Any]) -> Mapping[str, Any]:
    if how == "dict":
        return filter
    return Lying(filter, repr(decoy))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(filters, st.sampled_from(["dict", "lying"])), min_size=2, max_size=6),
    st.sampled_from(sorted(SEARCHES)),
)
def test_cached_statements_answer_exactly_like_a_fresh_compile(stores, dsn, calls, search):
    """Many filters through one store (its cache warm) give the rows a fresh store gives."""
    store, name = stores
    run = SEARCHES[search]
    decoy = calls[0][0]
    with _fresh(dsn, name) as fresh:
        for filter, how in calls:
            assert _ids(run(store, _wrapped(filter, how, decoy))) == _ids(run(fresh, filter))
