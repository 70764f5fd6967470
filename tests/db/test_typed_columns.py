"""Typed columns against a real PostgreSQL: round trips, bad input, the registry, filters."""

from __future__ import annotations

import datetime
import random
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from langchain_pgvstore import Column, ConfigError, FilterError, InputError, SchemaError
from langchain_pgvstore._sql.columns import index_kind
from langchain_pgvstore.config import REGISTRY_VERSION
from tests.filter_reference import matches
from tests.fix_db import unique_name

UTC = datetime.UTC
EVERY_TYPE = {
    "title": Column("text"),
    "n": Column("integer"),
    "big": Column("bigint", nullable=True),
    "score": Column("double precision"),
    "price": Column("numeric"),
    "ok": Column("boolean"),
    "day": Column("date", nullable=True),
    "at": Column("timestamptz", nullable=True),
    "uid": Column("uuid", nullable=True),
    "tags": Column("text[]", nullable=True),
    "attrs": Column("jsonb", nullable=True),
}
FULL = {
    "title": "a",
    "n": -(2**31),
    "big": 2**62,
    "score": 0.1,
    "price": Decimal("12345678901234567890.000000000001"),
    "ok": True,
    "day": datetime.date(2024, 2, 29),
    "at": datetime.datetime(2024, 1, 1, 10, 30, 0, 123456, tzinfo=UTC),
    "uid": uuid.UUID(int=5),
    "tags": ["x", "é", ""],
    "attrs": {"color": "red", "k": [1, None, {"z": 2.5}]},
    "free": {"nested": [1, "two"]},
}
SPARSE = {"title": "", "n": 7, "score": 3, "price": 4, "ok": False, "other": None}


def _rows(conn: psycopg.Connection, schema: str, name: str, query: str) -> list[Any]:
    stmt = sql.SQL(query).format(sql.Identifier(schema, name))  # type: ignore[arg-type]
    return conn.execute(stmt).fetchall()


# -- round trips -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["copy", "upsert"])
async def test_documents_round_trip_with_their_python_types(api, make_store, path) -> None:
    store = make_store(columns=EVERY_TYPE)
    api = api.on(store)
    if path == "upsert":  # a table with rows takes the staging + merge path
        await api("add_texts", ["seed"], [SPARSE | {"n": 1}], ids=["seed"])
    await api("add_texts", ["full", "sparse"], [FULL, SPARSE], ids=["f", "s"])
    full, sparse = await api("get_by_ids", ["f", "s"])
    assert full.metadata == FULL
    assert {k: type(v) for k, v in full.metadata.items()} == {k: type(v) for k, v in FULL.items()}
    # ints given for double precision and numeric read back as equal float and Decimal
    assert sparse.metadata == SPARSE
    assert type(sparse.metadata["score"]) is float and type(sparse.metadata["price"]) is Decimal
    for doc in await api("similarity_search", "full", k=3):
        assert doc.metadata == (
            FULL if doc.id == "f" else SPARSE | ({"n": 1} if doc.id == "seed" else {})
        )
    [(hit, _)] = await api("keyword_search_with_score", "full", k=1)
    assert hit.metadata == FULL
    mmr = await api("max_marginal_relevance_search", "full", k=2, fetch_k=3)
    assert [d.metadata for d in mmr if d.id == "f"] == [FULL]


