"""LangChain `Document`s from result rows, at a fraction of pydantic's validation cost.

A search returns rows the store wrote itself: a text id, text content and a
JSON object. Validating them again through pydantic costs about 2 µs a
document, which is a measurable share of a local search. `document()` fills
the model's fields directly (what `BaseModel.model_construct` does, without
its per-call introspection) when the row has exactly those types, and uses
the validating constructor for anything else.

The shortcut is checked once at import against the real constructor; if a
future langchain-core or pydantic changes what a `Document` holds, the check
fails and every row takes the validating path.
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document

__all__ = ["document", "scored"]

_FIELDS_SET = frozenset({"id", "page_content", "metadata"})
#: Every field with its default (`type` and anything a later release adds).
_TEMPLATE: dict[str, Any] = dict(Document(page_content="").__dict__)
_new = object.__new__
_set = object.__setattr__


def _constructed(id: str, page_content: str, metadata: dict[str, Any]) -> Document:
    doc: Document = _new(Document)
    fields = _TEMPLATE.copy()
    fields["id"] = id
    fields["page_content"] = page_content
    fields["metadata"] = metadata
    _set(doc, "__dict__", fields)
    _set(doc, "__pydantic_fields_set__", set(_FIELDS_SET))
    _set(doc, "__pydantic_extra__", None)
    _set(doc, "__pydantic_private__", None)
    return doc


def _shortcut_matches() -> bool:
    try:
        fast = _constructed("i", "text", {"k": [1, "v"]})
        slow = Document(id="i", page_content="text", metadata={"k": [1, "v"]})
        return (
            fast == slow
            and fast.__dict__ == slow.__dict__
            and fast.model_fields_set == slow.model_fields_set
            and fast.model_dump() == slow.model_dump()
        )
    except Exception:  # any change in the model's internals: validate instead
        return False


_SHORTCUT = _shortcut_matches()


def document(id: Any, page_content: Any, metadata: Any) -> Document:
    """A `Document` from a row's id, content and metadata."""
    if _SHORTCUT and type(id) is str and type(page_content) is str and type(metadata) is dict:
        return _constructed(id, page_content, metadata)
    return Document(id=id, page_content=page_content, metadata=metadata)


def scored(rows: list[tuple[Any, ...]]) -> list[tuple[Document, float]]:
    """`(Document, score)` pairs from rows `(id, content, metadata, score, ...)`.

    The per-row work of every search, in one loop without a call per row.
    """
    out = []
    for row in rows:
        id, page_content, metadata = row[0], row[1], row[2]
        if _SHORTCUT and type(id) is str and type(page_content) is str and type(metadata) is dict:
            doc: Document = _new(Document)
            fields = _TEMPLATE.copy()
            fields["id"] = id
            fields["page_content"] = page_content
            fields["metadata"] = metadata
            _set(doc, "__dict__", fields)
            _set(doc, "__pydantic_fields_set__", set(_FIELDS_SET))
            _set(doc, "__pydantic_extra__", None)
            _set(doc, "__pydantic_private__", None)
        else:
            doc = Document(id=id, page_content=page_content, metadata=metadata)
        out.append((doc, float(row[3])))
    return out
