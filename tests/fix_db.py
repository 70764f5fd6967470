"""Database fixtures: a real PostgreSQL with pgvector for every test that needs one.

`--test-dsn` (default `$PGVSTORE_TEST_DSN`) points the suite at a server of
your own; otherwise one embedded server is started for the session in a
temporary data directory and stopped at the end.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from langchain_pgvstore.server import EmbeddedPostgres


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--test-dsn",
        default=os.environ.get("PGVSTORE_TEST_DSN"),
        help="DSN of a PostgreSQL server with pgvector (default: $PGVSTORE_TEST_DSN;"
        " without it an embedded server is started)",
    )


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedPostgres]:
    with tempfile.TemporaryDirectory(prefix="pgvstore-test-") as tmp:
        server = EmbeddedPostgres(os.path.join(tmp, "pgdata"))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def dsn(request: pytest.FixtureRequest) -> str:
    """DSN of the test server; the `vector` extension exists."""
    configured = request.config.getoption("--test-dsn")
    if configured:
        value = str(configured)
    else:
        value = request.getfixturevalue("embedded_server").dsn
    with psycopg.connect(value, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return value


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture
async def aconn(dsn: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def collection_name(dsn: str) -> Iterator[str]:
    """A fresh collection name; its table and registry row are dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
        if c.execute("SELECT to_regclass('public.pgvstore_collections')").fetchone()[0]:
            c.execute("DELETE FROM public.pgvstore_collections WHERE collection = %s", (name,))
