"""Properties of the reference fusions `rrf` and `weighted`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_pgvstore.errors import InputError
from langchain_pgvstore.fusion import Hit, rrf, weighted

ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=3)


@st.composite
def leg(draw, lo: float = -100.0, hi: float = 100.0) -> list[Hit]:
    scores = draw(
        st.dictionaries(ids, st.one_of(st.sampled_from([lo, hi]), st.floats(lo, hi)), max_size=10)
    )
    # Best first, ties by id: the order the SQL ranks rows in.
    return [Hit(i, s) for i, s in sorted(scores.items(), key=lambda x: (-x[1], x[0]))]


legs2 = st.tuples(leg(), leg()).map(list)
weights2 = st.tuples(st.floats(0, 5), st.floats(0, 5))


def is_sorted(hits: list[Hit]) -> bool:
    keys = [(-h.score, h.id) for h in hits]
    return keys == sorted(keys)


@settings(max_examples=100)
@given(legs2, st.integers(0, 100), st.one_of(st.none(), weights2))
def test_rrf_definition(legs, k, weights):
    fused = rrf(legs, k=k, weights=weights)
    assert is_sorted(fused)
    assert {h.id for h in fused} == {h.id for lg in legs for h in lg}
    ws = weights or (1.0, 1.0)
    for hit in fused:
        expected = sum(
            w / (k + rank)
            for lg, w in zip(legs, ws, strict=True)
            for rank, h in enumerate(lg, start=1)
            if h.id == hit.id
        )
        assert math.isclose(hit.score, expected, rel_tol=1e-12, abs_tol=1e-15)


@settings(max_examples=60)
@given(legs2)
def test_rrf_uses_only_the_order(legs):
    # Replacing every score keeps the result (scores serve only to order).
    renumbered = [[Hit(h.id, float(-i)) for i, h in enumerate(lg)] for lg in legs]
    assert rrf(legs) == rrf(renumbered)


@settings(max_examples=60)
@given(legs2)
def test_rrf_with_equal_weights_is_symmetric(legs):
    assert rrf(legs) == rrf(list(reversed(legs)))


def test_rrf_agreement_wins():
    a = [Hit("x", 9), Hit("both", 8)]
    b = [Hit("y", 9), Hit("both", 8)]
    assert [h.id for h in rrf([a, b])] == ["both", "x", "y"]
    assert rrf([a, b])[0].score == pytest.approx(2 / 62)
    # Tie between x and y (both rank 1 in one leg) is broken by id.
    assert rrf([a, b], k=0, weights=(1, 1))[1:] == [Hit("x", 1.0), Hit("y", 1.0)]


@settings(max_examples=100)
@given(legs2, weights2)
def test_weighted_minmax_bounds_and_definition(legs, weights):
    fused = weighted(legs, weights=weights)
    assert is_sorted(fused)
    assert {h.id for h in fused} == {h.id for lg in legs for h in lg}
    for hit in fused:
        assert -1e-12 <= hit.score <= sum(weights) + 1e-12
    # The best of each leg gets that leg's full weight from it.
    for lg, w in zip(legs, weights, strict=True):
        if lg:
            top = next(h for h in fused if h.id == lg[0].id)
            assert top.score >= w - 1e-12


@settings(max_examples=60)
@given(
    # Integer scores, power-of-two scales and integer shifts keep the arithmetic
    # exact, so the property is not blurred by rounding.
    st.tuples(leg(-1000, 1000), leg()).map(
        lambda ls: [[Hit(h.id, float(round(h.score))) for h in ls[0]], ls[1]]
    ),
    st.sampled_from([0.25, 0.5, 2.0, 8.0]),
    st.integers(-50, 50),
)
def test_weighted_minmax_ignores_positive_affine_changes(legs, scale, shift):
    moved = [[Hit(h.id, h.score * scale + shift) for h in legs[0]], legs[1]]
    a = {h.id: h.score for h in weighted(legs)}
    b = {h.id: h.score for h in weighted(moved)}
    assert a.keys() == b.keys()
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=1e-6, abs_tol=1e-6)


def test_weighted_equal_scores_normalise_to_one_and_none_keeps_raw():
    a = [Hit("p", 3.0), Hit("q", 3.0)]
    b = [Hit("q", 10.0), Hit("r", 0.0)]
    assert weighted([a, b], weights=(0.5, 0.5)) == [Hit("q", 1.0), Hit("p", 0.5), Hit("r", 0.0)]
    assert weighted([a, b], weights=(1, 2), normalise="none") == [
        Hit("q", 23.0),
        Hit("p", 3.0),
        Hit("r", 0.0),
    ]


def test_empty_legs():
    assert rrf([[], []]) == []
    assert weighted([[], [Hit("a", 1.0)]]) == [Hit("a", 0.5)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rrf([[Hit("a", 1), Hit("a", 2)]]), "more than once"),
        (lambda: rrf([[Hit("a", math.nan)]]), "non-finite"),
        (lambda: rrf([[Hit("a", 1)]], k=-1), "non-negative integer"),
        (lambda: rrf([[Hit("a", 1)]], k=1.5), "non-negative integer"),  # type: ignore[arg-type]
        (lambda: rrf([[Hit("a", 1)]], weights=(1, 2)), "expected 1 weights"),
        (lambda: weighted([[], []], weights=(1, -1)), "non-negative"),
        (lambda: weighted([[], []], weights=(1, math.inf)), "finite"),
        (lambda: weighted([[], []], normalise="zscore"), "unknown normalisation"),  # type: ignore[arg-type]
    ],
)
def test_invalid_input(call, message):
    with pytest.raises(InputError, match=message):
        call()
