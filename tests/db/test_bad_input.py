"""Bad input across the API: a typed error with a clear message, and nothing written or lost.

Each row of `CASES` is one call, the exact exception class it must raise and a
fragment of its message. Every row, sync and async, also checks that the seeded
collection's rows, the registry and the catalog (tables, indexes, schemas,
extensions) are exactly what they were before the call. docs/reliability.md
shows the same table. A second group of tests checks that large but valid
inputs work.
"""

from __future__ import annotations

import datetime
import logging
import random
import secrets
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from langchain_pgvstore import (
    ConfigError,
    DatabaseUnavailableError,
    DimensionError,
    EmbeddingError,
    FilterError,
    HNSWIndex,
    InputError,
    IVFFlatIndex,
    PGVStore,
    SchemaError,
)
from langchain_pgvstore.config import Table
from tests.fix_db import unique_name

DIM = 16
NAN = float("nan")
INF = float("inf")
PASSWORD = "pw-bad-input-7f3a"
SEEDED = unique_name("bad")
FOREIGN = SEEDED + "_foreign"  # a user's own table, not a collection
FRESH = SEEDED + "_fresh"  # prefix of collections no successful call creates
ROLE = unique_name("limited")
NOPGV_DB = unique_name("nopgv")


class ShortEmbeddings(DeterministicFakeEmbedding):
    """An embedding model that drops the last vector of every batch."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return super().embed_documents(texts)[:-1]


class NoneEmbeddings(DeterministicFakeEmbedding):
    """An embedding model that returns None instead of vectors."""

    def embed_documents(self, texts: list[str]) -> Any:
        return None

    def embed_query(self, text: str) -> Any:
        return None


class FailingEmbeddings(DeterministicFakeEmbedding):
    """An embedding model whose provider refuses every call."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("quota exceeded")

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("quota exceeded")


def _nested(depth: int, leaf: Any, wrap: Callable[[Any], Any]) -> Any:
    value = leaf
    for _ in range(depth):
        value = wrap(value)
    return value


DEEP_META = _nested(1000, 1, lambda v: {"k": v})
DEEP_FILTER = _nested(5000, {"n": 1}, lambda f: {"$and": [f]})
DEEP_VALUE = _nested(5000, 1, lambda v: [v])


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    method: str | None  # None: the constructor itself must raise
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    error: type[BaseException]
    match: str
    store: dict[str, Any] = field(default_factory=dict)  # PGVStore(...) overrides
    modes: tuple[str, ...] = ("sync", "async")


def case(
    id: str,
    what: str,
    method: str | None,
    *args: Any,
    error: type[BaseException],
    match: str,
    store: dict[str, Any] | None = None,
    modes: tuple[str, ...] = ("sync", "async"),
    **kwargs: Any,
) -> Case:
    return Case(id, what, method, args, kwargs, error, match, store or {}, modes)


V = [[1.0] * DIM]  # one valid vector
CIRCULAR: dict[str, Any] = {}
CIRCULAR["self"] = CIRCULAR

