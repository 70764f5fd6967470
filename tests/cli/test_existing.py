"""`pgvstore adopt` and `pgvstore embed-pending` on an application's table, run as programs.

The table is made with plain SQL, as the application would; after adoption the other
commands (`collections`, `search`, `index`, `drop`) find it by its name alone, from the
column names the registry records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import Column
from langchain_pgvstore.cli._existing import cli_words, parse_column
from langchain_pgvstore.cli._exits import CLIError
from langchain_pgvstore.cli._models import model_dimensions
from tests.fix_db import drop_collection, unique_name

from ._run import FAKE, Result, assert_one_line_error, pgvstore
from .models import DIM, fake

DESCRIPTIONS = {
    "p1": "a light tent for two hikers",
    "p2": "a compact gas stove for camping",
    "p3": "an enamel mug that survives campfires",
    "p4": "a down sleeping bag for cold nights",
    "p5": "a folding chair for the beach",
}
ADOPTED = ["embedding", "metadata", "pgvstore_content_sha256"]
SUMMARY = re.compile(
    r"^embedded (\d+) rows? of (\S+) in (\d+) batch(?:es)? \([\d.]+ s\); (\d+) changed meanwhile,"
    r" (\d+) still pending$"
)


@pytest.fixture
def table(admin: psycopg.Connection) -> Iterator[str]:
    """The application's table, with five products; dropped (and forgotten) afterwards."""
    name = unique_name("app")
    admin.execute(
        sql.SQL(
            "CREATE TABLE {} (sku text PRIMARY KEY, description text, price numeric NOT NULL,"
            " stock integer)"
        ).format(sql.Identifier(name))
    )
    with admin.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(sql.Identifier(name)),
            [(sku, text, 10 * i, None if i == 3 else i) for i, (sku, text) in
             enumerate(DESCRIPTIONS.items(), 1)],
        )  # fmt: skip
    yield name
    drop_collection(admin, "public", name)


def columns_of(admin: psycopg.Connection, name: str) -> list[str]:
    rows = admin.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (name,),
    ).fetchall()
    return [r[0] for r in rows]


def registered(admin: psycopg.Connection, name: str) -> bool:
    if admin.execute("SELECT to_regclass('public.pgvstore_collections')").fetchone()[0] is None:
        return False
    row = admin.execute(
        "SELECT count(*) FROM pgvstore_collections WHERE collection = %s", (name,)
    ).fetchone()
    return bool(row and row[0])


def embeddings(admin: psycopg.Connection, name: str) -> dict[str, Any]:
    rows = admin.execute(
        sql.SQL("SELECT sku, embedding::text FROM {} ORDER BY sku").format(sql.Identifier(name))
    ).fetchall()
    return {sku: None if v is None else json.loads(v) for sku, v in rows}


def summary(result: Result) -> dict[str, Any]:
    assert result.code == 0, result
    assert len(result.lines()) == 1, result.out
    match = SUMMARY.match(result.lines()[0])
    assert match, result.out
    keys = ("embedded", "table", "batches", "changed", "remaining")
    values = [match[1], match[2], match[3], match[4], match[5]]
    return {k: v if k == "table" else int(v) for k, v in zip(keys, values, strict=True)}


def listing_row(dsn: str, name: str) -> list[str]:
    listing = pgvstore("collections", "--dsn", dsn)
    assert listing.code == 0, listing
    assert listing.lines()[0].split() == [
        "collection", "rows", "dimensions", "distance", "type", "index", "pending", "size"
    ]  # fmt: skip
    for line in listing.lines():
        if line.split()[:1] == [name]:
            return line.split()[:7]
    raise AssertionError(f"{name} not in\n{listing.out}")


def adopt_args(name: str, dsn: str, *more: str) -> list[str]:
    return ["adopt", name, "--id", "sku", "--content", "description", "--column",
            "price:numeric", "--column", "stock:integer:nullable", "--dsn", dsn,
            "--embeddings", FAKE, *more]  # fmt: skip


