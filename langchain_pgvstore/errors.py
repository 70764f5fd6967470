"""Exceptions raised by langchain-pgvstore.

Every error the library raises on its own account derives from `PGVStoreError`.
Errors about bad arguments also derive from `ValueError`, so code written for
other LangChain vector stores that catches `ValueError` keeps working.

```
PGVStoreError
├── ConfigError (ValueError)        bad identifiers, unknown distance, bad index parameters
│   └── SourceNotFoundError         an importer's source table or collection does not exist
├── InputError (ValueError)         mismatched lengths, NaN/inf, NUL bytes, non-JSON metadata
│   └── DimensionError              a vector of the wrong length
├── FilterError (ValueError)        a metadata filter that cannot be compiled; has `.path`
├── SchemaError                     the database disagrees with the store (dimensions, pgvector)
├── DatabaseUnavailableError        cannot connect, or the connection was lost mid-call
├── QueryTimeoutError               a statement ran past its timeout, or the pool had no connection
├── EmbeddingError                  the embedding model failed or returned the wrong shape
└── EmbeddedServerError             the embedded PostgreSQL could not start
```

Other `psycopg.Error` exceptions pass through unchanged: they carry the server's
own diagnostics, which are more useful than anything we could wrap them in.
"""

from __future__ import annotations

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
    "SourceNotFoundError",
]


class PGVStoreError(Exception):
    """Base class of every error raised by langchain-pgvstore."""


class ConfigError(PGVStoreError, ValueError):
    """A configuration value is invalid: an identifier, a distance, an index parameter."""


class SourceNotFoundError(ConfigError):
    """What an importer was asked to read does not exist: a table, a collection, a Chroma
    directory; the message names what the source holds instead."""


class InputError(PGVStoreError, ValueError):
    """An argument passed to a store method is invalid; nothing was written."""


class DimensionError(InputError):
    """A vector has a different number of dimensions than the collection."""


class FilterError(PGVStoreError, ValueError):
    """A metadata filter is invalid; `path` names the spot, e.g. `filter.$and[1].price`."""

    def __init__(self, message: str, path: str = "filter") -> None:
        super().__init__(message)
        self.path = path


class SchemaError(PGVStoreError):
    """The database schema disagrees with the store, or pgvector is missing or too old."""


class DatabaseUnavailableError(PGVStoreError):
    """The database could not be reached, or the connection broke during the call."""


class QueryTimeoutError(PGVStoreError):
    """A statement exceeded its timeout, or no pooled connection became free in time."""


class EmbeddingError(PGVStoreError):
    """The embedding model failed, or returned a result of the wrong shape."""


class EmbeddedServerError(PGVStoreError):
    """The embedded PostgreSQL server could not be started."""