# fmt: off
CASES = [
    # -- vectors and dimensions ---------------------------------------------------
    case("wrong-dim", "8-dim vectors, store of 16 dims", "add_embeddings", ["a"], [[1.0] * 8], error=DimensionError, match="expected 16 dimensions, got 8", store={"dimensions": DIM}),
    case("wrong-dim-query", "an 8-dim query vector, store of 16 dims", "similarity_search_by_vector", [1.0] * 8, error=DimensionError, match="expected 16 dimensions, got 8", store={"dimensions": DIM}),
    case("wrong-dim-fresh", "8-dim vectors, store without dimensions, 16-dim collection", "add_embeddings", ["a"], [[1.0] * 8], error=SchemaError, match="created with 16 dimensions, but this store uses 8"),
    case("ragged", "vectors of different lengths in one call", "add_embeddings", ["a", "b"], [[1.0] * DIM, [1.0] * 15], error=DimensionError, match="expected 16 dimensions, got 15 (document 1)"),
    case("nan", "NaN in a vector", "add_embeddings", ["a", "b"], [[1.0] * DIM, [NAN] * DIM], error=InputError, match="vector 1 contains NaN or infinity"),
    case("inf", "infinity in a vector", "add_embeddings", ["a"], [[INF] + [1.0] * (DIM - 1)], error=InputError, match="vector 0 contains NaN or infinity"),
    case("nan-query", "NaN in a query vector", "similarity_search_by_vector", [NAN] * DIM, error=InputError, match="contains NaN or infinity"),
    case("overflow", "1e39 (too large for float32)", "add_embeddings", ["a"], [[1e39] * DIM], error=InputError, match="too large for vector"),
    case("empty-vector", "an empty vector", "add_embeddings", ["a"], [[]], error=DimensionError, match="expected 16 dimensions, got 0", store={"dimensions": DIM}),
    case("huge-vector", "16,001 dims (pgvector's limit is 16,000), new collection", "add_embeddings", ["a"], [[1.0] * 16_001], error=DimensionError, match="1 to 16000 dimensions, got 16001", store={"collection": FRESH + "_1"}),
    case("not-numbers", "strings in a vector", "add_embeddings", ["a"], [["x"] * DIM], error=InputError, match="only real numbers"),
    case("3d-array", "a 3-d numpy array of vectors", "add_embeddings", ["a"], np.ones((1, DIM, 1)), error=InputError, match="expected a 2-d array"),
    case("hnsw-too-wide", "2,001 dims with an HNSW index on vector (limit 2,000), new collection", "add_embeddings", ["a"], [[1.0] * 2001], error=ConfigError, match="at most 2000 dimensions", store={"collection": FRESH + "_2"}),
    case("embedder-count", "an embedding model that returns too few vectors", "add_texts", ["a", "b"], error=EmbeddingError, match="returned 1 vectors for 2 texts", store={"embedding": ShortEmbeddings(size=DIM)}),
    # -- texts ----------------------------------------------------------------------
    case("nul-text", "NUL byte in a text", "add_texts", ["ok", "a\x00b"], error=InputError, match="text of document 1 contains a NUL"),
    case("surrogate-text", "a lone surrogate in a text", "add_embeddings", ["a\ud800b"], V, error=InputError, match="lone surrogate"),
    case("text-not-str", "a text that is not a string", "add_texts", [3], error=InputError, match="text of document 0 must be a string, got int"),
    case("texts-str", "texts passed as one string", "add_texts", "abc", error=InputError, match="not a single string"),
    # -- metadata -------------------------------------------------------------------
    case("nul-meta-key", "NUL byte in a metadata key", "add_texts", ["a"], [{"k\x00": 1}], error=InputError, match="metadata of document 0 contains a NUL"),
    case("nul-meta-value", "NUL byte in a metadata value", "add_texts", ["a"], [{"k": "v\x00"}], error=InputError, match="metadata of document 0 contains a NUL"),
    case("nul-meta-nested", "NUL byte in a nested list value", "add_texts", ["a"], [{"k": [{"x": ["\x00"]}]}], error=InputError, match="contains a NUL"),
    case("surrogate-meta", "a lone surrogate in a metadata key", "add_embeddings", ["a"], V, [{"k\udc80": 1}], error=InputError, match="lone surrogate"),
    case("meta-set", "a set in metadata", "add_texts", ["a"], [{"tags": {"x", "y"}}], error=InputError, match="not JSON-serialisable"),
    case("meta-bytes", "bytes in metadata", "add_texts", ["a"], [{"raw": b"\x00\x01"}], error=InputError, match="not JSON-serialisable"),
    case("meta-datetime", "a datetime in metadata", "add_texts", ["a"], [{"at": datetime.datetime(2024, 1, 1)}], error=InputError, match="not JSON-serialisable"),
    case("meta-nan", "NaN in metadata", "add_texts", ["a"], [{"score": NAN}], error=InputError, match="not JSON-serialisable"),
    case("meta-circular", "metadata that contains itself", "add_texts", ["a"], [CIRCULAR], error=InputError, match="nests deeper than 100 levels"),
    case("meta-bigint", "a 5,000-digit integer in metadata", "add_texts", ["a"], [{"n": 10**5000}], error=InputError, match="not JSON-serialisable"),
    case("meta-not-dict", "metadata that is a list", "add_texts", ["a"], [["k", "v"]], error=InputError, match="metadata must be a dict, got list"),
    # -- lengths --------------------------------------------------------------------
    case("len-ids", "1 text, 2 ids", "add_texts", ["a"], ids=["1", "2"], error=InputError, match="got 1 texts but 2 ids"),
    case("len-metas", "2 texts, 1 metadata", "add_texts", ["a", "b"], [{}], error=InputError, match="got 2 texts but 1 metadatas"),
    case("len-vectors", "2 texts, 1 vector", "add_embeddings", ["a", "b"], V, error=InputError, match="got 2 texts but 1 vectors"),
    case("len-docs", "1 document, 2 ids", "add_documents", [Document(page_content="a")], ids=["1", "2"], error=InputError, match="got 1 documents but 2 ids"),
    # -- ids ------------------------------------------------------------------------
    case("id-int", "an id that is an int", "add_texts", ["a"], ids=[5], error=InputError, match="id of document 0 must be a string, got int"),
    case("id-empty", "an empty string as id", "add_texts", ["a"], ids=[""], error=InputError, match="ids must not be empty strings"),
    case("id-nul", "NUL byte in an id", "add_texts", ["a"], ids=["x\x00"], error=InputError, match="contains a NUL"),
    case("id-surrogate", "a lone surrogate in an id", "add_embeddings", ["a"], V, ids=["x\ud800"], error=InputError, match="lone surrogate"),
    case("id-huge", "a 3,000-byte random id (over the btree row limit)", "add_embeddings", ["a"], V, ids=[secrets.token_hex(1500)], error=InputError, match="ids are limited to"),
    case("get-int", "get_by_ids with an int", "get_by_ids", ["a", 7], error=InputError, match="id of document 1 must be a string, got int"),
    case("get-str", "get_by_ids with one string", "get_by_ids", "abc", error=InputError, match="ids must be a list of strings, got str"),
    case("get-surrogate", "get_by_ids with a lone surrogate", "get_by_ids", ["x\ud800"], error=InputError, match="lone surrogate"),
    case("delete-int", "delete with an int id", "delete", [1], error=InputError, match="id of document 0 must be a string, got int"),
    case("delete-nothing", "delete with neither ids nor filter", "delete", error=InputError, match="delete needs ids or a non-empty filter"),
    # -- search arguments -----------------------------------------------------------
    case("k-zero", "k = 0", "similarity_search", "q", k=0, error=InputError, match="k must be an integer in [1, 2147483647], got 0"),
    case("k-negative", "k = -1", "similarity_search_with_score", "q", k=-1, error=InputError, match="k must be an integer in [1, 2147483647], got -1"),
    case("k-float", "k = 1.5", "similarity_search", "q", k=1.5, error=InputError, match="k must be an integer in [1, 2147483647], got 1.5"),
    case("fetch-k", "fetch_k < k", "max_marginal_relevance_search", "q", k=5, fetch_k=2, error=InputError, match="fetch_k must be at least k"),
    case("lambda-high", "lambda_mult = 1.5", "max_marginal_relevance_search", "q", lambda_mult=1.5, error=InputError, match="lambda_mult must be a number in [0, 1], got 1.5"),
    case("lambda-low", "lambda_mult = -0.1", "max_marginal_relevance_search", "q", lambda_mult=-0.1, error=InputError, match="lambda_mult must be a number in [0, 1], got -0.1"),
    case("ef-search", "ef_search = 0", "similarity_search", "q", ef_search=0, error=InputError, match="ef_search must be an integer in [1, 1000]"),
    case("call-timeout", "statement_timeout = -1 on a call", "similarity_search", "q", statement_timeout=-1, error=InputError, match="statement_timeout must be a positive number"),
    case("get-limit", "get(limit=0)", "get", limit=0, error=InputError, match="limit must be an integer in [1, "),
    case("get-offset", "get(offset=-1)", "get", offset=-1, error=InputError, match="offset must be an integer in [0, "),
    # -- filters --------------------------------------------------------------------
    case("filter-op", "an unknown filter operator", "similarity_search", "q", filter={"n": {"$regex": "x"}}, error=FilterError, match="unknown operator '$regex' at filter.n"),
    case("filter-nul", "NUL byte in a filter key", "similarity_search", "q", filter={"a\x00": 1}, error=FilterError, match="contains a NUL (\\x00) character"),
    case("filter-date", "a date as a filter value", "similarity_search", "q", filter={"at": {"$gt": datetime.date(2024, 1, 1)}}, error=FilterError, match="ISO-8601"),
    # -- configuration and names -----------------------------------------------------
    case("distance", "an unknown distance", None, error=ConfigError, match="unknown distance 'hamming'", store={"distance": "hamming"}),
    case("vector-type", "an unknown vector type", None, error=ConfigError, match="unknown vector type 'float8'", store={"vector_type": "float8"}),
    case("name-nul", "NUL byte in the collection name", None, error=ConfigError, match="collection contains a NUL", store={"collection": "a\x00b"}),
    case("name-long", "a 64-byte collection name", None, error=ConfigError, match="PostgreSQL identifiers are limited to 63 bytes", store={"collection": "c" * 64}),
    case("name-long-utf8", "a 22-character, 66-byte collection name", None, error=ConfigError, match="is 66 bytes long", store={"collection": "€" * 22}),
    case("name-empty", "an empty collection name", None, error=ConfigError, match="collection must not be empty", store={"collection": ""}),
    case("name-not-str", "a collection name that is not a string", None, error=ConfigError, match="collection must be a string", store={"collection": 42}),
    case("schema-long", "a 64-byte schema name", None, error=ConfigError, match="is 64 bytes long", store={"schema": "s" * 64}),
    case("schema-pg", "a schema name starting with pg_ (reserved by PostgreSQL)", "add_texts", ["a"], error=ConfigError, match="reserves for system schemas", store={"schema": "pg_mine"}),
    case("name-percent", "'%' in the collection name (psycopg would read it as a placeholder)", "get_by_ids", ["x"], error=ConfigError, match="must not contain '%'", store={"collection": FRESH + "_4%s"}),
    case("name-reserved", "the registry's own name as collection", None, error=ConfigError, match="is reserved", store={"collection": "pgvstore_collections"}),
    case("ts-config", "an unknown text-search config, new collection", "add_texts", ["a"], error=ConfigError, match="unknown text search configuration 'klingon'", store={"collection": FRESH + "_3", "text_search_config": "klingon"}),
    case("ts-config-nul", "NUL byte in the text-search config", None, error=ConfigError, match="text_search_config contains a NUL", store={"text_search_config": "eng\x00"}),
    case("dimensions", "dimensions = 0", None, error=ConfigError, match="dimensions must be an integer in [1, 16000], got 0", store={"dimensions": 0}),
    case("pool-size", "pool_size = 0", None, error=ConfigError, match="pool_size must be an integer in [1, 10000]", store={"pool_size": 0}),
    case("store-timeout", "statement_timeout = 0 on the store", None, error=ConfigError, match="statement_timeout must be a positive number", store={"statement_timeout": 0}),
    case("hnsw-m", "HNSWIndex(m=1)", None, error=ConfigError, match="hnsw m must be an integer in [2, 100]", store={"index": lambda: HNSWIndex(m=1)}),
    case("connection-type", "connection=42", None, error=ConfigError, match="connection must be a DSN string", store={"connection": 42}),
    case("connection-empty", "an empty connection string", None, error=ConfigError, match="connection string must be a non-empty string", store={"connection": " "}),
    # -- the server and the collection's shape ------------------------------------------
    case("unreachable", "a DSN nothing listens on (password in it)", "similarity_search", "q", error=DatabaseUnavailableError, match="host=127.0.0.1 port=1", store={"connection": f"postgresql://alice:{PASSWORD}@127.0.0.1:1/db"}, modes=("sync",)),
    case("no-pgvector", "a database without pgvector, a role that may not create it", "add_texts", ["a"], error=SchemaError, match="CREATE EXTENSION vector", store={"connection": "nopgv"}),
    case("other-dims", "a store of 8 dims on the 16-dim collection", "add_texts", ["a"], error=SchemaError, match="created with 16 dimensions, but this store uses 8", store={"embedding": DeterministicFakeEmbedding(size=8)}),
    case("other-distance", "a store with another distance", "add_texts", ["a"], error=SchemaError, match="created with distance 'cosine', but this store uses 'l2'", store={"distance": "l2"}),
    case("other-ts-config", "a store with another text-search config", "add_texts", ["a"], error=SchemaError, match="text search configuration 'english', but this store uses 'simple'", store={"text_search_config": "simple"}),
    case("foreign-table", "a collection name taken by a user's own table", "add_texts", ["a"], error=SchemaError, match="is not a langchain-pgvstore collection", store={"collection": FOREIGN}),
    # -- what escaped as a raw error, or was changed silently, before this release ------
    case("query-none", "None as a query vector", "similarity_search_by_vector", None, error=InputError, match="a query vector must be a list of numbers, got None"),
    case("query-nested", "a nested list as a query vector", "similarity_search_by_vector", [[1.0] * DIM], error=InputError, match="flat lists of numbers"),
    case("query-object-array", "a numpy object array as a query vector", "similarity_search_by_vector", np.array([1.0] * DIM, dtype=object), error=InputError, match="only real numbers"),
    case("query-str-array", "a numpy string array as a query vector", "similarity_search_by_vector", np.array(["1"] * DIM), error=InputError, match="got strings"),
    case("query-complex", "a numpy complex array as a query vector (the imaginary part was lost)", "similarity_search_by_vector", np.ones(DIM, dtype=complex), error=InputError, match="got complex numbers"),
    case("vector-complex", "complex numbers in vectors to store", "add_embeddings", ["a"], np.ones((1, DIM), dtype=complex), error=InputError, match="got complex numbers"),
    case("query-huge-int", "10**400 in a query vector", "similarity_search_by_vector", [10**400] + [1.0] * (DIM - 1), error=InputError, match="only real numbers"),
    case("vector-huge-int", "10**400 in a vector to store", "add_embeddings", ["a"], [[10**400] + [1.0] * (DIM - 1)], error=InputError, match="only real numbers"),
    case("query-zero-cosine", "a zero query vector under cosine", "similarity_search_by_vector", [0.0] * DIM, error=InputError, match="is all zeros, which has no cosine distance"),
    case("vector-zero-cosine", "a zero vector to store under cosine", "add_embeddings", ["a", "b"], [[1.0] * DIM, [0.0] * DIM], error=InputError, match="vector 1 is all zeros"),
    case("embedder-none", "an embedding model that returns None", "add_texts", ["a"], error=EmbeddingError, match="returned NoneType, not a list of vectors", store={"embedding": NoneEmbeddings(size=DIM)}),
    case("embedder-query-none", "an embedding model that returns None for a query", "similarity_search", "q", error=EmbeddingError, match="the embedding model returned a bad vector", store={"embedding": NoneEmbeddings(size=DIM)}),
    case("embedder-raises", "an embedding model that raises", "add_texts", ["a"], error=EmbeddingError, match="the embedding model failed: RuntimeError: quota exceeded", store={"embedding": FailingEmbeddings(size=DIM)}),
    case("embedder-query-raises", "an embedding model that raises on a query", "hybrid_search", "q", error=EmbeddingError, match="the embedding model failed: RuntimeError", store={"embedding": FailingEmbeddings(size=DIM)}),
    case("k-huge", "k = 10**20", "similarity_search", "q", k=10**20, error=InputError, match="k must be an integer in [1, 2147483647], got 1000000000"),
    case("fetch-k-huge", "fetch_k = 10**20", "max_marginal_relevance_search", "q", fetch_k=10**20, error=InputError, match="fetch_k must be an integer in [1, 2147483647]"),
    case("limit-huge", "get(limit=10**20)", "get", limit=10**20, error=InputError, match="limit must be an integer in [1, 9223372036854775807]"),
    case("offset-huge", "get(offset=10**20)", "get", offset=10**20, error=InputError, match="offset must be an integer in [0, 9223372036854775807]"),
    case("meta-deep", "metadata nested 1,000 deep", "add_texts", ["a"], [DEEP_META], error=InputError, match="nests deeper than 100 levels"),
    case("filter-deep", "a filter nested 5,000 deep", "similarity_search", "q", filter=DEEP_FILTER, error=FilterError, match="nested too deeply"),
    case("filter-deep-value", "a filter operand nested 5,000 deep", "similarity_search", "q", filter={"n": {"$in": DEEP_VALUE}}, error=FilterError, match="expected a string, number, boolean or null"),
    case("ids-str", "ids='abc' for three texts (was split into a, b, c)", "add_texts", ["a", "b", "c"], ids="abc", error=InputError, match="ids must be a list of strings, got str"),
    case("meta-int-key", "metadata keys 1 and '1' in one dict (one value was lost)", "add_texts", ["a"], [{1: "x", "1": "y"}], error=InputError, match="metadata keys must be strings, got 1 (int) in document 0"),
    case("ef-search-true", "ef_search=True", "similarity_search", "q", ef_search=True, error=InputError, match="ef_search must be an integer in [1, 1000], got True"),
    case("probes-true", "probes=True", "similarity_search", "q", probes=True, error=InputError, match="probes must be an integer in [1, 32768], got True"),
    case("max-scan-true", "max_scan_tuples=True", "similarity_search", "q", max_scan_tuples=True, error=InputError, match="max_scan_tuples must be an integer"),
    case("call-timeout-true", "statement_timeout=True on a call", "keyword_search", "q", statement_timeout=True, error=InputError, match="statement_timeout must be a positive number"),
    case("pool-size-true", "pool_size=True", None, error=ConfigError, match="pool_size must be an integer in [1, 10000], got True", store={"pool_size": True}),
    case("store-timeout-true", "statement_timeout=True on the store", None, error=ConfigError, match="statement_timeout must be a positive number", store={"statement_timeout": True}),
    case("batch-size-true", "batch_size=True", None, error=ConfigError, match="batch_size must be an integer", store={"batch_size": True}),
    case("ivfflat-lists-true", "IVFFlatIndex(lists=True)", None, error=ConfigError, match="ivfflat lists must be an integer in [1, 32768], got True", store={"index": lambda: IVFFlatIndex(lists=True)}),
    case("maintenance-lots", "maintenance_work_mem='lots' (the table was left behind)", "add_texts", ["a"], error=ConfigError, match="maintenance_work_mem must be a memory size", store={"collection": FRESH + "_5", "maintenance_work_mem": "lots"}),
    case("bulk-many", "bulk_rebuild_rows='many' (the table was left behind)", "add_texts", ["a"], error=ConfigError, match="bulk_rebuild_rows must be an integer", store={"collection": FRESH + "_6", "bulk_rebuild_rows": "many"}),
    case("index-str", "index='hnsw' (the table was left behind)", "add_texts", ["a"], error=ConfigError, match="index must be HNSWIndex(...), IVFFlatIndex(...) or None, got 'hnsw'", store={"collection": FRESH + "_7", "index": "hnsw"}),
    case("name-derived", "a collection named like another collection's BM25 statistics table", "add_texts", ["a"], error=ConfigError, match="is reserved", store={"collection": Table("public", SEEDED).index_name("bm25")}),
    case("unknown-option", "a misspelt search option (filtr)", "similarity_search", "q", filtr={"n": 1}, error=InputError, match="unknown search option 'filtr' (did you mean 'filter'?)"),
    case("unknown-add-option", "an unknown argument to add_texts", "add_texts", ["a"], metadata=[{"n": 1}], error=InputError, match="unknown argument 'metadata' for add_texts"),
]
# fmt: on

