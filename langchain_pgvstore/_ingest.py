"""Ingest: validation, binary COPY encoding and the write plan. Pure, no I/O.

Every check runs before anything is sent, so a rejected call writes nothing;
the plan itself runs in one transaction, so a failure half-way (a lost
connection, a constraint) leaves no rows of the call behind either.
"""

from __future__ import annotations

import struct
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validate as check
from ._metadata import metadata_json as _metadata_json
from ._plan import Copy, Execute, Plan
from ._sql import dml
from .columns import Columns, copy_fields, split_metadata
from .config import MAX_DIMENSIONS, Distance, VectorType
from .errors import DimensionError, InputError

__all__ = [
    "Batch",
    "check_ids",
    "direct_write_plan",
    "encode_copy",
    "last_wins",
    "merge_plan",
    "new_ids",
    "prepare_batch",
    "query_array",
    "stage_plan",
    "vectors_array",
]

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
#: btree index entries are limited to about 2.7 kB; longer ids could not be indexed
MAX_ID_BYTES = 2048


@dataclass(frozen=True, slots=True)
class Batch:
    """Validated rows, ready to encode: ids, texts, metadata as JSON, vectors (n × d float32),
    and per row the values of the collection's typed columns (`columns.py`)."""

    ids: list[str]
    texts: list[str]
    metadata_json: list[str]
    vectors: np.ndarray
    typed: list[list[object]] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def new_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def _check_text(index: int, text: Any) -> str:
    return check.pg_text(text, f"text of document {index}")


def _check_id(index: int, value: Any) -> str:
    value = check.pg_text(value, f"id of document {index}")
    assert isinstance(value, str)
    if not value:
        raise InputError(f"ids must not be empty strings (document {index})")
    if len(value) > MAX_ID_BYTES // 4 and len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise InputError(
            f"id of document {index} is {len(value.encode('utf-8'))} bytes long;"
            f" ids are limited to {MAX_ID_BYTES} bytes"
        )
    return value


