"""`pgvstore import pgvector|pgvectorstore|chroma`, run as a program on the test server.

The sources are written by the real packages, as in tests/db/test_import_*.py:
langchain-postgres in its own virtualenv (tests/importing/writer.py), chromadb in
this one. Every imported row is compared with the source; a re-run resumes an
interrupted import and leaves a finished one unchanged.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.fix_db import drop_collection, unique_name
from tests.importing.sources import (
    assert_rows_equal,
    database,
    need_chromadb,
    row_versions,
    rows,
    stored,
    write,
)

from ._run import Result, assert_one_line_error, command, environment, pgvstore

DIM = 16
ROOT = Path(__file__).resolve().parents[2]
_SUMMARY = re.compile(
    r"^imported (\d+) rows \((\d+) written, (not resumed|resumed after the (\d+) rows an earlier"
    r" run imported)\) from (.+) into collection (\S+) in [\d.]+ s(; built its HNSW index)?$"
)


def summary(result: Result) -> dict[str, Any]:
    """The one line an import prints on success, taken apart."""
    assert result.code == 0, result
    assert len(result.lines()) == 1, result.out
    match = _SUMMARY.match(result.lines()[0])
    assert match, result.out
    return {
        "read": int(match[1]),
        "written": int(match[2]),
        "skipped": int(match[4] or 0),
        "source": match[5],
        "collection": match[6],
        "indexed": match[7] is not None,
    }


@pytest.fixture
def names(admin: psycopg.Connection) -> Iterator[Callable[[], str]]:
    """Fresh collection names; whatever was made of them is dropped after the test."""
    made: list[str] = []

    def new() -> str:
        made.append(unique_name("imp"))
        return made[-1]

    yield new
    for name in made:
        drop_collection(admin, "public", name)


def collection_row(dsn: str, name: str) -> list[str]:
    """The `pgvstore collections` line of a collection: name, rows, dims, distance, type, index."""
    listing = pgvstore("collections", "--dsn", dsn)
    assert listing.code == 0, listing
    for line in listing.lines():
        if line.split()[:1] == [name]:
            return line.split()[:6]
    raise AssertionError(f"{name} not in\n{listing.out}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- PGVector ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1(dsn: str) -> Iterator[dict[str, Any]]:
    """A database of its own where langchain-postgres' PGVector wrote two collections."""
    with database(dsn) as conninfo:
        docs = rows(300, DIM, seed=31)
        job = {"kind": "pgvector", "conninfo": conninfo, "distance": "l2", "queries": [], "k": 1}
        result = write({**job, **docs, "collection": "docs"})
        write({**job, **rows(20, DIM, seed=32), "collection": "other"})
        yield {"conninfo": conninfo, "docs": docs, "rows": result["rows"]}


def test_pgvector_is_copied_row_for_row_and_a_rerun_writes_nothing(
    dsn: str, v1: dict[str, Any], names: Callable[[], str]
) -> None:
    name = names()
    args = ["import", "pgvector", "--from", v1["conninfo"], "--source-collection", "docs",
            "-c", name, "--distance", "l2", "--batch-size", "64", "--dsn", dsn]  # fmt: skip
    first = pgvstore(*args)
    got = summary(first)
    assert got["read"] == got["written"] == 300 and got["skipped"] == 0 and got["indexed"]
    assert got["source"].startswith("PGVector collection 'docs' (host=")
    assert got["collection"] == f"public.{name}"
    assert "300/300" in first.err  # the progress count, on stderr
    docs = v1["docs"]
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    imported = stored(dsn, "public", name)
    assert_rows_equal(imported, docs["ids"], docs["texts"], docs["metadatas"], vecs)
    # what PGVector itself reads back is what the collection holds
    for id_, (text, meta, _) in imported.items():
        assert v1["rows"][id_] == {"text": text, "metadata": meta}
    # the distance asked for, and the HNSW index built once the rows were in
    assert collection_row(dsn, name) == [name, "300", str(DIM), "l2", "vector", "hnsw"]

    versions = row_versions(dsn, "public", name)
    again = summary(pgvstore(*args, "--no-progress"))
    assert (again["read"], again["written"], again["skipped"], again["indexed"]) == (
        300, 0, 0, False,
    )  # fmt: skip
    assert row_versions(dsn, "public", name) == versions  # not one row written again