assert len({c.id for c in CASES}) == len(CASES)


_CATALOG = [
    # permanent relations outside the system schemas (tables, indexes, sequences, views)
    "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
    " AND c.relpersistence = 'p' ORDER BY 1, 2",
    "SELECT nspname FROM pg_namespace ORDER BY 1",
    "SELECT extname, extversion FROM pg_extension ORDER BY 1",
]


@pytest.fixture(scope="module")
def seeded(dsn: str, make_module_store) -> Any:
    """A 16-dim collection with three documents, and a user's table named like a collection."""
    s = make_module_store(DIM, collection=SEEDED)
    s.add_texts(["alpha", "beta", "gamma"], [{"n": 1}, {"n": 2}, {"n": 3}], ids=["a", "b", "c"])
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(FOREIGN)))
    yield SEEDED
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(FOREIGN)))


@pytest.fixture(scope="module")
def nopgv(dsn: str) -> Any:
    """A database without pgvector and a login role that may not create extensions.

    pgvector's control file does not mark it `trusted`, so only a superuser may
    run CREATE EXTENSION vector. Yields (the role's DSN, a superuser DSN), both
    on that database.
    """
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(PASSWORD)
                )
            )
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(NOPGV_DB)))
            c.execute(
                sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
                    sql.Identifier(NOPGV_DB), sql.Identifier(ROLE)
                )
            )
    except psycopg.errors.InsufficientPrivilege:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        pytest.skip("the test server's role may not create databases and roles")
    params = conninfo_to_dict(dsn)
    admin = make_conninfo(**{**params, "dbname": NOPGV_DB})
    with psycopg.connect(admin, autocommit=True) as c:
        # PostgreSQL 15+ no longer lets every role create in public; allow it, so
        # the only thing the role lacks is the right to create the extension
        c.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(ROLE)))
        assert (
            c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            == 0
        )
        trusted = c.execute(
            "SELECT bool_or(trusted) FROM pg_available_extension_versions WHERE name = 'vector'"
        ).fetchone()[0]
        assert trusted is False  # else CREATE privilege on the database would suffice
    limited = make_conninfo(**{**params, "dbname": NOPGV_DB, "user": ROLE, "password": PASSWORD})
    yield limited, admin
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(NOPGV_DB))
        )
        c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


