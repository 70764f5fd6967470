"""Configuration validation and the distance table."""

from __future__ import annotations

import re

import pytest

from langchain_pgvstore._schema import check_pgvector
from langchain_pgvstore.config import Distance, HNSWIndex, IVFFlatIndex, Table, VectorType
from langchain_pgvstore.errors import ConfigError, SchemaError


@pytest.mark.parametrize(
    ("schema", "name", "message"),
    [
        ("public", "", "collection must not be empty"),
        ("", "docs", "schema must not be empty"),
        ("public", "a\x00b", "contains a NUL"),
        ("public", "x" * 64, "64 bytes long"),
        ("public", "é" * 32, "64 bytes long"),
        ("public", 5, "must be a string"),
        ("public", "pgvstore_collections", "reserved"),
        ("public", "pgvstore_mine", "reserved"),
        ("public", Table("public", "docs").index_name("hnsw"), "reserved"),
        ("pg_mine", "docs", "starts with 'pg_'"),
        # psycopg would read a "%" in a quoted identifier as a placeholder
        ("public", "a%sb", "collection must not contain '%'"),
        ("public", "50%off", "collection must not contain '%'"),
        ("a%%b", "docs", "schema must not contain '%'"),
    ],
)
def test_bad_identifiers(schema, name, message) -> None:
    """Names the store refuses before any SQL is built (the fuzz tests of
    tests/db/test_injection.py generate only the others)."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        Table(schema, name)


def test_unsafe_names_are_fine_because_they_are_quoted() -> None:
    t = Table("my schema", 'we"ird; DROP TABLE x; --')
    assert t.qualname.as_string() == '"my schema"."we""ird; DROP TABLE x; --"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cosine", Distance.COSINE),
        ("L2", Distance.L2),
        ("euclidean", Distance.L2),
        ("inner-product", Distance.INNER_PRODUCT),
        ("ip", Distance.INNER_PRODUCT),
        ("l1", Distance.L1),
        (Distance.L1, Distance.L1),
    ],
)
def test_distance_parse(value, expected) -> None:
    assert Distance.parse(value) is expected


def test_unknown_distance_and_vector_type() -> None:
    with pytest.raises(ConfigError, match="unknown distance 'hamming'; expected one of cosine, l2"):
        Distance.parse("hamming")
    with pytest.raises(ConfigError, match="unknown vector type 'sparsevec'"):
        VectorType.parse("sparsevec")


@pytest.mark.parametrize("distance", list(Distance))
def test_relevance_is_bounded_monotonic_and_one_at_exact_match(distance) -> None:
    fn = distance.relevance()
    exact = -1.0 if distance is Distance.INNER_PRODUCT else 0.0  # <#> of a unit vector with itself
    assert fn(exact) == pytest.approx(1.0)
    samples = [exact + i * 0.25 for i in range(12)]
    scores = [fn(d) for d in samples]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "kwargs", [dict(m=1), dict(m=101), dict(m=16, ef_construction=20), dict(ef_construction=2000)]
)
def test_bad_hnsw(kwargs) -> None:
    with pytest.raises(ConfigError):
        HNSWIndex(**kwargs)


def test_bad_ivfflat() -> None:
    with pytest.raises(ConfigError):
        IVFFlatIndex(lists=0)


@pytest.mark.parametrize(
    ("installed", "available", "message"),
    [
        (None, None, "the pgvector extension is not available on this server"),
        ("0.7.4", None, "pgvector 0.7.4 is installed but langchain-pgvstore needs >= 0.8.0"),
        (None, "0.5.0", "pgvector 0.5.0 is available but langchain-pgvstore needs >= 0.8.0"),
        (None, "0.6.0", "pgvector 0.6.0 is available but langchain-pgvstore needs >= 0.8.0"),
    ],
)
def test_pgvector_version_check(installed, available, message) -> None:
    """A server without pgvector, or with an old one, is a SchemaError (a server without
    pgvector cannot be made from a test; the check that guards it can)."""
    with pytest.raises(SchemaError, match=re.escape(message)):
        check_pgvector(installed, available)


def test_pgvector_version_ok() -> None:
    assert check_pgvector(None, "0.8.1") is True
    assert check_pgvector("0.8.0", "0.8.1") is False
    assert check_pgvector("1.0.0", None) is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shard_count": 4}, "shard_count= needs distributed=True"),
        ({"distributed": True, "shard_count": 0}, "shard_count"),
        ({"distributed": "yes"}, "distributed"),
        ({"row_level_security": "setting"}, "row_level_security needs multi_tenant=True"),
        ({"multi_tenant": True, "row_level_security": "user"}, "row_level_security"),
    ],
)
def test_distribution_and_tenant_options_are_checked_at_construction(kwargs, message) -> None:
    """Refused before any connection is made (the DSN points nowhere)."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_pgvstore import PGVStore

    with pytest.raises(ConfigError, match=re.escape(message)):
        PGVStore(
            DeterministicFakeEmbedding(size=4),
            connection="postgresql://nobody@127.0.0.1:1/none",
            collection="docs",
            **kwargs,
        )
