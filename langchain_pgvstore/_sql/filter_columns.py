"""Filters on typed columns: a declared field's predicates, compiled to its column.

`filters.py` hands a field here when its name is one of the collection's
typed columns. The operators mean what they mean on metadata (docs/filters.md):
a comparison matches only a stored value, `$ne`, `$nin` and `$not` are exact
negations, and every expression is two-valued. So a nullable column's
predicate carries `AND col IS NOT NULL`: `NULL AND FALSE` is FALSE, and the
btree index still serves the comparison.

Operands must be of the column's type (`FilterError` otherwise) and are
bound with a cast to it, so a comparison is the column type's own.
"""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from collections.abc import Callable, Mapping

from psycopg import sql

from ..columns import Column
from ..errors import FilterError, InputError
from . import Frag, join
from .columns import CAST
from .filter_values import check_text, show

__all__ = ["column_field", "column_predicate", "jsonb_column"]


def jsonb_column(name: str) -> sql.Composable:
    """A jsonb column as the object `{name: value}` (empty when NULL), which the
    metadata compiler filters like the `metadata` column itself."""
    col = sql.Identifier(name)
    return sql.SQL(
        "(CASE WHEN {} IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object({}, {}) END)"
    ).format(col, sql.Literal(name), col)


_ORDER = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}


def _text(v: object, where: str) -> object:
    if type(v) is not str:
        return None
    check_text(v, where)
    return v


def _int(bits: int) -> Callable[[object, str], object]:
    def fit(v: object, where: str) -> object:
        if type(v) is not int:
            return None
        if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
            raise FilterError(f"{show(v)} is out of range for the column at {where}", where)
        return v

    return fit


def _double(v: object, where: str) -> object:
    if type(v) not in (int, float):
        return None
    try:
        number = float(v)  # type: ignore[arg-type]
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise FilterError(f"expected a finite number at {where}, got {show(v)}", where)
    return number


def _numeric(v: object, where: str) -> object:
    if type(v) is int:
        return decimal.Decimal(v)
    if type(v) is not decimal.Decimal or not v.is_finite():
        return None
    return v


def _exact(kind: type, not_kind: type | None = None) -> Callable[[object, str], object]:
    def fit(v: object, where: str) -> object:
        if not isinstance(v, kind) or (not_kind is not None and isinstance(v, not_kind)):
            return None
        return v

    return fit


def _timestamptz(v: object, where: str) -> object:
    if not isinstance(v, datetime.datetime):
        return None
    if v.tzinfo is None or v.utcoffset() is None:
        raise FilterError(f"expected an aware datetime at {where}, got {show(v)}", where)
    return v


def _uuid(v: object, where: str) -> object:
    if isinstance(v, uuid.UUID):
        return v
    if type(v) is str:
        try:
            return uuid.UUID(v)
        except ValueError:
            raise FilterError(f"expected a UUID at {where}, got {show(v)}", where) from None
    return None


_OPERAND: dict[str, tuple[Callable[[object, str], object], str]] = {
    "text": (_text, "a string"),
    "integer": (_int(32), "an integer"),
    "bigint": (_int(64), "an integer"),
    "double precision": (_double, "a number"),
    "numeric": (_numeric, "a Decimal or an integer"),
    "boolean": (_exact(bool), "true or false"),
    "date": (_exact(datetime.date, datetime.datetime), "a datetime.date"),
    "timestamptz": (_timestamptz, "an aware datetime.datetime"),
    "uuid": (_uuid, "a UUID"),
    "text[]": (_text, "a string"),
}
_ARRAY_OPS = ("$contains", "$contains_any", "$exists")
_SCALAR_OPS = ("$eq", "$ne", "$in", "$nin", "$between", "$exists", *_ORDER)


def column_field(name: str, column: Column, value: object, where: str, *, nested: bool) -> Frag:
    """A field of a filter that is a typed (non-jsonb) column: a value, or operators ANDed."""
    if nested:
        raise FilterError(f"{name!r} is a {column.type} column without keys at {where}", where)
    if not isinstance(value, Mapping):
        return column_predicate(name, column, "$eq", value, where)
    if not value:
        raise FilterError(f"expected at least one operator at {where}, got {{}}", where)
    parts = [
        column_predicate(name, column, str(op), operand, f"{where}.{op}")
        for op, operand in value.items()
    ]
    if len(parts) == 1:
        return parts[0]
    inner = join(sql.SQL(" AND "), parts)
    return Frag(sql.SQL("({})").format(inner.sql), inner.params)