@pytest.fixture(scope="module")
def snapshot(dsn: str, seeded: str, nopgv) -> Iterator[Callable[[], list[Any]]]:
    """Everything a failed call must leave alone: the seeded rows (with their
    timestamps and tsvector), the registry, and both databases' catalogs."""
    rows = sql.SQL(
        "SELECT id, content, metadata::text, embedding::text, tsv::text, created_at, updated_at"
        " FROM {} ORDER BY id"
    ).format(sql.Identifier(seeded))
    registry = "SELECT * FROM public.pgvstore_collections ORDER BY collection"
    with (
        psycopg.connect(dsn, autocommit=True) as main,
        psycopg.connect(nopgv[1], autocommit=True) as other,
    ):

        def take() -> list[Any]:
            state = [main.execute(q).fetchall() for q in (rows, registry, *_CATALOG)]
            return state + [other.execute(q).fetchall() for q in _CATALOG]

        yield take


def _store_kwargs(c: Case, dsn: str, nopgv_dsn: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "embedding": DeterministicFakeEmbedding(size=DIM),
        "connection": dsn,
        "collection": SEEDED,
        "pool_timeout": 2,
    }
    for key, value in c.store.items():
        kwargs[key] = value() if callable(value) and key == "index" else value
    if kwargs["connection"] == "nopgv":
        kwargs["connection"] = nopgv_dsn
    return kwargs


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_rejected_and_nothing_changes(
    c: Case, api, make_store, dsn: str, nopgv, snapshot, caplog
) -> None:
    if api.mode not in c.modes:
        pytest.skip(f"{c.id} runs {', '.join(c.modes)} only (the other twin shares the path)")
    before = snapshot()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(c.error) as info:
        kwargs = _store_kwargs(c, dsn, nopgv[0])  # builds the case's index: it may raise
        store = make_store(kwargs.pop("embedding"), **kwargs)
        if c.method is not None:
            await api.on(store)(c.method, *c.args, **c.kwargs)
    # exactly the class of the table, not a subclass of it
    assert type(info.value) is c.error, f"{type(info.value).__name__}: {info.value}"
    assert c.match in str(info.value)
    # no message, log record or repr carries a password
    assert PASSWORD not in str(info.value)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert snapshot() == before


