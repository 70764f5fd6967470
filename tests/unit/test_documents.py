"""Documents built from result rows are indistinguishable from validated ones."""

from __future__ import annotations

import copy
import pickle

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.documents import Document

from langchain_pgvstore import _documents
from langchain_pgvstore._documents import document

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def test_the_shortcut_is_active_on_this_langchain_core() -> None:
    assert _documents._SHORTCUT


@given(st.text(), st.text(), st.dictionaries(st.text(), json_values, max_size=5))
def test_same_as_the_validating_constructor(id: str, content: str, metadata: dict) -> None:
    fast = document(id, content, metadata)
    slow = Document(id=id, page_content=content, metadata=metadata)
    assert type(fast) is Document
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert repr(fast) == repr(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert copy.deepcopy(fast) == slow


def test_documents_are_independent_and_mutable_like_validated_ones() -> None:
    a = document("a", "x", {"k": 1})
    b = document("b", "y", {"k": 2})
    a.metadata["extra"] = True
    a.page_content = "changed"
    assert b == Document(id="b", page_content="y", metadata={"k": 2})
    assert a.model_fields_set == {"id", "page_content", "metadata"}
    assert a.type == "Document"


def test_rows_of_other_types_take_the_validating_path() -> None:
    with pytest.raises(pydantic.ValidationError):
        document("a", "x", ["not", "an", "object"])
    assert document(None, "x", {}) == Document(page_content="x")
