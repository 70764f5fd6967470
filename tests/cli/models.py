"""Embedding models the CLI tests name with `--embeddings tests.cli.models:NAME`."""

from __future__ import annotations

from langchain_core.embeddings import DeterministicFakeEmbedding

DIM = 32


def fake() -> DeterministicFakeEmbedding:
    """A deterministic 32-dimension model: the same text always gets the same vector."""
    return DeterministicFakeEmbedding(size=DIM)


not_a_model = 42


def small() -> DeterministicFakeEmbedding:
    """A model of another size than `fake`'s."""
    return DeterministicFakeEmbedding(size=8)
