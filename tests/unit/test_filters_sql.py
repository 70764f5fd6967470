"""compile_filter without a database: SQL snapshots, errors, determinism, injection."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from langchain_pgvstore._sql.filters import MAX_DEPTH, compile_filter
from langchain_pgvstore.config import Table
from langchain_pgvstore.errors import FilterError

TABLE = Table("public", "docs")


def _plain(value: Any) -> Any:
    """Parameters in a comparable form: Jsonb has no __eq__."""
    if isinstance(value, Jsonb):
        return ("jsonb", value.obj)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _compile(filter_: Any) -> tuple[str, Any]:
    frag = compile_filter(filter_, TABLE)
    return frag.as_string(), _plain(frag.params)


def J(obj: Any) -> tuple[str, Any]:
    return ("jsonb", obj)


# -- snapshots ---------------------------------------------------------------

TYPED = 'CASE WHEN jsonb_typeof("metadata" #> %s::text[]) = {t} THEN {body} ELSE FALSE END'
NUM = '"metadata" #> %s::text[]'
STR = '("metadata" #>> %s::text[]) COLLATE "C"'

SNAPSHOTS: list[tuple[str, Any, str, tuple[Any, ...]]] = [
    ("none", None, "TRUE", ()),
    ("empty", {}, "TRUE", ()),
    ("eq shorthand", {"source": "docs"}, '"metadata" @> %s', (J({"source": "docs"}),)),
    ("eq", {"n": {"$eq": 1.5}}, '"metadata" @> %s', (J({"n": 1.5}),)),
    ("eq null", {"n": None}, '"metadata" @> %s', (J({"n": None}),)),
    ("nested eq", {"specs.screen": 13}, '"metadata" @> %s', (J({"specs": {"screen": 13}}),)),
    ("ne", {"source": {"$ne": "docs"}}, 'NOT ("metadata" @> %s)', (J({"source": "docs"}),)),
    (
        "gt number",
        {"n": {"$gt": 5}},
        TYPED.format(t="'number'", body=f"{NUM} > %s"),
        (["n"], ["n"], J(5)),
    ),
    (
        "lte string",
        {"d": {"$lte": "2024-01-01"}},
        TYPED.format(t="'string'", body=f"{STR} <= %s"),
        (["d"], ["d"], "2024-01-01"),
    ),
    (
        "lt boolean",
        {"ok": {"$lt": True}},
        TYPED.format(t="'boolean'", body=f"{NUM} < %s"),
        (["ok"], ["ok"], J(True)),
    ),
    (
        "gte nested",
        {"a.b": {"$gte": 1}},
        TYPED.format(t="'number'", body=f"{NUM} >= %s"),
        (["a", "b"], ["a", "b"], J(1)),
    ),
    (
        "between numbers",
        {"x": {"$between": [1, 2.5]}},
        TYPED.format(t="'number'", body=f"{NUM} BETWEEN %s AND %s"),
        (["x"], ["x"], J(1), J(2.5)),
    ),
    (
        "between strings",
        {"x": {"$between": ["a", "b"]}},
        TYPED.format(t="'string'", body=f"{STR} BETWEEN %s AND %s"),
        (["x"], ["x"], "a", "b"),
    ),
    (
        "in",
        {"x": {"$in": [1, "1", None]}},
        '"metadata" @> ANY(%s::jsonb[])',
        ([J({"x": 1}), J({"x": "1"}), J({"x": None})],),
    ),
    ("in empty", {"x": {"$in": []}}, '"metadata" @> ANY(%s::jsonb[])', ([],)),
    ("nin", {"x": {"$nin": [1]}}, 'NOT ("metadata" @> ANY(%s::jsonb[]))', ([J({"x": 1})],)),
    (
        "like",
        {"x": {"$like": "a%"}},
        TYPED.format(t="'string'", body='("metadata" #>> %s::text[]) LIKE %s'),
        (["x"], ["x"], "a%"),
    ),
    (
        "ilike",
        {"x": {"$ilike": "a%"}},
        TYPED.format(t="'string'", body='("metadata" #>> %s::text[]) ILIKE %s'),
        (["x"], ["x"], "a%"),
    ),
    ("exists", {"x": {"$exists": True}}, '("metadata" #> %s::text[]) IS NOT NULL', (["x"],)),
    (
        "not exists",
        {"x": {"$exists": False}},
        'NOT (("metadata" #> %s::text[]) IS NOT NULL)',
        (["x"],),
    ),
    ("contains one", {"tags": {"$contains": "a"}}, '"metadata" @> %s', (J({"tags": ["a"]}),)),
    (
        "contains all",
        {"tags": {"$contains": ["a", 2]}},
        '"metadata" @> %s',
        (J({"tags": ["a", 2]}),),
    ),
    (
        "contains_any",
        {"tags": {"$contains_any": ["a", 2]}},
        '"metadata" @> ANY(%s::jsonb[])',
        ([J({"tags": ["a"]}), J({"tags": [2]})],),
    ),
    (
        "digit segment is guarded",
        {"items.0": {"$gt": 1}},
        '("metadata" @> %s AND ' + TYPED.format(t="'number'", body=f"{NUM} > %s") + ")",
        (J({"items": {}}), ["items", "0"], ["items", "0"], J(1)),
    ),
    (
        "guard covers every parent",
        {"a.1.b": {"$exists": True}},
        '("metadata" @> %s AND ("metadata" #> %s::text[]) IS NOT NULL)',
        (J({"a": {"1": {}}}), ["a", "1", "b"]),
    ),
    (
        "several operators",
        {"n": {"$gt": 1, "$ne": 3}},
        "(" + TYPED.format(t="'number'", body=f"{NUM} > %s") + ' AND NOT ("metadata" @> %s))',
        (["n"], ["n"], J(1), J({"n": 3})),
    ),
    (
        "fields and logic",
        {"a": 1, "$or": [{"b": 2}, {"$not": {"c": 3}}]},
        '("metadata" @> %s AND ("metadata" @> %s OR NOT ("metadata" @> %s)))',
        (J({"a": 1}), J({"b": 2}), J({"c": 3})),
    ),
    (
        "not list",
        {"$not": [{"a": 1}, {"b": 2}]},
        '(NOT ("metadata" @> %s) AND NOT ("metadata" @> %s))',
        (J({"a": 1}), J({"b": 2})),
    ),
    ("and one", {"$and": [{"a": 1}]}, '"metadata" @> %s', (J({"a": 1}),)),
    ("and empty", {"$and": []}, "TRUE", ()),
    ("or empty", {"$or": []}, "FALSE", ()),
    ("not empty list", {"$not": []}, "TRUE", ()),
    ("unicode key", {"名前": "値"}, '"metadata" @> %s', (J({"名前": "値"}),)),
]


@pytest.mark.parametrize(
    ("filter_", "text", "params"), [s[1:] for s in SNAPSHOTS], ids=[s[0] for s in SNAPSHOTS]
)
def test_snapshot(filter_: Any, text: str, params: tuple[Any, ...]) -> None:
    assert _compile(filter_) == (text, params)


def test_placeholders_match_params() -> None:
    for _, filter_, _, _ in SNAPSHOTS:
        frag = compile_filter(filter_, TABLE)
        assert frag.as_string().count("%s") == len(frag.params)


def test_uses_the_tables_metadata_identifier() -> None:
    frag = compile_filter({"a": 1}, Table("other", "name"))
    assert frag.as_string() == '"metadata" @> %s'


def test_true_is_not_an_int() -> None:
    assert _compile({"a": True})[1] == (J({"a": True}),)
    assert _compile({"a": {"$gt": True}})[0] != _compile({"a": {"$gt": 1}})[0]


def test_deterministic() -> None:
    filter_ = {"a": 1, "$or": [{"b": {"$in": [1, 2]}}, {"c.d": {"$like": "x%"}}]}
    assert _compile(filter_) == _compile(filter_)
    other = {"z": 9, "$or": [{"y": {"$in": ["p", "q", "r"]}}, {"w.v": {"$like": "%"}}]}
    assert compile_filter(filter_, TABLE).as_string() == compile_filter(other, TABLE).as_string()


def test_depth_limits_are_inclusive() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH - 1):
        deep = {"$and": [deep]}
    assert _compile(deep)[0] == '"metadata" @> %s'
    assert _compile({".".join(["k"] * MAX_DEPTH): 1})[1] == (J(_nested(["k"] * MAX_DEPTH, 1)),)
    assert _compile({"a": 10**1000 - 1})[0] == '"metadata" @> %s'


def _nested(keys: list[str], leaf: Any) -> Any:
    for key in reversed(keys):
        leaf = {key: leaf}
    return leaf


# -- errors ------------------------------------------------------------------

OPS = (
    "$between, $contains, $contains_any, $eq, $exists, $gt, $gte, $ilike, $in, $like,"
    " $lt, $lte, $ne, $nin"
)
SCALAR = "expected a string, number, boolean or null"
ORDERABLE = "expected a string, number or boolean"


def _too_deep(levels: int, op: str) -> tuple[dict[str, Any], str]:
    node: dict[str, Any] = {"a": 1}
    for _ in range(levels - 1):
        node = {op: [node]} if op != "$not" else {op: node}
    step = f".{op}[0]" if op != "$not" else f".{op}"
    return node, "filter" + step * MAX_DEPTH


DEEP_AND, DEEP_AND_PATH = _too_deep(MAX_DEPTH + 1, "$and")
DEEP_NOT, DEEP_NOT_PATH = _too_deep(MAX_DEPTH + 1, "$not")
LONG_KEY = ".".join(["k"] * (MAX_DEPTH + 1))

ERRORS: list[tuple[str, Any, str, str]] = [
    ("list filter", [1], "expected a dict at filter, got [1]", "filter"),
    ("string filter", "x", "expected a dict at filter, got 'x'", "filter"),
    ("int key", {1: "a"}, "field names must be strings at filter, got 1", "filter"),
    ("empty key", {"": 1}, "empty field name at filter", "filter"),
    (
        "empty segment",
        {"a..b": 1},
        "field name 'a..b' has an empty segment at filter;"
        " separate nested keys with single dots, as in 'specs.screen'",
        "filter",
    ),
    (
        "leading dot",
        {"$and": [{".a": 1}]},
        "field name '.a' has an empty segment at filter.$and[0];"
        " separate nested keys with single dots, as in 'specs.screen'",
        "filter.$and[0]",
    ),
    (
        "trailing dot",
        {"a.": 1},
        "field name 'a.' has an empty segment at filter;"
        " separate nested keys with single dots, as in 'specs.screen'",
        "filter",
    ),
    (
        "too many segments",
        {LONG_KEY: 1},
        f"field name {LONG_KEY!r} has {MAX_DEPTH + 1} segments at filter; the limit is {MAX_DEPTH}",
        "filter",
    ),
    (
        "NUL in key",
        {"a\x00": 1},
        "the string at filter.a\x00 contains a NUL (\\x00) character, got 'a\\x00'",
        "filter.a\x00",
    ),
    (
        "unknown logical operator",
        {"$regex": 1},
        "unknown operator '$regex' at filter; expected one of $and, $not, $or or a field name",
        "filter",
    ),
    (
        "unknown field operator",
        {"$and": [{"a": 1}, {"price": {"$regex": "x"}}]},
        f"unknown operator '$regex' at filter.$and[1].price; expected one of {OPS}",
        "filter.$and[1].price",
    ),
    (
        "nested dict instead of dotted key",
        {"specs": {"screen": 5}},
        f"unknown operator 'screen' at filter.specs; expected one of {OPS};"
        " for a nested key write a dotted name such as 'specs.screen'",
        "filter.specs",
    ),
    (
        "logical operator inside a field",
        {"a": {"$and": []}},
        f"unknown operator '$and' at filter.a; expected one of {OPS}",
        "filter.a",
    ),
    (
        "non-string operator",
        {"a": {1: 2}},
        f"unknown operator 1 at filter.a; expected one of {OPS}",
        "filter.a",
    ),
    ("no operator", {"a": {}}, "expected at least one operator at filter.a, got {}", "filter.a"),
    (
        "and not a list",
        {"$and": {"a": 1}},
        "expected a list of filters at filter.$and, got {'a': 1}",
        "filter.$and",
    ),
    (
        "or not a list",
        {"$or": "x"},
        "expected a list of filters at filter.$or, got 'x'",
        "filter.$or",
    ),
    (
        "not neither dict nor list",
        {"$not": 1},
        "expected a dict or a list of filters at filter.$not, got 1",
        "filter.$not",
    ),
    ("and item", {"$and": ["x"]}, "expected a dict at filter.$and[0], got 'x'", "filter.$and[0]"),
    (
        "not item",
        {"$not": [{"a": 1}, 3]},
        "expected a dict at filter.$not[1], got 3",
        "filter.$not[1]",
    ),
    (
        "too deep and",
        DEEP_AND,
        f"filter is nested too deeply at {DEEP_AND_PATH}; the limit is {MAX_DEPTH} levels",
        DEEP_AND_PATH,
    ),
    (
        "too deep not",
        DEEP_NOT,
        f"filter is nested too deeply at {DEEP_NOT_PATH}; the limit is {MAX_DEPTH} levels",
        DEEP_NOT_PATH,
    ),
    (
        "in not a list",
        {"a": {"$in": "x"}},
        "expected a list at filter.a.$in, got 'x'",
        "filter.a.$in",
    ),
    (
        "nin not a list",
        {"a": {"$nin": {"x": 1}}},
        "expected a list at filter.a.$nin, got {'x': 1}",
        "filter.a.$nin",
    ),
    (
        "in item",
        {"a": {"$in": [1, [2]]}},
        f"{SCALAR} at filter.a.$in[1], got [2]",
        "filter.a.$in[1]",
    ),
    (
        "eq list",
        {"a": [1, 2]},
        f"{SCALAR} at filter.a, got [1, 2];"
        " use $in to match any of several values, $contains for array elements",
        "filter.a",
    ),
    (
        "eq dict",
        {"a": {"$eq": {"b": 1}}},
        f"{SCALAR} at filter.a.$eq, got {{'b': 1}}",
        "filter.a.$eq",
    ),
    (
        "ne dict",
        {"a": {"$ne": {"b": 1}}},
        f"{SCALAR} at filter.a.$ne, got {{'b': 1}}",
        "filter.a.$ne",
    ),
    ("decimal", {"a": Decimal("1")}, f"{SCALAR} at filter.a, got Decimal('1')", "filter.a"),
    (
        "date",
        {"a": datetime.date(2024, 1, 2)},
        f"{SCALAR} at filter.a, got datetime.date(2024, 1, 2);"
        " write dates as ISO-8601 strings, e.g. value.isoformat()",
        "filter.a",
    ),
    (
        "datetime in gt",
        {"a": {"$gt": datetime.datetime(2024, 1, 2)}},
        f"{ORDERABLE} at filter.a.$gt, got datetime.datetime(2024, 1, 2, 0, 0);"
        " write dates as ISO-8601 strings, e.g. value.isoformat()",
        "filter.a.$gt",
    ),
    ("nan", {"a": math.nan}, "expected a finite number at filter.a, got nan", "filter.a"),
    (
        "inf in in",
        {"a": {"$in": [math.inf]}},
        "expected a finite number at filter.a.$in[0], got inf",
        "filter.a.$in[0]",
    ),
    (
        "-inf in gt",
        {"a": {"$gt": -math.inf}},
        "expected a finite number at filter.a.$gt, got -inf",
        "filter.a.$gt",
    ),
    (
        "huge int",
        {"a": 10**1000},
        "integer too large at filter.a; the limit is 1000 digits",
        "filter.a",
    ),
    (
        "NUL in value",
        {"a": "x\x00"},
        "the string at filter.a contains a NUL (\\x00) character, got 'x\\x00'",
        "filter.a",
    ),
    (
        "NUL in like pattern",
        {"a": {"$like": "%\x00"}},
        "the string at filter.a.$like contains a NUL (\\x00) character, got '%\\x00'",
        "filter.a.$like",
    ),
    (
        "lone surrogate",
        {"a": "\ud800"},
        "the string at filter.a is not valid unicode (it holds a lone surrogate), got '\\ud800'",
        "filter.a",
    ),
    (
        "gt null",
        {"a": {"$gt": None}},
        f"{ORDERABLE} at filter.a.$gt, got None; null has no order",
        "filter.a.$gt",
    ),
    ("lt list", {"a": {"$lt": [1]}}, f"{ORDERABLE} at filter.a.$lt, got [1]", "filter.a.$lt"),
    (
        "between three",
        {"a": {"$between": [1, 2, 3]}},
        "expected [low, high] at filter.a.$between, got [1, 2, 3]",
        "filter.a.$between",
    ),
    (
        "between scalar",
        {"a": {"$between": 1}},
        "expected [low, high] at filter.a.$between, got 1",
        "filter.a.$between",
    ),
    (
        "between mixed",
        {"a": {"$between": [1, "2"]}},
        "expected [low, high] of one type (two numbers, two strings or two booleans)"
        " at filter.a.$between, got [1, '2']",
        "filter.a.$between",
    ),
    (
        "between bool and int",
        {"a": {"$between": [True, 2]}},
        "expected [low, high] of one type (two numbers, two strings or two booleans)"
        " at filter.a.$between, got [True, 2]",
        "filter.a.$between",
    ),
    (
        "between null",
        {"a": {"$between": [None, 1]}},
        f"{ORDERABLE} at filter.a.$between[0], got None; null has no order",
        "filter.a.$between[0]",
    ),
    (
        "like number",
        {"a": {"$like": 5}},
        "expected a string pattern at filter.a.$like, got 5",
        "filter.a.$like",
    ),
    (
        "ilike trailing escape",
        {"a": {"$ilike": "ab\\"}},
        "pattern ends with an unescaped backslash at filter.a.$ilike, got 'ab\\\\';"
        " write two backslashes to match one",
        "filter.a.$ilike",
    ),
    (
        "exists not bool",
        {"a": {"$exists": 1}},
        "expected true or false at filter.a.$exists, got 1",
        "filter.a.$exists",
    ),
    (
        "contains dict",
        {"tags": {"$contains": {"x": 1}}},
        f"{SCALAR} at filter.tags.$contains, got {{'x': 1}}",
        "filter.tags.$contains",
    ),
    (
        "contains nested list",
        {"tags": {"$contains": ["a", ["b"]]}},
        f"{SCALAR} at filter.tags.$contains[1], got ['b']",
        "filter.tags.$contains[1]",
    ),
    (
        "contains_any scalar",
        {"tags": {"$contains_any": "a"}},
        "expected a list at filter.tags.$contains_any, got 'a'",
        "filter.tags.$contains_any",
    ),
]


@pytest.mark.parametrize(
    ("filter_", "message", "path"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_error(filter_: Any, message: str, path: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(filter_, TABLE)
    assert str(info.value) == message
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


def test_escaped_trailing_backslash_is_fine() -> None:
    assert _compile({"a": {"$like": "ab\\\\"}})[1] == (["a"], ["a"], "ab\\\\")


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter({"a": {"$like": 1.5}, "b": 1}, TABLE)
    assert "1.5" in str(info.value)
    with pytest.raises(FilterError) as info:
        compile_filter({"a": {"$in": "x" * 10_000}}, TABLE)
    assert len(str(info.value)) < 200
    nested: Any = 1
    for _ in range(10_000):
        nested = [nested]
    with pytest.raises(FilterError) as info:
        compile_filter({"a": nested}, TABLE)
    assert len(str(info.value)) < 200


# -- properties: keys and values never reach the SQL text --------------------

texts = st.text(max_size=200) | st.sampled_from(
    ["'", '"', "\\", "$", ";", "--", "' OR 1=1 --", "%s", "%(x)s", "{}", "{0}", "\x00", "a.0"]
)


def _valid_key(key: str) -> bool:
    return (
        bool(key)
        and not key.startswith("$")
        and "" not in key.split(".")
        and "\x00" not in key
        and key.count(".") < MAX_DEPTH
    )


SHAPES: dict[str, Callable[[Any], Any]] = {
    "eq": lambda v: v,
    "ne": lambda v: {"$ne": v},
    "gt": lambda v: {"$gt": v},
    "between": lambda v: {"$between": [v, v]},
    "in": lambda v: {"$in": [v, v]},
    "like": lambda v: {"$like": v},
    "exists": lambda v: {"$exists": True},
    "contains": lambda v: {"$contains": v},
}


@given(key=texts, value=texts, shape=st.sampled_from(sorted(SHAPES)))
def test_keys_and_values_never_reach_the_sql_text(key: str, value: str, shape: str) -> None:
    make = SHAPES[shape]
    try:
        got = compile_filter({key: make(value)}, TABLE)
    except FilterError:
        bad_key = not _valid_key(key)
        bad_value = "\x00" in value or (shape == "like" and value.endswith("\\"))
        assert bad_key or bad_value
        return
    plain = compile_filter({"a": make("b")}, TABLE).as_string()
    guarded = compile_filter({"a.0": make("b")}, TABLE).as_string()
    # The text is one of two fixed strings, so nothing of the key or value is in it.
    assert got.as_string() in ({plain} if "." not in key else {plain, guarded})


numbers = st.integers() | st.floats()


VALUE_SHAPES: dict[str, Callable[[Any], Any]] = {
    "eq": lambda v: v,
    "gte": lambda v: {"$gte": v},
    "nin": lambda v: {"$nin": [v]},
}


# keys and values the compiler accepts; the refused ones have tests of their own above
valid_keys = texts.filter(_valid_key)
finite = st.integers() | st.floats(allow_nan=False, allow_infinity=False)


@given(key=valid_keys, value=finite | st.booleans() | st.none())
def test_shape_depends_only_on_value_type(key: str, value: Any) -> None:
    canonical_value = {bool: True, type(None): None}.get(type(value), 1)
    # null has no order: {"$gte": None} is refused (a case of the error table above)
    shapes = ["eq", "nin"] if value is None else list(VALUE_SHAPES)
    for make in (VALUE_SHAPES[name] for name in shapes):
        got = compile_filter({key: make(value)}, TABLE).as_string()
        canonical = make(canonical_value)
        want = {
            compile_filter({"a": canonical}, TABLE).as_string(),
            compile_filter({"a.0": canonical}, TABLE).as_string(),
        }
        assert got in want


json_like = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            texts
            | st.integers()
            | st.sampled_from(["$and", "$or", "$not", "$in", "$gt", "$contains", "$exists"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@given(filter_=json_like)
def test_any_input_compiles_or_raises_filter_error(filter_: Any) -> None:
    try:
        frag = compile_filter(filter_, TABLE)
    except FilterError as e:
        assert e.path.startswith("filter")
        assert str(e) == str(e).strip() and not str(e).endswith(".")
        return
    assert frag.as_string().count("%s") == len(frag.params)