def test_adopt_backfill_update_search_and_forget(
    dsn: str, admin: psycopg.Connection, table: str, tmp_path: Path
) -> None:
    before = columns_of(admin, table)
    flags = ["--add-embedding-column", "--add-metadata-column", "--track-changes"]

    # a dry run reports the steps in the command's words and changes nothing
    dry = pgvstore(*adopt_args(table, dsn, *flags, "--dry-run"))
    assert dry.code == 0, dry
    assert dry.lines()[0] == f"adoption of public.{table}: would make 3 change(s)"
    assert f'ADD COLUMN IF NOT EXISTS "embedding" vector({DIM})' in dry.out  # the model's size
    assert f"pgvstore index create {table} --concurrently" in dry.out
    assert f"pgvstore embed-pending {table}" in dry.out
    assert "--create-indexes builds them" in dry.out and "adopt(" not in dry.out
    assert columns_of(admin, table) == before and not registered(admin, table)
    assert_one_line_error(
        pgvstore("embed-pending", table, "--count", "--dsn", dsn), 3,
        f"table public.{table} is not a collection", f"pgvstore adopt {table}",
    )  # fmt: skip

    done = pgvstore(*adopt_args(table, dsn, *flags, "--create-indexes"))
    assert done.code == 0, done
    assert done.lines()[0] == f"adoption of public.{table}: made 4 change(s)"
    # folder ingest never writes file chunks into the application's table
    (tmp_path / "a.md").write_text("# A note\n\nSome text.\n")
    assert_one_line_error(
        pgvstore("ingest", str(tmp_path), "--collection", table, "--dsn", dsn, "--embeddings", FAKE),
        2, "adopted table",
    )  # fmt: skip
    assert [line.split(":")[0].strip() for line in done.lines()[1:5]] == [
        "- embedding column", "- metadata column", "- content-hash column", "- indexes"
    ]  # fmt: skip
    assert columns_of(admin, table) == before + ADOPTED and registered(admin, table)
    assert listing_row(dsn, table) == [table, "5", str(DIM), "cosine", "vector", "none", "5"]

    # the backfill: a count without a model, then every row, in batches, progress on stderr
    count = pgvstore("embed-pending", table, "--count", "--dsn", dsn, "--embeddings", "nonsense")
    assert (count.code, count.out) == (0, "5\n"), count
    first = pgvstore("embed-pending", table, "--batch-size", "2", "--dsn", dsn,
                     "--embeddings", FAKE)  # fmt: skip
    assert summary(first) == {
        "embedded": 5, "table": f"public.{table}", "batches": 3, "changed": 0, "remaining": 0
    }  # fmt: skip
    assert "embedding" in first.err and "5/5" in first.err  # tqdm, or the plain line
    stored = embeddings(admin, table)
    for sku, text in DESCRIPTIONS.items():
        assert np.allclose(stored[sku], fake().embed_query(text), atol=1e-6), sku

    # the application changes a description (and a price, which is not embedded)
    admin.execute(
        sql.SQL("UPDATE {} SET description = 'a titanium mug for the trail' WHERE sku = 'p3'")
        .format(sql.Identifier(table))
    )  # fmt: skip
    admin.execute(
        sql.SQL("UPDATE {} SET price = 99 WHERE sku = 'p1'").format(sql.Identifier(table))
    )
    count = pgvstore("embed-pending", table, "--count", "--dsn", dsn)
    assert (count.code, count.out) == (0, "1\n"), count
    assert listing_row(dsn, table)[6] == "1"
    again = pgvstore("embed-pending", table, "--no-progress", "--dsn", dsn, "--embeddings", FAKE)
    assert summary(again)["embedded"] == 1 and summary(again)["remaining"] == 0
    assert again.out.startswith(f"embedded 1 row of public.{table} in 1 batch (")
    assert again.err == ""
    assert np.allclose(
        embeddings(admin, table)["p3"], fake().embed_query("a titanium mug for the trail"),
        atol=1e-6,
    )  # fmt: skip
    nothing = pgvstore("embed-pending", table, "--dsn", dsn, "--embeddings", FAKE)
    assert summary(nothing)["embedded"] == 0 and summary(nothing)["batches"] == 0

    # search finds the changed row by its new text, with its typed columns as metadata
    found = pgvstore("search", "a titanium mug for the trail", "-c", table, "--k", "1",
                     "--json", "--dsn", dsn, "--embeddings", FAKE)  # fmt: skip
    assert found.code == 0, found
    hit = json.loads(found.lines()[0])
    assert (hit["id"], hit["text"]) == ("p3", "a titanium mug for the trail")
    assert hit["metadata"] == {"price": "30"}  # numeric, as its text; stock is NULL: absent
    assert abs(hit["score"]) < 1e-6
    filtered = pgvstore("search", "tent", "-c", table, "--filter", '{"price": {"$gt": 50}}',
                        "--json", "--dsn", dsn, "--embeddings", FAKE)  # fmt: skip
    assert [json.loads(line)["id"] for line in filtered.lines()] == ["p1"]
    assert Decimal(json.loads(filtered.lines()[0])["metadata"]["price"]) == 99

    # adopting again adds what new flags ask for: full text, for keyword search
    text = pgvstore(*adopt_args(table, dsn, "--full-text", "--dimensions", str(DIM)))
    assert text.code == 0, text
    assert text.lines()[0] == f"adoption of public.{table}: made 1 change(s)"
    assert text.lines()[1].startswith("  - full text: ALTER TABLE")
    assert text.lines()[1].endswith("(rewrites the table under an ACCESS EXCLUSIVE lock)")
    keyword = pgvstore("search", "titanium", "-c", table, "--mode", "keyword", "--json",
                       "--dsn", dsn)  # fmt: skip
    assert [json.loads(line)["id"] for line in keyword.lines()] == ["p3"], keyword

    # the ANN index is built after the backfill, as on any collection
    index = pgvstore("index", "create", table, "--no-progress", "--dsn", dsn)
    assert index.code == 0 and index.out.startswith("built "), index
    assert listing_row(dsn, table)[5] == "hnsw"

    # drop forgets the table: it stays with its rows, and must be adopted to be searched
    asked = pgvstore("drop", table, "--dsn", dsn, input="n\n")
    assert asked.code == 1 and "pgvstore: error: not dropped" in asked.err, asked
    assert (
        f"forget adopted table public.{table} as a collection? (the table and its 5 rows stay)"
        " [y/N]" in asked.err
    )
    assert registered(admin, table)
    dropped = pgvstore("drop", table, "--yes", "--dsn", dsn)
    assert dropped.code == 0, dropped
    assert dropped.out == f"forgot adopted table public.{table}; the table and its 5 rows stay\n"
    assert not registered(admin, table)
    row = admin.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    assert row.fetchone() == (5,)
    assert set(ADOPTED) <= set(columns_of(admin, table))
    assert_one_line_error(
        pgvstore("search", "tent", "-c", table, "--dsn", dsn, "--embeddings", FAKE), 3,
        f"pgvstore adopt {table}",
    )  # fmt: skip


