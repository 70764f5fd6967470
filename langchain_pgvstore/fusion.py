"""Reference rank fusion over typed hits.

These functions are the specification of hybrid search's fusion step: the SQL
built by `langchain_pgvstore._sql.fusion.fuse` is tested to return exactly
what they return. Each leg is a list of `Hit`s ordered best first, with
unique ids and scores where higher is better (pass `-distance` for a leg
ranked by distance).

Results are sorted by fused score, highest first; equal scores are ordered by
id in code-point order (what PostgreSQL's `COLLATE "C"` gives for UTF-8), so
the output is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import InputError

__all__ = ["Hit", "rrf", "weighted"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked result: a document id and its score (higher is better)."""

    id: str
    score: float


def _check_legs(legs: Sequence[Sequence[Hit]]) -> None:
    for n, leg in enumerate(legs):
        seen: set[str] = set()
        for hit in leg:
            if hit.id in seen:
                raise InputError(f"leg {n} lists id {hit.id!r} more than once")
            seen.add(hit.id)
            if not math.isfinite(hit.score):
                raise InputError(f"leg {n} has a non-finite score {hit.score!r} for {hit.id!r}")


def _check_weights(weights: Sequence[float], legs: int) -> list[float]:
    if len(weights) != legs:
        raise InputError(f"expected {legs} weights (one per leg), got {len(weights)}")
    out = [float(w) for w in weights]
    for w in out:
        if not math.isfinite(w) or w < 0:
            raise InputError(f"weights must be finite and non-negative, got {list(weights)!r}")
    return out


def _ranked(scores: dict[str, float]) -> list[Hit]:
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [Hit(id_, score) for id_, score in ordered]


def rrf(
    legs: Sequence[Sequence[Hit]],
    k: int = 60,
    weights: Sequence[float] | None = None,
) -> list[Hit]:
    """Reciprocal rank fusion: sum over legs of `weight / (k + rank)`, rank starting at 1.

    A document missing from a leg gets nothing from it. Only the order of each
    leg matters, not its scores. `weights` defaults to 1 for every leg.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InputError(f"rrf k must be a non-negative integer, got {k!r}")
    _check_legs(legs)
    ws = _check_weights(weights, len(legs)) if weights is not None else [1.0] * len(legs)
    fused: dict[str, float] = {}
    # Legs are summed in order, starting from 0.0, so the floating-point result
    # matches the SQL `coalesce(leg1, 0) + coalesce(leg2, 0)` bit for bit.
    for leg, w in zip(legs, ws, strict=True):
        for rank, hit in enumerate(leg, start=1):
            fused[hit.id] = fused.get(hit.id, 0.0) + w / (k + rank)
    return _ranked(fused)


def weighted(
    legs: Sequence[Sequence[Hit]],
    weights: Sequence[float] = (0.5, 0.5),
    normalise: Literal["minmax", "none"] = "minmax",
) -> list[Hit]:
    """Weighted sum of (normalised) scores.

    With `normalise="minmax"` each leg's scores are mapped to [0, 1] by
    `(s - min) / (max - min)`; a leg whose scores are all equal maps them to 1.
    A document missing from a leg gets 0 from it.
    """
    if normalise not in ("minmax", "none"):
        raise InputError(f"unknown normalisation {normalise!r}; expected 'minmax' or 'none'")
    _check_legs(legs)
    ws = _check_weights(weights, len(legs))
    fused: dict[str, float] = {}
    for leg, w in zip(legs, ws, strict=True):
        if not leg:
            continue
        lo = min(h.score for h in leg)
        hi = max(h.score for h in leg)
        for hit in leg:
            if normalise == "none":
                value = hit.score
            elif hi == lo:
                value = 1.0
            else:
                value = (hit.score - lo) / (hi - lo)
            fused[hit.id] = fused.get(hit.id, 0.0) + w * value
    return _ranked(fused)
