"""examples/ingest_directory.py: re-runs embed only what changed; cleanup modes remove old chunks."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from langchain_pgvstore.embeddings import load_encoding
from langchain_pgvstore.folders import split_tokens

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ingest_directory.py"
SUMMARY = re.compile(
    r"(\d+) files into collection '.*' in [\d.]+ s: added (\d+), updated (\d+),"
    r" skipped (\d+), deleted (\d+)"
)


def _load_example():
    spec = importlib.util.spec_from_file_location("ingest_directory", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _words(prefix: str, n: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_splitter_keeps_words_whole_and_overlaps() -> None:
    enc = load_encoding()
    text = _words("w", 700) + "\n\nlast paragraph. " + "é" * 50
    chunks = split_tokens(text, enc, 100, 20)
    assert len(chunks) > 5
    words = set(text.split())
    seen: list[str] = []
    for chunk in chunks:
        assert len(enc.encode_ordinary(chunk)) <= 100
        assert set(chunk.split()) <= words  # no word was cut in two
        seen.extend(chunk.split())
    assert set(seen) == words  # nothing lost
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert left.split()[-1] in right.split()[:30]  # neighbours overlap
    assert split_tokens("", enc, 100, 20) == []
    assert split_tokens("short text", enc, 100, 20) == ["short text"]


class Ingest:
    def __init__(self, dsn: str, collection: str, folder: Path, env: dict[str, str]) -> None:
        self.dsn, self.collection, self.folder, self.env = dsn, collection, folder, env

    def __call__(self, *args: str, openai: bool = True) -> dict[str, int]:
        cmd = [sys.executable, str(EXAMPLE), str(self.folder), "--dsn", self.dsn]
        cmd += ["--collection", self.collection, *args]
        if openai:
            cmd += ["--openai", "--dimensions", "64", "--no-progress"]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        match = SUMMARY.search(proc.stdout)
        assert match is not None, proc.stdout
        keys = ("files", "added", "updated", "skipped", "deleted")
        return dict(zip(keys, map(int, match.groups()), strict=True))

    def chunks_by_source(self) -> dict[str, list[str]]:
        with psycopg.connect(self.dsn) as c:
            rows = c.execute(
                sql.SQL(
                    "SELECT metadata->>'source', content FROM {} ORDER BY (metadata->>'chunk')::int"
                ).format(sql.Identifier(self.collection))
            ).fetchall()
        out: dict[str, list[str]] = {}
        for source, content in rows:
            out.setdefault(source, []).append(content)
        return out


@pytest.fixture
def ingest(dsn: str, collection_name: str, tmp_path: Path, openai_server):
    env = dict(os.environ)
    env.update(
        OPENAI_API_KEY="sk-test-ingest",
        OPENAI_BASE_URL=openai_server.url,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    folder = tmp_path / "docs"
    folder.mkdir()
    yield Ingest(dsn, collection_name, folder, env)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "DELETE FROM pgvstore_records WHERE namespace = %s", (f"pgvstore/{collection_name}",)
        )


def test_reruns_edits_and_deletions(ingest: Ingest, openai_server) -> None:
    tag = uuid.uuid4().hex[:8]  # texts unseen by the embedding cache of earlier sessions
    (ingest.folder / "a.md").write_text(f"# A {tag}\n\n" + _words("alpha", 600))
    (ingest.folder / "b.txt").write_text(f"B {tag} " + _words("beta", 300))
    (ingest.folder / "sub").mkdir()
    (ingest.folder / "sub" / "c.md").write_text(f"C {tag} " + _words("gamma", 100))
    (ingest.folder / "ignored.pdf").write_text("not ingested")

    first = ingest("--chunk-tokens", "200", "--overlap", "20")
    assert first["files"] == 3 and first["added"] > 3
    assert first["skipped"] == first["deleted"] == 0
    by_source = ingest.chunks_by_source()
    assert set(by_source) == {"a.md", "b.txt", "sub/c.md"}
    assert sum(map(len, by_source.values())) == first["added"]
    embedded = len(openai_server.requests)
    assert embedded > 0

    # unchanged: every chunk skipped, no embedding request
    again = ingest("--chunk-tokens", "200", "--overlap", "20")
    assert again == {**first, "added": 0, "skipped": first["added"]}
    assert len(openai_server.requests) == embedded

    # an edited file has its chunks replaced; a deleted one keeps them (incremental cleanup)
    (ingest.folder / "b.txt").write_text(f"B {tag} edited " + _words("delta", 50))
    (ingest.folder / "sub" / "c.md").unlink()
    edited = ingest("--chunk-tokens", "200", "--overlap", "20")
    assert edited["added"] == 1 and edited["deleted"] == len(by_source["b.txt"])
    after_edit = ingest.chunks_by_source()
    assert after_edit["b.txt"] == [f"B {tag} edited " + _words("delta", 50)]
    assert after_edit["a.md"] == by_source["a.md"]
    assert after_edit["sub/c.md"] == by_source["sub/c.md"]
    assert [openai_server.texts(r) for r in openai_server.requests[embedded:]] == [
        after_edit["b.txt"]
    ]

    # full cleanup removes the chunks of files no longer in the folder
    full = ingest("--chunk-tokens", "200", "--overlap", "20", "--cleanup", "full")
    assert full["deleted"] == len(by_source["sub/c.md"]) and full["added"] == 0
    assert set(ingest.chunks_by_source()) == {"a.md", "b.txt"}


def test_default_local_model(ingest: Ingest, capsys: pytest.CaptureFixture[str]) -> None:
    """The default path (MiniLM, progress bar), in this process: the model loads once per session."""
    (ingest.folder / "note.md").write_text("PostgreSQL stores vectors with pgvector.\n" * 30)
    example = _load_example()
    argv = [str(ingest.folder), "--dsn", ingest.dsn, "--collection", ingest.collection]
    assert example.main(argv) == 0
    first = SUMMARY.search(capsys.readouterr().out)
    assert first is not None and int(first[2]) >= 1
    assert example.main([*argv, "--no-progress"]) == 0
    again = SUMMARY.search(capsys.readouterr().out)
    assert again is not None and (again[2], again[4]) == ("0", first[2])