# -- large but valid inputs ----------------------------------------------------------


def _varied_text(n_bytes: int, seed: int = 0) -> str:
    """Many distinct words, as in a real book: about one in five is new."""
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 11))) for _ in range(120_000)
    ]
    words: list[str] = []
    size = 0
    while size < n_bytes:
        w = rng.choice(vocab)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:n_bytes]


@pytest.fixture
def big_store(make_store) -> PGVStore:
    return make_store(4, index=None)


def test_five_megabyte_document_of_repeated_words(big_store: PGVStore) -> None:
    text = ("the quick brown fox jumps over the lazy dog " * 130_000)[: 5 * 2**20]
    big_store.add_texts([text], ids=["big"])
    [doc] = big_store.get_by_ids(["big"])
    assert doc.page_content == text


def test_five_megabyte_document_of_varied_words(big_store: PGVStore) -> None:
    """PostgreSQL caps a tsvector at 1 MB; the store's generated tsvector must not fail the insert."""
    text = _varied_text(5 * 2**20)
    big_store.add_texts([text], ids=["big"])
    [doc] = big_store.get_by_ids(["big"])
    assert len(doc.page_content) == len(text) and doc.page_content == text
    # full-text search still finds the document by an early word
    first = text.split(" ", 1)[0]
    assert [d.id for d in big_store.keyword_search(first, k=1)] == ["big"]


