"""The code of docs/migrating.md's "Moving your data" runs as written, on real sources.

The sources are made by the real packages (langchain-postgres in its own
virtualenv, chromadb here); the doc's placeholder connection strings and paths
are replaced by the test server's, and nothing else is changed.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import psycopg
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import PGVStore
from tests.importing.sources import database, need_chromadb, rows, write

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"
OLD = "postgresql+psycopg://user:pass@old-host:5432/app"
NEW = "postgresql://user:pass@new-host:5432/app"
DIM = 16


def sections() -> dict[str, list[str]]:
    """The python blocks of each `###` section under "## Moving your data"."""
    text = DOC.read_text().split("## Moving your data", 1)[1]
    found: dict[str, list[str]] = {}
    for part in re.split(r"^### ", text, flags=re.M)[1:]:
        title = part.splitlines()[0].strip()
        found[title] = re.findall(r"```python\n(.*?)```", part, flags=re.S)
    return found


def run(code: str, namespace: dict, source: str, dsn: str, chroma: Path) -> None:
    assert OLD in code or NEW in code or "report" in code
    code = code.replace(OLD, source).replace(NEW, dsn).replace('"chroma/"', repr(str(chroma)))
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - the doc's own code


def count(dsn: str, collection: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(collection))
        ).fetchone()[0]


def test_the_docs_import_code_runs(dsn, tmp_path) -> None:
    blocks = sections()
    assert set(blocks) >= {
        "From `PGVector`",
        "From `PGVectorStore`",
        "From Chroma",
        "Interrupted imports",
        "Speed",
    }
    chroma = tmp_path / "chroma"
    notes = (
        need_chromadb()
        .PersistentClient(path=str(chroma))
        .create_collection(
            "notes", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
    )
    data = rows(40, DIM, seed=60)
    notes.add(ids=data["ids"], embeddings=np.asarray(data["vectors"]), documents=data["texts"])
    created = ["docs", "docs_v2", "notes"]
    with database(dsn) as source:
        job = {"conninfo": source, "distance": "cosine", "queries": [], "k": 1}
        write({"kind": "pgvector", "collection": "docs", **job, **rows(200, DIM, seed=61)})
        v2 = rows(50, DIM, seed=62)
        v2["ids"] = [str(uuid.UUID(int=i)) for i in range(50)]
        write(
            {
                "kind": "pgvectorstore",
                "table": "docs_v2",
                "schema": "public",
                "metadata_columns": [],
                **job,
                **v2,
            }
        )
        try:
            base = {"embeddings": DeterministicFakeEmbedding(size=DIM), "PGVStore": PGVStore}

            v1 = dict(base)
            run(blocks["From `PGVector`"][0], v1, source, dsn, chroma)
            assert v1["report"].read == 200 and count(dsn, "docs") == 200
            run(blocks["Interrupted imports"][0], v1, source, dsn, chroma)
            assert (v1["report"].skipped, v1["report"].read) == (0, 200)  # finished: a new pass
            run(blocks["Speed"][0], v1, source, dsn, chroma)
            v1["store"].close()

            ns = dict(base)
            run(blocks["From `PGVectorStore`"][0], ns, source, dsn, chroma)
            assert ns["report"].read == 50 and count(dsn, "docs_v2") == 50
            ns["store"].close()

            ns = dict(base)
            run(blocks["From Chroma"][0], ns, source, dsn, chroma)
            assert ns["report"].read == 40 and count(dsn, "notes") == 40
            assert ns["store"].distance.value == "cosine"
            ns["store"].close()
        finally:
            # the store drops what it made with each table (BM25 objects, registry row):
            # the docs examples on this server use some of the same names
            for name in created:
                embeddings = DeterministicFakeEmbedding(size=DIM)
                with PGVStore(embeddings, connection=dsn, collection=name) as store:
                    store.delete_collection()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "DELETE FROM public.pgvstore_imports WHERE collection = ANY(%s)", (created,)
                )