async def test_upsert_rewrites_the_columns_and_skips_unchanged_rows(api, make_store, conn) -> None:
    store = make_store(columns=EVERY_TYPE)
    api = api.on(store)
    await api("add_texts", ["t"], [FULL], ids=["1"])
    await api("add_texts", ["t"], [FULL], ids=["1"])  # unchanged: not rewritten
    table = store._spec.table
    [(updated_before,)] = _rows(conn, table.schema, table.name, "SELECT updated_at FROM {}")
    changed = FULL | {"price": Decimal("1.5"), "tags": ["only"]}
    del changed["attrs"]
    await api("add_texts", ["t"], [changed], ids=["1"])
    [doc] = await api("get_by_ids", ["1"])
    assert doc.metadata == changed
    [(price, attrs, updated)] = _rows(
        conn, table.schema, table.name, "SELECT price, attrs, updated_at FROM {}"
    )
    assert price == Decimal("1.5") and attrs is None and updated > updated_before


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("n", "3", "integer column and takes an int, got str"),
        ("n", True, "takes an int, got bool"),
        ("n", 2**31, "out of range"),
        ("big", 2**63, "out of range"),
        ("score", float("nan"), "not a finite number"),
        ("price", 0.1, "a float is not exact"),
        ("price", Decimal("NaN"), "not a finite number"),
        ("ok", 1, "takes a bool"),
        ("day", datetime.datetime(2024, 1, 1, tzinfo=UTC), "takes a datetime.date"),
        ("at", datetime.datetime(2024, 1, 1), "without a time zone"),
        ("uid", str(uuid.UUID(int=1)), "takes a uuid.UUID, got str"),
        ("tags", ("a",), "takes a list of str, got tuple"),
        ("tags", ["a", 1], "element 1 is int"),
        ("title", "a\x00b", "NUL"),
        ("attrs", {"x": float("inf")}, "not JSON-serialisable"),
        ("day", None, "leave the key out"),
    ],
)
async def test_a_value_that_does_not_fit_names_document_and_field(
    api, make_store, field, value, words
) -> None:
    store = make_store(columns=EVERY_TYPE)
    api = api.on(store)
    with pytest.raises(InputError, match=words) as info:
        await api("add_texts", ["a", "b"], [SPARSE, SPARSE | {field: value}], ids=["x", "y"])
    assert "document 1 (id 'y')" in str(info.value) and repr(field) in str(info.value)
    assert await api("count") == 0  # nothing written, the collection not even created


async def test_a_missing_not_null_field_is_refused(api, make_store) -> None:
    store = make_store(columns=EVERY_TYPE)
    api = api.on(store)
    await api("add_texts", ["a"], [SPARSE], ids=["a"])
    bad = dict(SPARSE)
    del bad["price"]
    with pytest.raises(InputError, match=r"document 1 has no 'price', a NOT NULL numeric column"):
        await api("add_texts", ["b", "c"], [SPARSE, bad])
    assert await api("count") == 1


@pytest.mark.parametrize(
    ("columns", "words"),
    [
        ({"id": Column("text")}, "reserved"),
        ({"a.b": Column("text")}, "must not contain"),
        ({"a": "text"}, "must be a Column"),
        ({"x" * 64: Column("text")}, "63 bytes"),
    ],
)
def test_bad_declarations_are_config_errors(make_store, columns, words) -> None:
    with pytest.raises(ConfigError, match=words):
        make_store(columns=columns)


def test_distributed_collections_refuse_typed_columns(make_store) -> None:
    with pytest.raises(ConfigError, match="not supported on distributed"):
        make_store(columns={"a": Column("text")}, distributed=True)


# -- the registry --------------------------------------------------------------


def test_declaration_is_recorded_and_checked(make_store, conn) -> None:
    cols = {"price": Column("numeric"), "tags": Column("text[]", nullable=True, index=False)}
    store = make_store(columns=cols)
    store.add_texts(["a"], [{"price": 1}])
    table = store._spec.table
    [(recorded,)] = conn.execute(
        sql.SQL("SELECT typed_columns FROM {} WHERE collection = %s").format(table.registry),
        (table.name,),
    ).fetchall()
    assert recorded == {
        "price": {"type": "numeric", "nullable": False, "index": True},
        "tags": {"type": "text[]", "nullable": True, "index": False},
    }
    assert make_store(columns=dict(reversed(cols.items()))).count() == 1  # order is irrelevant
    for other in (
        {"price": Column("double precision"), "tags": cols["tags"]},
        {"price": Column("numeric", nullable=True), "tags": cols["tags"]},
        {"price": Column("numeric")},
        None,
    ):
        with pytest.raises(SchemaError, match="was created with columns=.*'price'"):
            make_store(columns=other).count()
    plain = make_store(collection=unique_name("plain"))
    plain.add_texts(["a"])
    with pytest.raises(SchemaError, match="was created with no typed columns"):
        make_store(collection=plain.collection, columns=cols).add_texts(["b"], [{"price": 1}])