def column_predicate(name: str, column: Column, op: str, operand: object, where: str) -> Frag:
    """The predicate of one operator on a typed (non-jsonb) column."""
    col = sql.Identifier(name)
    allowed = _ARRAY_OPS if column.type == "text[]" else _SCALAR_OPS
    if column.type == "text":
        allowed = (*allowed, "$like", "$ilike")
    if op not in allowed:
        raise FilterError(
            f"{op} does not apply to {name!r}, a {column.type} column, at {where};"
            f" expected one of {', '.join(allowed)}",
            where,
        )
    if op == "$exists":
        if type(operand) is not bool:
            raise FilterError(f"expected true or false at {where}, got {show(operand)}", where)
        test = "IS NOT NULL" if operand else "IS NULL"
        return Frag(sql.SQL("({} {})").format(col, sql.SQL(test)))
    cast = CAST[column.type]
    if op in ("$eq", "$ne"):
        frag = Frag(sql.SQL("{} = %s::{}").format(col, cast), (_operand(column, operand, where),))
    elif op in ("$in", "$nin"):
        values = [_operand(column, v, f"{where}[{i}]") for i, v in enumerate(_list(operand, where))]
        frag = Frag(sql.SQL("{} = ANY(%s::{}[])").format(col, cast), (values,))
    elif op in _ORDER:
        frag = Frag(
            sql.SQL("{} {} %s::{}").format(col, sql.SQL(_ORDER[op]), cast),
            (_operand(column, operand, where),),
        )
    elif op == "$between":
        if not isinstance(operand, (list, tuple)) or len(operand) != 2:
            raise FilterError(f"expected [low, high] at {where}, got {show(operand)}", where)
        low = _operand(column, operand[0], f"{where}[0]")
        high = _operand(column, operand[1], f"{where}[1]")
        frag = Frag(sql.SQL("{} BETWEEN %s::{} AND %s::{}").format(col, cast, cast), (low, high))
    elif op in ("$like", "$ilike"):
        frag = _like(col, op, operand, where)
    else:  # $contains, $contains_any on text[]
        if op == "$contains" and not isinstance(operand, (list, tuple)):
            operand = [operand]
        values = [_operand(column, v, f"{where}[{i}]") for i, v in enumerate(_list(operand, where))]
        array_op = sql.SQL("@>" if op == "$contains" else "&&")
        frag = Frag(sql.SQL("{} {} %s::text[]").format(col, array_op), (values,))
    if column.nullable:
        frag = Frag(sql.SQL("({} AND {} IS NOT NULL)").format(frag.sql, col), frag.params)
    if op in ("$ne", "$nin"):
        frag = Frag(sql.SQL("NOT ({})").format(frag.sql), frag.params)
    return frag


def _list(value: object, where: str) -> list[object] | tuple[object, ...]:
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"expected a list at {where}, got {show(value)}", where)
    return value


def _operand(column: Column, value: object, where: str) -> object:
    fit, expected = _OPERAND[column.type]
    if value is None:
        raise FilterError(
            f"null at {where}: a {column.type} column stores no nulls;"
            " use {'$exists': false} for documents without the field",
            where,
        )
    try:
        fitted = fit(value, where)
    except InputError as e:  # a text check
        raise FilterError(str(e), where) from None
    if fitted is None:
        raise FilterError(
            f"expected {expected} for a {column.type} column at {where}, got {show(value)}", where
        )
    return fitted


def _like(col: sql.Identifier, op: str, pattern: object, where: str) -> Frag:
    if type(pattern) is not str:
        raise FilterError(f"expected a string pattern at {where}, got {show(pattern)}", where)
    check_text(pattern, where)
    if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
        raise FilterError(
            f"pattern ends with an unescaped backslash at {where}, got {show(pattern)};"
            " write two backslashes to match one",
            where,
        )
    if op == "$like":
        return Frag(sql.SQL("{} LIKE %s").format(col), (pattern,))
    # the column's "C" collation would fold ASCII only: fold with the database's locale
    return Frag(sql.SQL('{} COLLATE "default" ILIKE %s').format(col), (pattern,))
