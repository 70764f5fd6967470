"""PGVStoreTranslator: structured queries become filters that compile."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.structured_query import (
    Comparator,
    Comparison,
    FilterDirective,
    Operation,
    Operator,
    StructuredQuery,
)

from langchain_pgvstore._sql.filters import compile_filter
from langchain_pgvstore.config import Table
from langchain_pgvstore.self_query import PGVStoreTranslator

TABLE = Table("public", "docs")
T = PGVStoreTranslator()


@pytest.mark.parametrize(
    ("comparator", "value", "expected"),
    [
        (Comparator.EQ, "docs", {"source": {"$eq": "docs"}}),
        (Comparator.NE, 1, {"source": {"$ne": 1}}),
        (Comparator.LT, 2.5, {"source": {"$lt": 2.5}}),
        (Comparator.LTE, 3, {"source": {"$lte": 3}}),
        (Comparator.GT, "b", {"source": {"$gt": "b"}}),
        (Comparator.GTE, True, {"source": {"$gte": True}}),
        (Comparator.IN, ["a", 1], {"source": {"$in": ["a", 1]}}),
        (Comparator.NIN, ("a",), {"source": {"$nin": ["a"]}}),
        (Comparator.LIKE, "%doc%", {"source": {"$like": "%doc%"}}),
        (Comparator.CONTAIN, "x", {"source": {"$contains": "x"}}),
    ],
)
def test_comparators(comparator: Comparator, value: Any, expected: dict[str, Any]) -> None:
    got = Comparison(comparator=comparator, attribute="source", value=value).accept(T)
    assert got == expected
    compile_filter(got, TABLE)


def test_operators() -> None:
    a = Comparison(comparator=Comparator.EQ, attribute="a", value=1)
    b = Comparison(comparator=Comparator.GT, attribute="b.c", value=2)
    assert Operation(operator=Operator.AND, arguments=[a, b]).accept(T) == {
        "$and": [{"a": {"$eq": 1}}, {"b.c": {"$gt": 2}}]
    }
    assert Operation(operator=Operator.OR, arguments=[a, b]).accept(T) == {
        "$or": [{"a": {"$eq": 1}}, {"b.c": {"$gt": 2}}]
    }
    assert Operation(operator=Operator.NOT, arguments=[a]).accept(T) == {"$not": {"a": {"$eq": 1}}}
    assert Operation(operator=Operator.NOT, arguments=[a, b]).accept(T) == {
        "$not": [{"a": {"$eq": 1}}, {"b.c": {"$gt": 2}}]
    }
    nested = Operation(
        operator=Operator.AND,
        arguments=[Operation(operator=Operator.NOT, arguments=[a]), b],
    ).accept(T)
    frag = compile_filter(nested, TABLE)
    assert frag.as_string().startswith('(NOT ("metadata" @> %s) AND CASE')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"date": "2024-01-31", "type": "date"}, "2024-01-31"),
        ({"datetime": "2024-01-31T10:00:00Z", "type": "datetime"}, "2024-01-31T10:00:00Z"),
        (datetime.date(2024, 1, 31), "2024-01-31"),
        (datetime.datetime(2024, 1, 31, 10, 0), "2024-01-31T10:00:00"),
        ([{"date": "2024-01-31", "type": "date"}, "x"], ["2024-01-31", "x"]),
    ],
)
def test_dates_become_iso_strings(value: Any, expected: Any) -> None:
    op = "$in" if isinstance(expected, list) else "$gte"
    comparator = Comparator.IN if op == "$in" else Comparator.GTE
    got = Comparison(comparator=comparator, attribute="day", value=value).accept(T)
    assert got == {"day": {op: expected}}
    compile_filter(got, TABLE)


def test_structured_query() -> None:
    comparison = Comparison(comparator=Comparator.EQ, attribute="a", value="x")
    query = StructuredQuery(query="tea", filter=comparison)
    assert T.visit_structured_query(query) == ("tea", {"filter": {"a": {"$eq": "x"}}})
    assert T.visit_structured_query(StructuredQuery(query="tea", filter=None)) == ("tea", {})


def test_all_comparators_and_operators_are_allowed() -> None:
    assert set(T.allowed_comparators or ()) == set(Comparator)
    assert set(T.allowed_operators or ()) == set(Operator)


# -- random structured queries always compile --------------------------------

ATTRIBUTES = st.sampled_from(["source", "year", "specs.screen", "tags", "名前"])
SCALARS = st.one_of(
    st.text(
        alphabet=st.characters(exclude_characters="\x00\\", exclude_categories=("Cs",)), max_size=10
    ),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


def _comparison(comparator: Comparator) -> st.SearchStrategy[Comparison]:
    if comparator in (Comparator.IN, Comparator.NIN):
        values: st.SearchStrategy[Any] = st.lists(SCALARS, max_size=3)
    elif comparator is Comparator.LIKE:
        values = st.text(alphabet="ab%_", max_size=5)
    elif comparator is Comparator.CONTAIN:
        values = SCALARS | st.lists(SCALARS, max_size=3)
    elif comparator in (Comparator.EQ, Comparator.NE):
        values = SCALARS | st.none()
    else:
        values = SCALARS | st.dates().map(lambda d: {"date": d.isoformat(), "type": "date"})
    return st.builds(
        lambda a, v: Comparison(comparator=comparator, attribute=a, value=v), ATTRIBUTES, values
    )


comparisons = st.sampled_from(list(Comparator)).flatmap(_comparison)
directives: st.SearchStrategy[FilterDirective] = st.recursive(
    comparisons,
    lambda inner: st.builds(
        lambda op, args: Operation(operator=op, arguments=args),
        st.sampled_from(list(Operator)),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
)


@given(directive=directives, query=st.text(max_size=20))
def test_random_structured_queries_compile(directive: FilterDirective, query: str) -> None:
    text, kwargs = T.visit_structured_query(StructuredQuery(query=query, filter=directive))
    assert text == query
    frag = compile_filter(kwargs["filter"], TABLE)
    assert frag.as_string().count("%s") == len(frag.params)
