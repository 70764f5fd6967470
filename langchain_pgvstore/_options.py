"""Search options: the keyword arguments of every search, parsed once.

Every search method (sync, async, the retriever, hybrid) passes its `**kwargs`
through `parse_options`, which checks each value and refuses any name it does
not know: `similarity_search("q", filtr={...})` must fail, not return
unfiltered rows. Which options a search accepts depends on its kind:

- similarity, mmr and explain: the vector knobs (`ef_search`, `probes`,
  `iterative_scan`, `max_scan_tuples`, `exact`, `exact_search_threshold`,
  `rerank_pool`) and `statement_timeout`;
- keyword: `k1`, `b` and `statement_timeout`;
- hybrid: all of those, and `fetch_k`, `fusion`, `rrf_k`, `weights`;
- every kind: `read_from` and `after`, the read's route (`_routing.py`): they
  choose the server, not the statement, and are not part of its cache key.

The result, `SearchOptions`, is frozen and hashable: together with the
filter's compiled text it is the key of a cached statement.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _validate as check
from ._routing import REPLICA, ReadRoute, route
from .errors import InputError

__all__ = ["DEFAULT_FUSION", "SearchKind", "SearchOptions", "parse_options"]

SearchKind = Literal["similarity", "mmr", "keyword", "hybrid", "explain"]
Fusion = Literal["rrf", "weighted"]
IterativeScan = Literal["off", "relaxed_order", "strict_order"]

#: The fusion a hybrid search uses unless told otherwise (the best on SciFact,
#: docs/hybrid.md); `fusion.py`, `_sql/fusion.py` and the docs follow this.
DEFAULT_FUSION: Fusion = "weighted"

_VECTOR = frozenset(
    {
        "ef_search",
        "probes",
        "iterative_scan",
        "max_scan_tuples",
        "exact",
        "exact_search_threshold",
        "rerank_pool",
    }
)
_KEYWORD = frozenset({"k1", "b"})
_FUSION = frozenset({"fetch_k", "fusion", "rrf_k", "weights"})
#: where the read runs: `read_from="primary"`, `after=<WriteToken or its text>`
_ROUTING = frozenset({"read_from", "after"})
_COMMON = frozenset({"statement_timeout"}) | _ROUTING
_ACCEPTED: dict[str, frozenset[str]] = {
    "similarity": _VECTOR | _COMMON,
    "mmr": _VECTOR | _COMMON,
    "explain": _VECTOR | _COMMON,
    "keyword": _KEYWORD | _COMMON,
    "hybrid": _VECTOR | _KEYWORD | _FUSION | _COMMON,
}
_EVERY = _VECTOR | _KEYWORD | _FUSION | _COMMON
#: the explicit parameters, named in messages so a typo of them is recognised
_PARAMETERS = {
    "similarity": ("k", "filter"),
    "mmr": ("k", "fetch_k", "lambda_mult", "filter"),
    "explain": ("k", "filter", "analyze"),
    "keyword": ("k", "filter"),
    "hybrid": ("k", "filter"),
}


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """One search's options, checked; `None` means the store's default."""

    ef_search: int | None = None
    probes: int | None = None
    iterative_scan: IterativeScan | None = None
    max_scan_tuples: int | None = None
    exact: bool = False
    exact_search_threshold: int | None = None
    rerank_pool: int | None = None
    statement_timeout: float | None = None
    k1: float = 1.2
    b: float = 0.75
    fetch_k: int | None = None
    fusion: Fusion = DEFAULT_FUSION
    rrf_k: int = 60
    weights: tuple[float, float] | None = None
    #: which server answers (no part of the statement, nor of its cache key)
    route: ReadRoute = field(default=REPLICA, compare=False, hash=False)

    def candidates(self, k: int) -> int:
        """Rows each leg of a hybrid search contributes: `fetch_k`, or max(20, 2k)."""
        return self.fetch_k if self.fetch_k is not None else max(20, 2 * k)


def _unknown(name: str, kind: SearchKind) -> InputError:
    expected = sorted(_ACCEPTED[kind] | set(_PARAMETERS[kind]))
    if name in _EVERY:
        return InputError(
            f"search option {name!r} does not apply to {kind} search;"
            f" expected one of {', '.join(expected)}"
        )
    close = difflib.get_close_matches(name, expected, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InputError(
        f"unknown search option {name!r}{hint}; expected one of {', '.join(expected)}"
    )


def _weights(value: object) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise InputError(f"weights must be a pair of numbers (vector, keyword), got {value!r}")
    pair = list(value)  # type: ignore[call-overload]  # any sized iterable: list, tuple, array
    if len(pair) != 2:
        raise InputError(f"weights must be a pair of numbers (vector, keyword), got {value!r}")
    return (
        check.number_in(pair[0], "vector weight", 0.0, 1e6),
        check.number_in(pair[1], "keyword weight", 0.0, 1e6),
    )


def parse_options(kind: SearchKind, k: int, kwargs: Mapping[str, Any]) -> SearchOptions:
    """Check `kwargs` for a search of this kind returning `k` rows; refuse unknown names."""
    accepted = _ACCEPTED[kind]
    for name in kwargs:
        if name not in accepted:
            raise _unknown(str(name), kind)
    if not kwargs:
        return _DEFAULT
    get = kwargs.get
    values: dict[str, Any] = {}
    if get("ef_search") is not None:
        values["ef_search"] = check.int_in(get("ef_search"), "ef_search", 1, 1000)
    if get("probes") is not None:
        values["probes"] = check.int_in(get("probes"), "probes", 1, 32768)
    if get("iterative_scan") is not None:
        values["iterative_scan"] = check.choice(
            get("iterative_scan"), "iterative_scan", ("off", "relaxed_order", "strict_order")
        )
    if get("max_scan_tuples") is not None:
        values["max_scan_tuples"] = check.positive_int(get("max_scan_tuples"), "max_scan_tuples")
    if "exact" in kwargs:
        values["exact"] = check.boolean(get("exact"), "exact")
    if get("exact_search_threshold") is not None:
        values["exact_search_threshold"] = check.non_negative_int(
            get("exact_search_threshold"), "exact_search_threshold"
        )
    if get("rerank_pool") is not None:
        values["rerank_pool"] = check.int_in(get("rerank_pool"), "rerank_pool", 1, 1000)
    if get("statement_timeout") is not None:
        values["statement_timeout"] = check.positive_number(
            get("statement_timeout"), "statement_timeout"
        )
    if "k1" in kwargs:
        values["k1"] = check.number_in(get("k1"), "k1", 0.0, 1e6)
    if "b" in kwargs:
        values["b"] = check.number_in(get("b"), "b", 0.0, 1.0)
    if get("fetch_k") is not None:
        fetch_k = check.positive_int(get("fetch_k"), "fetch_k")
        if fetch_k < k:
            raise InputError(f"fetch_k must be at least k, got fetch_k={fetch_k} and k={k}")
        values["fetch_k"] = fetch_k
    if "fusion" in kwargs:
        values["fusion"] = check.choice(get("fusion"), "fusion", ("rrf", "weighted"))
    if "rrf_k" in kwargs:
        values["rrf_k"] = check.non_negative_int(get("rrf_k"), "rrf_k")
    if get("weights") is not None:
        values["weights"] = _weights(get("weights"))
    if "read_from" in kwargs or "after" in kwargs:
        values["route"] = route(get("read_from"), get("after"))
    return SearchOptions(**values)


_DEFAULT = SearchOptions()