def test_a_registry_from_before_typed_columns_gets_the_column(
    make_store, schema_name, conn
) -> None:
    plain = make_store(schema=schema_name, collection="plain")
    plain.add_texts(["a"])
    has_column = (
        "SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass"
        " AND attname = 'typed_columns' AND NOT attisdropped"
    )
    registry = f'"{schema_name}".pgvstore_collections'
    assert conn.execute(has_column, (registry,)).fetchone() == (1,)
    # the registry as the release before typed columns left it (registry version 2)
    table = sql.Identifier(schema_name, "pgvstore_collections")
    conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN typed_columns").format(table))
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS 'pgvstore registry 2'").format(table))
    typed = make_store(schema=schema_name, collection="typed", columns={"n": Column("integer")})
    typed.add_texts(["b"], [{"n": 1}])
    assert conn.execute(has_column, (registry,)).fetchone() == (1,)
    comment = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", (registry,))
    assert comment.fetchone() == (f"pgvstore registry {REGISTRY_VERSION}",)
    assert [d.metadata for d in typed.get()] == [{"n": 1}]
    assert [d.page_content for d in make_store(schema=schema_name, collection="plain").get()] == [
        "a"
    ]


def test_indexes_are_btree_and_gin(make_store, conn) -> None:
    store = make_store(columns=EVERY_TYPE | {"quiet": Column("text", index=False)})
    store.add_texts(["a"], [SPARSE | {"quiet": "q"}])
    table = store._spec.table
    found = dict(
        conn.execute(
            "SELECT c.relname, am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = %s::regclass",
            (table.qualname.as_string(None),),
        ).fetchall()
    )
    for name, column in EVERY_TYPE.items():
        method = "gin" if column.type in ("text[]", "jsonb") else "btree"
        assert found[table.index_name(index_kind(name))] == method
    assert table.index_name(index_kind("quiet")) not in found


# -- filters -------------------------------------------------------------------


def test_selective_column_filters_use_the_btree_index(make_store, conn) -> None:
    store = make_store(8, columns={"n": Column("integer"), "tags": Column("text[]")})
    rows = 3000
    metas = [
        {"n": i, "tags": ["rare"] if i % 500 == 0 else ["common"], "j": i} for i in range(rows)
    ]
    vecs = np.random.default_rng(2).normal(size=(rows, 8))
    store.add_embeddings([str(i) for i in range(rows)], vecs, metas)
    table = store._spec.table
    conn.execute(sql.SQL("ANALYZE {}").format(table.qualname))
    plan = store.explain(list(vecs[0]), filter={"n": {"$lt": 3}, "j": {"$gte": 0}})
    assert table.index_name(index_kind("n")) in plan
    assert "(n < 3)" in plan and "metadata" in plan  # both predicates, one statement
    plan = store.explain(list(vecs[0]), filter={"tags": {"$contains": "rare"}})
    assert table.index_name(index_kind("tags")) in plan


def test_nested_keys_of_a_jsonb_column_use_its_gin_index(make_store, conn) -> None:
    store = make_store(8, columns={"attrs": Column("jsonb", nullable=True)})
    rows = 3000
    metas = [
        {"attrs": {"color": "red" if i % 500 == 0 else "blue"}} if i % 3 else {}
        for i in range(rows)
    ]
    vecs = np.random.default_rng(2).normal(size=(rows, 8))
    ids = [str(i) for i in range(rows)]
    store.add_embeddings(ids, vecs, metas, ids=ids)
    table = store._spec.table
    conn.execute(sql.SQL("ANALYZE {}").format(table.qualname))
    plan = store.explain(list(vecs[0]), filter={"attrs.color": "red"})
    assert table.index_name(index_kind("attrs")) in plan
    got = store.get({"attrs.color": {"$ne": "blue"}})
    assert {d.id for d in got} == {str(i) for i in range(rows) if i % 3 == 0 or i % 500 == 0}


