"""Typed columns without a database: declarations, value checks, SQL snapshots."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest

from langchain_pgvstore import Column, ConfigError, FilterError, InputError
from langchain_pgvstore._sql import dml
from langchain_pgvstore._sql.columns import column_definitions, metadata_out
from langchain_pgvstore._sql.filters import compile_filter
from langchain_pgvstore.columns import assemble, declare, decoders, split
from langchain_pgvstore.config import Table

COLS = declare(
    {
        "tags": Column("text[]", nullable=True),
        "price": Column("numeric"),
        "title": Column("text"),
        "day": Column("date", nullable=True),
        "attrs": Column("jsonb", nullable=True),
    }
)
TABLE = Table("public", "docs", columns=COLS)


def test_declarations_are_sorted_and_checked() -> None:
    assert [n for n, _ in COLS] == ["attrs", "day", "price", "tags", "title"]
    with pytest.raises(ConfigError, match="column type must be one of"):
        Column("varchar")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="column nullable"):
        Column("text", nullable=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reserved"):
        declare({"embedding": Column("text")})
    with pytest.raises(ConfigError, match="must be a dict"):
        declare([("a", Column("text"))])  # type: ignore[arg-type]
    assert declare(None) == ()


def test_table_definition_and_metadata_read() -> None:
    assert column_definitions(COLS).as_string(None) == (
        ', "attrs" jsonb, "day" date, "price" numeric NOT NULL, "tags" text[] COLLATE "C",'
        ' "title" text COLLATE "C" NOT NULL'
    )
    assert metadata_out(TABLE, "d").as_string(None) == (
        '("d"."metadata" || jsonb_build_object(\'price\', "d"."price"::text, \'title\', "d"."title")'
        ' || CASE WHEN "d"."attrs" IS NULL THEN \'{}\'::jsonb'
        ' ELSE jsonb_build_object(\'attrs\', "d"."attrs") END'
        ' || CASE WHEN "d"."day" IS NULL THEN \'{}\'::jsonb'
        ' ELSE jsonb_build_object(\'day\', "d"."day") END'
        ' || CASE WHEN "d"."tags" IS NULL THEN \'{}\'::jsonb'
        ' ELSE jsonb_build_object(\'tags\', "d"."tags") END) AS "metadata"'
    )
    assert metadata_out(Table("public", "plain")).as_string(None) == '"metadata"'


def test_merge_writes_and_compares_the_columns() -> None:
    text = dml.merge_staging(TABLE).as_string()
    assert ', "attrs" = EXCLUDED."attrs", "day" = EXCLUDED."day",' in text
    assert 't."attrs", t."day", t."price", t."tags", t."title")' in text
    assert (
        dml.copy_into_staging(COLS)
        .as_string()
        .startswith(
            'COPY "pgvstore_staging" (ord, id, content, metadata, embedding, "attrs", "day", "price",'
        )
    )


def test_values_split_from_metadata_and_come_back_typed() -> None:
    meta = {"price": 3, "title": "t", "day": datetime.date(2024, 1, 2), "x": 1}
    rest, values = split(COLS, 0, None, meta)
    assert rest == {"x": 1}
    assert values == [None, datetime.date(2024, 1, 2), Decimal(3), None, "t"]
    read = {"x": 1, "price": "3", "title": "t", "day": "2024-01-02"}
    assemble(read, decoders(COLS))
    assert read == meta and type(read["price"]) is Decimal
    with pytest.raises(InputError, match=r"document 4 \(id 'd'\): 'price' is a numeric column"):
        split(COLS, 4, "d", {"price": "3", "title": "t"})


@pytest.mark.parametrize(
    ("filter_", "text", "params"),
    [
        ({"price": 3}, '"price" = %s::numeric', (Decimal(3),)),
        (
            {"day": {"$gte": datetime.date(2024, 1, 1)}},
            '("day" >= %s::date AND "day" IS NOT NULL)',
            (datetime.date(2024, 1, 1),),
        ),
        (
            {"day": {"$ne": datetime.date(2024, 1, 1)}},
            'NOT (("day" = %s::date AND "day" IS NOT NULL))',
            (datetime.date(2024, 1, 1),),
        ),
        ({"title": {"$in": ["a", "b"]}}, '"title" = ANY(%s::text[])', (["a", "b"],)),
        ({"tags": {"$contains": "a"}}, '("tags" @> %s::text[] AND "tags" IS NOT NULL)', (["a"],)),
        ({"tags": {"$exists": False}}, '("tags" IS NULL)', ()),
        ({"title": {"$ilike": "a%"}}, '"title" COLLATE "default" ILIKE %s', ("a%",)),
        (
            {"price": {"$between": [1, Decimal("2.5")]}},
            '"price" BETWEEN %s::numeric AND %s::numeric',
            (Decimal(1), Decimal("2.5")),
        ),
    ],
)
def test_column_predicates(filter_, text, params) -> None:
    frag = compile_filter(filter_, TABLE)
    assert frag.as_string() == text
    assert frag.params == params


def test_declared_and_undeclared_fields_share_one_statement() -> None:
    frag = compile_filter({"price": {"$lt": 5}, "source": "docs", "attrs.color": "red"}, TABLE)
    text = frag.as_string()
    assert text.startswith('("price" < %s::numeric AND "metadata" @> %s AND ')
    assert text.endswith('("attrs" @> %s AND "attrs" IS NOT NULL))')


def test_shape_not_values_makes_the_text() -> None:
    a = compile_filter({"price": {"$lt": 5}, "title": {"$in": ["a"]}}, TABLE)
    b = compile_filter({"price": {"$lt": Decimal("9.5")}, "title": {"$in": ["b", "c", "d"]}}, TABLE)
    assert a.as_string() == b.as_string()


@pytest.mark.parametrize(
    "filter_",
    [
        {"price": 0.5},
        {"price": True},
        {"tags": {"$eq": "a"}},
        {"title": {"$contains": "a"}},
        {"day": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)},
        {"price.x": 1},
        {"price": None},
        {"title": {"$like": "a\\"}},
    ],
)
def test_column_filter_errors(filter_) -> None:
    with pytest.raises(FilterError):
        compile_filter(filter_, TABLE)


def test_uuid_operands_accept_strings() -> None:
    table = Table("public", "docs", columns=declare({"u": Column("uuid")}))
    frag = compile_filter({"u": str(uuid.UUID(int=1))}, table)
    assert frag.params == (uuid.UUID(int=1),)


def test_nested_keys_of_a_jsonb_column_compile_on_the_column() -> None:
    frag = compile_filter({"attrs.color": {"$ne": "red"}}, TABLE)
    assert frag.as_string() == 'NOT (("attrs" @> %s AND "attrs" IS NOT NULL))'
    # a segment PostgreSQL could read as an array index is guarded, the first one too
    guarded = compile_filter({"attrs.0": {"$gt": 1}}, TABLE).as_string()
    assert guarded.startswith('(("attrs" @> %s AND "attrs" IS NOT NULL) AND CASE WHEN')
    whole = compile_filter({"attrs": {"$exists": True}}, TABLE).as_string()
    assert "jsonb_build_object('attrs', \"attrs\")" in whole
