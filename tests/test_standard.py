"""LangChain's standard vector-store suite, run against the sync and the async API."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests


class TestPGVStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, make_store):  # type: ignore[override]
        return make_store(self.get_embeddings())

    @property
    def has_sync(self) -> bool:
        return True

    @property
    def has_async(self) -> bool:
        return True

    @property
    def has_get_by_ids(self) -> bool:
        return True
