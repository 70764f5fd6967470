"""An import run as its own process, for the tests that kill it part-way.

    python tests/importing/child.py '{"kind": "pgvector", "dsn": ..., "collection": ..., ...}'

Prints `done total` after every batch (flushed), so the test knows how far it got.
"""

from __future__ import annotations

import json
import sys

from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import PGVStore
from langchain_pgvstore.importers import import_from_chroma, import_from_pgvector


def main() -> None:
    job = json.loads(sys.argv[1])
    store = PGVStore(
        DeterministicFakeEmbedding(size=job["dim"]),
        connection=job["dsn"],
        collection=job["collection"],
        distance=job["distance"],
        index=None,
    )

    def progress(done: int, total: int) -> None:
        print(done, total, flush=True)

    if job["kind"] == "pgvector":
        import_from_pgvector(
            store,
            job["source_collection"],
            source=job["source"],
            batch_size=job["batch_size"],
            progress=progress,
        )
    else:
        import_from_chroma(
            store,
            job["source_collection"],
            path=job["source"],
            batch_size=job["batch_size"],
            progress=progress,
        )
    print("finished", flush=True)
    store.close()


if __name__ == "__main__":
    main()
