"""MMR selection: properties against a loop-by-loop reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from langchain_pgvstore.errors import InputError
from langchain_pgvstore.mmr import mmr_select

TOL = 1e-9


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(a @ b) / (na * nb)


def objective(query, candidates, picked: list[int], i: int, lam: float) -> float:
    """The MMR score of candidate `i` after `picked`, computed the slow way."""
    relevance = cosine(candidates[i], query)
    if not picked:
        return relevance
    redundancy = max(cosine(candidates[i], candidates[j]) for j in picked)
    return lam * relevance - (1 - lam) * redundancy


# Small integers (zeros included) keep cosine similarities well conditioned
# and make exact duplicates and zero vectors common.
component = st.integers(-4, 4).map(float)


@st.composite
def problems(draw):
    d = draw(st.integers(1, 5))
    n = draw(st.integers(0, 12))
    query = draw(hnp.arrays(np.float64, d, elements=component))
    candidates = draw(hnp.arrays(np.float64, (n, d), elements=component))
    k = draw(st.integers(0, n + 2))
    lam = draw(st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1)))
    return query, candidates, k, lam


@settings(max_examples=150)
@given(problems())
def test_every_pick_maximises_the_mmr_objective(problem):
    query, candidates, k, lam = problem
    picked = mmr_select(query, candidates, k, lam)
    n = len(candidates)
    assert len(picked) == min(k, n)
    assert len(set(picked)) == len(picked)
    assert all(0 <= i < n for i in picked)
    for step, choice in enumerate(picked):
        before = picked[:step]
        rest = [i for i in range(n) if i not in before]
        best = max(objective(query, candidates, before, i, lam) for i in rest)
        assert objective(query, candidates, before, choice, lam) >= best - TOL


@settings(max_examples=100)
@given(problems())
def test_first_pick_is_the_nearest_for_every_lambda(problem):
    query, candidates, k, lam = problem
    assume(len(candidates) > 0 and k > 0)  # else there is no first pick
    first = mmr_select(query, candidates, k, lam)[0]
    assert first == mmr_select(query, candidates, 1, 0.0)[0]
    sims = [cosine(c, query) for c in candidates]
    assert sims[first] >= max(sims) - TOL


@settings(max_examples=100)
@given(problems())
def test_lambda_one_is_similarity_order(problem):
    query, candidates, k, _ = problem
    assume(len(candidates) > 0 and k > 0)  # else nothing is picked
    picked = mmr_select(query, candidates, k, 1.0)
    sims = [cosine(candidates[i], query) for i in picked]
    assert len(sims) == min(k, len(candidates))
    assert all(a >= b - TOL for a, b in zip(sims[:-1], sims[1:], strict=True))
    # Nothing left out is better than what was picked last.
    rest = [cosine(c, query) for i, c in enumerate(candidates) if i not in picked]
    assert all(s <= sims[-1] + TOL for s in rest)


@settings(max_examples=100)
@given(problems())
def test_lambda_zero_is_maximal_diversity(problem):
    query, candidates, k, _ = problem
    assume(min(k, len(candidates)) >= 2)  # a second pick is the first to weigh diversity
    picked = mmr_select(query, candidates, k, 0.0)
    assert len(picked) == min(k, len(candidates))
    for step in range(1, len(picked)):
        before = picked[:step]

        def redundancy(i: int, before: list[int] = before) -> float:
            return max(cosine(candidates[i], candidates[j]) for j in before)

        rest = [i for i in range(len(candidates)) if i not in before]
        assert redundancy(picked[step]) <= min(redundancy(i) for i in rest) + TOL


@settings(max_examples=100)
@given(problems())
def test_selection_order_is_kept(problem):
    # Asking for fewer gives a prefix of asking for more: the order is the
    # order of selection, not re-sorted afterwards.
    query, candidates, k, lam = problem
    full = mmr_select(query, candidates, len(candidates), lam)
    assert mmr_select(query, candidates, k, lam) == full[:k]


def test_known_example():
    query = np.array([1.0, 0.0])
    # 1 nearly duplicates 0; 2 is relevant but different; 3 is orthogonal to the query.
    candidates = np.array([[0.95, 0.31], [0.95, 0.32], [0.9, -0.44], [0.0, 1.0]])
    assert mmr_select(query, candidates, 4, 1.0) == [0, 1, 2, 3]
    assert mmr_select(query, candidates, 4, 0.5) == [0, 2, 1, 3]
    # Pure diversity: the candidate least like the first pick, whatever the query.
    assert mmr_select(query, candidates, 2, 0.0) == [0, 3]


def test_zero_vectors_do_not_produce_nan():
    picked = mmr_select(np.zeros(3), np.zeros((4, 3)), 4, 0.5)
    assert picked == [0, 1, 2, 3]  # all ties: lowest index first
    picked = mmr_select(np.array([1.0, 0, 0]), np.array([[0.0, 0, 0], [1.0, 0, 0]]), 2, 0.5)
    assert picked == [1, 0]


def test_scale_does_not_matter_and_huge_values_do_not_overflow():
    rng = np.random.default_rng(3)
    query, candidates = rng.normal(size=8), rng.normal(size=(20, 8))
    expected = mmr_select(query, candidates, 10, 0.3)
    assert mmr_select(query * 1e300, candidates * 1e300, 10, 0.3) == expected
    assert mmr_select(query * 1e-300, candidates * 1e-300, 10, 0.3) == expected


def test_accepts_lists_and_float32():
    assert mmr_select([1.0, 0.0], [[0.0, 1.0], [1.0, 0.0]], 1) == [1]
    q = np.array([1, 0], dtype=np.float32)
    assert mmr_select(q, np.eye(2, dtype=np.float32), 2, 0.5) == [0, 1]
    assert mmr_select([1.0, 0.0], [], 3) == []


@pytest.mark.parametrize(
    ("query", "candidates", "k", "lam", "message"),
    [
        ([1.0], [[1.0]], 1, 1.5, "lambda_mult must be in"),
        ([1.0], [[1.0]], 1, -0.1, "lambda_mult must be in"),
        ([1.0], [[1.0]], 1, math.nan, "lambda_mult must be in"),
        ([1.0], [[1.0]], 1, "0.5", "lambda_mult must be a number"),
        ([1.0], [[1.0]], -1, 0.5, "k must not be negative"),
        ([1.0], [[1.0]], 1.5, 0.5, "k must be an integer"),
        ([1.0], [[1.0]], True, 0.5, "k must be an integer"),
        ([1.0, 0.0], [[1.0]], 1, 0.5, "dimensions"),
        ([[1.0]], [[1.0]], 1, 0.5, "query must be a 1-d vector"),
        ([1.0], [1.0], 1, 0.5, "candidates must be a 2-d array"),
        ([math.nan], [[1.0]], 1, 0.5, "NaN"),
        ([1.0], [[math.inf]], 1, 0.5, "NaN or infinity"),
    ],
)
def test_invalid_input(query, candidates, k, lam, message):
    with pytest.raises(InputError, match=message):
        mmr_select(query, candidates, k, lam)
