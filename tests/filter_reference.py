"""A pure-Python reference for the filter language of docs/filters.md.

`matches(filter, metadata)` says whether a document with `metadata` matches
`filter`. It shares no code with `langchain_pgvstore._sql.filters`: the
database tests run both and compare. It assumes the filter is valid (the
compiler's error cases are tested separately).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_MISSING = object()


def matches(filter: dict[str, Any] | None, metadata: dict[str, Any]) -> bool:
    if not filter:
        return True
    results = []
    for key, value in filter.items():
        if key == "$and":
            results.append(all(matches(f, metadata) for f in value))
        elif key == "$or":
            results.append(any(matches(f, metadata) for f in value))
        elif key == "$not":
            subs = [value] if isinstance(value, dict) else list(value)
            results.append(not any(matches(f, metadata) for f in subs))
        else:
            results.append(_field(_get(metadata, key), value))
    return all(results)


def _get(metadata: Any, dotted: str) -> Any:
    # Paths descend through objects only; a segment never indexes an array.
    node = metadata
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _field(stored: Any, spec: Any) -> bool:
    if not isinstance(spec, dict):
        return _same(stored, spec)
    return all(_OPS[op](stored, operand) for op, operand in spec.items())


def _kind(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: int | float | Decimal) -> Decimal:
    # The database holds a float as the decimal text json.dumps wrote for it
    # (a typed column's Decimal as itself).
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _same(stored: Any, wanted: Any) -> bool:
    kind = _kind(stored)
    if kind != _kind(wanted):
        return False
    if kind == "number":
        return _number(stored) == _number(wanted)
    return bool(stored == wanted)


def _key(value: Any) -> Any:
    return _number(value) if _kind(value) == "number" else value


def _ordered(test: Any) -> Any:
    def check(stored: Any, operand: Any) -> bool:
        if _kind(stored) != _kind(operand):
            return False
        return bool(test(_key(stored), _key(operand)))

    return check


def _between(stored: Any, bounds: Any) -> bool:
    low, high = bounds
    return bool(_OPS["$gte"](stored, low) and _OPS["$lte"](stored, high))


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars)))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _like(stored: Any, pattern: str) -> bool:
    return _kind(stored) == "string" and _like_regex(pattern).fullmatch(stored) is not None


def _ilike(stored: Any, pattern: str) -> bool:
    return _kind(stored) == "string" and (
        _like_regex(pattern.lower()).fullmatch(stored.lower()) is not None
    )


def _array_has(stored: Any, value: Any) -> bool:
    return any(_same(element, value) for element in stored)


def _contains(stored: Any, operand: Any) -> bool:
    if _kind(stored) != "array":
        return False
    wanted = operand if isinstance(operand, (list, tuple)) else [operand]
    return all(_array_has(stored, v) for v in wanted)


def _contains_any(stored: Any, operand: Any) -> bool:
    return _kind(stored) == "array" and any(_array_has(stored, v) for v in operand)


_OPS: dict[str, Any] = {
    "$eq": _same,
    "$ne": lambda s, o: not _same(s, o),
    "$lt": _ordered(lambda s, o: s < o),
    "$lte": _ordered(lambda s, o: s <= o),
    "$gt": _ordered(lambda s, o: s > o),
    "$gte": _ordered(lambda s, o: s >= o),
    "$between": _between,
    "$in": lambda s, o: any(_same(s, v) for v in o),
    "$nin": lambda s, o: not any(_same(s, v) for v in o),
    "$like": _like,
    "$ilike": _ilike,
    "$exists": lambda s, o: (s is not _MISSING) == o,
    "$contains": _contains,
    "$contains_any": _contains_any,
}
