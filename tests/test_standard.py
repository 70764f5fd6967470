"""LangChain's standard vector-store suite, run against the sync and the async API."""

from __future__ import annotations

import uuid

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_pgvstore import PGVStore


class TestPGVStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    async def vectorstore(self, dsn: str):  # type: ignore[override]
        store = PGVStore(
            self.get_embeddings(), connection=dsn, collection=f"std_{uuid.uuid4().hex[:12]}"
        )
        try:
            yield store
        finally:
            await store.adelete_collection()
            await store.aclose()

    @property
    def has_sync(self) -> bool:
        return True

    @property
    def has_async(self) -> bool:
        return True

    @property
    def has_get_by_ids(self) -> bool:
        return True