@pytest.mark.parametrize(
    ("filter_", "words"),
    [
        ({"price": {"$gt": 0.5}}, "expected a Decimal or an integer for a numeric column"),
        ({"n": "3"}, "expected an integer"),
        ({"tags": "x"}, r"\$eq does not apply to 'tags', a text\[\] column"),
        ({"n": {"$contains": 3}}, r"\$contains does not apply"),
        ({"n": {"$like": "3%"}}, r"\$like does not apply"),
        ({"day": {"$lt": "2024-01-01"}}, "expected a datetime.date"),
        ({"at": {"$lt": datetime.datetime(2024, 1, 1)}}, "expected an aware datetime"),
        ({"uid": "not-a-uuid"}, "expected a UUID"),
        ({"n": None}, r"use \{'\$exists': false\}"),
        ({"n.x": 1}, "column without keys"),
        ({"n": {"$between": [1]}}, r"expected \[low, high\]"),
        ({"n": {}}, "at least one operator"),
    ],
)
def test_bad_column_filters_are_filter_errors(make_store, filter_, words) -> None:
    store = make_store(columns=EVERY_TYPE)
    with pytest.raises(FilterError, match=words):
        store.similarity_search("a", filter=filter_)


def test_same_shape_filters_share_one_cached_statement(make_store) -> None:
    store = make_store(columns=EVERY_TYPE)
    store.add_texts(["a", "b"], [FULL, SPARSE], ids=["f", "s"])
    before = len(store._statements._templates)  # type: ignore[attr-defined]
    assert [d.id for d in store.similarity_search("a", filter={"n": {"$gt": 0}})] == ["s"]
    assert [d.id for d in store.similarity_search("a", filter={"n": {"$gt": -(2**31) - 0}})] == [
        "s"
    ]
    assert {d.id for d in store.similarity_search("a", filter={"n": {"$gte": -(2**31)}})} == {
        "f",
        "s",
    }
    assert len(store._statements._templates) == before + 2  # type: ignore[attr-defined]


# -- the differential test ----------------------------------------------------

DECLARED = {
    "t": Column("text", nullable=True),
    "i": Column("integer"),
    "d": Column("double precision", nullable=True),
    "m": Column("numeric", nullable=True),
    "b": Column("boolean", nullable=True),
    "day": Column("date", nullable=True),
    "ts": Column("timestamptz", nullable=True),
    "u": Column("uuid", nullable=True),
    "tags": Column("text[]", nullable=True),
    "j": Column("jsonb", nullable=True),
}
TEXTS = ["", "a", "ab", "Ab", "b", "é", "x_y", "50%", "日本"]
INTS = [-3, 0, 1, 2, 7, 2**31 - 1]
DOUBLES = [-1.5, 0.0, 0.1, 2.5, 1e20]
DECIMALS = [Decimal("-1"), Decimal("0"), Decimal("0.10"), Decimal("2.5"), Decimal("99999999999.99")]
DAYS = [datetime.date(2024, 1, d) for d in (1, 2, 15, 31)]
STAMPS = [datetime.datetime(2024, 1, 1, h, tzinfo=UTC) for h in (0, 6, 12)] + [
    datetime.datetime(2024, 1, 1, 8, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
]
UUIDS = [uuid.UUID(int=n) for n in (1, 2, 3)]
JSONS: list[Any] = [1, "a", True, [1, "a"], {"k": 1}, {"k": "a"}, {"k": [1]}, {"0": 1}, [[1]]]
VALUES: dict[str, list[Any]] = {
    "t": TEXTS,
    "i": INTS,
    "d": DOUBLES,
    "m": DECIMALS,
    "b": [True, False],
    "day": DAYS,
    "ts": STAMPS,
    "u": UUIDS,
}


def _docs(count: int, seed: int) -> dict[str, dict[str, Any]]:
    rnd = random.Random(seed)
    docs = {}
    for n in range(count):
        meta: dict[str, Any] = {"i": rnd.choice(INTS)}
        for key, values in VALUES.items():
            if key != "i" and rnd.random() < 0.7:
                meta[key] = rnd.choice(values)
        if rnd.random() < 0.7:
            meta["tags"] = rnd.sample(TEXTS, rnd.randint(0, 3))
        if rnd.random() < 0.7:
            meta["j"] = rnd.choice(JSONS)
        for key in ("free", "num"):  # undeclared: jsonb
            if rnd.random() < 0.6:
                meta[key] = rnd.choice(TEXTS if key == "free" else INTS)
        docs[f"r{n:03d}"] = meta
    return docs


DOCS = _docs(150, seed=16)


def _column_ops(key: str) -> st.SearchStrategy[tuple[str, Any]]:
    values = st.sampled_from(VALUES[key])
    ops = [
        st.tuples(st.sampled_from(["$eq", "$ne", "$lt", "$lte", "$gt", "$gte"]), values),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(values, max_size=3)),
        st.tuples(st.just("$between"), st.lists(values, min_size=2, max_size=2)),
        st.tuples(st.just("$exists"), st.booleans()),
    ]
    if key == "t":
        patterns = st.sampled_from(["a%", "%b", "_b", "A%", "%", "x\\_y", "50\\%", "%é%"])
        ops.append(st.tuples(st.sampled_from(["$like", "$ilike"]), patterns))
    return st.one_of(ops)