def test_an_interrupted_pgvector_import_resumes(
    dsn: str, names: Callable[[], str], admin: psycopg.Connection
) -> None:
    """A row the store refuses stops the import after the batches before it; once the row
    is fixed, the same command continues after them and ends with every row."""
    name = names()
    docs = rows(100, DIM, seed=33)
    with database(dsn) as conninfo:
        write({"kind": "pgvector", "conninfo": conninfo, "distance": "cosine", "queries": [],
               "k": 1, "collection": "docs", **docs})  # fmt: skip
        with psycopg.connect(conninfo, autocommit=True) as conn:
            # the last id in key order, a vector of another size: its batch is refused
            conn.execute(
                "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document,"
                " cmetadata) SELECT 'zz-wrong', collection_id, '[1,2,3]', 'bad', '{}'"
                " FROM langchain_pg_embedding LIMIT 1"
            )
        args = ["import", "pgvector", "--from", conninfo, "--source-collection", "docs",
                "-c", name, "--batch-size", "30", "--dsn", dsn]  # fmt: skip
        failed = pgvstore(*args, "--no-progress")
        assert_one_line_error(failed, 2, "source document 'zz-wrong' has 3 dimensions, expected 16")
        assert sorted(stored(dsn, "public", name)) == docs["ids"][:90]  # 3 batches of 30
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM langchain_pg_embedding WHERE id = 'zz-wrong'")
        resumed = summary(pgvstore(*args))
    assert (resumed["read"], resumed["written"], resumed["skipped"]) == (10, 10, 90)
    assert resumed["indexed"]  # the failed run stopped before the index
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    assert_rows_equal(
        stored(dsn, "public", name), docs["ids"], docs["texts"], docs["metadatas"], vecs
    )
    # the default distance is langchain-postgres' default, cosine
    assert collection_row(dsn, name) == [name, "100", str(DIM), "cosine", "vector", "hnsw"]


def test_pgvector_errors(dsn: str, v1: dict[str, Any], names: Callable[[], str]) -> None:
    name = names()
    base = ["import", "pgvector", "-c", name, "--dsn", dsn]
    missing = pgvstore(*base, "--from", v1["conninfo"], "--source-collection", "nope")
    assert_one_line_error(missing, 3, "no PGVector collection named 'nope'", "'docs', 'other'")
    no_table = pgvstore(*base, "--source-collection", "docs", "--from", v1["conninfo"],
                        "--source-schema", "elsewhere")  # fmt: skip
    assert_one_line_error(no_table, 3, "no table elsewhere.langchain_pg_embedding")
    # the source database is down, or its DSN unusable: its password never shows
    down = f"postgresql://importer:pw-s3cret-9@127.0.0.1:{_free_port()}/app"
    unreachable = pgvstore(*base, "--source-collection", "docs", "--from", down)
    assert_one_line_error(unreachable, 4, "cannot connect to the source database")
    assert "s3cret" not in unreachable.err
    bad = pgvstore(*base, "--source-collection", "docs",
                   "--from", "postgresql://u:pw-s3cret-9@127.0.0.1:1/x?bad=1")  # fmt: skip
    assert_one_line_error(bad, 2, "invalid --from")
    assert "s3cret" not in bad.err
    zero = pgvstore(*base, "--source-collection", "docs", "--from", v1["conninfo"],
                    "--batch-size", "0")  # fmt: skip
    assert_one_line_error(zero, 2, "--batch-size must be at least 1")
    usage = pgvstore(*base, "--from", v1["conninfo"])  # argparse: a required option
    assert usage.code == 2 and "--source-collection" in usage.err and "Traceback" not in usage.err
    wrong = pgvstore(*base, "--source-collection", "docs", "--distance", "manhattan")
    assert wrong.code == 2 and "invalid choice" in wrong.err
    with psycopg.connect(dsn) as conn:  # nothing was created
        assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None
    # an existing collection is written as it was created
    assert summary(pgvstore(*base, "--from", v1["conninfo"], "--source-collection", "other",
                            "--distance", "l2", "--no-index", "--no-progress"))["read"] == 20  # fmt: skip
    other = pgvstore(*base, "--from", v1["conninfo"], "--source-collection", "other",
                     "--distance", "cosine")  # fmt: skip
    assert_one_line_error(other, 1, f"public.{name} exists with distance l2, not cosine")
    # --no-index left it without an index
    assert collection_row(dsn, name)[-1] == "none"


# -- PGVectorStore -------------------------------------------------------------------

COLUMNS = [
    {"name": "year", "data_type": "INTEGER", "nullable": True},
    {"name": "published", "data_type": "DATE", "nullable": True},
    {"name": "tags", "data_type": "TEXT[]", "nullable": True},
]