def test_one_megabyte_of_metadata(big_store: PGVStore) -> None:
    meta = {f"key{i:05d}": "v" * 100 + str(i) for i in range(10_000)}
    meta["nested"] = {"list": list(range(1000)), "unicode": "žluťoučký kůň 🐎"}
    big_store.add_texts(["m"], [meta], ids=["m"])
    [doc] = big_store.get_by_ids(["m"])
    assert doc.metadata == meta
    assert len(str(meta)) > 2**20


async def test_100k_ids_in_one_get_by_ids_and_one_delete(big_store: PGVStore) -> None:
    stored = [f"doc-{i}" for i in range(20_000)]
    vectors = np.random.default_rng(1).normal(size=(len(stored), 4))
    big_store.add_embeddings(["x"] * len(stored), vectors, ids=stored)
    asked = [f"doc-{i}" for i in range(100_000)]  # 20,000 present, 80,000 missing
    random.Random(2).shuffle(asked)
    got = big_store.get_by_ids(asked)
    stored_set = set(stored)
    present = [i for i in asked if i in stored_set]
    assert [d.id for d in got] == present
    assert len(await big_store.aget_by_ids(asked[:100_000])) == 20_000
    assert big_store.delete(asked) is True
    assert big_store.get_by_ids(stored) == []


