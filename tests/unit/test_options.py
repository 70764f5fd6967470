"""The one parser of search options: known names checked, unknown ones refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_pgvstore import InputError
from langchain_pgvstore._options import _ACCEPTED, SearchOptions, parse_options

KINDS = sorted(_ACCEPTED)


@pytest.mark.parametrize("kind", KINDS)
def test_no_options_are_the_defaults(kind) -> None:
    assert parse_options(kind, 4, {}) == SearchOptions()


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("similarity", "filtr", "unknown search option 'filtr' (did you mean 'filter'?)"),
        ("similarity", "ef_serch", "(did you mean 'ef_search'?)"),
        ("similarity", "k1", "search option 'k1' does not apply to similarity search"),
        ("keyword", "ef_search", "does not apply to keyword search"),
        ("mmr", "fusion", "does not apply to mmr search"),
        ("hybrid", "min_ef_search", "unknown search option 'min_ef_search'"),
        ("hybrid", "custom_plan", "unknown search option 'custom_plan'"),
        ("similarity", "index_scan", "unknown search option 'index_scan'"),
    ],
)
def test_unknown_or_misplaced_options_are_refused(kind, name, message) -> None:
    with pytest.raises(InputError) as info:
        parse_options(kind, 4, {name: 1})
    assert message in str(info.value)
    assert "expected one of" in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ef_search": True}, "ef_search must be an integer in [1, 1000], got True"),
        ({"ef_search": 1001}, "ef_search must be an integer in [1, 1000]"),
        ({"probes": 0}, "probes must be an integer in [1, 32768]"),
        ({"max_scan_tuples": True}, "max_scan_tuples must be an integer"),
        ({"max_scan_tuples": 10**20}, "max_scan_tuples must be an integer"),
        ({"iterative_scan": "fast"}, "iterative_scan must be one of off, relaxed_order"),
        ({"exact": 1}, "exact must be True or False"),
        ({"exact_search_threshold": -1}, "exact_search_threshold must be an integer"),
        ({"rerank_pool": 0}, "rerank_pool must be an integer in [1, 1000]"),
        ({"statement_timeout": 0}, "statement_timeout must be a positive number"),
        ({"statement_timeout": math.inf}, "statement_timeout must be a positive number"),
        ({"statement_timeout": True}, "statement_timeout must be a positive number"),
        ({"k1": -1}, "k1 must be a number in [0, 1e+06]"),
        ({"k1": math.nan}, "k1 must be a number"),
        ({"b": 1.5}, "b must be a number in [0, 1]"),
        ({"fetch_k": 2}, "fetch_k must be at least k, got fetch_k=2 and k=4"),
        ({"fusion": "max"}, "fusion must be one of rrf, weighted"),
        ({"rrf_k": -1}, "rrf_k must be an integer in [0, "),
        ({"weights": (1.0,)}, "weights must be a pair of numbers"),
        ({"weights": "ab"}, "weights must be a pair of numbers"),
        ({"weights": (1.0, -1.0)}, "keyword weight must be a number"),
    ],
)
def test_bad_values_are_input_errors(options, message) -> None:
    with pytest.raises(InputError) as info:
        parse_options("hybrid", 4, options)
    assert message in str(info.value)


def test_values_are_normalised_and_hashable() -> None:
    options = parse_options(
        "hybrid", 4, {"weights": [1, 2], "k1": 2, "fetch_k": 8, "statement_timeout": 1}
    )
    assert options.weights == (1.0, 2.0) and options.k1 == 2.0
    assert hash(options) == hash(parse_options("hybrid", 4, {"weights": (1.0, 2.0), "k1": 2.0,
                                                            "fetch_k": 8, "statement_timeout": 1.0}))  # fmt: skip


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.integers(), max_size=4))
def test_a_name_is_accepted_only_if_the_kind_lists_it(kwargs) -> None:
    for kind in KINDS:
        unknown = set(kwargs) - _ACCEPTED[kind]
        if unknown:
            with pytest.raises(InputError, match="search option"):
                parse_options(kind, 4, kwargs)
