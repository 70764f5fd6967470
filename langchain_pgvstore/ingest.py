"""Ingest: validation, binary COPY encoding and the write plan. Pure, no I/O.

Every check runs before anything is sent, so a rejected call writes nothing;
the plan itself runs in one transaction, so a failure half-way (a lost
connection, a constraint) leaves no rows of the call behind either.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._sql import dml
from ._steps import Copy, Execute, Plan
from .config import MAX_DIMENSIONS, VectorType
from .errors import DimensionError, InputError

__all__ = [
    "Batch",
    "direct_write_plan",
    "encode_copy",
    "last_wins",
    "new_ids",
    "prepare_batch",
    "merge_plan",
    "stage_plan",
]

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_NUL_ESCAPE = "\\u0000"
#: btree index entries are limited to about 2.7 kB; longer ids could not be indexed
MAX_ID_BYTES = 2048


@dataclass(frozen=True, slots=True)
class Batch:
    """Validated rows, ready to encode: ids, texts, metadata as JSON, vectors (n × d float32)."""

    ids: list[str]
    texts: list[str]
    metadata_json: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def new_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def check_unicode(value: str, what: str) -> str:
    """Refuse strings UTF-8 cannot encode (lone surrogates), before anything is sent."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{what} is not valid unicode (it holds a lone surrogate)") from None
    return value


def _check_unicode(index: int, what: str, value: str) -> str:
    return check_unicode(value, f"{what} of document {index}")


def _metadata_json(index: int, metadata: Any) -> str:
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise InputError(
            f"metadata must be a dict, got {type(metadata).__name__} (document {index})"
        )
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise InputError(f"metadata of document {index} is not JSON-serialisable: {e}") from None
    # JSON escapes NUL as \u0000, which jsonb refuses; only walk the value when
    # the escape could be present, since a clean document cannot contain it.
    if _NUL_ESCAPE in text and _has_nul(metadata):
        raise InputError(f"metadata of document {index} contains a NUL (\\x00) character")
    return _check_unicode(index, "metadata", text)


def _check_text(index: int, text: Any) -> str:
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__} (document {index})")
    if "\x00" in text:
        raise InputError(f"text of document {index} contains a NUL (\\x00) character")
    return _check_unicode(index, "text", text)


def _check_id(index: int, value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"ids must be strings, got {value!r} (document {index})")
    if not value:
        raise InputError(f"ids must not be empty strings (document {index})")
    if "\x00" in value:
        raise InputError(f"id of document {index} contains a NUL (\\x00) character")
    if len(value) > MAX_ID_BYTES // 4 and len(value.encode("utf-8", "replace")) > MAX_ID_BYTES:
        raise InputError(
            f"id of document {index} is {len(value.encode('utf-8', 'replace'))} bytes long;"
            f" ids are limited to {MAX_ID_BYTES} bytes"
        )
    return _check_unicode(index, "id", value)


def vectors_array(
    vectors: Sequence[Sequence[float]] | np.ndarray,
    dimensions: int | None,
    vector_type: VectorType = VectorType.VECTOR,
) -> np.ndarray:
    """Check vectors and return them as an n × d float32 array.

    Values that overflow the storage type (float32, or float16 for halfvec)
    would be stored as infinity, so they are rejected like NaN and infinity.
    """
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2:
            raise InputError(f"expected a 2-d array of vectors, got {vectors.ndim} dimensions")
        rows = vectors
    else:
        rows_list = list(vectors)
        expected = dimensions
        for i, vec in enumerate(rows_list):
            try:
                n = len(vec)
            except TypeError:
                raise InputError(f"vector {i} is not a sequence of numbers: {vec!r}") from None
            if expected is None:
                expected = n
            elif n != expected:
                raise DimensionError(f"expected {expected} dimensions, got {n} (document {i})")
        try:
            rows = np.asarray(rows_list, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"vectors must contain only numbers: {e}") from None
        if rows.ndim == 1 and len(rows_list) == 0:
            rows = rows.reshape(0, dimensions or 0)
    n_dims = rows.shape[1]
    if dimensions is not None and n_dims != dimensions and len(rows):
        raise DimensionError(f"expected {dimensions} dimensions, got {n_dims} (document 0)")
    if len(rows) and not 1 <= n_dims <= MAX_DIMENSIONS:
        raise DimensionError(f"vectors must have 1 to {MAX_DIMENSIONS} dimensions, got {n_dims}")
    storage = np.float16 if vector_type is VectorType.HALFVEC else np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        stored = rows.astype(storage)
        finite = np.isfinite(stored).all(axis=1) & np.isfinite(rows).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise InputError(
            f"vector {bad} contains NaN or infinity, or a value too large for {vector_type.value}"
        )
    return stored.astype(np.float32, copy=False)


