"""Query vectors: checked once, then held against the collection they search."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ingest import query_array
from ._schema import CollectionSpec
from .config import MAX_DIMENSIONS, Distance, VectorType
from .errors import ConfigError, DimensionError, EmbeddingError, SchemaError

__all__ = ["fits", "query_vector"]


def query_vector(embedding: Any, spec: CollectionSpec, from_model: bool) -> np.ndarray:
    """`embedding` as a float32 array, checked as a stored vector would be (finite,
    storable in the collection's type, not zero under cosine). Its size is checked
    later, by `fits`, against the collection the flow looks up. A bad vector from
    the store's own model is an `EmbeddingError`."""
    fast = _plain(embedding, spec)
    if fast is not None:
        return fast
    try:
        return query_array(embedding, None, spec.vector_type, spec.distance)
    except (DimensionError, ConfigError):
        raise
    except ValueError as e:
        if from_model:
            raise EmbeddingError(f"the embedding model returned a bad vector: {e}") from None
        raise


def fits(spec: CollectionSpec, vector: np.ndarray, from_model: bool) -> np.ndarray:
    """`vector` if it has the collection's size.

    A query the caller passed is a `DimensionError`; one the store's own model
    made means the model and the collection disagree: a `SchemaError`.
    """
    if len(vector) == spec.dimensions:
        return vector
    if from_model:
        table = spec.table
        raise SchemaError(
            f"collection {table.schema}.{table.name} was created with {spec.dimensions}"
            f" dimensions, but this store uses {len(vector)} (its embedding model's size)"
        )
    raise DimensionError(
        f"expected {spec.dimensions} dimensions, got {len(vector)} in the query vector"
    )


_PEAK = (float(np.finfo(np.float32).max), float(np.finfo(np.float16).max))


def _plain(embedding: Any, spec: CollectionSpec) -> np.ndarray | None:
    """What models return (a list or 1-d array of floats that `query_array` would accept),
    checked with one conversion and one reduction (NaN, infinity and overflow all fail
    `peak <= limit`); None for anything else, which takes the full check."""
    if type(embedding) is not list and type(embedding) is not np.ndarray:
        return None
    given = np.asarray(embedding)
    if given.ndim != 1 or given.dtype.kind != "f" or not 0 < len(given) <= MAX_DIMENSIONS:
        return None
    half = spec.vector_type is VectorType.HALFVEC
    if not max(-float(given.min()), float(given.max())) <= _PEAK[half]:
        return None
    stored = given.astype(np.float16 if half else np.float32)
    if spec.distance is Distance.COSINE and not stored.any():
        return None
    return stored.astype(np.float32, copy=False)
