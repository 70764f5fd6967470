"""Metadata filters against a real PostgreSQL: fixed cases, a differential test, index use."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from langchain_pgvstore._sql import Frag
from langchain_pgvstore._sql.filters import compile_filter
from langchain_pgvstore.config import Table
from tests.filter_reference import matches
from tests.fix_db import unique_name

# -- helpers -----------------------------------------------------------------


def _create(conn: psycopg.Connection, name: str, docs: dict[str, dict[str, Any]]) -> Table:
    ident = sql.Identifier(name)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id text PRIMARY KEY, metadata jsonb NOT NULL DEFAULT '{{}}')"
        ).format(ident)
    )
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} USING gin (metadata jsonb_path_ops)").format(
            sql.Identifier(f"{name}_gin"), ident
        )
    )
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} (id, metadata) VALUES (%s, %s)").format(ident),
            [(i, Jsonb(m)) for i, m in docs.items()],
        )
    return Table("public", name)


def _drop(conn: psycopg.Connection, table: Table) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table.qualname))


def _matching_ids(conn: psycopg.Connection, table: Table, frag: Frag) -> set[str]:
    query = sql.SQL("SELECT id FROM {} WHERE ").format(table.qualname) + frag.sql
    return {row[0] for row in conn.execute(query, frag.params)}


def _evaluate(conn: psycopg.Connection, table: Table, frag: Frag) -> dict[str, bool | None]:
    """The filter's value on every row, NULLs included (there must be none)."""
    query = sql.SQL("SELECT id, ") + frag.sql + sql.SQL(" FROM {}").format(table.qualname)
    return {row[0]: row[1] for row in conn.execute(query, frag.params)}


# -- fixed cases -------------------------------------------------------------

DOCS: dict[str, dict[str, Any]] = {
    "a": {
        "source": "docs",
        "page": 1,
        "price": 9.5,
        "published": True,
        "tags": ["x", "y"],
        "specs": {"screen": 13, "os": "linux"},
        "date": "2024-01-15",
    },
    "b": {
        "source": "blog",
        "page": 2,
        "price": 20,
        "published": False,
        "tags": ["y"],
        "specs": {"screen": 15},
        "date": "2024-06-01",
    },
    "c": {
        "source": "Docs",
        "page": "3",
        "price": None,
        "tags": "x",
        "date": "2023-12-31T23:59:59Z",
    },
    "d": {"source": None, "page": 1.0, "tags": [], "specs": {"screen": "13"}, "date": 20240101},
    "e": {},
    "f": {
        "source": "docs",
        "items": [10, 20],
        "nested": {"0": "zero"},
        "名前": "値",
        "a.b": 1,
        "tags": [["x"], 1, True],
    },
    "g": {
        "items": {"0": 10, "1": 20},
        "count": 1,
        "flag": 1,
        "pct": "50%",
        "path": "C:\\dir",
        "title": "Café",
    },
    "h": {
        "count": True,
        "flag": True,
        "pct": "50",
        "title": "CAFÉ",
        "big": 10**30,
        "tiny": 1e-20,
        "specs": "flat",
    },
}
ALL = set(DOCS)