@pytest.fixture
def v2_table(dsn: str, admin: psycopg.Connection) -> Iterator[tuple[str, dict[str, Any]]]:
    """A PGVectorStore table in the test database, written by langchain-postgres."""
    table = unique_name("lcv2")
    docs = rows(120, DIM, seed=34)
    docs["ids"] = [str(uuid.UUID(int=20_000 + i)) for i in range(120)]
    docs["metadatas"] = [
        {"n": i, "topic": f"t{i % 3}"}
        | ({} if i % 4 == 3 else {"year": 1990 + i % 30, "published": f"2024-03-{1 + i % 28:02d}",
                                  "tags": ["a", "b"][: i % 3]})
        for i in range(120)
    ]  # fmt: skip
    result = write({"kind": "pgvectorstore", "conninfo": dsn, "distance": "inner_product",
                    "table": table, "schema": "public", "metadata_columns": COLUMNS,
                    "queries": [], "k": 1, **docs})  # fmt: skip
    yield table, {"docs": docs, "rows": result["rows"]}
    admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def test_pgvectorstore_table_with_metadata_columns(
    dsn: str, v2_table: tuple[str, dict[str, Any]], names: Callable[[], str]
) -> None:
    table, src = v2_table
    docs, source_rows = src["docs"], src["rows"]
    name = names()
    # no --from: the table is in the destination database
    got = summary(pgvstore("import", "pgvectorstore", "--source-table", table, "-c", name,
                           "--distance", "ip", "--batch-size", "50", "--dsn", dsn))  # fmt: skip
    assert (got["read"], got["written"], got["skipped"]) == (120, 120, 0)
    assert got["source"].startswith(f"PGVectorStore table public.{table} (host=")
    # the metadata PGVectorStore returns (columns folded in, None for NULL) is what we hold
    expected = [source_rows[id_]["metadata"] for id_ in docs["ids"]]
    assert expected[3]["year"] is None and expected[0]["published"] == "2024-03-01"
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    assert_rows_equal(stored(dsn, "public", name), docs["ids"], docs["texts"], expected, vecs)
    assert collection_row(dsn, name)[3] == "inner_product"

    # only the columns named, without the JSON column
    only = names()
    chosen = summary(pgvstore("import", "pgvectorstore", "--source-table", table, "-c", only,
                              "--metadata-column", "year", "--metadata-column", "tags",
                              "--no-metadata-json-column", "--vector-type", "halfvec",
                              "--no-index", "--dsn", dsn))  # fmt: skip
    assert chosen["read"] == 120 and not chosen["indexed"]
    held = stored(dsn, "public", only)
    for i, id_ in enumerate(docs["ids"]):
        assert held[id_][1] == {"year": expected[i]["year"], "tags": expected[i]["tags"]}
    assert collection_row(dsn, only)[3:] == ["cosine", "halfvec", "none"]
    # every column but the ignored ones
    ignored = names()
    assert summary(pgvstore("import", "pgvectorstore", "--source-table", table, "-c", ignored,
                            "--ignore-column", "tags", "--ignore-column", "published",
                            "--dsn", dsn))["read"] == 120  # fmt: skip
    first = stored(dsn, "public", ignored)[docs["ids"][0]][1]
    assert first == {"n": 0, "topic": "t0", "year": 1990}


def test_pgvectorstore_errors(
    dsn: str, v2_table: tuple[str, dict[str, Any]], names: Callable[[], str]
) -> None:
    table, _ = v2_table
    name = names()
    base = ["import", "pgvectorstore", "-c", name, "--dsn", dsn]
    assert_one_line_error(
        pgvstore(*base, "--source-table", "no_such_table"), 3, "no table public.no_such_table"
    )
    assert_one_line_error(
        pgvstore(*base, "--source-table", table, "--metadata-column", "nope"), 2,
        "has no column 'nope'",
    )  # fmt: skip
    assert_one_line_error(
        pgvstore(*base, "--source-table", table, "--content-column", "year"), 1,
        "content column 'year' is integer, expected text",
    )  # fmt: skip
    both = pgvstore(*base, "--source-table", table, "--metadata-column", "year",
                    "--ignore-column", "tags")  # fmt: skip
    assert_one_line_error(both, 2, "--ignore-column", "--metadata-column")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None


