"""SQL builders render deterministic text without a database."""

from __future__ import annotations

import pytest
from psycopg import sql

from langchain_pgvstore._sql import Frag, ddl, dml, join
from langchain_pgvstore._sql.search import knn
from langchain_pgvstore._sql.settings import Settings, search_settings
from langchain_pgvstore.config import Distance, HNSWIndex, IVFFlatIndex, Table, VectorType

T = Table("public", "docs")
TRUE = Frag(sql.SQL("TRUE"))


def test_frag_concatenation_keeps_params_in_order() -> None:
    f = Frag(sql.SQL("a = %s"), (1,)) + Frag(sql.SQL(" AND b = %s"), (2,))
    assert f.as_string() == "a = %s AND b = %s" and f.params == (1, 2)
    j = join(sql.SQL(" OR "), [Frag(sql.SQL("x = %s"), ("p",)), Frag(sql.SQL("y = %s"), ("q",))])
    assert j.as_string() == "x = %s OR y = %s" and j.params == ("p", "q")


def test_create_table_snapshot() -> None:
    frag = ddl.create_table(T, 384, VectorType.VECTOR, "english")
    assert frag.as_string() == (
        'CREATE TABLE IF NOT EXISTS "public"."docs" ("id" text NOT NULL, "content" text NOT NULL,'
        ' "metadata" jsonb NOT NULL DEFAULT \'{}\'::jsonb, "embedding" vector(384) NOT NULL,'
        ' "tsv" tsvector GENERATED ALWAYS AS'
        " (to_tsvector('english'::regconfig, left(\"content\", 100000))) STORED,"
        ' "created_at" timestamptz NOT NULL DEFAULT now(), "updated_at" timestamptz NOT NULL DEFAULT now(),'
        ' PRIMARY KEY ("id"))'
    )
    assert frag.params == ()
    tenants = ddl.create_table(
        Table("public", "docs", multi_tenant=True), 3, VectorType.VECTOR, "english"
    )
    text = tenants.as_string()
    assert text.startswith(
        'CREATE TABLE IF NOT EXISTS "public"."docs" ("tenant" text NOT NULL, "id" text NOT NULL,'
    )
    assert text.endswith('PRIMARY KEY ("tenant", "id"))')


@pytest.mark.parametrize(
    ("distance", "vtype", "opclass"),
    [
        (Distance.COSINE, VectorType.VECTOR, "vector_cosine_ops"),
        (Distance.L2, VectorType.VECTOR, "vector_l2_ops"),
        (Distance.INNER_PRODUCT, VectorType.HALFVEC, "halfvec_ip_ops"),
        (Distance.L1, VectorType.HALFVEC, "halfvec_l1_ops"),
    ],
)
def test_ann_index_opclass_is_derived(distance, vtype, opclass) -> None:
    frag = ddl.create_ann_index(T, distance, vtype, HNSWIndex(m=24, ef_construction=100))
    name = T.index_name("hnsw")
    assert frag.as_string() == (
        f'CREATE INDEX IF NOT EXISTS "{name}" ON "public"."docs" USING hnsw ("embedding" "{opclass}")'
        " WITH (m = 24, ef_construction = 100)"
    )


def test_ivfflat_lists_follow_pgvector_guidance() -> None:
    assert IVFFlatIndex().lists_for(0) == 1
    assert IVFFlatIndex().lists_for(50_000) == 50
    assert IVFFlatIndex().lists_for(4_000_000) == 2000
    assert IVFFlatIndex(lists=7).lists_for(10**6) == 7
    frag = ddl.create_ann_index(
        T, Distance.COSINE, VectorType.VECTOR, IVFFlatIndex(), rows=20_000, concurrently=True
    )
    assert frag.as_string().startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS")
    assert frag.as_string().endswith(
        'USING ivfflat ("embedding" "vector_cosine_ops") WITH (lists = 20)'
    )


def test_index_names_stay_under_63_bytes_and_distinct() -> None:
    a = Table("public", "x" * 63)
    b = Table("public", "x" * 62 + "y")
    for kind in ("hnsw", "ivfflat", "meta", "tsv"):
        assert len(a.index_name(kind).encode()) <= 63
        assert a.index_name(kind) != b.index_name(kind)
    uni = Table("public", "é" * 31)  # 62 bytes
    assert len(uni.index_name("hnsw").encode()) <= 63


def test_merge_orders_by_id_and_keeps_last_duplicate() -> None:
    text = dml.merge_staging(T).as_string()
    assert (
        'SELECT DISTINCT ON (id) id, content, metadata, embedding, now() FROM "pgvstore_staging"'
        " ORDER BY id, ord DESC" in text
    )
    assert 'ON CONFLICT ("id") DO UPDATE SET' in text
    # the timestamp comes from the select list: Citus refuses now() in DO UPDATE SET
    assert (
        '"updated_at" = EXCLUDED."updated_at"' in text and "now()" not in text.split("DO UPDATE")[1]
    )
    tenant = dml.merge_staging(Table("public", "docs", multi_tenant=True), "acme")
    assert "SELECT DISTINCT ON (id) %s::text, id," in tenant.as_string()
    assert 'ON CONFLICT ("tenant", "id")' in tenant.as_string() and tenant.params == ("acme",)