def _but(*ids: str) -> set[str]:
    return ALL - set(ids)


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    # equality
    ("eq shorthand", {"source": "docs"}, {"a", "f"}),
    ("eq is case-sensitive", {"source": {"$eq": "Docs"}}, {"c"}),
    ("eq int matches equal float", {"page": 1}, {"a", "d"}),
    ("eq float", {"price": 9.5}, {"a"}),
    ("eq number is not a numeric string", {"page": 3}, set()),
    ("eq numeric string", {"page": "3"}, {"c"}),
    ("eq true is not 1", {"flag": True}, {"h"}),
    ("eq 1 is not true", {"flag": 1}, {"g"}),
    ("eq null shorthand", {"source": None}, {"d"}),
    ("eq null", {"price": {"$eq": None}}, {"c"}),
    ("eq scalar does not match array holding it", {"tags": "x"}, {"c"}),
    ("eq big int", {"big": 10**30}, {"h"}),
    # not equal
    ("ne matches missing and other types", {"source": {"$ne": "docs"}}, _but("a", "f")),
    ("ne null", {"source": {"$ne": None}}, _but("d")),
    ("ne number", {"page": {"$ne": 1}}, _but("a", "d")),
    # ordering
    ("gt number", {"price": {"$gt": 10}}, {"b"}),
    ("gte skips numeric strings", {"page": {"$gte": 1}}, {"a", "b", "d"}),
    ("lt", {"page": {"$lt": 2}}, {"a", "d"}),
    ("lte mixes int and float", {"price": {"$lte": 20}}, {"a", "b"}),
    ("gte iso date string", {"date": {"$gte": "2024-01-01"}}, {"a", "b"}),
    ("lt iso date string", {"date": {"$lt": "2024-01-01"}}, {"c"}),
    ("strings in code-point order", {"source": {"$lt": "a"}}, {"c"}),
    ("booleans false < true", {"published": {"$gt": False}}, {"a"}),
    ("big int", {"big": {"$gt": 10**29}}, {"h"}),
    ("tiny float", {"tiny": {"$lt": 1e-19, "$gt": 0}}, {"h"}),
    ("between numbers inclusive", {"price": {"$between": [9.5, 20]}}, {"a", "b"}),
    ("between equal bounds", {"page": {"$between": [1, 1]}}, {"a", "d"}),
    ("between strings", {"date": {"$between": ["2024-01-01", "2024-12-31"]}}, {"a", "b"}),
    ("between reversed bounds", {"page": {"$between": [2, 1]}}, set()),
    # membership
    ("in", {"source": {"$in": ["docs", "blog"]}}, {"a", "b", "f"}),
    ("in mixed types", {"page": {"$in": [2, "3"]}}, {"b", "c"}),
    ("in with null", {"source": {"$in": [None, "blog"]}}, {"b", "d"}),
    ("in empty", {"source": {"$in": []}}, set()),
    ("nin matches missing", {"source": {"$nin": ["docs", None]}}, _but("a", "d", "f")),
    ("nin empty", {"source": {"$nin": []}}, ALL),
    # patterns
    ("like prefix", {"source": {"$like": "do%"}}, {"a", "f"}),
    ("ilike", {"source": {"$ilike": "DO%"}}, {"a", "c", "f"}),
    ("like underscore", {"source": {"$like": "_log"}}, {"b"}),
    ("like escaped percent", {"pct": {"$like": "50\\%"}}, {"g"}),
    ("like percent", {"pct": {"$like": "50%"}}, {"g", "h"}),
    ("like escaped backslash", {"path": {"$like": "C:\\\\%"}}, {"g"}),
    ("like only strings", {"page": {"$like": "1%"}}, set()),
    ("ilike non-ascii text", {"title": {"$ilike": "caf_"}}, {"g", "h"}),
    # existence
    ("exists", {"specs": {"$exists": True}}, {"a", "b", "d", "h"}),
    ("exists nested", {"specs.screen": {"$exists": True}}, {"a", "b", "d"}),
    ("exists counts null", {"price": {"$exists": True}}, {"a", "b", "c"}),
    ("not exists", {"price": {"$exists": False}}, _but("a", "b", "c")),
    ("not exists through a string", {"specs.screen": {"$exists": False}}, _but("a", "b", "d")),
    # nested keys and arrays
    ("nested eq", {"specs.screen": 13}, {"a"}),
    ("nested eq string", {"specs.screen": "13"}, {"d"}),
    ("nested gt", {"specs.screen": {"$gt": 13}}, {"b"}),
    ("nested in", {"specs.os": {"$in": ["linux"]}}, {"a"}),
    ("digit key is an object key", {"items.0": 10}, {"g"}),
    ("digit key never indexes arrays", {"items.0": {"$gte": 10}}, {"g"}),
    ("digit key exists", {"items.1": {"$exists": True}}, {"g"}),
    ("negative digit key", {"items.-1": {"$exists": True}}, set()),
    ("digit key string compare", {"nested.0": {"$gt": "a"}}, {"f"}),
    ("dotted stored key is not addressable", {"a.b": 1}, set()),
    ("unicode key", {"名前": "値"}, {"f"}),
    ("unicode key like", {"名前": {"$like": "値"}}, {"f"}),
    ("contains one", {"tags": {"$contains": "x"}}, {"a"}),
    ("contains all", {"tags": {"$contains": ["x", "y"]}}, {"a"}),
    ("contains shared", {"tags": {"$contains": "y"}}, {"a", "b"}),
    ("contains empty list means is an array", {"tags": {"$contains": []}}, {"a", "b", "d", "f"}),
    ("contains number", {"tags": {"$contains": 1}}, {"f"}),
    ("contains true", {"tags": {"$contains": True}}, {"f"}),
    ("contains_any", {"tags": {"$contains_any": ["y", "z"]}}, {"a", "b"}),
    ("contains_any empty", {"tags": {"$contains_any": []}}, set()),
    # logic
    ("and", {"$and": [{"source": "docs"}, {"page": 1}]}, {"a"}),
    ("or", {"$or": [{"source": "blog"}, {"page": "3"}]}, {"b", "c"}),
    ("not dict", {"$not": {"source": "docs"}}, _but("a", "f")),
    ("not list", {"$not": [{"source": "docs"}, {"source": "blog"}]}, _but("a", "b", "f")),
    ("not of a missing field", {"$not": {"price": {"$gt": 10}}}, _but("b")),
    ("double not", {"$not": {"$not": {"price": {"$gt": 10}}}}, {"b"}),
    ("not like", {"$not": {"title": {"$like": "C%"}}}, _but("g", "h")),
    ("several operators", {"price": {"$gt": 5, "$lt": 10}}, {"a"}),
    ("fields and logic", {"source": "docs", "$or": [{"page": 1}, {"items.0": 10}]}, {"a"}),
    ("empty and", {"$and": []}, ALL),
    ("empty or", {"$or": []}, set()),
    ("empty filter", {}, ALL),
]


