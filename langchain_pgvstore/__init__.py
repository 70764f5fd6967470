"""PostgreSQL + pgvector as a LangChain vector store."""

from typing import TYPE_CHECKING, Any

from ._indexes import IndexInfo, IndexProgress
from ._routing import WriteToken
from .cache import PostgresByteStore, cached_embeddings
from .columns import Column
from .config import Distance, HNSWIndex, IVFFlatIndex, VectorType
from .embeddings import E5SmallEmbeddings, EmbeddingEstimate, MiniLMEmbeddings
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
    SourceNotFoundError,
)
from .record_manager import PostgresRecordManager
from .retriever import PGVStoreRetriever
from .self_query import PGVStoreTranslator
from .server import EmbeddedPostgres, embedded_dsn
from .store import PGVStore

if TYPE_CHECKING:
    from .embeddings.openai import OpenAIBatchEmbeddings

__all__ = [
    "Column",
    "ConfigError",
    "DatabaseUnavailableError",
    "DimensionError",
    "Distance",
    "E5SmallEmbeddings",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "EmbeddingError",
    "EmbeddingEstimate",
    "FilterError",
    "HNSWIndex",
    "IVFFlatIndex",
    "IndexInfo",
    "IndexProgress",
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
    "SourceNotFoundError",
    "VectorType",
    "WriteToken",
    "cached_embeddings",
    "embedded_dsn",
]


def __getattr__(name: str) -> Any:
    # the OpenAI client is an extra, and slow to import: load it when first named
    if name == "OpenAIBatchEmbeddings":
        from . import embeddings

        return embeddings.OpenAIBatchEmbeddings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
