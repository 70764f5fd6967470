"""A real Citus cluster for the distributed-collection suite.

`--citus-dsn` (default `$PGVSTORE_CITUS_DSN`) names the coordinator of a
cluster with the `citus` and `vector` extensions: `.ci/run` starts one with
`../shared/citus/cluster up` and stops it afterwards, and contributors point
the suite at any Citus coordinator the same way. Without one, the tests that
need it are skipped, never faked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--citus-dsn",
        default=os.environ.get("PGVSTORE_CITUS_DSN"),
        help="DSN of a Citus coordinator with pgvector (default: $PGVSTORE_CITUS_DSN;"
        " without it the Citus suite is skipped)",
    )


@pytest.fixture(scope="session")
def citus_dsn(request: pytest.FixtureRequest) -> str:
    """The coordinator's DSN; the `vector` and `citus` extensions exist."""
    value = request.config.getoption("--citus-dsn")
    if not value:
        pytest.skip("no Citus cluster: set PGVSTORE_CITUS_DSN (../shared/citus/cluster up)")
    with psycopg.connect(str(value), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        citus = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
        if citus.fetchone() is None:
            pytest.fail(f"{value} is not a Citus coordinator (no citus extension)")
        workers = conn.execute("SELECT count(*) FROM pg_dist_node WHERE groupid <> 0").fetchone()
        assert workers is not None and workers[0] >= 1, "the cluster has no workers"
    return str(value)


@pytest.fixture
def citus_collection(citus_dsn: str) -> Iterator[str]:
    """A fresh collection name on the cluster; its table, statistics and registry row are
    dropped afterwards."""
    from langchain_pgvstore._sql.bm25_schema import drop_bm25
    from langchain_pgvstore.config import Table

    name = f"c_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(citus_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        for frag in drop_bm25(Table("public", name)):
            conn.execute(frag.sql, frag.params or None)
        if conn.execute("SELECT to_regclass('public.pgvstore_collections')").fetchone()[0]:
            conn.execute("DELETE FROM public.pgvstore_collections WHERE collection = %s", (name,))