@pytest.fixture(scope="module")
def fixed_table(mconn: psycopg.Connection) -> Iterator[Table]:
    table = _create(mconn, unique_name("filt"), DOCS)
    yield table
    _drop(mconn, table)


@pytest.mark.parametrize(("filter_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fixed_case(
    conn: psycopg.Connection, fixed_table: Table, filter_: dict[str, Any], expected: set[str]
) -> None:
    frag = compile_filter(filter_, fixed_table)
    assert _matching_ids(conn, fixed_table, frag) == expected
    # the hand-written expectation also checks the reference evaluator
    assert {i for i, m in DOCS.items() if matches(filter_, m)} == expected


def test_none_filter_matches_everything(conn: psycopg.Connection, fixed_table: Table) -> None:
    assert _matching_ids(conn, fixed_table, compile_filter(None, fixed_table)) == ALL


def test_ilike_folds_unicode_case_with_the_database_locale(
    conn: psycopg.Connection, fixed_table: Table
) -> None:
    row = conn.execute("SELECT lower('É') = 'é'").fetchone()
    if not (row and row[0]):
        pytest.skip("the database locale does not fold non-ASCII case")
    frag = compile_filter({"title": {"$ilike": "café"}}, fixed_table)
    assert _matching_ids(conn, fixed_table, frag) == {"g", "h"}


def test_filter_is_never_null(conn: psycopg.Connection, fixed_table: Table) -> None:
    for name, filter_, _ in CASES:
        values = _evaluate(conn, fixed_table, compile_filter(filter_, fixed_table))
        assert None not in values.values(), name


# -- the missing-key table of docs/filters.md ---------------------------------

LANG_DOCS: dict[str, dict[str, Any]] = {
    "en": {"lang": "en"},
    "null": {"lang": None},
    "missing": {},
    "five": {"lang": 5},
}
LANG_TABLE: list[tuple[dict[str, Any], set[str]]] = [
    ({"lang": "en"}, {"en"}),
    ({"lang": {"$ne": "en"}}, {"null", "missing", "five"}),
    ({"lang": None}, {"null"}),
    ({"lang": {"$ne": None}}, {"en", "missing", "five"}),
    ({"lang": {"$nin": ["en"]}}, {"null", "missing", "five"}),
    ({"lang": {"$gt": "a"}}, {"en"}),
    ({"$not": {"lang": {"$gt": "a"}}}, {"null", "missing", "five"}),
    ({"lang": {"$exists": True}}, {"en", "null", "five"}),
    ({"lang": {"$exists": True, "$ne": None}}, {"en", "five"}),
]


def test_missing_key_table_in_the_docs(conn: psycopg.Connection) -> None:
    table = _create(conn, unique_name("filt"), LANG_DOCS)
    try:
        for filter_, expected in LANG_TABLE:
            assert _matching_ids(conn, table, compile_filter(filter_, table)) == expected, filter_
            assert {i for i, m in LANG_DOCS.items() if matches(filter_, m)} == expected, filter_
    finally:
        _drop(conn, table)


# -- odd stored data never makes a query fail --------------------------------

ODD: dict[str, dict[str, Any]] = {
    "o1": {"k": [[1, [2]], {"x": None}]},
    "o2": {"k": {"k": {"k": {"k": "deep"}}}},
    "o3": {"k": 10**60},
    "o4": {"k": -1e308},
    "o5": {"k": "\\%_'\";--"},
    "o6": {"k": ""},
    "o7": {"k": {"0": [1], "1": {"2": 3}}},
    "o8": {"k": [None, True, "1", 1]},
}

ODD_FILTERS: list[dict[str, Any]] = [
    {"k": {op: v}}
    for op in ("$eq", "$ne", "$lt", "$lte", "$gt", "$gte")
    for v in (1, -1e308, "1", "", True)
] + [
    {"k": {"$between": [0, 10**61]}},
    {"k": {"$between": ["", "z"]}},
    {"k": {"$in": [None, 1, "1", True]}},
    {"k": {"$nin": [None, 1, "1", True]}},
    {"k": {"$like": "%\\%%"}},
    {"k": {"$ilike": "%"}},
    {"k": {"$contains": [None, True]}},
    {"k": {"$contains_any": ["1", 1]}},
    {"k.0": {"$exists": True}},
    {"k.0.0": {"$gt": 0}},
    {"k.1.2": {"$gte": 3}},
    {"k.k.k.k": {"$like": "d%"}},
    {"k.k.k.k.k": {"$exists": False}},
]


def test_odd_data_never_fails(conn: psycopg.Connection) -> None:
    table = _create(conn, unique_name("filt"), ODD)
    try:
        for filter_ in ODD_FILTERS:
            values = _evaluate(conn, table, compile_filter(filter_, table))
            got = {i for i, v in values.items() if v}
            assert None not in values.values(), filter_
            assert got == {i for i, m in ODD.items() if matches(filter_, m)}, filter_
    finally:
        _drop(conn, table)


# -- differential: the database agrees with the reference evaluator ----------

SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    2,
    -3,
    2.5,
    1e20,
    10**20,
    "a",
    "b",
    "ab",
    "Ab",
    "docs",
    "Docs",
    "x_y",
    "50%",
    "é",
    "日本",
    "",
    "1",
    "2024-01-15",
    "2024-06-01T12:00:00Z",
    "2023-12-31",
]
NUMBERS = [v for v in SCALARS if type(v) in (int, float)]
STRINGS = [v for v in SCALARS if type(v) is str]
PATTERNS = ["a%", "%b", "_b", "A%", "%", "", "x\\_y", "50\\%", "%é%", "2024-%", "d_c_", "%A%"]
FIELDS = [
    "source",
    "n",
    "price",
    "flag",
    "tags",
    "date",
    "specs",
    "specs.screen",
    "specs.os",
    "specs.0",
    "items",
    "items.0",
    "items.1",
    "é",
    "missing",
]


