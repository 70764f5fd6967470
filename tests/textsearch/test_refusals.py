"""`full_text="pg_textsearch"` where it cannot be had: refused with what to install."""

from __future__ import annotations

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import PGVStore
from langchain_pgvstore._sql import catalog
from langchain_pgvstore.config import Table
from langchain_pgvstore.errors import ConfigError, SchemaError
from tests.fix_db import run_sql

FAKE = DeterministicFakeEmbedding(size=8)


def test_a_server_without_the_extension_is_refused(make_store, admin: psycopg.Connection,
                                                   collection_name: str) -> None:  # fmt: skip
    [(available,)] = admin.execute(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_textsearch'"
    )
    if available:
        pytest.skip("the test server has pg_textsearch")
    store = make_store(8, full_text="pg_textsearch")
    with pytest.raises(SchemaError, match="install it .*shared_preload_libraries"):
        store.add_texts(["apple"])
    [(exists,)] = run_sql(admin, catalog.table_exists(Table("public", collection_name)))
    assert not exists  # nothing was created
    assert store.similarity_search("apple", k=1) == []  # a read still creates nothing


@pytest.mark.parametrize("value", ["pg_search", "bm25", "PG_TEXTSEARCH"])
def test_other_strings_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="full_text must be True or False, or 'pg_textsearch'"):
        PGVStore(FAKE, connection="postgresql://u@h/db", full_text=value)  # type: ignore[arg-type]


def test_distributed_collections_refuse_it() -> None:
    with pytest.raises(ConfigError, match="not supported on distributed"):
        PGVStore(FAKE, connection="postgresql://u@h/db", full_text="pg_textsearch",
                 distributed=True)  # fmt: skip
