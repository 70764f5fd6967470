"""Searches asking for more rows than hnsw.ef_search, on sessions that never used pgvector."""

from __future__ import annotations

import numpy as np


def test_first_search_above_ef_search_on_a_fresh_session(make_store) -> None:
    # hnsw.ef_search only exists once the session has loaded pgvector's library;
    # a new store opens new sessions, so its first k > 40 search must not read it
    vectors = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    texts = [f"doc {i}" for i in range(120)]
    make_store(8).add_embeddings(texts, vectors, ids=[str(i) for i in range(120)])
    assert len(make_store(8).similarity_search_by_vector(list(vectors[0]), k=100)) == 100
    assert len(make_store(8).hybrid_search_with_score("doc 7", k=50, fetch_k=100)) == 50
