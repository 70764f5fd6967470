"""Hypothesis round-trips: what goes in through binary COPY comes back unchanged."""

from __future__ import annotations

import uuid

import numpy as np
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pgvector.psycopg import register_vector
from psycopg import sql

from langchain_pgvstore import InputError, PGVStore
from tests.fix_db import unique_name

DIM = 5

texts = st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=200)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
metadatas = st.dictionaries(texts, json_values, max_size=5)
float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
vectors = st.lists(float32s, min_size=DIM, max_size=DIM).filter(lambda v: any(x != 0 for x in v))


@pytest.fixture(scope="module")
def store(make_module_store) -> PGVStore:
    return make_module_store(DIM, collection=unique_name("rt"), distance="l2")


def _normalise(value):
    # jsonb stores numbers as numeric: 1.0 comes back as 1.0 or 1 depending on the text;
    # compare numerically so the round-trip checks values, not spelling
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return float(value)


@pytest.fixture(scope="module")
def reader(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        yield conn


@given(text=texts, metadata=metadatas, vector=vectors)
def test_text_metadata_vector_roundtrip(store: PGVStore, reader, text, metadata, vector) -> None:
    doc_id = str(uuid.uuid4())
    store.add_embeddings([text], [vector], [metadata], ids=[doc_id])
    [doc] = store.get_by_ids([doc_id])
    assert doc.page_content == text
    assert _normalise(doc.metadata) == _normalise(metadata)
    stored = reader.execute(
        sql.SQL("SELECT embedding FROM {} WHERE id = %s").format(sql.Identifier(store.collection)),
        (doc_id,),
    ).fetchone()[0]
    assert np.array_equal(stored.to_numpy(), np.asarray(vector, dtype=np.float32))


@given(ids=st.lists(texts.filter(bool), min_size=1, max_size=20))
def test_ids_roundtrip_in_input_order(store: PGVStore, ids) -> None:
    prefix = uuid.uuid4().hex
    full = [prefix + i for i in ids]
    got = store.add_embeddings(["x"] * len(full), [[1.0] * DIM] * len(full), ids=full)
    assert got == full
    unique = list(dict.fromkeys(full))
    assert [d.id for d in store.get_by_ids(list(reversed(unique)))] == list(reversed(unique))


@given(text=st.text(min_size=1, max_size=20).map(lambda t: t + "\x00"))
def test_nul_in_text_raises_input_error(store: PGVStore, text) -> None:
    with pytest.raises(InputError, match="NUL"):
        store.add_embeddings([text], [[1.0] * DIM])
