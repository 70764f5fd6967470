"""LangChain's standard `BaseStore` suites, sync and async, against `PostgresByteStore`."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from langchain_tests.integration_tests.base_store import (
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
)
from psycopg import sql

from langchain_pgvstore.cache import PostgresByteStore


@pytest.fixture(scope="module")
def kv_table(dsn: str):
    """One table for the module; every test gets its own namespace in it."""
    name = f"kv_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


class TestPostgresByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self, dsn: str, kv_table: str):  # type: ignore[override]
        store = PostgresByteStore(connection=dsn, table=kv_table, namespace=uuid.uuid4().hex)
        yield store
        store.close()

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"\x00bar\xff", b"buzz" * 1000


class TestPostgresByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self, dsn: str, kv_table: str):  # type: ignore[override]
        store = PostgresByteStore(connection=dsn, table=kv_table, namespace=uuid.uuid4().hex)
        yield store
        await store.aclose()

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"\x00bar\xff", b"buzz" * 1000
