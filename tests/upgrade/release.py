"""Collections made by a given release of langchain-pgvstore, for the upgrade tests.

Run as a script under whichever release `PYTHONPATH` puts first (the tests
run it with the source of commit `e0050d9`, and with the current code for the
two processes opening the same old collection at once):

    python -m tests.upgrade.release create DSN SCHEMA NAME...
    python -m tests.upgrade.release write DSN SCHEMA NAME TAG START_AT

Only APIs that every release since `e0050d9` has are used here. The test
module imports `DOCS`, `COLLECTIONS` and `WordEmbeddings` to build the fresh
collections it compares with.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from typing import Any

from langchain_core.embeddings import Embeddings

DIM = 32

_TOPICS = ["postgres", "vectors", "search", "cooking"]
_WORDS = {
    "postgres": "table index vacuum query planner transaction replica",
    "vectors": "embedding cosine distance neighbor graph quantization",
    "search": "keyword ranking fusion relevance retrieval filter",
    "cooking": "bread flour oven butter recipe dough",
}


def _doc(i: int) -> tuple[str, str, dict[str, Any]]:
    topic = _TOPICS[i % len(_TOPICS)]
    words = _WORDS[topic].split()
    text = " ".join(words[(i + k) % len(words)] for k in range(3 + i % 5)) + f" note {i}"
    return f"doc-{i:03d}", text, {"i": i, "topic": topic, "even": i % 2 == 0}


#: (id, text, metadata) of the documents every collection starts with.
DOCS = [_doc(i) for i in range(40)]
#: Documents the old release deleted and updated after loading (BM25 deltas of each kind).
DELETED = ["doc-003", "doc-017"]
UPDATED = ("doc-005", "bread dough recipe oven rewritten note 5", {"i": 5, "topic": "cooking"})

#: name -> store options (as keyword arguments every release accepts); `index` is built
#: by `index_for`, since the index classes are the release's own.
COLLECTIONS: dict[str, dict[str, Any]] = {
    "plain": {"distance": "cosine"},
    "half": {"vector_type": "halfvec", "distance": "l2"},
    "ivf": {"distance": "inner_product", "index": ("ivfflat", 2)},
    "exact": {"distance": "cosine", "index": None},
    "binary": {"distance": "cosine", "index": ("binary", 0)},
}


def store_options(name: str, module: Any) -> dict[str, Any]:
    """The options of collection `name` for the release whose package is `module`."""
    options = dict(COLLECTIONS[name])
    if "index" in options and options["index"] is not None:
        kind, lists = options["index"]
        options["index"] = (
            module.IVFFlatIndex(lists=lists)
            if kind == "ivfflat"
            else module.HNSWIndex(quantization="binary")
        )
    return options


class WordEmbeddings(Embeddings):
    """Deterministic bag-of-words vectors (hashed words, L2-normalised); no model needed."""

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * DIM
        for word in text.lower().split():
            digest = hashlib.sha1(word.encode()).digest()
            vector[digest[0] % DIM] += 1.0 if digest[1] % 2 else -1.0
            vector[digest[2] % DIM] += 0.5
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def load(store: Any) -> None:
    """What the old release did to every collection: load, delete, update, search."""
    ids, texts, metadatas = zip(*DOCS, strict=True)
    store.add_texts(list(texts), metadatas=list(metadatas), ids=list(ids))
    store.delete(ids=DELETED)
    doc_id, text, metadata = UPDATED
    store.add_texts([text], metadatas=[metadata], ids=[doc_id])


def create(dsn: str, schema: str, names: list[str]) -> None:
    import langchain_pgvstore as release

    print(release.__file__)  # the test checks which release ran
    for name in names:
        store = release.PGVStore(
            WordEmbeddings(),
            connection=dsn,
            collection=name,
            schema=schema,
            **store_options(name, release),
        )
        load(store)
        assert store.keyword_search("bread", k=2)
        store.close()
    records = release.PostgresRecordManager("docs", connection=dsn, schema=schema)
    records.create_schema()
    records.update(["a", "b"], group_ids=["g", None])
    records.close()
    kv = release.PostgresByteStore(connection=dsn, namespace="cache", schema=schema)
    kv.mset([("k1", b"v1"), ("k2", b"v2")])
    kv.close()


def write(dsn: str, schema: str, name: str, tag: str, start_at: float) -> None:
    """Open an existing collection and write to it, starting at `start_at` (epoch seconds)."""
    import langchain_pgvstore as release

    store = release.PGVStore(
        WordEmbeddings(),
        connection=dsn,
        collection=name,
        schema=schema,
        **store_options(name, release),
    )
    time.sleep(max(0.0, start_at - time.time()))
    texts = [f"{tag} table index note {k}" for k in range(5)]
    store.add_texts(texts, ids=[f"{tag}-{k}" for k in range(5)], metadatas=[{"tag": tag}] * 5)
    print(release.__file__)
    store.close()


if __name__ == "__main__":
    command, dsn_arg, schema_arg, *rest = sys.argv[1:]
    if command == "create":
        create(dsn_arg, schema_arg, rest)
    else:
        write(dsn_arg, schema_arg, rest[0], rest[1], float(rest[2]))
