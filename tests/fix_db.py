"""Database fixtures: a real PostgreSQL with pgvector for every test that needs one.

`--test-dsn` (default `$PGVSTORE_TEST_DSN`) points the suite at a server of
your own; otherwise one embedded server is started for the session in a
temporary data directory and stopped at the end.

Everything a test creates on the test server (collections, tables, schemas,
databases, roles) is named with `unique_name()`, so under `TEST_PREFIX`, and
is dropped by the fixture that made it. At the end of the session the `dsn`
fixture fails the run if an object under that prefix is left that was not
there when the session began, so a `--test-dsn` server stays clean.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from langchain_pgvstore._sql import Frag, catalog, ddl
from langchain_pgvstore._sql.bm25_schema import drop_bm25
from langchain_pgvstore.config import REGISTRY_TABLE, Table
from langchain_pgvstore.errors import ConfigError
from langchain_pgvstore.server import EmbeddedPostgres

#: Every name a test gives to something it creates on the test server starts with this.
TEST_PREFIX = "pgvt_"


def unique_name(kind: str = "") -> str:
    """A fresh name under `TEST_PREFIX`: `pgvt_<kind>_<12 hex digits>`."""
    tag = uuid.uuid4().hex[:12]
    return f"{TEST_PREFIX}{kind}_{tag}" if kind else f"{TEST_PREFIX}{tag}"


@contextmanager
def scratch_table(conn: psycopg.Connection, kind: str) -> Iterator[str]:
    """A fresh table name under `TEST_PREFIX`; the table, if made, is dropped at the end."""
    name = unique_name(kind)
    try:
        yield name
    finally:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


class Locker:
    """Another session that holds an exclusive lock on a table, as a migration or a
    `VACUUM FULL` would: the store's statements on it wait."""

    def __init__(self, dsn: str, table: str) -> None:
        self.conn = psycopg.connect(dsn, connect_timeout=5)
        self.table = table

    def lock(self) -> None:
        self.conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(self.table))
        )

    def release(self) -> None:
        self.conn.rollback()


def run_sql(conn: psycopg.Connection, frag: Frag) -> list[tuple[object, ...]]:
    """Run one built statement; its rows, if it returns any."""
    cur = conn.execute(frag.sql, frag.params)
    return cur.fetchall() if cur.description else []


def drop_collection(conn: psycopg.Connection, schema: str, name: str) -> None:
    """Drop a collection as `PGVStore.delete_collection()` does, without a store.

    Its table (with its indexes and triggers), its BM25 objects (statistics
    table, functions) and its registry row; a no-op for what does not exist.
    """
    try:
        table = Table(schema, name)
    except ConfigError:
        return  # a name the store refuses: nothing was ever created under it
    with conn.transaction():
        run_sql(conn, ddl.drop_table(table))
        for frag in drop_bm25(table):
            run_sql(conn, frag)
        [(registry,)] = run_sql(conn, catalog.relation_exists(schema, REGISTRY_TABLE))
        if registry:
            run_sql(conn, ddl.delete_registry_row(table))


_LEFTOVER_QUERIES = [
    "SELECT 'relation ' || n.nspname || '.' || c.relname FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname LIKE %(p)s",
    "SELECT 'function ' || n.nspname || '.' || p.proname FROM pg_proc p"
    " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname LIKE %(p)s",
    "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE %(p)s",
    "SELECT 'database ' || datname FROM pg_database WHERE datname LIKE %(p)s",
    "SELECT 'role ' || rolname FROM pg_roles WHERE rolname LIKE %(p)s",
]


def leftovers(conn: psycopg.Connection) -> set[str]:
    """Objects under `TEST_PREFIX` on the server: relations, functions, schemas,
    databases, roles, and registry rows in every schema's registry."""
    pattern = TEST_PREFIX.replace("_", "\\_") + "%"
    found = {row[0] for q in _LEFTOVER_QUERIES for row in conn.execute(q, {"p": pattern})}
    registries = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = %s AND c.relkind = 'r'",
        (REGISTRY_TABLE,),
    ).fetchall()
    for (schema,) in registries:
        rows = conn.execute(
            sql.SQL("SELECT collection FROM {} WHERE collection LIKE %s").format(
                sql.Identifier(schema, REGISTRY_TABLE)
            ),
            (pattern,),
        )
        found |= {f"registry row {schema}.{name}" for (name,) in rows}
    return found


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
def dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of the test server; the `vector` extension exists.

    At the end of the session, fails the run if the tests left an object under
    `TEST_PREFIX` there (one that existed before the session is not counted).
    """
    configured = request.config.getoption("--test-dsn")
    if configured:
        value = str(configured)
    else:
        value = request.getfixturevalue("embedded_server").dsn
    with psycopg.connect(value, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        before = leftovers(conn)
    yield value
    with psycopg.connect(value, autocommit=True) as conn:
        left = sorted(leftovers(conn) - before)
    if left:
        pytest.fail(
            f"the tests left {len(left)} objects on the test server: " + ", ".join(left),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def admin(dsn: str) -> Iterator[psycopg.Connection]:
    """A session-wide autocommit connection for cleanups; it never waits long for a lock."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET lock_timeout = '20s'")
        yield c


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def mconn(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection shared by a module (for `@given` tests, which must not
    use function-scoped fixtures: one value would serve every example)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture
async def aconn(dsn: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def collection_name(admin: psycopg.Connection) -> Iterator[str]:
    """A fresh collection name in `public`; whatever a store made of it is dropped after
    the test: the table, its registry row and its BM25 objects."""
    name = unique_name()
    yield name
    drop_collection(admin, "public", name)


@pytest.fixture
def schema_name(admin: psycopg.Connection) -> Iterator[str]:
    """A fresh schema name; the schema, if a test made it, is dropped with all in it after."""
    name = unique_name("s")
    yield name
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
