"""PostgreSQL + pgvector as a LangChain vector store."""

import importlib
from typing import TYPE_CHECKING, Any

from ._indexes import IndexInfo, IndexProgress
from ._routing import WriteToken
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
from .existing import AdoptionReport, BackfillReport, ExistingTable
from .retriever import PGVStoreRetriever
from .server import EmbeddedPostgres, embedded_dsn
from .store import PGVStore

if TYPE_CHECKING:
    from .cache import PostgresByteStore, cached_embeddings
    from .embeddings.openai import OpenAIBatchEmbeddings
    from .record_manager import PostgresRecordManager
    from .self_query import PGVStoreTranslator

__all__ = [
    "AdoptionReport",
    "BackfillReport",
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
    "ExistingTable",
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


# Loaded when first named: the OpenAI client is an extra, and the others pull in parts
# of langchain-core (indexing, stores, structured queries) a plain store never uses.
_LAZY = {
    "OpenAIBatchEmbeddings": ".embeddings",
    "PostgresByteStore": ".cache",
    "cached_embeddings": ".cache",
    "PostgresRecordManager": ".record_manager",
    "PGVStoreTranslator": ".self_query",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
