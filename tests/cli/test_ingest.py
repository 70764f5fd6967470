"""`pgvstore ingest PATH --collection C`: incremental, with progress, then searchable."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from langchain_pgvstore import PGVStore

from ._run import FAKE, assert_one_line_error, pgvstore
from .models import fake

SUMMARY = re.compile(
    r"(\d+) files, (\d+) chunks into collection '.*' in [\d.]+ s: added (\d+), updated (\d+),"
    r" skipped (\d+), deleted (\d+)"
)


def _summary(out: str) -> dict[str, int]:
    match = SUMMARY.search(out)
    assert match is not None, out
    keys = ("files", "chunks", "added", "updated", "skipped", "deleted")
    return dict(zip(keys, map(int, match.groups()), strict=True))


@pytest.fixture
def collection(dsn: str) -> Iterator[str]:
    name = f"ing_{uuid.uuid4().hex[:10]}"
    yield name
    with PGVStore(fake(), connection=dsn, collection=name) as store:
        store.delete_collection()
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('public.pgvstore_records')").fetchone()[0]:
            conn.execute("DELETE FROM pgvstore_records WHERE namespace = %s", (f"pgvstore/{name}",))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Alpha\n\n" + " ".join(f"alpha{i}" for i in range(400)))
    (docs / "b.txt").write_text("Beta is about PostgreSQL and pgvector. " * 5)
    (docs / "sub" / "c.md").write_text("Gamma notes on HNSW indexes.")
    (docs / "skipped.pdf").write_text("not a text file")
    return docs


def test_ingest_is_incremental_and_searchable(dsn: str, collection: str, folder: Path) -> None:
    args = ["ingest", folder, "-c", collection, "--dsn", dsn, "--embeddings", FAKE,
            "--chunk-tokens", "100", "--overlap", "10"]  # fmt: skip
    first = pgvstore(*args)
    assert first.code == 0, first
    counts = _summary(first.out)
    assert counts["files"] == 3 and counts["added"] == counts["chunks"] > 3
    assert "indexing" in first.err and f"{counts['chunks']}/{counts['chunks']}" in first.err

    again = pgvstore(*args, "--no-progress")
    assert _summary(again.out) == {**counts, "added": 0, "skipped": counts["chunks"]}
    assert again.err == ""

    (folder / "b.txt").write_text("Beta was rewritten.")
    (folder / "sub" / "c.md").unlink()
    edited = _summary(pgvstore(*args, "--no-progress").out)
    assert edited["added"] == 1 and edited["deleted"] == 1  # c.md kept (incremental cleanup)
    full = _summary(pgvstore(*args, "--no-progress", "--cleanup", "full").out)
    assert full["deleted"] == 1 and full["added"] == 0

    hits = pgvstore("search", "Beta was rewritten.", "-c", collection, "--dsn", dsn, "--json",
                    "--k", "1", "--embeddings", FAKE)  # fmt: skip
    best = json.loads(hits.lines()[0])
    assert best["text"] == "Beta was rewritten." and best["metadata"] == {"source": "b.txt",
                                                                        "chunk": 0}  # fmt: skip
    keyword = pgvstore("search", "alpha7", "-c", collection, "--dsn", dsn, "--mode", "keyword")
    assert keyword.code == 0 and "a.md" in keyword.out  # BM25 alone loads no model

    # dropping forgets the ingest's records too: the next run writes everything again
    assert pgvstore("drop", collection, "--yes", "--dsn", dsn).code == 0
    after = _summary(pgvstore(*args, "--no-progress").out)
    assert after["added"] == after["chunks"] > 0


def test_ingest_with_openai(dsn: str, collection: str, folder: Path, openai_server) -> None:
    args = ["ingest", folder, "-c", collection, "--dsn", dsn, "--embeddings", "openai",
            "--dimensions", "64", "--no-progress"]  # fmt: skip
    env = {"OPENAI_API_KEY": "sk-test-cli", "OPENAI_BASE_URL": openai_server.url}
    done = pgvstore(*args, **env)
    assert done.code == 0, done
    counts = _summary(done.out)
    sent = [t for r in openai_server.requests for t in openai_server.texts(r)]
    assert len(sent) == counts["chunks"] and all(r.body["dimensions"] == 64
                                                  for r in openai_server.requests)  # fmt: skip
    listing = pgvstore("collections", "--dsn", dsn)
    assert any(line.split()[:3] == [collection, str(counts["chunks"]), "64"]
               for line in listing.lines())  # fmt: skip
    hits = pgvstore("search", "Gamma notes on HNSW indexes.", "-c", collection, "--dsn", dsn,
                    "--embeddings", "openai", "--dimensions", "64", "--json", **env)  # fmt: skip
    assert json.loads(hits.lines()[0])["metadata"]["source"] == "sub/c.md"
    # a model of another size does not fit the collection: one line, exit 1
    wrong = pgvstore("search", "x", "-c", collection, "--dsn", dsn, "--embeddings", FAKE)
    assert_one_line_error(wrong, 1, "created with 64 dimensions", "uses 32")


def test_ingest_bad_input(dsn: str, collection: str, folder: Path) -> None:
    base = ["-c", collection, "--dsn", dsn, "--embeddings", FAKE]
    missing = pgvstore("ingest", folder / "nope", *base)
    assert_one_line_error(missing, 2, "is not a folder")
    overlap = pgvstore("ingest", folder, *base, "--chunk-tokens", "10", "--overlap", "10")
    assert_one_line_error(overlap, 2, "--overlap")
