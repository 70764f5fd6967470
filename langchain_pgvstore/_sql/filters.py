"""Metadata filters: a LangChain/PGVector-style filter dict compiled to SQL.

`compile_filter` is the only entry point. It turns a filter such as
`{"source": "docs", "price": {"$lt": 10}}` into a boolean `Frag` over the
table's `metadata` jsonb column. The language is described in docs/filters.md.

Three rules keep the output safe and stable:

- keys never become SQL text: a dotted key is bound as a `text[]` parameter
  (`metadata #> %s::text[]`) or placed inside a `Jsonb` containment parameter;
- operators, casts and type names come only from the closed tables below,
  looked up by exact type, so `True` is never taken for `1`;
- the text depends only on the filter's shape, never on its keys or values,
  so repeated queries are prepared once and the SQL can be snapshot-tested.

Every expression is two-valued (never NULL) and never fails at run time,
whatever the stored metadata holds: a field of another type simply does not
match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ..columns import Column
from ..config import Table
from ..errors import FilterError
from . import Frag, join
from .filter_columns import column_field, jsonb_column
from .filter_values import (
    MAX_DEPTH,
    Scalar,
    check_text,
    orderable,
    parse_key,
    scalar,
    scalars,
    show,
)

__all__ = ["MAX_DEPTH", "TRUE", "compile_filter"]


TRUE = Frag(sql.SQL("TRUE"))
_TRUE = TRUE
_FALSE = Frag(sql.SQL("FALSE"))


_ORDER = {
    "$lt": sql.SQL("<"),
    "$lte": sql.SQL("<="),
    "$gt": sql.SQL(">"),
    "$gte": sql.SQL(">="),
}
_LIKE = {"$like": sql.SQL("LIKE"), "$ilike": sql.SQL("ILIKE")}

# The jsonb_typeof() a stored value must have to be ordered against an operand.
_NUMBER = sql.SQL("'number'")
_JSON_TYPE: dict[type, sql.SQL] = {
    bool: sql.SQL("'boolean'"),
    int: _NUMBER,
    float: _NUMBER,
    str: sql.SQL("'string'"),
}

# How a field is read to be ordered against an operand of each type. jsonb
# compares two numbers numerically and two booleans as false < true. Strings
# are read as text in the "C" collation: code-point order, the same on every
# database and the order in which ISO-8601 timestamps of one format sort.
_READ: dict[type, sql.SQL] = {
    bool: sql.SQL("{m} #> %s::text[]"),
    int: sql.SQL("{m} #> %s::text[]"),
    float: sql.SQL("{m} #> %s::text[]"),
    str: sql.SQL('({m} #>> %s::text[]) COLLATE "C"'),
}

# PostgreSQL's #> treats a path element such as "1", " -2" or "01" as an array
# index when the value at that point is an array. Our paths only walk objects,
# so such segments get a containment guard. The pattern is looser than
# PostgreSQL's parser on purpose: an extra guard is harmless, a missing one is not.
_INDEX_LIKE = re.compile(r"\s*[+-]?[0-9]+\s*")


def compile_filter(
    filter: Mapping[str, Any] | None, table: Table, tenant: str | None = None
) -> Frag:
    """Compile a metadata filter into a boolean SQL expression over `table.metadata`.

    The dialect is langchain-postgres' PGVector one, plus nested keys and arrays:

    - `{"source": "docs"}` is `{"source": {"$eq": "docs"}}`; several keys, or
      several operators on one key, are ANDed;
    - field operators: `$eq $ne $lt $lte $gt $gte $in $nin $between $like
      $ilike $exists $contains $contains_any`;
    - logical operators: `$and` and `$or` (lists of filters), `$not` (a filter,
      or a list of filters none of which may match);
    - `"specs.screen"` addresses `{"specs": {"screen": ...}}`;
    - values are compared type-aware: numbers numerically, strings in
      code-point order, booleans as false < true; a field of another type, or
      a missing one, does not match (`$ne`, `$nin` and `$not` are the exact
      negations of `$eq`, `$in` and their filter, so they do match it).

    `None` and `{}` match every row. Equality, `$in`, `$contains` and
    `$contains_any` compile to jsonb containment (`@>`), which the GIN
    `jsonb_path_ops` index serves. Raises `FilterError`, whose `.path` names
    the offending spot (e.g. `filter.$and[1].price`), for anything else.

    With `tenant`, the expression keeps that tenant's rows only (`tenant = %s
    AND (...)`, the tenant a parameter): the one scope every statement of a
    store bound to a tenant is built with.
    """
    where = (
        TRUE
        if filter is None
        else _Compiler(table.metadata, dict(table.columns)).node(filter, "filter", 1)
    )
    if tenant is None:
        return where
    scope = Frag(sql.SQL("{} = %s").format(table.tenant), (tenant,))
    if where is TRUE:
        return scope
    return scope + Frag(sql.SQL(" AND (")) + where + Frag(sql.SQL(")"))


class _Compiler:
    def __init__(self, metadata: sql.Composable, columns: dict[str, Column] | None = None) -> None:
        self.m = metadata
        self.columns = columns or {}

    # -- filters and logical operators ---------------------------------------

    def node(self, node: object, where: str, depth: int) -> Frag:
        if depth > MAX_DEPTH:
            raise FilterError(
                f"filter is nested too deeply at {where}; the limit is {MAX_DEPTH} levels", where
            )
        if not isinstance(node, Mapping):
            raise FilterError(f"expected a dict at {where}, got {show(node)}", where)
        parts: list[Frag] = []
        for key, value in node.items():
            if not isinstance(key, str):
                raise FilterError(f"field names must be strings at {where}, got {show(key)}", where)
            key = str.__str__(key)  # a str subclass's own methods are not consulted
            if key.startswith("$"):
                logical = _LOGICAL.get(key)
                if logical is None:
                    raise FilterError(
                        f"unknown operator {show(key)} at {where};"
                        " expected one of $and, $not, $or or a field name",
                        where,
                    )
                parts.append(logical(self, value, f"{where}.{key}", depth))
            else:
                parts.append(self.field(key, value, where))
        return _all(parts)

    def and_(self, value: object, where: str, depth: int) -> Frag:
        return _all(self.node(f, w, depth + 1) for f, w in self._filters(value, where))

    def or_(self, value: object, where: str, depth: int) -> Frag:
        return _any(self.node(f, w, depth + 1) for f, w in self._filters(value, where))

    def not_(self, value: object, where: str, depth: int) -> Frag:
        if isinstance(value, Mapping):
            return _negate(self.node(value, where, depth + 1))
        if isinstance(value, (list, tuple)):
            return _all(_negate(self.node(f, w, depth + 1)) for f, w in self._filters(value, where))
        raise FilterError(
            f"expected a dict or a list of filters at {where}, got {show(value)}", where
        )

    @staticmethod
    def _filters(value: object, where: str) -> list[tuple[object, str]]:
        if not isinstance(value, (list, tuple)):
            raise FilterError(f"expected a list of filters at {where}, got {show(value)}", where)
        return [(f, f"{where}[{i}]") for i, f in enumerate(value)]

    # -- fields --------------------------------------------------------------

    def field(self, key: str, value: object, parent: str) -> Frag:
        keys = parse_key(key, parent)
        where = f"{parent}.{key}"
        if keys[0] in self.columns:
            return self.typed_field(key, self.columns[keys[0]], value, parent)
        if not isinstance(value, Mapping):
            return self.eq(keys, "$eq", value, where)
        if not value:
            raise FilterError(f"expected at least one operator at {where}, got {{}}", where)
        parts: list[Frag] = []
        for op, operand in value.items():
            handler = _FIELD_OPS.get(op) if isinstance(op, str) else None
            if handler is None:
                hint = ""
                if isinstance(op, str) and not op.startswith("$"):
                    hint = f"; for a nested key write a dotted name such as '{key}.{op}'"
                raise FilterError(
                    f"unknown operator {show(op)} at {where}; expected one of {_FIELD_OP_NAMES}"
                    + hint,
                    where,
                )
            parts.append(handler(self, keys, op, operand, f"{where}.{op}"))
        return _all(parts)

    def typed_field(self, key: str, column: Column, value: object, parent: str) -> Frag:
        """A declared field: its column's predicates (`filter_columns.py`, `filter_jsonb.py`)."""
        keys, where = parse_key(key, parent), f"{parent}.{key}"
        if column.type == "jsonb" and len(keys) == 1:
            return _Compiler(jsonb_column(key)).field(key, value, parent)
        if column.type == "jsonb":
            from .filter_jsonb import JsonbColumnCompiler  # a subclass of this class

            sub = JsonbColumnCompiler(keys[0])
            return sub.field(key.split(".", 1)[1], value, f"{parent}.{keys[0]}")
        return column_field(keys[0], column, value, where, nested=len(keys) > 1)

    def eq(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        operand = scalar(value, where, equality=True)
        return self._contains(_nest(keys, operand))

    def ne(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        return _negate(self.eq(keys, op, value, where))

    def in_(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        values = scalars(value, where)
        return self._contains_any([_nest(keys, v) for v in values])

    def nin(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        return _negate(self.in_(keys, op, value, where))

    def contains(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        if isinstance(value, (list, tuple)):
            values = scalars(value, where)
        else:
            values = [scalar(value, where, equality=True)]
        return self._contains(_nest(keys, values))

    def contains_any(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        values = scalars(value, where)
        return self._contains_any([_nest(keys, [v]) for v in values])

    def order(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        operand = orderable(value, where)
        body = sql.SQL("{} {} %s").format(_READ[type(operand)].format(m=self.m), _ORDER[op])
        return self._typed(keys, type(operand), body, (list(keys), _param(operand)))

    def between(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise FilterError(f"expected [low, high] at {where}, got {show(value)}", where)
        low = orderable(value[0], f"{where}[0]")
        high = orderable(value[1], f"{where}[1]")
        if _JSON_TYPE[type(low)] is not _JSON_TYPE[type(high)]:
            raise FilterError(
                f"expected [low, high] of one type (two numbers, two strings or two booleans)"
                f" at {where}, got {show(value)}",
                where,
            )
        body = sql.SQL("{} BETWEEN %s AND %s").format(_READ[type(low)].format(m=self.m))
        return self._typed(keys, type(low), body, (list(keys), _param(low), _param(high)))

    def like(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        if type(value) is not str:
            raise FilterError(f"expected a string pattern at {where}, got {show(value)}", where)
        check_text(value, where)
        # PostgreSQL rejects such a pattern only when matching reaches its end,
        # so the query would fail on some rows and not on others.
        trailing = len(value) - len(value.rstrip("\\"))
        if trailing % 2:
            raise FilterError(
                f"pattern ends with an unescaped backslash at {where}, got {show(value)};"
                " write two backslashes to match one",
                where,
            )
        # No COLLATE here: $ilike folds case with the database's own locale.
        body = sql.SQL("({} #>> %s::text[]) {} %s").format(self.m, _LIKE[op])
        return self._typed(keys, str, body, (list(keys), value))

    def exists(self, keys: tuple[str, ...], op: str, value: object, where: str) -> Frag:
        if type(value) is not bool:
            raise FilterError(f"expected true or false at {where}, got {show(value)}", where)
        present = self._guard(
            keys, Frag(sql.SQL("({} #> %s::text[]) IS NOT NULL").format(self.m), (list(keys),))
        )
        return present if value else _negate(present)

    # -- SQL pieces ----------------------------------------------------------

    def _contains(self, doc: dict[str, Any]) -> Frag:
        return Frag(sql.SQL("{} @> %s").format(self.m), (Jsonb(doc),))

    def _contains_any(self, docs: list[dict[str, Any]]) -> Frag:
        # One array parameter keeps the text independent of the list length;
        # a bitmap index scan still probes the GIN index once per element.
        return Frag(sql.SQL("{} @> ANY(%s::jsonb[])").format(self.m), ([Jsonb(d) for d in docs],))

    def _typed(
        self,
        keys: tuple[str, ...],
        operand_type: type,
        body: sql.Composable,
        params: tuple[object, ...],
    ) -> Frag:
        # CASE rather than AND: a missing field must give FALSE, not NULL,
        # so that NOT (...) around it stays exact.
        frag = Frag(
            sql.SQL("CASE WHEN jsonb_typeof({} #> %s::text[]) = {} THEN {} ELSE FALSE END").format(
                self.m, _JSON_TYPE[operand_type], body
            ),
            (list(keys), *params),
        )
        return self._guard(keys, frag)

    def _guard(self, keys: tuple[str, ...], frag: Frag) -> Frag:
        if not any(_INDEX_LIKE.fullmatch(k) for k in keys[1:]):
            return frag
        # Containment of {"a": {"0": {}}} holds only when a and a.0 are objects,
        # which stops #> from reading "0" as an index into an array.
        parents = self._contains(_nest(keys[:-1], {}))
        return Frag(
            sql.SQL("({} AND {})").format(parents.sql, frag.sql), parents.params + frag.params
        )


_Logical = Callable[[_Compiler, object, str, int], Frag]
_FieldOp = Callable[[_Compiler, tuple[str, ...], str, object, str], Frag]

_LOGICAL: dict[str, _Logical] = {
    "$and": _Compiler.and_,
    "$or": _Compiler.or_,
    "$not": _Compiler.not_,
}

_FIELD_OPS: dict[str, _FieldOp] = {
    "$eq": _Compiler.eq,
    "$ne": _Compiler.ne,
    "$lt": _Compiler.order,
    "$lte": _Compiler.order,
    "$gt": _Compiler.order,
    "$gte": _Compiler.order,
    "$in": _Compiler.in_,
    "$nin": _Compiler.nin,
    "$between": _Compiler.between,
    "$like": _Compiler.like,
    "$ilike": _Compiler.like,
    "$exists": _Compiler.exists,
    "$contains": _Compiler.contains,
    "$contains_any": _Compiler.contains_any,
}
_FIELD_OP_NAMES = ", ".join(sorted(_FIELD_OPS))


# -- helpers -----------------------------------------------------------------


def _all(frags: Iterable[Frag]) -> Frag:
    parts = list(frags)
    if not parts:
        return _TRUE
    if len(parts) == 1:
        return parts[0]
    inner = join(sql.SQL(" AND "), parts)
    return Frag(sql.SQL("({})").format(inner.sql), inner.params)


def _any(frags: Iterable[Frag]) -> Frag:
    parts = list(frags)
    if not parts:
        return _FALSE
    if len(parts) == 1:
        return parts[0]
    inner = join(sql.SQL(" OR "), parts)
    return Frag(sql.SQL("({})").format(inner.sql), inner.params)


def _negate(frag: Frag) -> Frag:
    return Frag(sql.SQL("NOT ({})").format(frag.sql), frag.params)


def _nest(keys: tuple[str, ...], leaf: object) -> dict[str, Any]:
    doc: Any = leaf
    for key in reversed(keys):
        doc = {key: doc}
    return doc  # type: ignore[no-any-return]


def _param(value: Scalar) -> object:
    return value if type(value) is str else Jsonb(value)