def test_adoption_refusals_name_the_flag_and_change_nothing(
    dsn: str, admin: psycopg.Connection, table: str
) -> None:
    before = columns_of(admin, table)
    no_table = pgvstore(*adopt_args(unique_name("none"), dsn))
    assert_one_line_error(no_table, 3, "no table public.pgvt_none_")
    no_embedding = pgvstore(*adopt_args(table, dsn))
    assert_one_line_error(
        no_embedding, 2, "has no column 'embedding'", "--add-embedding-column adds it"
    )
    assert "adopt(" not in no_embedding.err
    no_metadata = pgvstore(*adopt_args(table, dsn, "--add-embedding-column"))
    assert_one_line_error(
        no_metadata, 2, "--add-metadata-column adds it", "or name one with --metadata COLUMN"
    )
    flags = ["--add-embedding-column", "--add-metadata-column"]
    nullable = pgvstore("adopt", table, "--id", "sku", "--content", "description", "--column",
                        "stock:integer", *flags, "--dsn", dsn, "--dimensions", "8")  # fmt: skip
    assert_one_line_error(nullable, 2, "allows NULL: declare it --column 'stock:integer:nullable'")
    wrong_type = pgvstore("adopt", table, "--id", "sku", "--content", "price", *flags,
                          "--dsn", dsn, "--dimensions", "8")  # fmt: skip
    assert_one_line_error(wrong_type, 2, "the content column 'price'", "is numeric")
    missing = pgvstore("adopt", table, "--id", "code", "--content", "description", *flags,
                       "--dsn", dsn, "--dimensions", "8")  # fmt: skip
    assert_one_line_error(missing, 2, "has no column 'code' (the id column)")
    for bad in ("price", "price:money", "price:numeric:sometimes", ":text"):
        assert_one_line_error(
            pgvstore(*adopt_args(table, dsn, "--column", bad)), 2, f"--column {bad!r}"
        )
    assert_one_line_error(pgvstore(*adopt_args(table, dsn, "--dimensions", "0")), 2)
    assert_one_line_error(
        pgvstore(*adopt_args(table, dsn, *flags, "--embeddings", "nonsense")), 2,
        "unknown --embeddings 'nonsense'",
    )  # fmt: skip
    assert columns_of(admin, table) == before and not registered(admin, table)

    # adopted: another distance, another size or another model's vectors are refused
    assert pgvstore(*adopt_args(table, dsn, *flags)).code == 0
    other = pgvstore(*adopt_args(table, dsn, "--distance", "l2"))
    assert_one_line_error(other, 2, "was created with distance 'cosine', but this store uses 'l2'")
    resized = pgvstore(*adopt_args(table, dsn, "--dimensions", "8"))
    assert_one_line_error(resized, 2, f"has {DIM} dimensions, but this store uses 8")
    small = pgvstore("embed-pending", table, "--dsn", dsn, "--embeddings",
                     "tests.cli.models:small")  # fmt: skip
    assert_one_line_error(
        small, 1, f"holds vectors of {DIM} dimensions, but --embeddings tests.cli.models:small"
        " makes 8",
    )  # fmt: skip
    assert all(v is None for v in embeddings(admin, table).values())
    for option in ("--batch-size", "--limit"):
        assert_one_line_error(
            pgvstore("embed-pending", table, option, "0", "--dsn", dsn), 2,
            f"{option} must be at least 1, got 0",
        )  # fmt: skip
    limited = pgvstore("embed-pending", table, "--limit", "2", "--dsn", dsn, "--embeddings", FAKE)
    assert summary(limited)["embedded"] == 2 and summary(limited)["remaining"] == 3


