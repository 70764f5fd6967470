"""Metadata as the jsonb the store writes: checked, then serialised once. Pure, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import _validate as check
from .errors import InputError

__all__ = ["MAX_METADATA_DEPTH", "metadata_json"]

_NUL_ESCAPE = "\\u0000"

#: How deeply metadata may nest (json.dumps would recurse until Python refuses).
MAX_METADATA_DEPTH = 100


def _check_json(index: int, metadata: Mapping[Any, Any]) -> None:
    """Refuse metadata JSON cannot represent faithfully, naming the document.

    JSON object keys are strings: `json.dumps` turns `1` into `"1"`, so `{1: "a",
    "1": "b"}` would silently lose a value. Nesting is bounded. The walk is
    iterative, so a deep value meets this limit, not Python's recursion limit.
    """
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise InputError(
                f"metadata of document {index} nests deeper than {MAX_METADATA_DEPTH} levels"
            )
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InputError(
                        f"metadata keys must be strings, got {key!r}"
                        f" ({type(key).__name__}) in document {index}"
                    )
                if isinstance(item, (Mapping, list, tuple)):
                    stack.append((item, depth + 1))
        elif isinstance(value, (list, tuple)):
            stack.extend(
                (item, depth + 1) for item in value if isinstance(item, (Mapping, list, tuple))
            )


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def metadata_json(index: int, metadata: Any) -> str:
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise InputError(
            f"metadata must be a dict, got {type(metadata).__name__} (document {index})"
        )
    _check_json(index, metadata)
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"metadata of document {index} is not JSON-serialisable: {e}") from None
    # JSON escapes NUL as \u0000, which jsonb refuses; only walk the value when
    # the escape could be present, since a clean document cannot contain it.
    if _NUL_ESCAPE in text and _has_nul(metadata):
        raise InputError(f"metadata of document {index} contains a NUL (\\x00) character")
    return check.pg_text(text, f"metadata of document {index}")