# the row table's own sanity: at least 25 bad inputs, every error class of the API
def test_table_covers_the_api() -> None:
    assert len(CASES) >= 25
    classes = {c.error for c in CASES}
    assert {
        InputError,
        DimensionError,
        ConfigError,
        FilterError,
        SchemaError,
        DatabaseUnavailableError,
        EmbeddingError,
    } <= classes


async def test_a_model_error_keeps_the_original_as_its_cause(api, make_store, seeded) -> None:
    call = api.on(make_store(FailingEmbeddings(size=DIM), collection=seeded))
    for method, args in (("add_texts", (["a"],)), ("similarity_search", ("q",))):
        with pytest.raises(EmbeddingError) as info:
            await call(method, *args)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert str(info.value.__cause__) == "quota exceeded"


@pytest.mark.parametrize("distance", ["l2", "inner_product", "l1"])
def test_zero_vectors_are_fine_under_other_distances(make_store, distance) -> None:
    """Only cosine has no answer for a zero vector; the other distances store and find it."""
    store = make_store(4, distance=distance)
    store.add_embeddings(["zero", "one"], [[0.0] * 4, [1.0] * 4], ids=["z", "o"])
    found = store.similarity_search_with_score_by_vector([0.0] * 4, k=2)
    assert {d.id for d, _ in found} == {"z", "o"}
    assert all(np.isfinite(score) for _, score in found)