def _random_docs(count: int, seed: int) -> dict[str, dict[str, Any]]:
    rnd = random.Random(seed)

    def scalar() -> Any:
        return rnd.choice(SCALARS)

    def array() -> list[Any]:
        return [scalar() for _ in range(rnd.randint(0, 3))]

    def value() -> Any:
        return array() if rnd.random() < 0.2 else scalar()

    docs: dict[str, dict[str, Any]] = {}
    for i in range(count):
        meta: dict[str, Any] = {}
        for key in ("source", "n", "price", "flag", "date", "é"):
            if rnd.random() < 0.6:
                meta[key] = value()
        if rnd.random() < 0.6:
            meta["tags"] = array() if rnd.random() < 0.8 else scalar()
        if rnd.random() < 0.6:
            if rnd.random() < 0.8:
                meta["specs"] = {k: value() for k in ("screen", "os", "0") if rnd.random() < 0.6}
            else:
                meta["specs"] = scalar()
        if rnd.random() < 0.5:
            meta["items"] = array() if rnd.random() < 0.5 else {"0": scalar(), "1": scalar()}
        docs[f"r{i:03d}"] = meta
    return docs


RANDOM_DOCS = _random_docs(200, seed=20240615)

scalars = st.sampled_from(SCALARS)
orderables = st.sampled_from([v for v in SCALARS if v is not None])
lists = st.lists(scalars, max_size=3)
bounds = st.one_of(
    st.tuples(st.sampled_from(NUMBERS), st.sampled_from(NUMBERS)),
    st.tuples(st.sampled_from(STRINGS), st.sampled_from(STRINGS)),
    st.tuples(st.booleans(), st.booleans()),
).map(list)