def test_knn_snapshot_and_params() -> None:
    where = Frag(sql.SQL("metadata @> %s"), ("{}",))
    frag = knn(T, Distance.COSINE, VectorType.HALFVEC, "VEC", 5, where)
    assert frag.as_string() == (
        'SELECT "id", "content", "metadata", "embedding" <=> CAST(%s AS halfvec) AS distance'
        ' FROM "public"."docs" WHERE metadata @> %s ORDER BY "embedding" <=> CAST(%s AS halfvec) LIMIT %s'
    )
    assert frag.params == ("VEC", "{}", "VEC", 5)


def test_search_settings_name_each_knob() -> None:
    settings = search_settings(ef_search=80, probes=4, iterative_scan="strict_order")
    assert settings.values == (
        ("hnsw.ef_search", "80"),
        ("ivfflat.probes", "4"),
        ("hnsw.iterative_scan", "strict_order"),
        ("ivfflat.iterative_scan", "relaxed_order"),
    )
    assert not search_settings()


def test_local_settings_are_one_parameterised_statement() -> None:
    settings = Settings((("hnsw.ef_search", "80"), ("statement_timeout", "5")), 100)
    first, floor = settings.local_frags()
    assert first.as_string() == (
        "SELECT count(set_config(s.name, s.value, %s))"
        " FROM unnest(%s::text[], %s::text[]) AS s(name, value)"
    )
    assert first.params == (True, ["hnsw.ef_search", "statement_timeout"], ["80", "5"])
    assert "greatest(" in floor.as_string() and floor.params == (40, 100)
    assert Settings().local_frags() == []


def test_delete_and_get_builders() -> None:
    assert dml.delete_ids(T, ["a", "b"]).params == (["a", "b"],)
    page = dml.get_where(T, TRUE, 10, 20)
    assert page.as_string() == (
        'SELECT "id", "content", "metadata" FROM "public"."docs" WHERE TRUE ORDER BY "id" LIMIT %s OFFSET %s'
    )
    assert page.params == (10, 20)


@pytest.mark.parametrize(
    ("table", "by_cost"),
    [
        (Table("public", "docs"), True),
        (Table("public", "docs", multi_tenant=True), False),
        (Table("public", "docs", distribution="id"), False),
    ],
)
def test_filtered_search_estimates_only_where_the_statistics_describe_the_rows(
    table: Table, by_cost: bool
) -> None:
    """A plain table's filtered search is chosen from `pg_stats` and runs one generic
    plan; a tenant's rows or a Citus table's are counted, each call planned anew
    (Citus cannot distribute a generic plan)."""
    from langchain_pgvstore._nearest import nearest_statement
    from langchain_pgvstore._options import SearchOptions
    from langchain_pgvstore._schema import CollectionSpec
    from langchain_pgvstore._sql.filters import compile_filter

    spec = CollectionSpec(table=table, dimensions=3)
    where = compile_filter({"a": 1}, table, "t1" if table.multi_tenant else None)
    frag, settings = nearest_statement(spec, 10, where, SearchOptions(), False, None)
    text = frag.sql.as_string(None)
    assert ("pg_stats" in text) is by_cost
    assert ("count(*) AS n" in text) is not by_cost
    mode = "force_generic_plan" if by_cost else "force_custom_plan"
    assert ("plan_cache_mode", mode) in settings.values


def test_a_table_without_full_text_has_no_tsv_nor_its_index() -> None:
    bare = Table("public", "docs", full_text=False)
    assert ddl.create_table(bare, 384, VectorType.VECTOR, "english").as_string() == (
        'CREATE TABLE IF NOT EXISTS "public"."docs" ("id" text NOT NULL, "content" text NOT NULL,'
        ' "metadata" jsonb NOT NULL DEFAULT \'{}\'::jsonb, "embedding" vector(384) NOT NULL,'
        ' "created_at" timestamptz NOT NULL DEFAULT now(), "updated_at" timestamptz NOT NULL DEFAULT now(),'
        ' PRIMARY KEY ("id"))'
    )
    assert [f.as_string() for f in ddl.create_secondary_indexes(bare)] == [
        f.as_string() for f in ddl.create_secondary_indexes(T)[:1]
    ]
    assert "jsonb_path_ops" in ddl.create_secondary_indexes(bare)[0].as_string()
    assert [f.params for f in ddl.clean_gin_pending(bare)] == [(T.index("meta").as_string(None),)]
    assert len(ddl.clean_gin_pending(T)) == 2
    # None (not yet known) is full text, as for a new collection
    assert Table("public", "docs", full_text=None).has_full_text and not bare.has_full_text
    # a distributed collection without full text deletes without statistics deltas
    spread = Table("public", "docs", distribution="id", full_text=False)
    assert dml.delete_where(spread, TRUE).as_string() == 'DELETE FROM "public"."docs" WHERE TRUE'
    assert "bm25" in dml.delete_where(Table("public", "docs", distribution="id"), TRUE).as_string()


def test_registry_row_reads_full_text_from_the_catalog() -> None:
    frag = ddl.registry_row(T)
    text = frag.as_string()
    assert "a.attname = %s" in text and "to_regclass(%s) IS NOT NULL" in text
    assert "am.amname = 'bm25'" in text  # a pg_textsearch index
    name = '"public"."docs"'
    assert frag.params == (name, name, "tsv", name, name, "docs_71ab8b6afb_textsearch", "docs")
