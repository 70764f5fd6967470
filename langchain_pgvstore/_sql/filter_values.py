"""Values in a metadata filter: field names and operands, checked before any SQL is built.

Operands are looked up by exact type, so `True` is never taken for `1` and a
subclass of `str` or `int` is refused rather than trusted.
"""

from __future__ import annotations

import datetime
import math
import reprlib

from .. import _validate as check
from ..errors import FilterError, InputError

__all__ = [
    "MAX_DEPTH",
    "Scalar",
    "check_text",
    "orderable",
    "parse_key",
    "scalar",
    "scalars",
    "show",
]

#: How deeply `$and`/`$or`/`$not` may nest, and how many segments a dotted key may have.
MAX_DEPTH = 32
_MAX_INT_DIGITS = 1000
# Python refuses to print ints over ~4300 digits, so psycopg could not send them.
_INT_LIMIT = 10**_MAX_INT_DIGITS

Scalar = str | int | float | bool | None

_SCALAR_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None)})
_ORDERABLE: frozenset[type] = frozenset({str, int, float, bool})

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3


def show(value: object) -> str:
    return _REPR.repr(value)


def parse_key(key: str, where: str) -> tuple[str, ...]:
    if not key:
        raise FilterError(f"empty field name at {where}", where)
    check_text(key, f"{where}.{key}")
    keys = tuple(key.split("."))
    if "" in keys:
        raise FilterError(
            f"field name {show(key)} has an empty segment at {where};"
            " separate nested keys with single dots, as in 'specs.screen'",
            where,
        )
    if len(keys) > MAX_DEPTH:
        raise FilterError(
            f"field name {show(key)} has {len(keys)} segments at {where}; the limit is {MAX_DEPTH}",
            where,
        )
    return keys


def check_text(value: str, where: str) -> None:
    """A string PostgreSQL can hold (no NUL, no lone surrogate), else `FilterError`."""
    try:
        check.pg_text(value, f"the string at {where}")
    except InputError as e:
        raise FilterError(f"{e}, got {show(value)}", where) from None


def scalar(value: object, where: str, *, equality: bool = False) -> Scalar:
    if type(value) not in _SCALAR_TYPES:
        hint = _date_hint(value)
        if equality and isinstance(value, (list, tuple)):
            hint = "; use $in to match any of several values, $contains for array elements"
        raise FilterError(
            f"expected a string, number, boolean or null at {where}, got {show(value)}{hint}",
            where,
        )
    if type(value) is float and not math.isfinite(value):
        raise FilterError(f"expected a finite number at {where}, got {show(value)}", where)
    if type(value) is int and not -_INT_LIMIT < value < _INT_LIMIT:
        raise FilterError(
            f"integer too large at {where}; the limit is {_MAX_INT_DIGITS} digits", where
        )
    if type(value) is str:
        check_text(value, where)
    return value  # type: ignore[return-value]


def scalars(value: object, where: str) -> list[Scalar]:
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"expected a list at {where}, got {show(value)}", where)
    return [scalar(v, f"{where}[{i}]") for i, v in enumerate(value)]


def orderable(value: object, where: str) -> Scalar:
    if type(value) not in _ORDERABLE:
        hint = "; null has no order" if value is None else _date_hint(value)
        raise FilterError(
            f"expected a string, number or boolean at {where}, got {show(value)}{hint}", where
        )
    return scalar(value, where)


def _date_hint(value: object) -> str:
    if isinstance(value, (datetime.date, datetime.time)):
        return "; write dates as ISO-8601 strings, e.g. value.isoformat()"
    return ""
