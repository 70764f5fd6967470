"""`pgvstore collections|drop|index|search` on the test server (`--dsn`), run as a program."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_pgvstore import PGVStore
from langchain_pgvstore.cli._main import build_parser

from ._run import FAKE, assert_one_line_error, pgvstore
from .models import DIM, fake


@pytest.fixture
def names(dsn: str) -> Iterator[list[str]]:
    """Collection names for one test; dropped afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        with PGVStore(fake(), connection=dsn, collection=name) as store:
            store.delete_collection()


def _new(names: list[str]) -> str:
    name = f"cli_{uuid.uuid4().hex[:10]}"
    names.append(name)
    return name


def _fill(dsn: str, name: str, n: int, **options) -> None:
    embedding = options.pop("embedding", fake())
    with PGVStore(embedding, connection=dsn, collection=name, **options) as store:
        store.add_texts(
            [f"topic {i % 5} item {i}" for i in range(n)],
            [{"topic": i % 5, "n": i} for i in range(n)],
            ids=[f"id{i}" for i in range(n)],
        )


def _row(listing: str, name: str) -> list[str]:
    for line in listing.splitlines():
        if line.split()[:1] == [name]:
            return line.split()
    raise AssertionError(f"{name} not in\n{listing}")


def test_collections_lists_rows_shape_index_and_size(dsn: str, names: list[str]) -> None:
    plain, half = _new(names), _new(names)
    _fill(dsn, plain, 30)
    _fill(dsn, half, 12, embedding=DeterministicFakeEmbedding(size=12), distance="l2",
          vector_type="halfvec", index=None)  # fmt: skip
    result = pgvstore("collections", "--dsn", dsn)
    assert result.code == 0, result
    assert result.lines()[0].split() == [
        "collection", "rows", "dimensions", "distance", "type", "index", "pending", "size"
    ]  # fmt: skip
    # pending is for adopted tables (tests/cli/test_existing.py): "-" for the store's own
    assert _row(result.out, plain)[:7] == [plain, "30", str(DIM), "cosine", "vector", "hnsw", "-"]
    assert _row(result.out, half)[:7] == [half, "12", "12", "l2", "halfvec", "none", "-"]
    assert _row(result.out, plain)[-1] in ("kB", "MB")  # "160.0 kB"
    # an index left invalid (a failed concurrent build) is flagged
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid ="
            " (SELECT indexrelid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            "  JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = %s::regclass"
            "  AND am.amname = 'hnsw')",
            (plain,),
        )
    flagged = pgvstore("collections", "--dsn", dsn)
    assert "hnsw (INVALID)" in " ".join(_row(flagged.out, plain))


def test_drop_asks_unless_yes(dsn: str, names: list[str]) -> None:
    name = _new(names)
    _fill(dsn, name, 3)
    declined = pgvstore("drop", name, "--dsn", dsn, input="n\n")
    assert declined.code == 1 and declined.err.splitlines() == [
        f"drop collection public.{name} and its 3 rows? [y/N] n",
        "pgvstore: error: not dropped",
    ]
    eof = pgvstore("drop", name, "--dsn", dsn, input="")  # no answer is no
    assert eof.code == 1 and eof.err.splitlines()[-1] == "pgvstore: error: not dropped"
    assert name in pgvstore("collections", "--dsn", dsn).out
    confirmed = pgvstore("drop", name, "--dsn", dsn, input="y\n")
    assert confirmed.code == 0 and f"dropped collection public.{name} (3 rows)" in confirmed.out
    assert name not in pgvstore("collections", "--dsn", dsn).out
    gone = pgvstore("drop", name, "--yes", "--dsn", dsn)
    assert_one_line_error(gone, 3, f"no collection {name!r}")


def test_index_status_create_reindex(dsn: str, names: list[str]) -> None:
    name = _new(names)
    _fill(dsn, name, 300, index=None)
    status = pgvstore("index", "status", name, "--dsn", dsn)
    assert status.code == 0 and "hnsw" not in status.out, status
    no_index = pgvstore("index", "reindex", name, "--dsn", dsn)
    assert_one_line_error(no_index, 3, "has no ANN index", "pgvstore index create")

    built = pgvstore("index", "create", name, "--m", "8", "--ef-construction", "32",
                     "--maintenance-work-mem", "64MB", "--dsn", dsn)  # fmt: skip
    assert built.code == 0 and built.out.startswith("built ") and "(hnsw," in built.out, built
    status = pgvstore("index", "status", name, "--dsn", dsn)
    line = next(line for line in status.lines() if "hnsw" in line.split()[1:2])
    assert line.split()[2] == "yes" and "m='8'" in line and "ef_construction='32'" in line
    same = pgvstore("index", "create", name, "--dsn", dsn)
    assert same.code == 0 and "already exists" in same.out and "reindex" in same.out

    rebuilt = pgvstore("index", "reindex", name, "--dsn", dsn, "--no-progress")
    assert rebuilt.code == 0 and rebuilt.out.strip() == f"rebuilt the hnsw index of {name!r}"
    assert rebuilt.err == ""
    ivf = pgvstore("index", "create", name, "--kind", "ivfflat", "--dsn", dsn)
    assert_one_line_error(ivf, 1, "already has a hnsw index", "replace")
    replaced = pgvstore("index", "create", name, "--kind", "ivfflat", "--replace", "--dsn", dsn)
    assert replaced.code == 0 and "(ivfflat," in replaced.out, replaced
    bad = pgvstore("index", "create", name, "--kind", "hnsw", "--m", "1", "--dsn", dsn)
    assert_one_line_error(bad, 2, "hnsw m must be")