operators = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), scalars),
    st.tuples(st.sampled_from(["$lt", "$lte", "$gt", "$gte"]), orderables),
    st.tuples(st.just("$between"), bounds),
    st.tuples(st.sampled_from(["$in", "$nin", "$contains_any"]), lists),
    st.tuples(st.sampled_from(["$like", "$ilike"]), st.sampled_from(PATTERNS)),
    st.tuples(st.just("$exists"), st.booleans()),
    st.tuples(st.just("$contains"), st.one_of(scalars, st.lists(scalars, max_size=2))),
)
field_specs = st.one_of(scalars, st.lists(operators, min_size=1, max_size=2).map(dict))
leaves = st.dictionaries(st.sampled_from(FIELDS), field_specs, min_size=1, max_size=2)
filters = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
        st.lists(inner, min_size=1, max_size=2).map(lambda fs: {"$not": fs}),
        st.tuples(leaves, inner).map(lambda p: {**p[0], "$and": [p[1]]}),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def random_table(mconn: psycopg.Connection) -> Iterator[Table]:
    table = _create(mconn, unique_name("filt"), RANDOM_DOCS)
    yield table
    _drop(mconn, table)


@settings(deadline=None)
@given(filter_=filters)
def test_database_agrees_with_reference(
    mconn: psycopg.Connection, random_table: Table, filter_: dict[str, Any]
) -> None:
    values = _evaluate(mconn, random_table, compile_filter(filter_, random_table))
    assert None not in values.values()
    got = {i for i, v in values.items() if v}
    assert got == {i for i, m in RANDOM_DOCS.items() if matches(filter_, m)}


def test_random_docs_cover_the_vocabulary() -> None:
    # guards the differential test against a corpus where most filters match nothing
    kinds = {type(m.get("tags")).__name__ for m in RANDOM_DOCS.values()}
    assert {"list", "str", "NoneType"} <= kinds
    assert any(isinstance(m.get("items"), dict) for m in RANDOM_DOCS.values())
    assert any(isinstance(m.get("items"), list) for m in RANDOM_DOCS.values())


# -- any key and value survive the trip as parameters -----------------------