# -- Chroma --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chroma_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A Chroma directory with an `ip` and a default (`l2`) collection."""
    chromadb = need_chromadb()
    path = tmp_path_factory.mktemp("chroma")
    client = chromadb.PersistentClient(path=str(path))
    data: dict[str, Any] = {}
    for seed, (space, how) in enumerate(
        {"ip": {"configuration": {"hnsw": {"space": "ip"}}}, "l2": {}}.items(), start=40
    ):
        n = 150
        source = rows(n, DIM, seed)
        documents = [None if i % 7 == 3 else t for i, t in enumerate(source["texts"])]
        metadatas = [None if i % 5 == 4 else {"i": i, "even": i % 2 == 0, "name": f"n{i}"}
                     for i in range(n)]  # fmt: skip
        collection = client.create_collection(f"docs-{space}", embedding_function=None, **how)
        collection.add(ids=source["ids"], embeddings=np.asarray(source["vectors"]),
                       documents=documents, metadatas=metadatas)  # fmt: skip
        got = collection.get(ids=source["ids"], include=["embeddings"])
        by_id = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32), strict=True))
        data[space] = {
            "ids": source["ids"],
            "texts": [d or "" for d in documents],
            "metadatas": [m or {} for m in metadatas],
            # the vectors as Chroma returns them, which the import copies
            "vectors": np.stack([by_id[i] for i in source["ids"]]),
        }
    return path, data


def test_chroma_directory_with_its_distance_space(
    dsn: str, chroma_dir: tuple[Path, dict[str, Any]], names: Callable[[], str]
) -> None:
    path, data = chroma_dir
    for space, distance in (("ip", "inner_product"), ("l2", "l2")):
        name = names()
        args = ["import", "chroma", "--path", path, "--source-collection", f"docs-{space}",
                "-c", name, "--batch-size", "40", "--dsn", dsn]  # fmt: skip
        first = pgvstore(*args)
        got = summary(first)
        assert (got["read"], got["written"], got["skipped"], got["indexed"]) == (150, 150, 0, True)
        assert got["source"] == f"chroma collection 'docs-{space}' (path {str(path)!r})"
        assert "150/150" in first.err
        d = data[space]
        assert_rows_equal(stored(dsn, "public", name), d["ids"], d["texts"], d["metadatas"],
                          d["vectors"])  # fmt: skip
        assert collection_row(dsn, name) == [name, "150", str(DIM), distance, "vector", "hnsw"]
        versions = row_versions(dsn, "public", name)
        again = summary(pgvstore(*args))
        assert (again["read"], again["written"], again["indexed"]) == (150, 0, False)
        assert row_versions(dsn, "public", name) == versions


def test_chroma_errors(
    dsn: str, chroma_dir: tuple[Path, dict[str, Any]], names: Callable[[], str]
) -> None:
    path, _ = chroma_dir
    name = names()
    base = ["import", "chroma", "-c", name, "--dsn", dsn]
    missing = pgvstore(*base, "--path", path, "--source-collection", "nope")
    assert_one_line_error(missing, 3, "no chroma collection named 'nope'", "'docs-ip', 'docs-l2'")
    no_dir = pgvstore(*base, "--path", path / "missing", "--source-collection", "docs-l2")
    assert_one_line_error(no_dir, 3, "no Chroma directory at")
    closed = pgvstore(*base, "--url", f"http://127.0.0.1:{_free_port()}",
                      "--source-collection", "docs-l2")  # fmt: skip
    assert_one_line_error(closed, 4, "cannot reach the Chroma server 127.0.0.1:")
    token = pgvstore(*base, "--url", "http://admin:t0ken-x@127.0.0.1:8000",
                     "--source-collection", "docs-l2")  # fmt: skip
    assert_one_line_error(token, 2, "url must not hold credentials")
    assert "t0ken-x" not in token.err
    both = pgvstore(*base, "--path", path, "--url", "http://127.0.0.1:1",
                    "--source-collection", "docs-l2")  # fmt: skip
    assert both.code == 2 and "not allowed with argument" in both.err
    # an existing collection of another distance than the Chroma collection's space
    assert summary(pgvstore(*base, "--path", path, "--source-collection", "docs-l2",
                            "--no-index"))["read"] == 150  # fmt: skip
    other = pgvstore(*base, "--path", path, "--source-collection", "docs-ip")
    assert_one_line_error(other, 1, f"public.{name} exists with distance l2, not inner_product")