def check_ids(ids: object, what: str = "ids") -> list[str]:
    """A list of ids from a sequence of strings (a lone string is refused: it is not a list)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise InputError(f"{what} must be a list of strings, got {type(ids).__name__}")
    return [_check_id(i, v) for i, v in enumerate(ids)]


def _numeric(array: np.ndarray, what: str) -> np.ndarray:
    """`array` if it holds real numbers (ints or floats), else `InputError`."""
    if array.dtype.kind not in "iuf":
        kinds = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes"}
        shown = kinds.get(array.dtype.kind, "values that are not all numbers")
        raise InputError(f"{what} must contain only real numbers, got {shown}")
    return array


def vectors_array(
    vectors: Sequence[Sequence[float]] | np.ndarray,
    dimensions: int | None,
    vector_type: VectorType = VectorType.VECTOR,
    distance: Distance | None = None,
) -> np.ndarray:
    """Check vectors and return them as an n × d float32 array.

    Values that overflow the storage type (float32, or float16 for halfvec)
    would be stored as infinity, so they are rejected like NaN and infinity.
    Under cosine distance a vector of zeros has no direction: pgvector's HNSW
    index leaves it out and its distance to anything is NaN, so it is refused.
    """
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2:
            raise InputError(f"expected a 2-d array of vectors, got {vectors.ndim} dimensions")
        rows = _numeric(vectors, "vectors")
    else:
        if isinstance(vectors, (str, bytes)) or not isinstance(vectors, Sequence):
            raise InputError(f"vectors must be a list of vectors, got {type(vectors).__name__}")
        rows_list = list(vectors)
        expected = dimensions
        for i, vec in enumerate(rows_list):
            if isinstance(vec, (str, bytes, Mapping)) or not hasattr(vec, "__len__"):
                raise InputError(f"vector {i} is not a sequence of numbers: {_short(vec)}")
            n = len(vec)
            if expected is None:
                expected = n
            elif n != expected:
                raise DimensionError(f"expected {expected} dimensions, got {n} (document {i})")
        if not rows_list:
            return np.zeros((0, dimensions or 0), dtype=np.float32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a ragged or mixed list must not pass quietly
                rows = np.asarray(rows_list)
        except (TypeError, ValueError, OverflowError, Warning):
            raise InputError(
                "vectors must contain only real numbers, in equal-length lists"
            ) from None
        if rows.ndim != 2:
            raise InputError("vectors must be flat lists of numbers, not nested lists")
        rows = _numeric(rows, "vectors")
    n_dims = rows.shape[1]
    if dimensions is not None and n_dims != dimensions and len(rows):
        raise DimensionError(f"expected {dimensions} dimensions, got {n_dims} (document 0)")
    if len(rows) and not 1 <= n_dims <= MAX_DIMENSIONS:
        raise DimensionError(f"vectors must have 1 to {MAX_DIMENSIONS} dimensions, got {n_dims}")
    storage = np.float16 if vector_type is VectorType.HALFVEC else np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        stored = rows.astype(storage)
        finite = np.isfinite(stored).all(axis=1) & np.isfinite(rows.astype(np.float64)).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise InputError(
            f"vector {bad} contains NaN or infinity, or a value too large for {vector_type.value}"
        )
    if distance is Distance.COSINE and len(stored):
        zero = ~stored.any(axis=1)
        if zero.any():
            bad = int(np.argmax(zero))
            halfvec = " once stored as halfvec" if storage is np.float16 else ""
            raise InputError(
                f"vector {bad} is all zeros{halfvec}, which has no cosine distance to anything;"
                " use another distance to store it"
            )
    return stored.astype(np.float32, copy=False)


def query_array(
    vector: object,
    dimensions: int | None,
    vector_type: VectorType = VectorType.VECTOR,
    distance: Distance | None = None,
) -> np.ndarray:
    """One query vector, checked like a stored one, as a float32 array."""
    if (
        vector is None
        or isinstance(vector, (str, bytes, Mapping))
        or not hasattr(vector, "__len__")
    ):
        raise InputError(f"a query vector must be a list of numbers, got {_short(vector)}")
    if isinstance(vector, np.ndarray):
        if vector.ndim != 1:
            raise InputError(f"a query vector must be 1-d, got an array of shape {vector.shape}")
        rows: Any = vector.reshape(1, -1)
    else:
        rows = [vector]
    try:
        array: np.ndarray = vectors_array(rows, dimensions, vector_type, distance)[0]
        return array
    except DimensionError as e:
        raise DimensionError(str(e).replace(" (document 0)", " in the query vector")) from None
    except InputError as e:
        raise InputError(
            str(e).replace("vector 0", "the query vector").replace("vectors", "a query vector")
        ) from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def prepare_batch(
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ids: Sequence[str | None] | None,
    vectors: Sequence[Sequence[float]] | np.ndarray,
    dimensions: int | None,
    vector_type: VectorType = VectorType.VECTOR,
    distance: Distance | None = None,
    columns: Columns = (),
) -> Batch:
    """Validate one call's rows; every error names the offending document's index.

    With typed `columns`, each document's declared fields are taken out of its
    metadata and checked against their column's type.
    """
    n = len(texts)
    if metadatas is not None:
        if isinstance(metadatas, (str, bytes, Mapping)) or not isinstance(metadatas, Sequence):
            raise InputError(f"metadatas must be a list of dicts, got {type(metadatas).__name__}")
        if len(metadatas) != n:
            raise InputError(f"got {n} texts but {len(metadatas)} metadatas")
    if ids is not None:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
            raise InputError(f"ids must be a list of strings, got {type(ids).__name__}")
        if len(ids) != n:
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
    metas: Sequence[Mapping[str, Any] | None] = metadatas if metadatas is not None else [None] * n
    typed = None
    if columns:
        for i, m in enumerate(metas):
            if m is not None and not isinstance(m, Mapping):
                _metadata_json(i, m)  # raises the usual error
        metas, typed = split_metadata(columns, metas, ids)
    meta_json = [_metadata_json(i, m) for i, m in enumerate(metas)]
    array = vectors_array(vectors, dimensions, vector_type, distance)
    return Batch(checked_ids, checked_texts, meta_json, array, typed)


def encode_copy(
    batch: Batch,
    vector_type: VectorType,
    rows_per_chunk: int = 2000,
    *,
    with_ord: bool = True,
    tenant: str | None = None,
    columns: Columns = (),
) -> Iterator[bytes]:
    """The batch in PostgreSQL's binary COPY format, in chunks of whole rows.

    Columns: ord int4 (unless `with_ord=False`), tenant text (when given), id
    text, content text, metadata jsonb, embedding, then the typed `columns`
    (psycopg's binary dumpers of each column's type). Vectors are converted to
    big-endian once for the whole batch; per row only the byte strings are joined.
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
    fields = 4 + with_ord + (tenant is not None) + len(columns)
    typed = copy_fields(columns, batch.typed) if columns else None
    prefix = struct.pack(">h", fields)
    if with_ord:
        ord_field = struct.Struct(">ii").pack  # ord length, ord value
    if tenant is not None:
        tenant_b = tenant.encode("utf-8")
        prefix_tail = pack_len(len(tenant_b)) + tenant_b
    else:
        prefix_tail = b""
    parts: list[bytes] = [_COPY_HEADER]
    for i in range(n):
        id_b = batch.ids[i].encode("utf-8")
        text_b = batch.texts[i].encode("utf-8")
        meta_b = batch.metadata_json[i].encode("utf-8")
        parts.append(prefix)
        if with_ord:
            parts.append(ord_field(4, i))
        parts.append(prefix_tail)
        parts.append(pack_len(len(id_b)))
        parts.append(id_b)
        parts.append(pack_len(len(text_b)))
        parts.append(text_b)
        parts.append(pack_len(len(meta_b) + 1))
        parts.append(b"\x01")  # jsonb binary format version
        parts.append(meta_b)
        parts.append(vec_header)
        parts.append(raw[i].tobytes())
        if typed is not None:
            parts.append(typed(i))
        if (i + 1) % rows_per_chunk == 0:
            yield b"".join(parts)
            parts = []
    parts.append(_COPY_TRAILER)
    yield b"".join(parts)


def stage_plan(
    batch: Batch, vector_type: VectorType, dimensions: int, columns: Columns = ()
) -> Plan[None]:
    """Binary COPY of the batch into the transaction's staging table."""
    yield Execute(dml.create_staging(vector_type, dimensions, columns))
    yield Copy(dml.copy_into_staging(columns), encode_copy(batch, vector_type, columns=columns))


def merge_plan(table: Any, tenant: str | None = None) -> Plan[int]:
    """Upsert the staged rows with one statement; returns how many rows it wrote."""
    written: int = yield Execute(dml.merge_staging(table, tenant))
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
        None if batch.typed is None else [batch.typed[i] for i in keep],
    )


def direct_write_plan(
    table: Any, batch: Batch, vector_type: VectorType, tenant: str | None = None
) -> Plan[int]:
    """COPY the batch straight into an empty table the transaction has locked (its rows).

    Nothing can conflict, so the staging table, its sort and the upsert's
    conflict checks are skipped; duplicate ids were resolved in Python the way
    the merge resolves them (the later row wins).
    """
    rows = last_wins(batch)
    chunks = encode_copy(rows, vector_type, with_ord=False, tenant=tenant, columns=table.columns)
    yield Copy(dml.copy_into_table(table), chunks)
    return len(rows)
