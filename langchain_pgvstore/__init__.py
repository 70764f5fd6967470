"""PostgreSQL + pgvector as a LangChain vector store."""

from .config import Distance, HNSWIndex, IVFFlatIndex, VectorType
from .embeddings import MiniLMEmbeddings, OpenAIBatchEmbeddings
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
from .self_query import PGVStoreTranslator
from .server import EmbeddedPostgres, embedded_dsn
from .store import PGVStore

__all__ = [
    "ConfigError",
    "DatabaseUnavailableError",
    "DimensionError",
    "Distance",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "EmbeddingError",
    "FilterError",
    "HNSWIndex",
    "IVFFlatIndex",
    "InputError",
    "MiniLMEmbeddings",
    "OpenAIBatchEmbeddings",
    "PGVStore",
    "PGVStoreError",
    "PGVStoreTranslator",
    "QueryTimeoutError",
    "SchemaError",
    "VectorType",
    "embedded_dsn",
]
