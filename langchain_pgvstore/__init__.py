"""PostgreSQL + pgvector as a LangChain vector store."""

from .cache import PostgresByteStore, cached_embeddings
from .config import Distance, HNSWIndex, IVFFlatIndex, VectorType
from .embeddings import E5SmallEmbeddings, MiniLMEmbeddings, OpenAIBatchEmbeddings
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
from .record_manager import PostgresRecordManager
from .retriever import PGVStoreRetriever
from .self_query import PGVStoreTranslator
from .server import EmbeddedPostgres, embedded_dsn
from .store import PGVStore

__all__ = [
    "ConfigError",
    "DatabaseUnavailableError",
    "DimensionError",
    "Distance",
    "E5SmallEmbeddings",
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
    "PGVStoreRetriever",
    "PGVStoreTranslator",
    "PostgresByteStore",
    "PostgresRecordManager",
    "QueryTimeoutError",
    "SchemaError",
    "VectorType",
    "cached_embeddings",
    "embedded_dsn",
]
