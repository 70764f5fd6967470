"""Maximal marginal relevance (MMR) over numpy arrays.

MMR picks `k` of `n` candidates one at a time. Each step takes the candidate
that maximises

    lambda_mult * sim(query, c) - (1 - lambda_mult) * max(sim(c, s) for s already picked)

with `sim` the cosine similarity. The first pick is always the candidate most
similar to the query: with nothing picked yet there is no redundancy term, and
this holds for every `lambda_mult`, including 0 (after the first pick,
`lambda_mult=0` then chooses purely for diversity). Ties go to the lowest index,
so the result is deterministic.

Cost is O(k·n·d) time and O(n·d) memory: one matrix-vector product per pick.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .errors import InputError

__all__ = ["mmr_select"]


def _unit_rows(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Zero vectors stay zero (similarity 0 to everything) instead of 0/0 = NaN.
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    safe = np.where(norms > 0.0, norms, 1.0)
    return matrix / safe


def mmr_select(
    query: npt.ArrayLike,
    candidates: npt.ArrayLike,
    k: int,
    lambda_mult: float = 0.5,
) -> list[int]:
    """Indices of up to `k` candidates, in MMR selection order.

    `query` has shape (d,) and `candidates` shape (n, d). `lambda_mult` in
    [0, 1] trades relevance (1) against diversity (0). Returns
    `min(k, n)` distinct indices; the first is the candidate nearest the query.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InputError(f"k must be an integer, got {k!r}")
    if k < 0:
        raise InputError(f"k must not be negative, got {k}")
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float, np.floating)):
        raise InputError(f"lambda_mult must be a number in [0, 1], got {lambda_mult!r}")
    lam = float(lambda_mult)
    if not (0.0 <= lam <= 1.0):  # also rejects NaN
        raise InputError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")

    q = np.asarray(query, dtype=np.float64)
    c = np.asarray(candidates, dtype=np.float64)
    if q.ndim != 1:
        raise InputError(f"query must be a 1-d vector, got shape {q.shape}")
    if c.ndim != 2:
        # An empty list of candidates arrives as shape (0,): treat it as no candidates.
        if c.size == 0:
            return []
        raise InputError(f"candidates must be a 2-d array (n, d), got shape {c.shape}")
    n, d = c.shape
    if n == 0 or k == 0:
        return []
    if d != q.shape[0]:
        raise InputError(f"query has {q.shape[0]} dimensions but candidates have {d}")
    if not (np.isfinite(q).all() and np.isfinite(c).all()):
        raise InputError("query and candidates must not contain NaN or infinity")

    # Scale before normalising so huge (but finite) components cannot overflow
    # the norm; cosine similarity does not depend on scale.
    q_unit = _unit_rows(_rescale(q))
    c_unit = _unit_rows(_rescale(c))

    relevance = c_unit @ q_unit
    picked: list[int] = [int(np.argmax(relevance))]
    limit = min(k, n)
    if limit == 1:
        return picked

    # Highest similarity of each candidate to anything already picked; updated
    # with one product per step instead of recomputing against all picks.
    redundancy = c_unit @ c_unit[picked[0]]
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    scores = np.empty(n, dtype=np.float64)
    while len(picked) < limit:
        np.multiply(relevance, lam, out=scores)
        scores -= (1.0 - lam) * redundancy
        scores[~available] = -math.inf
        best = int(np.argmax(scores))
        picked.append(best)
        available[best] = False
        np.maximum(redundancy, c_unit @ c_unit[best], out=redundancy)
    return picked


def _rescale(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    peak = np.max(np.abs(values), axis=-1, keepdims=True)
    return values / np.where(peak > 0.0, peak, 1.0)
