"""Self-querying: LangChain's structured queries translated into our filter dialect.

`SelfQueryRetriever` asks an LLM for a `StructuredQuery` and hands it to a
translator; `PGVStoreTranslator` turns it into the filter dict that
`PGVStore` accepts (see docs/filters.md).

```python
from langchain.retrievers.self_query.base import SelfQueryRetriever
retriever = SelfQueryRetriever.from_llm(
    llm, store, "product descriptions", attribute_info,
    structured_query_translator=PGVStoreTranslator(),
)
```
"""

from __future__ import annotations

import datetime
from typing import Any

from langchain_core.structured_query import (
    Comparator,
    Comparison,
    Operation,
    Operator,
    StructuredQuery,
    Visitor,
)
from typing_extensions import override

__all__ = ["PGVStoreTranslator"]

_COMPARATORS: dict[Comparator, str] = {
    Comparator.EQ: "$eq",
    Comparator.NE: "$ne",
    Comparator.LT: "$lt",
    Comparator.LTE: "$lte",
    Comparator.GT: "$gt",
    Comparator.GTE: "$gte",
    Comparator.IN: "$in",
    Comparator.NIN: "$nin",
    Comparator.LIKE: "$like",
    Comparator.CONTAIN: "$contains",
}
_OPERATORS: dict[Operator, str] = {
    Operator.AND: "$and",
    Operator.OR: "$or",
    Operator.NOT: "$not",
}


class PGVStoreTranslator(Visitor):
    """Translate a LangChain `StructuredQuery` into a `PGVStore` metadata filter.

    `contain` becomes `$contains` (the field is an array holding the value);
    `like` becomes `$like` with the LLM's pattern unchanged. Dates produced by
    LangChain's query parser (`{"date": "2024-01-31", "type": "date"}`) and
    `datetime.date`/`datetime.datetime` values become ISO-8601 strings, which
    the filter language compares in chronological order when they share a
    format.
    """

    allowed_comparators = tuple(_COMPARATORS)
    allowed_operators = tuple(_OPERATORS)

    @override
    def visit_operation(self, operation: Operation) -> dict[str, Any]:
        """Translate `and`, `or` and `not` into `$and`, `$or` and `$not`."""
        self._validate_func(operation.operator)
        args = [arg.accept(self) for arg in operation.arguments]
        if operation.operator is Operator.NOT and len(args) == 1:
            return {"$not": args[0]}
        return {_OPERATORS[operation.operator]: args}

    @override
    def visit_comparison(self, comparison: Comparison) -> dict[str, Any]:
        """Translate one comparison into `{attribute: {operator: value}}`."""
        self._validate_func(comparison.comparator)
        return {
            comparison.attribute: {_COMPARATORS[comparison.comparator]: _value(comparison.value)}
        }

    @override
    def visit_structured_query(
        self, structured_query: StructuredQuery
    ) -> tuple[str, dict[str, Any]]:
        """Return the query text and the search kwargs (`{"filter": ...}`, or `{}`)."""
        if structured_query.filter is None:
            return structured_query.query, {}
        return structured_query.query, {"filter": structured_query.filter.accept(self)}


def _value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, dict) and value.get("type") in ("date", "datetime"):
        kind = value["type"]
        if isinstance(value.get(kind), str):
            return value[kind]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value