tag_ops = st.one_of(
    st.tuples(
        st.just("$contains"),
        st.one_of(st.sampled_from(TEXTS), st.lists(st.sampled_from(TEXTS), max_size=2)),
    ),
    st.tuples(st.just("$contains_any"), st.lists(st.sampled_from(TEXTS), max_size=3)),
    st.tuples(st.just("$exists"), st.booleans()),
)
jsonb_scalars = st.sampled_from([1, "a", True, 2])
jsonb_ops = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne", "$gt"]), jsonb_scalars),
    st.tuples(st.just("$contains"), jsonb_scalars),
    st.tuples(st.just("$exists"), st.booleans()),
)
free_ops = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne", "$lt", "$gte"]), st.sampled_from(TEXTS + INTS)),
    st.tuples(st.just("$exists"), st.booleans()),
)


def _spec(ops: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.lists(ops, min_size=1, max_size=2).map(dict)


leaf_parts = [st.tuples(st.just(k), _spec(_column_ops(k))) for k in VALUES]
leaf_parts += [
    st.tuples(st.just("tags"), _spec(tag_ops)),
    st.tuples(st.sampled_from(["j", "j.k", "j.0"]), _spec(jsonb_ops)),
    st.tuples(st.sampled_from(["free", "num", "missing"]), _spec(free_ops)),
]
leaves = st.lists(st.one_of(leaf_parts), min_size=1, max_size=2).map(dict)
filters = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
    ),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def typed_store(make_module_store):
    store = make_module_store(8, collection=unique_name("typed"), columns=DECLARED)
    store.add_texts(list(DOCS), list(DOCS.values()), ids=list(DOCS))
    return store


def test_every_document_round_trips(typed_store) -> None:
    assert {d.id: d.metadata for d in typed_store.get()} == DOCS


@settings(deadline=None, max_examples=150)
@given(filter_=filters)
def test_store_agrees_with_the_reference(typed_store, filter_: dict[str, Any]) -> None:
    got = {d.id for d in typed_store.get(filter_)}
    assert got == {i for i, m in DOCS.items() if matches(filter_, m)}


# -- filtered search policy and tenants -------------------------------------------