def test_chroma_without_chromadb_says_which_extra(dsn: str, tmp_path: Path) -> None:
    """With only the embedded extra (no chromadb), a one-line error naming the extra."""
    only_extras = ROOT / "tests" / "examples" / "only_extras.py"
    entry = ROOT / "tests" / "cli" / "entry.py"
    proc = subprocess.run(
        [sys.executable, str(only_extras), "embedded", str(entry), "import", "chroma",
         "--path", str(tmp_path), "--source-collection", "docs", "-c", "x", "--dsn", dsn],
        env=environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    assert_one_line_error(result, 2, "needs chromadb", "pip install 'langchain-pgvstore[chroma]'")


def test_too_many_dimensions_for_an_index(
    dsn: str, admin: psycopg.Connection, names: Callable[[], str]
) -> None:
    """The rows are imported; the index pgvector cannot build is reported, exit 2."""
    table = unique_name("wide")
    admin.execute(
        sql.SQL(
            "CREATE TABLE {} (langchain_id text PRIMARY KEY, content text NOT NULL,"
            " embedding vector(2001) NOT NULL, langchain_metadata jsonb)"
        ).format(sql.Identifier(table))
    )
    try:
        for i in range(3):
            admin.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s::real[]::vector, '{{}}')").format(
                    sql.Identifier(table)
                ),
                (f"w{i}", f"wide {i}", [float(i + 1)] * 2001),
            )
        name = names()
        args = ["import", "pgvectorstore", "--source-table", table, "-c", name, "--dsn", dsn,
                "--no-progress"]  # fmt: skip
        refused = pgvstore(*args)
        assert refused.code == 2, refused
        assert refused.lines()[0].startswith("imported 3 rows (3 written, not resumed)")
        assert_one_line_error(
            Result(refused.code, "", refused.err), 2,
            "the rows are imported, but no HNSW index was built",
            "at most 2000 dimensions, these have 2001", "--no-index", "--vector-type halfvec",
        )  # fmt: skip
        assert sorted(stored(dsn, "public", name)) == ["w0", "w1", "w2"]
        assert summary(pgvstore(*args, "--no-index"))["written"] == 0
        halfvec = names()
        got = summary(pgvstore("import", "pgvectorstore", "--source-table", table, "-c", halfvec,
                               "--vector-type", "halfvec", "--dsn", dsn))  # fmt: skip
        assert got["read"] == 3 and got["indexed"]
    finally:
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def test_ctrl_c_then_the_same_command_resumes(
    dsn: str, admin: psycopg.Connection, names: Callable[[], str]
) -> None:
    """SIGINT in the middle of an import: exit 130, the committed batches stay, and the same
    command continues after them and ends with every row of the source."""
    table = unique_name("big")
    n = 20_000
    admin.execute(
        sql.SQL(
            "CREATE TABLE {} (langchain_id text PRIMARY KEY, content text NOT NULL,"
            " embedding vector(8) NOT NULL, langchain_metadata jsonb)"
        ).format(sql.Identifier(table))
    )
    try:
        admin.execute(
            sql.SQL(
                "INSERT INTO {} SELECT 'r' || lpad(i::text, 6, '0'), 'row ' || i,"
                " array_fill(i::real, ARRAY[8])::vector, jsonb_build_object('i', i)"
                " FROM generate_series(1, %s) i"
            ).format(sql.Identifier(table)),
            (n,),
        )
        name = names()
        cmd = [*command(), "import", "pgvectorstore", "--source-table", table, "-c", name,
               "--batch-size", "20", "--dsn", dsn]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # as in a terminal: a test run started in the background (`.ci/run &`) ignores
            # SIGINT, which children inherit, and Python then installs no handler for it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                exists = admin.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0]
                if (
                    exists
                    and admin.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
                    ).fetchone()[0]
                    >= 200
                ):
                    break
                time.sleep(0.02)
            assert proc.poll() is None, "the import ended before it could be interrupted"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, (out, err)
        assert err.splitlines()[-1] == "pgvstore: interrupted" and "Traceback" not in err
        kept = len(stored(dsn, "public", name))
        assert 200 <= kept < n and kept % 20 == 0  # whole batches only
        got = summary(pgvstore(*cmd[len(command()) :], "--no-progress"))
        assert got["skipped"] == kept and got["read"] == got["written"] == n - kept
        imported = stored(dsn, "public", name)
        assert len(imported) == n
        for i in (1, n // 2, n):
            text, meta, vec = imported[f"r{i:06d}"]
            assert (text, meta) == (f"row {i}", {"i": i})
            assert np.array_equal(vec, np.full(8, i, dtype=np.float32))
    finally:
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
