"""Rank fusion in SQL: two ranked legs `(id, score)` fused in one statement.

`fuse` is the SQL twin of `langchain_pgvstore.fusion` (the Python reference);
the tests check that both return the same ids, scores and order.
"""

from __future__ import annotations

import math
from typing import Literal

from psycopg import sql

from .. import _validate as check
from ..errors import InputError
from . import Frag

__all__ = ["fuse"]


def _ranked_leg(leg: Frag, name: str, lower_is_better: bool, fetch_k: int | None) -> Frag:
    # Rank from the scores themselves (ties by id) rather than trusting a
    # subquery's ORDER BY to survive; flip distances so higher is better.
    order = sql.SQL("ASC") if lower_is_better else sql.SQL("DESC")
    score = sql.SQL("-l.score") if lower_is_better else sql.SQL("l.score")
    ranked = (
        Frag(
            sql.SQL("{name} AS (SELECT * FROM (SELECT l.id, {score}::float8 AS score,").format(
                name=sql.Identifier(name), score=score
            )
            + sql.SQL(
                ' row_number() OVER (ORDER BY l.score {order}, l.id COLLATE "C") AS rank'
            ).format(order=order)
            + sql.SQL(" FROM (")
        )
        + leg
    )
    if fetch_k is None:
        return ranked + Frag(sql.SQL(") AS l(id, score)) AS r)"))
    return ranked + Frag(sql.SQL(") AS l(id, score)) AS r WHERE rank <= %s)"), (fetch_k,))


def fuse(
    vector_leg: Frag,
    keyword_leg: Frag,
    k: int,
    *,
    method: Literal["rrf", "weighted"] = "rrf",
    rrf_k: int = 60,
    weights: tuple[float, float] | None = None,
    fetch_k: int | None = None,
    vector_is_distance: bool = True,
) -> Frag:
    """One statement fusing two ranked legs into the top `k` rows `(id, score)`.

    Each leg is a query whose first two columns are a unique text id and a
    score. The vector leg's score is a distance (lower is better) unless
    `vector_is_distance=False`; the lexical leg's is higher-is-better. Ranks
    are recomputed from the scores (ties by id), and with `fetch_k` each leg is
    cut to its best `fetch_k` rows first.

    `method="rrf"`: sum of `weight / (rrf_k + rank)`, weights default (1, 1).
    `method="weighted"`: sum of `weight * minmax(score)`, weights default
    (0.5, 0.5); a leg whose scores are all equal normalises them to 1.
    A document missing from a leg gets 0 from it. Results are ordered by fused
    score, then id (`COLLATE "C"`): exactly `fusion.rrf` / `fusion.weighted`
    applied to the legs with distances negated.
    """
    check.positive_int(k, "k")
    if fetch_k is not None:
        check.positive_int(fetch_k, "fetch_k")
    if method == "rrf":
        default: tuple[float, float] = (1.0, 1.0)
    elif method == "weighted":
        # the middle of the plateau measured on SciFact train (0.4-0.6 within
        # 0.007 nDCG@10; 0.7/0.3 was 0.021 lower): docs/hybrid.md
        default = (0.5, 0.5)
    else:
        raise InputError(f"unknown fusion method {method!r}; expected 'rrf' or 'weighted'")
    if weights is None:
        weights = default
    if len(weights) != 2:
        raise InputError(f"expected 2 weights (vector, keyword), got {len(weights)}")
    wv = check.number_in(weights[0], "vector weight", 0.0, math.inf)
    wl = check.number_in(weights[1], "keyword weight", 0.0, math.inf)

    legs = (
        Frag(sql.SQL("WITH "))
        + _ranked_leg(vector_leg, "v", vector_is_distance, fetch_k)
        + Frag(sql.SQL(", "))
        + _ranked_leg(keyword_leg, "x", False, fetch_k)
    )
    if method == "rrf":
        check.non_negative_int(rrf_k, "rrf_k")
        body = Frag(
            sql.SQL(
                ", fused AS (SELECT coalesce(v.id, x.id) AS id,"
                " coalesce(%s::float8 / (%s::bigint + v.rank), 0)"
                " + coalesce(%s::float8 / (%s::bigint + x.rank), 0) AS score"
                " FROM v FULL OUTER JOIN x ON x.id = v.id)"
            ),
            (wv, rrf_k, wl, rrf_k),
        )
    else:
        # The same arithmetic, in the same order, as fusion.weighted, so the
        # two agree bit for bit.
        norm = sql.SQL(
            ", {n} AS (SELECT id,"
            " CASE WHEN max(score) OVER () = min(score) OVER () THEN 1.0::float8"
            " ELSE (score - min(score) OVER ()) / (max(score) OVER () - min(score) OVER ()) END"
            " AS score FROM {leg})"
        )
        body = Frag(
            norm.format(n=sql.Identifier("vn"), leg=sql.Identifier("v"))
            + norm.format(n=sql.Identifier("xn"), leg=sql.Identifier("x"))
            + sql.SQL(
                ", fused AS (SELECT coalesce(vn.id, xn.id) AS id,"
                " coalesce(%s::float8 * vn.score, 0) + coalesce(%s::float8 * xn.score, 0) AS score"
                " FROM vn FULL OUTER JOIN xn ON xn.id = vn.id)"
            ),
            (wv, wl),
        )
    return (
        legs
        + body
        + Frag(
            sql.SQL(' SELECT id, score FROM fused ORDER BY score DESC, id COLLATE "C" LIMIT %s'),
            (k,),
        )
    )
