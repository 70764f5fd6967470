"""Snapshots of the pg_textsearch builders (no database); what the statements do is
checked against the plain-SQL BM25 in tests/textsearch/."""

from __future__ import annotations

from psycopg import sql

from langchain_pgvstore._sql import Frag, textsearch
from langchain_pgvstore.config import Table

T = Table("public", "docs")
WHERE = Frag(sql.SQL("metadata @> %s"), ("X",))
INDEX = '"public"."docs_71ab8b6afb_textsearch"'
SCORE = '-("content" <@> to_bm25query(%s, %s)) / %s::float8'


def test_the_index_name_is_quoted_and_qualified() -> None:
    assert textsearch.index_name(T) == INDEX
    odd = Table("My Schema", 'Odd"Name')
    assert textsearch.index_name(odd).startswith('"My Schema"."Odd""Name_')


def test_unfiltered_search_is_one_ordered_index_scan() -> None:
    frag = textsearch.keyword_search(T, "q", 7, None)
    assert frag.as_string() == (
        f'SELECT id, score FROM (SELECT "id" AS id, {SCORE} AS score FROM "public"."docs"'
        ' ORDER BY "content" <@> to_bm25query(%s, %s) LIMIT %s) AS s'
        ' WHERE score > 0 ORDER BY score DESC, id COLLATE "C" LIMIT %s'
    )
    assert frag.params == ("q", INDEX, 2.2, "q", INDEX, 7, 7)


def test_filtered_search_falls_back_to_exact_when_the_scan_is_short() -> None:
    frag = textsearch.keyword_search(T, "q", 7, WHERE)
    assert frag.as_string() == (
        f'WITH scan AS MATERIALIZED (SELECT "id" AS id, {SCORE} AS score FROM "public"."docs"'
        ' WHERE metadata @> %s ORDER BY "content" <@> to_bm25query(%s, %s) LIMIT %s)'
        " SELECT id, score FROM (SELECT id, score FROM scan"
        " WHERE (SELECT count(*) FROM scan) = %s UNION ALL"
        f' SELECT id, score FROM (SELECT "id" AS id, {SCORE} AS score FROM "public"."docs"'
        " WHERE metadata @> %s) AS e WHERE (SELECT count(*) FROM scan) < %s OFFSET 0) AS r"
        ' WHERE score > 0 ORDER BY score DESC, id COLLATE "C" LIMIT %s'
    )
    assert frag.params == ("q", INDEX, 2.2, "X", "q", INDEX, 7, 7,
                           "q", INDEX, 2.2, "X", 7, 7)  # fmt: skip


def test_index_ddl_uses_the_store_s_bm25_parameters() -> None:
    assert textsearch.create_index(T, "english").as_string() == (
        'CREATE INDEX IF NOT EXISTS "docs_71ab8b6afb_textsearch" ON "public"."docs"'
        " USING bm25 (\"content\") WITH (text_config = 'english', k1 = 1.2, b = 0.75)"
    )
    assert textsearch.create_extension().as_string() == (
        'CREATE EXTENSION IF NOT EXISTS "pg_textsearch"'
    )
    assert textsearch.extension_state().params == ("pg_textsearch",) * 3
