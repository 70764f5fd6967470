"""Query vectors: checked once, then held against the collection they search."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ingest import query_array
from ._schema import CollectionSpec
from .errors import ConfigError, DimensionError, EmbeddingError, SchemaError

__all__ = ["fits", "query_vector"]


def query_vector(embedding: Any, spec: CollectionSpec, from_model: bool) -> np.ndarray:
    """`embedding` as a float32 array, checked as a stored vector would be (finite,
    storable in the collection's type, not zero under cosine). Its size is checked
    later, by `fits`, against the collection the flow looks up. A bad vector from
    the store's own model is an `EmbeddingError`."""
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