def test_filtered_search_on_a_column_never_under_returns(make_store) -> None:
    rng = np.random.default_rng(3)
    rows = 3000
    vecs = rng.normal(size=(rows, 16))
    metas = [{"price": i % 1000, "tags": ["rare"] if i % 300 == 0 else []} for i in range(rows)]
    store = make_store(
        16,
        columns={"price": Column("integer"), "tags": Column("text[]")},
        exact_search_threshold=50,
    )
    store.add_embeddings(
        [str(i) for i in range(rows)], vecs, metas, ids=[str(i) for i in range(rows)]
    )
    for filter_ in (
        {"price": {"$lt": 5}},
        {"tags": {"$contains": "rare"}},
        {"price": {"$gte": 100}},
    ):
        for q in vecs[:3]:
            got = store.similarity_search_by_vector(list(q), k=10, filter=filter_)
            exact = store.similarity_search_by_vector(list(q), k=10, filter=filter_, exact=True)
            assert len(got) == 10
            if filter_ != {"price": {"$gte": 100}}:  # the selective ones run exactly
                assert [d.id for d in got] == [d.id for d in exact]


async def test_multi_tenant_collections_have_typed_columns(api, make_store) -> None:
    cols = {"price": Column("numeric"), "day": Column("date", nullable=True)}
    store = make_store(multi_tenant=True, columns=cols)
    acme, globex = store.for_tenant("acme"), store.for_tenant("globex")
    day = datetime.date(2024, 5, 1)
    await api.on(acme)(
        "add_texts", ["a", "b"], [{"price": 1, "day": day}, {"price": 5}], ids=["1", "2"]
    )
    await api.on(globex)("add_texts", ["a"], [{"price": 1}], ids=["1"])
    await api.on(acme)("add_texts", ["a"], [{"price": Decimal("2.5"), "day": day}], ids=["1"])
    got = await api.on(acme)("similarity_search", "a", k=5, filter={"price": {"$lt": 3}})
    assert [(d.id, d.metadata) for d in got] == [("1", {"price": Decimal("2.5"), "day": day})]
    [other] = await api.on(globex)("get", {"day": {"$exists": False}})
    assert other.metadata == {"price": Decimal(1)}


# -- SQLAlchemy ------------------------------------------------------------------


@pytest.mark.parametrize("vector_type", ["vector", "halfvec"])
def test_sqlalchemy_table_describes_the_collection(make_store, dsn, vector_type) -> None:
    sa = pytest.importorskip("sqlalchemy", reason="needs the 'sqlalchemy' extra")
    cols = {"price": Column("numeric"), "tags": Column("text[]", nullable=True)}
    store = make_store(8, multi_tenant=True, columns=cols, vector_type=vector_type).for_tenant(
        "acme"
    )
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(20, 8))
    store.add_embeddings(
        [f"t{i}" for i in range(20)],
        vecs,
        [{"price": Decimal(i), "tags": ["even"] if i % 2 == 0 else []} for i in range(20)],
        ids=[str(i) for i in range(20)],
    )
    metadata = sa.MetaData()
    docs = store.sqlalchemy_table(metadata)
    assert store.sqlalchemy_table(metadata) is docs
    engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        reflected = sa.inspect(engine).get_columns(docs.name, schema=docs.schema)
        described = {c.name: (c.nullable, str(c.type.compile(engine.dialect))) for c in docs.c}
        in_db = {c["name"]: c["nullable"] for c in reflected if c["name"] not in ("tsv", "tsv_len")}
        assert {n: v[0] for n, v in described.items()} == in_db
        assert described["embedding"][1] == f"{vector_type.upper()}(8)"
        assert [c.name for c in docs.primary_key] == ["tenant", "id"]
        q = list(vecs[3])
        distance = docs.c.embedding.cosine_distance(q)
        statement = (
            sa.select(docs.c.id, docs.c.price)
            .where(docs.c.tenant == "acme", docs.c.tags.contains(["even"]))
            .order_by(distance, docs.c.id)
            .limit(5)
        )
        with engine.connect() as connection:
            rows = connection.execute(statement).all()
        expected = store.similarity_search_by_vector(
            q, k=5, filter={"tags": {"$contains": "even"}}, exact=True
        )
        assert [r.id for r in rows] == [d.id for d in expected]
        assert [r.price for r in rows] == [d.metadata["price"] for d in expected]
    finally:
        engine.dispose()