def _library_hits(dsn: str, name: str, mode: str, query: str, k: int, where=None):
    with PGVStore(fake(), connection=dsn, collection=name) as store:
        if mode == "similarity":
            return store.similarity_search_with_score(query, k=k, filter=where)
        if mode == "mmr":
            return store.max_marginal_relevance_search_with_score(query, k=k, filter=where)
        if mode == "keyword":
            return store.keyword_search_with_score(query, k=k, filter=where)
        return store.hybrid_search_with_score(query, k=k, filter=where)


@pytest.mark.parametrize("mode", ["similarity", "mmr", "keyword", "hybrid"])
def test_search_prints_what_the_store_finds(dsn: str, names: list[str], mode: str) -> None:
    name = _new(names)
    _fill(dsn, name, 40)
    where = {"topic": {"$in": [1, 3]}}
    args = ["search", "topic 3 item 13", "-c", name, "--k", "5", "--mode", mode, "--dsn", dsn,
            "--filter", json.dumps(where), "--embeddings", FAKE]  # fmt: skip
    as_json = pgvstore(*args, "--json")
    assert as_json.code == 0, as_json
    got = [json.loads(line) for line in as_json.lines()]
    want = _library_hits(dsn, name, mode, "topic 3 item 13", 5, where)
    assert [(g["id"], g["text"]) for g in got] == [(d.id, d.page_content) for d, _ in want]
    assert [g["score"] for g in got] == pytest.approx([s for _, s in want])
    assert got and all(g["metadata"]["topic"] in (1, 3) for g in got)

    table = pgvstore(*args)
    header = table.lines()[0].split()
    assert header == ["#", {"keyword": "bm25", "hybrid": "score"}.get(mode, "distance"), "id",
                      "text", "metadata"]  # fmt: skip
    assert [line.split()[2] for line in table.lines()[1:]] == [g["id"] for g in got]


def test_bad_input_is_one_line_with_its_exit_code(dsn: str, names: list[str]) -> None:
    name = _new(names)
    _fill(dsn, name, 5)
    search = ["search", "q", "-c", name, "--dsn", dsn, "--embeddings", FAKE]
    assert_one_line_error(pgvstore(*search, "--filter", "{bad"), 2, "--filter is not valid JSON")
    assert_one_line_error(pgvstore(*search, "--filter", "[1]"), 2, "must be a JSON object")
    assert_one_line_error(
        pgvstore(*search, "--filter", '{"n": {"$regex": "x"}}'), 2, "unknown operator '$regex'"
    )
    assert_one_line_error(pgvstore(*search, "--k", "0"), 2, "--k must be at least 1")
    unknown = pgvstore("search", "q", "-c", "nope", "--dsn", dsn, "--embeddings", FAKE)
    assert_one_line_error(unknown, 3, "no collection 'nope'", name)
    wrong_size = pgvstore("search", "q", "-c", name, "--dsn", dsn, "--embeddings",
                          "tests.cli.models:small")  # fmt: skip
    assert_one_line_error(wrong_size, 1, f"created with {DIM} dimensions", "uses 8")
    assert_one_line_error(pgvstore("search", "q", "-c", name, "--dsn", dsn, "--embeddings",
                                   "tests.cli.models:not_a_model"), 2, "not a LangChain")  # fmt: skip
    assert_one_line_error(
        pgvstore("search", "q", "-c", name, "--dsn", dsn, "--embeddings", "nonsense"),
        2, "unknown --embeddings 'nonsense'",
    )  # fmt: skip
    assert_one_line_error(
        pgvstore("search", "q", "-c", name, "--dsn", dsn, "--embeddings", "openai"),
        2, "OPENAI_API_KEY",
    )  # fmt: skip
    usage = pgvstore("search", "q", "--dsn", dsn)  # no --collection: argparse's own usage error
    assert usage.code == 2 and "--collection" in usage.err and "Traceback" not in usage.err


def test_a_server_that_is_down_or_a_bad_dsn(unused_port: int) -> None:
    down = f"postgresql://postgres@127.0.0.1:{unused_port}/postgres"
    for args in (("collections",), ("drop", "x", "--yes"), ("index", "status", "x"),
                 ("search", "q", "-c", "x", "--embeddings", FAKE)):  # fmt: skip
        result = pgvstore(*args, "--dsn", down)
        assert_one_line_error(result, 4, "cannot connect", str(unused_port))
    via_env = pgvstore("collections", PGVSTORE_DSN=down)
    assert_one_line_error(via_env, 4, "cannot connect")
    secret = pgvstore("collections", "--dsn", "postgresql://u:hunter2secret@127.0.0.1:1/x?bad=1")
    assert_one_line_error(secret, 2, "invalid --dsn")
    assert "hunter2secret" not in secret.err


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _commands() -> list[list[str]]:
    parser = build_parser()
    found = [[]]
    top = next(a for a in parser._actions if a.dest == "command")
    for name, sub in top.choices.items():
        found.append([name])
        for action in sub._actions:
            if action.dest == "action":
                found.extend([name, inner] for inner in action.choices)
    return found


@pytest.mark.parametrize("args", _commands(), ids=lambda a: " ".join(a) or "pgvstore")
def test_every_command_has_help(args: list[str]) -> None:
    result = pgvstore(*args, "--help")
    assert result.code == 0 and result.out.startswith("usage: pgvstore"), result
    assert result.err == ""
