"""Schema versions and upgrade steps, without a database."""

from __future__ import annotations

import pytest

from langchain_pgvstore._schema import CollectionSpec, check_registered, check_registry_version
from langchain_pgvstore._sql import ddl
from langchain_pgvstore._sql.migrations import (
    REGISTRY_STEPS,
    bound_full_text,
    parse_registry_version,
    set_registry_version,
)
from langchain_pgvstore._upgrade import COLLECTION_STEPS
from langchain_pgvstore.config import REGISTRY_VERSION, SCHEMA_VERSION, Table
from langchain_pgvstore.errors import SchemaError

TABLE = Table("app", "docs")


@pytest.mark.parametrize(
    ("comment", "version"),
    [
        (None, 1),  # a registry made before versions were recorded
        ("pgvstore registry 2", 2),
        ("pgvstore registry 17", 17),
        ("the documents of our app", 1),  # a comment someone else wrote
        ("pgvstore registry 2 (edited)", 1),
    ],
)
def test_registry_version_comes_from_its_comment(comment: object, version: int) -> None:
    assert parse_registry_version(comment) == version


def test_set_registry_version_round_trips() -> None:
    text = set_registry_version(TABLE, REGISTRY_VERSION).as_string()
    assert (
        text
        == f"""COMMENT ON TABLE "app"."pgvstore_collections" IS 'pgvstore registry {REGISTRY_VERSION}'"""
    )
    assert parse_registry_version(text.split("IS ")[1].strip("'")) == REGISTRY_VERSION


def test_the_steps_reach_this_release_s_versions_in_order() -> None:
    assert [v for v, _, _ in REGISTRY_STEPS] == list(range(2, REGISTRY_VERSION + 1))
    assert [s.version for s in COLLECTION_STEPS] == list(range(2, SCHEMA_VERSION + 1))


def test_registry_steps_are_idempotent_and_match_a_new_registry() -> None:
    created = ddl.create_registry(TABLE).as_string()
    for _, _, statements in REGISTRY_STEPS:
        for frag in statements(TABLE):
            text = frag.as_string()
            assert "ADD COLUMN IF NOT EXISTS" in text
            column = text.split("IF NOT EXISTS ")[1].split(" ")[0]
            assert f" {column} " in created  # a new registry has it from the start


def test_a_newer_registry_is_refused() -> None:
    assert (
        check_registry_version(TABLE, f"pgvstore registry {REGISTRY_VERSION}") == REGISTRY_VERSION
    )
    with pytest.raises(SchemaError, match=r"registry app\.pgvstore_collections .* newer"):
        check_registry_version(TABLE, f"pgvstore registry {REGISTRY_VERSION + 1}")


def test_a_newer_collection_is_refused() -> None:
    spec = CollectionSpec(TABLE)
    row = (3, "cosine", "vector", "english", None, SCHEMA_VERSION, False, None)
    assert check_registered(spec, row).dimensions == 3
    newer = (*row[:5], SCHEMA_VERSION + 1, *row[6:])
    with pytest.raises(SchemaError, match=r"collection app\.docs has schema version .* newer"):
        check_registered(spec, newer)


def test_bounded_full_text_is_the_expression_new_tables_get() -> None:
    expression = bound_full_text(TABLE, "english").as_string()
    created = ddl.create_table(TABLE, 3, CollectionSpec(TABLE).vector_type, "english").as_string()
    assert "SET EXPRESSION AS (to_tsvector('english'::regconfig, left(\"content\", 100000)))" in (
        expression
    )
    assert "(to_tsvector('english'::regconfig, left(\"content\", 100000)))" in created
