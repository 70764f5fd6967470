"""Async embedding for local models: the synchronous model in a worker thread."""

from __future__ import annotations

import asyncio

from langchain_core.embeddings import Embeddings
from typing_extensions import override

__all__ = ["ThreadedEmbeddings"]


class ThreadedEmbeddings(Embeddings):
    """`aembed_*` run the model's synchronous `embed_*` in a worker thread.

    A local model is CPU-bound code: awaiting it directly would block the event
    loop for the whole forward pass. The model libraries release the GIL while
    they compute, so a worker thread keeps the loop responsive. These are the
    only threads the package starts, and explicitly, rather than through
    langchain-core's `run_in_executor` default.
    """

    @override
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_documents, texts)

    @override
    async def aembed_query(self, text: str) -> list[float]:
        """Embed one search query in a worker thread."""
        return await asyncio.to_thread(self.embed_query, text)
