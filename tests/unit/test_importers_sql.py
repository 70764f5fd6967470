"""The importers' SQL: source reads and checkpoints render deterministic text, names quoted."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_pgvstore._sql import importers as q
from langchain_pgvstore.config import Table
from langchain_pgvstore.errors import ConfigError

V1 = q.SourceTable(
    schema="public",
    name="langchain_pg_embedding",
    key="id",
    ids=("id",),
    content="document",
    embedding="embedding",
    metadata_json="cmetadata",
    scope="collection_id",
)
LEGACY = q.SourceTable(
    schema="public",
    name="langchain_pg_embedding",
    key="uuid",
    ids=("custom_id", "uuid"),
    content="document",
    embedding="embedding",
    metadata_json="cmetadata",
    scope="collection_id",
)
V2 = q.SourceTable(
    schema="app",
    name="docs",
    key="langchain_id",
    ids=("langchain_id",),
    content="content",
    embedding="embedding",
    metadata_json=None,
    metadata_columns=("year", "tags"),
)


def test_first_batch_of_a_pgvector_collection() -> None:
    frag = q.read_batch(V1, 500, scope_value="c0ffee")
    assert frag.as_string() == (
        'SELECT "id"::text, "id"::text, "document", "cmetadata", "embedding"'
        ' FROM "public"."langchain_pg_embedding" WHERE "collection_id" = %s ORDER BY "id" LIMIT %s'
    )
    assert frag.params == ("c0ffee", 500)


def test_next_batch_continues_after_the_last_key() -> None:
    frag = q.read_batch(LEGACY, 100, after="k-41", scope_value="c0ffee")
    assert frag.as_string() == (
        'SELECT "uuid"::text, coalesce("custom_id"::text, "uuid"::text), "document", "cmetadata",'
        ' "embedding" FROM "public"."langchain_pg_embedding"'
        ' WHERE "collection_id" = %s AND "uuid" > %s ORDER BY "uuid" LIMIT %s'
    )
    assert frag.params == ("c0ffee", "k-41", 100)


def test_pgvectorstore_columns_are_read_as_jsonb() -> None:
    frag = q.read_batch(V2, 10, after="x")
    assert frag.as_string() == (
        'SELECT "langchain_id"::text, "langchain_id"::text, "content", NULL, to_jsonb("year"),'
        ' to_jsonb("tags"), "embedding" FROM "app"."docs" WHERE "langchain_id" > %s'
        ' ORDER BY "langchain_id" LIMIT %s'
    )
    assert q.count_rows(V2).as_string() == 'SELECT count(*) FROM "app"."docs"'
    assert q.count_rows(V1, "u").params == ("u",)


def test_checkpoint_statements() -> None:
    key = q.ImportKey("app", "docs", "", "chroma:1")
    save = q.save_checkpoint(key, last_key="k", done=5, total=9, finished=False)
    # the collection's table oid is looked up by the statement itself, in the batch's
    # transaction: no row (and no checkpoint) without the table
    assert save.as_string().startswith(
        'INSERT INTO "app"."pgvstore_imports" AS c'
        " (collection, tenant, source, table_oid, last_key, done, total, finished)"
        " SELECT %s, %s, %s, r.oid, %s, %s, %s, %s FROM pg_catalog.pg_class r"
        " JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
        " WHERE n.nspname = %s AND r.relname = %s ON CONFLICT (collection, tenant, source)"
    )
    assert save.params == ("docs", "", "chroma:1", "k", 5, 9, False, "app", "docs")
    tenant = q.ImportKey("app", "docs", "acme", "s")
    assert q.read_checkpoint(tenant).params == ("docs", "acme", "s")
    created = q.create_checkpoints(key).as_string()
    assert created.startswith('CREATE TABLE IF NOT EXISTS "app"."pgvstore_imports"')
    assert created.endswith("PRIMARY KEY (collection, tenant, source))")


_names = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
)
_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def _skeleton(text: str) -> str:
    return _QUOTED.sub('"_"', text)


@given(_names, _names, _names, _names)
def test_names_cannot_change_a_statement_and_values_stay_parameters(
    schema, table, column, value
) -> None:
    """Whatever the names, the statement is the same once its quoted identifiers are blanked."""
    odd = q.SourceTable(schema, table, column, (column,), column, column, column, (column,), column)
    plain = q.SourceTable("s", "t", "c", ("c",), "c", "c", "c", ("c",), "c")
    got = q.read_batch(odd, 1, after=value, scope_value=value)
    assert _skeleton(got.as_string()) == _skeleton(
        q.read_batch(plain, 1, after="v", scope_value="v").as_string()
    )
    assert got.params == (value, value, 1)
    # catalog lookups take the names as values
    for build in (q.table_columns, q.relation_oid):
        frag = build(schema, table)
        assert frag.params == (schema, table)
        assert frag.as_string() == build("s", "t").as_string()
    assert q.pgvector_collection(schema, value).params == (value,)
    assert q.try_advisory_lock(7).params == (7,)
    odd_key = q.ImportKey(schema, value, value, value)
    saved = q.save_checkpoint(odd_key, last_key=value, done=1, total=1, finished=True)
    plain_key = q.ImportKey("s", "c", "t", "x")
    assert _skeleton(saved.as_string()) == _skeleton(
        q.save_checkpoint(plain_key, last_key="k", done=1, total=1, finished=True).as_string()
    )
    assert saved.params == (value, value, value, value, 1, 1, True, schema, value)
    assert _skeleton(q.create_checkpoints(odd_key).as_string()) == _skeleton(
        q.create_checkpoints(plain_key).as_string()
    )


def test_the_checkpoint_table_name_is_reserved_for_collections() -> None:
    # a collection of that name would be the imports' own table: the store refuses it
    with pytest.raises(ConfigError, match="collection name 'pgvstore_imports' is reserved"):
        Table("public", q.CHECKPOINT_TABLE)