def prepare_batch(
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ids: Sequence[str | None] | None,
    vectors: Sequence[Sequence[float]] | np.ndarray,
    dimensions: int | None,
    vector_type: VectorType = VectorType.VECTOR,
) -> Batch:
    """Validate one call's rows; every error names the offending document's index."""
    n = len(texts)
    if metadatas is not None and len(metadatas) != n:
        raise InputError(f"got {n} texts but {len(metadatas)} metadatas")
    if ids is not None and len(ids) != n:
        raise InputError(f"got {n} texts but {len(ids)} ids")
    if len(vectors) != n:
        raise InputError(f"got {n} texts but {len(vectors)} vectors")
    checked_texts = [_check_text(i, t) for i, t in enumerate(texts)]
    if ids is None:
        checked_ids = new_ids(n)
    else:
        checked_ids = [
            str(uuid.uuid4()) if v is None else _check_id(i, v) for i, v in enumerate(ids)
        ]
    metas = metadatas if metadatas is not None else [None] * n
    meta_json = [_metadata_json(i, m) for i, m in enumerate(metas)]
    array = vectors_array(vectors, dimensions, vector_type)
    return Batch(checked_ids, checked_texts, meta_json, array)


def encode_copy(
    batch: Batch, vector_type: VectorType, rows_per_chunk: int = 2000, *, with_ord: bool = True
) -> Iterator[bytes]:
    """The batch in PostgreSQL's binary COPY format, in chunks of whole rows.

    Columns: ord int4 (unless `with_ord=False`), id text, content text, metadata
    jsonb, embedding. Vectors are converted to big-endian once for the whole
    batch; per row only the byte strings are joined.
    """
    n, d = batch.vectors.shape if len(batch) else (0, 0)
    if vector_type is VectorType.HALFVEC:
        raw = batch.vectors.astype(">f2")
        item = 2
    else:
        raw = batch.vectors.astype(">f4")
        item = 4
    vec_header = struct.pack(">iHH", 4 + item * d, d, 0)
    pack_len = struct.Struct(">i").pack
    ord_prefix = struct.Struct(">hii").pack  # field count, ord length, ord value
    four_fields = struct.pack(">h", 4)
    parts: list[bytes] = [_COPY_HEADER]
    for i in range(n):
        id_b = batch.ids[i].encode("utf-8")
        text_b = batch.texts[i].encode("utf-8")
        meta_b = batch.metadata_json[i].encode("utf-8")
        parts.append(ord_prefix(5, 4, i) if with_ord else four_fields)
        parts.append(pack_len(len(id_b)))
        parts.append(id_b)
        parts.append(pack_len(len(text_b)))
        parts.append(text_b)
        parts.append(pack_len(len(meta_b) + 1))
        parts.append(b"\x01")  # jsonb binary format version
        parts.append(meta_b)
        parts.append(vec_header)
        parts.append(raw[i].tobytes())
        if (i + 1) % rows_per_chunk == 0:
            yield b"".join(parts)
            parts = []
    parts.append(_COPY_TRAILER)
    yield b"".join(parts)


def stage_plan(batch: Batch, vector_type: VectorType, dimensions: int) -> Plan[None]:
    """Binary COPY of the batch into the transaction's staging table."""
    yield Execute(dml.create_staging(vector_type, dimensions))
    yield Copy(dml.copy_into_staging(), encode_copy(batch, vector_type))


def merge_plan(table: Any) -> Plan[int]:
    """Upsert the staged rows with one statement; returns how many rows it wrote."""
    written: int = yield Execute(dml.merge_staging(table))
    return written


def last_wins(batch: Batch) -> Batch:
    """The batch without rows whose id occurs again later: the later row wins."""
    last = {id_: i for i, id_ in enumerate(batch.ids)}
    if len(last) == len(batch.ids):
        return batch
    keep = [i for i, id_ in enumerate(batch.ids) if last[id_] == i]
    return Batch(
        [batch.ids[i] for i in keep],
        [batch.texts[i] for i in keep],
        [batch.metadata_json[i] for i in keep],
        batch.vectors[keep],
    )


def direct_write_plan(table: Any, batch: Batch, vector_type: VectorType) -> Plan[None]:
    """COPY the batch straight into an empty table the transaction has locked.

    Nothing can conflict, so the staging table, its sort and the upsert's
    conflict checks are skipped; duplicate ids were resolved in Python the way
    the merge resolves them (the later row wins).
    """
    chunks = encode_copy(last_wins(batch), vector_type, with_ord=False)
    yield Copy(dml.copy_into_table(table), chunks)
