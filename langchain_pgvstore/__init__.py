"""PostgreSQL + pgvector as a LangChain vector store."""

from .errors import (
    ConfigError,
    DatabaseUnavailableError,
    DimensionError,
    EmbeddedServerError,
    EmbeddingError,
    FilterError,
    InputError,
    PGVStoreError,
    QueryTimeoutError,
    SchemaError,
)

__all__ = [
    "ConfigError",
    "DatabaseUnavailableError",
    "DimensionError",
    "EmbeddedServerError",
    "EmbeddingError",
    "FilterError",
    "InputError",
    "PGVStoreError",
    "QueryTimeoutError",
    "SchemaError",
]
