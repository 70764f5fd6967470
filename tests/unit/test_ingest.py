"""Ingest validation and binary COPY encoding, without a database."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_pgvstore._ingest import encode_copy, prepare_batch, vectors_array
from langchain_pgvstore.config import VectorType
from langchain_pgvstore.errors import DimensionError, InputError


def decode_copy(data: bytes, vector_type: VectorType):
    """A small independent reader of PostgreSQL's binary COPY format."""
    assert data[:11] == b"PGCOPY\n\xff\r\n\x00"
    pos = 19
    rows = []
    while True:
        (nfields,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if nfields == -1:
            break
        fields = []
        for _ in range(nfields):
            (length,) = struct.unpack_from(">i", data, pos)
            pos += 4
            fields.append(data[pos : pos + length])
            pos += length
        ord_ = struct.unpack(">i", fields[0])[0]
        dim, unused = struct.unpack_from(">HH", fields[4])
        dtype = ">f2" if vector_type is VectorType.HALFVEC else ">f4"
        vec = np.frombuffer(fields[4][4:], dtype=dtype).astype(np.float32)
        assert len(vec) == dim and unused == 0
        assert fields[3][:1] == b"\x01"
        rows.append((ord_, fields[1].decode(), fields[2].decode(), fields[3][1:].decode(), vec))
    assert pos == len(data)
    return rows


@given(
    texts=st.lists(
        st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
        max_size=30,
    ),
    vector_type=st.sampled_from(list(VectorType)),
    chunk=st.integers(1, 7),
)
def test_encode_decode_roundtrip(texts, vector_type, chunk) -> None:
    n = len(texts)
    vecs = np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 8
    batch = prepare_batch(
        texts, [{"i": i} for i in range(n)], [f"id{i}" for i in range(n)], vecs, 3, vector_type
    )
    data = b"".join(encode_copy(batch, vector_type, rows_per_chunk=chunk))
    rows = decode_copy(data, vector_type)
    assert [r[0] for r in rows] == list(range(n))
    assert [r[1] for r in rows] == [f"id{i}" for i in range(n)]
    assert [r[2] for r in rows] == texts
    assert [r[3] for r in rows] == [f'{{"i":{i}}}' for i in range(n)]
    for r, v in zip(rows, vecs, strict=True):
        assert np.array_equal(r[4], v)


def test_chunks_hold_whole_rows() -> None:
    batch = prepare_batch(["a", "b", "c"], None, ["1", "2", "3"], np.ones((3, 2)), 2)
    chunks = list(encode_copy(batch, VectorType.VECTOR, rows_per_chunk=1))
    assert len(chunks) == 4  # header+row, row, row, trailer


def test_generated_ids_are_unique_and_none_ids_filled() -> None:
    batch = prepare_batch(["a", "b"], None, ["x", None], np.ones((2, 2)), 2)
    assert batch.ids[0] == "x" and len(batch.ids[1]) == 36


def test_halfvec_overflow_is_rejected() -> None:
    with pytest.raises(InputError, match="too large for halfvec"):
        vectors_array([[70000.0, 1.0]], 2, VectorType.HALFVEC)
    assert vectors_array([[60000.0, 1.0]], 2, VectorType.HALFVEC).shape == (1, 2)


@pytest.mark.parametrize(
    ("vectors", "error", "message"),
    [
        ([[1.0, 2.0], [1.0]], DimensionError, r"expected 2 dimensions, got 1 \(document 1\)"),
        ([[]], DimensionError, "1 to 16000 dimensions, got 0"),
        ([[0.0] * 16001], DimensionError, "1 to 16000 dimensions, got 16001"),
        ([5], InputError, "vector 0 is not a sequence"),
        (np.ones(3), InputError, "2-d array"),
    ],
)
def test_vector_shape_errors(vectors, error, message) -> None:
    with pytest.raises(error, match=message):
        vectors_array(vectors, None)


def test_metadata_with_escaped_backslash_is_not_mistaken_for_nul() -> None:
    batch = prepare_batch(["a"], [{"path": "C:\\u0000dir"}], None, np.ones((1, 2)), 2)
    assert "\\\\u0000" in batch.metadata_json[0]


@pytest.mark.parametrize("field", ["text", "id", "metadata"])
def test_lone_surrogates_are_refused(field) -> None:
    bad = "ok\ud800"
    kwargs = {"text": ["fine"], "id": ["x"], "metadata": [{"k": "v"}]}
    if field == "text":
        kwargs["text"] = [bad]
    elif field == "id":
        kwargs["id"] = [bad]
    else:
        kwargs["metadata"] = [{"k": bad}]
    with pytest.raises(InputError, match=f"{field} of document 0 is not valid unicode"):
        prepare_batch(kwargs["text"], kwargs["metadata"], kwargs["id"], np.ones((1, 2)), 2)
