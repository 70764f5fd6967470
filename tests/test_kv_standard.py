"""LangChain's standard `BaseStore` suites, sync and async, against `PostgresByteStore`."""

from __future__ import annotations

import uuid

import pytest
from langchain_tests.integration_tests.base_store import (
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
)

from langchain_pgvstore.cache import PostgresByteStore
from tests.fix_db import scratch_table


@pytest.fixture(scope="module")
def kv_table(admin):
    """One table for the module; every test gets its own namespace in it."""
    with scratch_table(admin, "kv") as name:
        yield name


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