def test_embed_pending_is_for_adopted_tables(dsn: str, admin: psycopg.Connection) -> None:
    from langchain_pgvstore import PGVStore

    name = unique_name("own")
    try:
        with PGVStore(fake(), connection=dsn, collection=name) as store:
            store.add_texts(["one"], ids=["1"])
        assert_one_line_error(
            pgvstore("embed-pending", name, "--count", "--dsn", dsn), 2,
            "one of the store's own tables", "pgvstore adopt",
        )  # fmt: skip
        assert_one_line_error(
            pgvstore("embed-pending", unique_name("none"), "--dsn", dsn), 3, "no collection"
        )
    finally:
        drop_collection(admin, "public", name)


def test_typed_columns_and_another_schema(
    dsn: str, admin: psycopg.Connection, schema_name: str
) -> None:
    """A collection with typed columns opens as declared; an adopted table in another schema
    is found there."""
    from langchain_pgvstore import PGVStore

    own = unique_name("typed")
    try:
        with PGVStore(fake(), connection=dsn, collection=own,
                      columns={"year": Column("integer")}) as store:  # fmt: skip
            store.add_texts(["old", "new"], [{"year": 1999}, {"year": 2024}], ids=["a", "b"])
        found = pgvstore("search", "new", "-c", own, "--filter", '{"year": {"$gt": 2000}}',
                         "--json", "--dsn", dsn, "--embeddings", FAKE)  # fmt: skip
        assert found.code == 0, found
        assert [json.loads(line)["metadata"] for line in found.lines()] == [{"year": 2024}]
    finally:
        drop_collection(admin, "public", own)

    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema_name)))
    admin.execute(
        sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, body varchar(200))").format(
            sql.Identifier(schema_name, "notes")
        )
    )
    admin.execute(
        sql.SQL("INSERT INTO {} VALUES (1, 'first note'), (2, NULL), (3, 'third note')").format(
            sql.Identifier(schema_name, "notes")
        )
    )
    where = ["--schema", schema_name, "--dsn", dsn]
    assert_one_line_error(
        pgvstore("search", "x", "-c", "notes", "--mode", "keyword", *where), 3,
        f"pgvstore adopt notes --schema {schema_name} --id COLUMN --content COLUMN",
    )  # fmt: skip
    adopted = pgvstore("adopt", "notes", "--id", "id", "--content", "body",
                       "--add-embedding-column", "--add-metadata-column", "--dimensions", "32",
                       *where)  # fmt: skip
    assert adopted.code == 0 and "made 2 change(s)" in adopted.out, adopted
    assert_one_line_error(pgvstore("embed-pending", "notes", "--count", "--dsn", dsn), 3)
    count = pgvstore("embed-pending", "notes", "--count", *where)
    assert count.out == "2\n", count  # a row without content has nothing to embed
    done = pgvstore("embed-pending", "notes", *where, "--embeddings", FAKE)
    assert summary(done)["embedded"] == 2 and summary(done)["table"] == f"{schema_name}.notes"
    hit = pgvstore("search", "third note", "-c", "notes", "--k", "1", "--json", *where,
                   "--embeddings", FAKE)  # fmt: skip
    assert json.loads(hit.lines()[0])["id"] == "3", hit  # a bigint key, as text


class Sized:
    """A model that declares no size: adoption embeds one text to learn it."""

    def __init__(self) -> None:
        self.calls = 0

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return [0.0] * 5


def test_the_parts_of_adopt() -> None:
    assert parse_column("price:numeric") == ("price", Column("numeric"))
    assert parse_column("score:double precision:nullable:noindex") == (
        "score", Column("double precision", nullable=True, index=False)
    )  # fmt: skip
    with pytest.raises(CLIError):
        parse_column("tags:text[]:often")
    assert parse_column("tags:text[]")[1].type == "text[]"
    assert model_dimensions(fake()) == DIM  # its `size`
    assert model_dimensions(DeterministicFakeEmbedding(size=7)) == 7
    sized = Sized()
    assert model_dimensions(sized) == 5 and sized.calls == 1  # type: ignore[arg-type]
    text = "  ! ANN index: searches scan exactly until store.create_index(concurrently=True)"
    assert cli_words(text, "t").endswith("until pgvstore index create t --concurrently")