json_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
valid_keys = json_text.filter(
    lambda k: bool(k) and not k.startswith("$") and "" not in k.split(".") and k.count(".") < 8
)
json_scalars = st.one_of(
    json_text,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


def _single_row_filters(key: str, probe: Any, value: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {key: probe},
        {key: {"$ne": probe}},
        {key: {"$in": [probe, value] if not isinstance(value, list) else [probe]}},
        {key: {"$exists": True}},
        {key: {"$contains": probe}},
        {"$not": {key: probe}},
    ]
    if probe is not None:
        out += [{key: {"$gte": probe}}, {key: {"$lt": probe}}]
    if type(probe) is str and (len(probe) - len(probe.rstrip("\\"))) % 2 == 0:
        out.append({key: {"$like": probe}})
    return out


@settings(deadline=None)
@given(key=valid_keys, value=json_scalars | st.lists(json_scalars, max_size=2), probe=json_scalars)
def test_any_key_and_value_round_trip(
    mconn: psycopg.Connection, key: str, value: Any, probe: Any
) -> None:
    doc: Any = value
    for part in reversed(key.split(".")):
        doc = {part: doc}
    table = Table("public", "unused")
    for filter_ in _single_row_filters(key, probe, value):
        frag = compile_filter(filter_, table)
        query = sql.SQL("SELECT ") + frag.sql + sql.SQL(" FROM (SELECT %s::jsonb AS metadata) AS t")
        row = mconn.execute(query, (*frag.params, Jsonb(doc))).fetchone()
        assert row is not None
        assert row[0] is matches(filter_, doc), filter_


# -- the GIN index serves equality, $in and $contains ------------------------


@pytest.fixture(scope="module")
def big_table(mconn: psycopg.Connection) -> Iterator[tuple[Table, str]]:
    name = unique_name("filt")
    index = f"{name}_gin"
    ident = sql.Identifier(name)
    mconn.execute(
        sql.SQL(
            "CREATE TABLE {} (id text PRIMARY KEY, metadata jsonb NOT NULL DEFAULT '{{}}')"
        ).format(ident)
    )
    # fastupdate = off: with the default, 30k fresh rows sit in the GIN pending
    # list, which every index scan reads in full, and the planner rightly
    # prefers a sequential scan until VACUUM merges it.
    mconn.execute(
        sql.SQL(
            "CREATE INDEX {} ON {} USING gin (metadata jsonb_path_ops) WITH (fastupdate = off)"
        ).format(sql.Identifier(index), ident)
    )
    mconn.execute(
        sql.SQL(
            "INSERT INTO {} (id, metadata)"
            " SELECT 'd' || i, jsonb_build_object("
            "'source', 'src' || (i % 1000), 'n', i,"
            " 'specs', jsonb_build_object('screen', i % 500),"
            " 'tags', jsonb_build_array('t' || (i % 300), 'common'))"
            " FROM generate_series(1, 30000) AS i"
        ).format(ident)
    )
    mconn.execute(sql.SQL("ANALYZE {}").format(ident))
    table = Table("public", name)
    yield table, index
    _drop(mconn, table)


@pytest.mark.slow
@pytest.mark.parametrize(
    "filter_",
    [
        {"source": "src5"},
        {"source": {"$in": ["src5", "src7"]}},
        {"specs.screen": 7},
        {"tags": {"$contains": "t5"}},
        {"tags": {"$contains_any": ["t5", "t6"]}},
        {"source": "src5", "n": {"$gt": 100}},
    ],
    ids=["eq", "in", "nested-eq", "contains", "contains_any", "eq-and-range"],
)
def test_selective_filters_use_the_gin_index(
    conn: psycopg.Connection, big_table: tuple[Table, str], filter_: dict[str, Any]
) -> None:
    table, index = big_table
    frag = compile_filter(filter_, table)
    query = sql.SQL("EXPLAIN SELECT id FROM {} WHERE ").format(table.qualname) + frag.sql
    plan = "\n".join(row[0] for row in conn.execute(query, frag.params))
    assert f"Bitmap Index Scan on {index}" in plan, plan
    ids = _matching_ids(conn, table, frag)
    assert ids and len(ids) < 300
