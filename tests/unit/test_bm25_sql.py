"""Snapshots of the lexical and fusion SQL builders, and their argument checks (no database).

A change to any statement shows up here as a diff to review; the database
tests in tests/db/test_lexical_db.py check what the statements do.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from langchain_pgvstore._sql import Frag, bm25_schema, bm25_search
from langchain_pgvstore._sql import fusion as fz
from langchain_pgvstore.config import Table
from langchain_pgvstore.errors import InputError

T = Table("public", "docs")
WHERE = Frag(sql.SQL("metadata @> %s"), ("X",))
V = Frag(sql.SQL("SELECT id, d FROM v"))
X = Frag(sql.SQL("SELECT id, s FROM x"))

KEYWORD = (
    "WITH q AS MATERIALIZED (SELECT u.lexeme AS term, "
    "coalesce(cardinality(u.positions), 1)::float8 AS qtf FROM "
    "unnest(to_tsvector(%s::regconfig, %s)) AS u), s AS (SELECT st.term, "
    "sum(st.docs)::float8 AS docs, sum(st.tokens)::float8 AS tokens FROM "
    '"public"."docs_71ab8b6afb_bm25" AS st WHERE st.term = ANY (ARRAY(SELECT term '
    "FROM q) || ''::text) GROUP BY st.term), c AS (SELECT coalesce(max(docs) FILTER "
    "(WHERE term = ''), 0) AS n, max(tokens) FILTER (WHERE term = '') / max(docs) "
    "FILTER (WHERE term = '') AS avgdl, %s::float8 AS k1, %s::float8 AS b FROM s), w "
    "AS (SELECT q.term, q.qtf * ln(1 + (c.n - s.docs + 0.5) / (s.docs + 0.5)) AS "
    'weight FROM q JOIN s ON s.term = q.term CROSS JOIN c), hits AS (SELECT "id" AS '
    'id, "tsv" AS tsv, "tsv_len" AS dl FROM "public"."docs" WHERE "tsv" @@ '
    "replace(strip(to_tsvector(%s::regconfig, %s))::text, ''' ''', ''' | "
    "''')::tsquery AND (metadata @> %s)), scored AS (SELECT h.id, sum(w.weight * t.tf "
    "/ (t.tf + c.k1 * (1 - c.b + c.b * h.dl / c.avgdl))) AS score FROM hits AS h "
    "CROSS JOIN c CROSS JOIN LATERAL (SELECT u.lexeme, "
    "coalesce(cardinality(u.positions), 1)::float8 AS tf FROM "
    "unnest(ts_filter(setweight(h.tsv, 'A', (SELECT array_agg(term) FROM q)), '{a}')) "
    "AS u) AS t JOIN w ON w.term = t.lexeme GROUP BY h.id) SELECT id, score FROM "
    'scored ORDER BY score DESC NULLS LAST, id COLLATE "C" LIMIT %s'
)


FUSE_RRF = (
    'WITH "v" AS (SELECT * FROM (SELECT l.id, -l.score::float8 AS score, row_number() '
    'OVER (ORDER BY l.score ASC, l.id COLLATE "C") AS rank FROM (SELECT id, d FROM v) '
    'AS l(id, score)) AS r), "x" AS (SELECT * FROM (SELECT l.id, l.score::float8 AS '
    'score, row_number() OVER (ORDER BY l.score DESC, l.id COLLATE "C") AS rank FROM '
    "(SELECT id, s FROM x) AS l(id, score)) AS r), fused AS (SELECT coalesce(v.id, "
    "x.id) AS id, coalesce(%s::float8 / (%s::bigint + v.rank), 0) + "
    "coalesce(%s::float8 / (%s::bigint + x.rank), 0) AS score FROM v FULL OUTER JOIN "
    "x ON x.id = v.id) SELECT id, score FROM fused ORDER BY score DESC, id COLLATE "
    '"C" LIMIT %s'
)

FUSE_WEIGHTED = (
    'WITH "v" AS (SELECT * FROM (SELECT l.id, l.score::float8 AS score, row_number() '
    'OVER (ORDER BY l.score DESC, l.id COLLATE "C") AS rank FROM (SELECT id, d FROM '
    'v) AS l(id, score)) AS r WHERE rank <= %s), "x" AS (SELECT * FROM (SELECT l.id, '
    "l.score::float8 AS score, row_number() OVER (ORDER BY l.score DESC, l.id COLLATE "
    '"C") AS rank FROM (SELECT id, s FROM x) AS l(id, score)) AS r WHERE rank <= %s), '
    '"vn" AS (SELECT id, CASE WHEN max(score) OVER () = min(score) OVER () THEN '
    "1.0::float8 ELSE (score - min(score) OVER ()) / (max(score) OVER () - min(score) "
    'OVER ()) END AS score FROM "v"), "xn" AS (SELECT id, CASE WHEN max(score) OVER '
    "() = min(score) OVER () THEN 1.0::float8 ELSE (score - min(score) OVER ()) / "
    '(max(score) OVER () - min(score) OVER ()) END AS score FROM "x"), fused AS '
    "(SELECT coalesce(vn.id, xn.id) AS id, coalesce(%s::float8 * vn.score, 0) + "
    "coalesce(%s::float8 * xn.score, 0) AS score FROM vn FULL OUTER JOIN xn ON xn.id "
    '= vn.id) SELECT id, score FROM fused ORDER BY score DESC, id COLLATE "C" LIMIT '
    "%s"
)

RECOUNT = [
    ("SELECT pg_advisory_xact_lock( -6639234015324110216)"),
    (
        'WITH gone AS (DELETE FROM "public"."docs_71ab8b6afb_bm25") INSERT INTO '
        '"public"."docs_71ab8b6afb_bm25" (term, docs, tokens) SELECT u.lexeme, count(*), '
        'sum(coalesce(cardinality(u.positions), 1)) FROM "public"."docs" AS c, unnest(c."tsv") '
        "AS u GROUP BY u.lexeme UNION ALL SELECT '', count(*), coalesce(sum(\"tsv_len\"), "
        '0) FROM "public"."docs" HAVING count(*) > 0 ORDER BY 1'
    ),
]

DDL = [
    (
        'CREATE TABLE IF NOT EXISTS "public"."docs_71ab8b6afb_bm25" (term text COLLATE '
        '"C" NOT NULL, docs bigint NOT NULL, tokens bigint NOT NULL)'
    ),
    (
        'CREATE INDEX IF NOT EXISTS "docs_71ab8b6afb_bm25_term" ON '
        '"public"."docs_71ab8b6afb_bm25" (term)'
    ),
    (
        'CREATE OR REPLACE FUNCTION "public"."docs_71ab8b6afb_bm25_len"(tsvector) RETURNS '
        "integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT "
        "coalesce(sum(coalesce(cardinality(u.positions), 1)), 0)::integer FROM unnest($1) "
        "AS u'"
    ),
    (
        'ALTER TABLE "public"."docs" ADD COLUMN IF NOT EXISTS "tsv_len" integer GENERATED '
        'ALWAYS AS ("public"."docs_71ab8b6afb_bm25_len"(to_tsvector(\'english\'::regconfig, '
        'left("content", 100000)))) STORED'
    ),
    ('ALTER TABLE "public"."docs" ALTER COLUMN "tsv" SET STORAGE MAIN'),
    (
        'CREATE OR REPLACE FUNCTION "public"."docs_71ab8b6afb_bm25_trg"() RETURNS trigger '
        "LANGUAGE plpgsql AS 'DECLARE v_terms text[]; v_docs bigint[]; v_tokens bigint[]; "
        "BEGIN IF TG_OP = ''TRUNCATE'' THEN PERFORM pg_advisory_xact_lock( "
        '-6639234015324110216); DELETE FROM "public"."docs_71ab8b6afb_bm25"; RETURN NULL; '
        "ELSIF TG_OP = ''INSERT'' THEN SELECT array_agg(term ORDER BY term), "
        "array_agg(docs ORDER BY term), array_agg(tokens ORDER BY term) INTO v_terms, "
        "v_docs, v_tokens FROM (SELECT d.term, sum(d.docs)::bigint AS docs, "
        "sum(d.tokens)::bigint AS tokens FROM (SELECT u.lexeme, 1, "
        'coalesce(cardinality(u.positions), 1) FROM "pgvstore_new" AS r, unnest(r."tsv") '
        "AS u UNION ALL SELECT '''', 1, r.\"tsv_len\" FROM \"pgvstore_new\" AS r) AS d(term, "
        "docs, tokens) GROUP BY d.term HAVING sum(d.docs) <> 0 OR sum(d.tokens) <> 0) AS "
        "g; ELSIF TG_OP = ''DELETE'' THEN SELECT array_agg(term ORDER BY term), "
        "array_agg(docs ORDER BY term), array_agg(tokens ORDER BY term) INTO v_terms, "
        "v_docs, v_tokens FROM (SELECT d.term, sum(d.docs)::bigint AS docs, "
        "sum(d.tokens)::bigint AS tokens FROM (SELECT u.lexeme, -1, "
        '-coalesce(cardinality(u.positions), 1) FROM "pgvstore_old" AS r, unnest(r."tsv") '
        "AS u UNION ALL SELECT '''', -1, -r.\"tsv_len\" FROM \"pgvstore_old\" AS r) AS "
        "d(term, docs, tokens) GROUP BY d.term HAVING sum(d.docs) <> 0 OR sum(d.tokens) "
        "<> 0) AS g; ELSE SELECT array_agg(term ORDER BY term), array_agg(docs ORDER BY "
        "term), array_agg(tokens ORDER BY term) INTO v_terms, v_docs, v_tokens FROM "
        "(SELECT d.term, sum(d.docs)::bigint AS docs, sum(d.tokens)::bigint AS tokens "
        "FROM (SELECT u.lexeme, 1, coalesce(cardinality(u.positions), 1) FROM "
        '"pgvstore_new" AS r, unnest(r."tsv") AS u WHERE NOT EXISTS (SELECT 1 FROM '
        '"pgvstore_old" AS o WHERE o."id" = r."id" AND o."tsv" = r."tsv") UNION ALL '
        "SELECT '''', 1, r.\"tsv_len\" FROM \"pgvstore_new\" AS r WHERE NOT EXISTS (SELECT 1 "
        'FROM "pgvstore_old" AS o WHERE o."id" = r."id" AND o."tsv" = r."tsv") UNION ALL '
        'SELECT u.lexeme, -1, -coalesce(cardinality(u.positions), 1) FROM "pgvstore_old" '
        'AS r, unnest(r."tsv") AS u WHERE NOT EXISTS (SELECT 1 FROM "pgvstore_new" AS n '
        'WHERE n."id" = r."id" AND n."tsv" = r."tsv") UNION ALL SELECT \'\'\'\', -1, '
        '-r."tsv_len" FROM "pgvstore_old" AS r WHERE NOT EXISTS (SELECT 1 FROM '
        '"pgvstore_new" AS n WHERE n."id" = r."id" AND n."tsv" = r."tsv")) AS d(term, '
        "docs, tokens) GROUP BY d.term HAVING sum(d.docs) <> 0 OR sum(d.tokens) <> 0) AS "
        "g; END IF; IF v_terms IS NULL THEN RETURN NULL; END IF; IF "
        "current_setting(''transaction_isolation'') = ''read committed'' AND "
        "pg_try_advisory_xact_lock( -6639234015324110216) THEN WITH d AS (SELECT * FROM "
        "unnest(v_terms, v_docs, v_tokens) AS d(term, docs, tokens)), gone AS (DELETE "
        'FROM "public"."docs_71ab8b6afb_bm25" AS s WHERE s.term = ANY (v_terms) RETURNING '
        's.term, s.docs, s.tokens) INSERT INTO "public"."docs_71ab8b6afb_bm25" (term, '
        "docs, tokens) SELECT a.term, sum(a.docs), sum(a.tokens) FROM (SELECT * FROM d "
        "UNION ALL SELECT * FROM gone) AS a GROUP BY a.term HAVING sum(a.docs) <> 0 ORDER "
        'BY a.term; ELSE INSERT INTO "public"."docs_71ab8b6afb_bm25" (term, docs, tokens) '
        "SELECT * FROM unnest(v_terms, v_docs, v_tokens); END IF; RETURN NULL; END'"
    ),
    ('DROP TRIGGER IF EXISTS "pgvstore_bm25_insert" ON "public"."docs"'),
    (
        'CREATE TRIGGER "pgvstore_bm25_insert" AFTER INSERT ON "public"."docs" '
        'REFERENCING NEW TABLE AS "pgvstore_new" FOR EACH STATEMENT EXECUTE FUNCTION '
        '"public"."docs_71ab8b6afb_bm25_trg"()'
    ),
    ('DROP TRIGGER IF EXISTS "pgvstore_bm25_update" ON "public"."docs"'),
    (
        'CREATE TRIGGER "pgvstore_bm25_update" AFTER UPDATE ON "public"."docs" '
        'REFERENCING OLD TABLE AS "pgvstore_old" NEW TABLE AS "pgvstore_new" FOR EACH '
        'STATEMENT EXECUTE FUNCTION "public"."docs_71ab8b6afb_bm25_trg"()'
    ),
    ('DROP TRIGGER IF EXISTS "pgvstore_bm25_delete" ON "public"."docs"'),
    (
        'CREATE TRIGGER "pgvstore_bm25_delete" AFTER DELETE ON "public"."docs" '
        'REFERENCING OLD TABLE AS "pgvstore_old" FOR EACH STATEMENT EXECUTE FUNCTION '
        '"public"."docs_71ab8b6afb_bm25_trg"()'
    ),
    ('DROP TRIGGER IF EXISTS "pgvstore_bm25_truncate" ON "public"."docs"'),
    (
        'CREATE TRIGGER "pgvstore_bm25_truncate" AFTER TRUNCATE ON "public"."docs" FOR '
        'EACH STATEMENT EXECUTE FUNCTION "public"."docs_71ab8b6afb_bm25_trg"()'
    ),
    *RECOUNT,
]

DROP = [
    ('DROP FUNCTION IF EXISTS "public"."docs_71ab8b6afb_bm25_trg"() CASCADE'),
    ('DROP FUNCTION IF EXISTS "public"."docs_71ab8b6afb_bm25_len"(tsvector) CASCADE'),
    ('DROP TABLE IF EXISTS "public"."docs_71ab8b6afb_bm25"'),
]


COMPACT = [
    ("SELECT pg_advisory_xact_lock( -6639234015324110216)"),
    (
        'WITH gone AS (DELETE FROM "public"."docs_71ab8b6afb_bm25" RETURNING term, docs, '
        'tokens) INSERT INTO "public"."docs_71ab8b6afb_bm25" (term, docs, tokens) SELECT '
        "term, sum(docs), sum(tokens) FROM gone GROUP BY term HAVING sum(docs) <> 0 ORDER "
        "BY term"
    ),
]


def strings(frags: list[Frag]) -> list[str]:
    return [f.as_string() for f in frags]


def test_keyword_search_snapshot():
    f = bm25_search.keyword_search(T, "q", 5, WHERE, ts_config="english")
    assert f.as_string() == KEYWORD
    assert f.params == ("english", "q", 1.2, 0.75, "english", "q", "X", 5)
    assert f.as_string().count("%s") == len(f.params)


def test_fuse_snapshots():
    f = fz.fuse(V, X, 10)
    assert f.as_string() == FUSE_RRF
    assert f.params == (1.0, 60, 1.0, 60, 10)
    g = fz.fuse(V, X, 10, method="weighted", fetch_k=40, vector_is_distance=False)
    assert g.as_string() == FUSE_WEIGHTED
    assert g.params == (40, 40, 0.5, 0.5, 10)
    h = fz.fuse(V, X, 3, method="rrf", rrf_k=10, weights=(2.0, 0.5), fetch_k=7)
    assert h.params == (7, 7, 2.0, 10, 0.5, 10, 3)


def test_fuse_keeps_leg_parameters_in_order():
    v = Frag(sql.SQL("SELECT id, embedding <=> %s FROM t LIMIT %s"), ("vec", 20))
    x = bm25_search.keyword_search(T, "words", 20, WHERE, ts_config="english")
    f = fz.fuse(v, x, 5)
    assert f.params == ("vec", 20) + x.params + (1.0, 60, 1.0, 60, 5)
    assert f.as_string().count("%s") == len(f.params)


def test_ddl_snapshots():
    assert strings(bm25_schema.bm25_ddl(T, "english")) == DDL
    assert strings(bm25_schema.drop_bm25(T)) == DROP
    assert strings(bm25_schema.recount_bm25(T)) == RECOUNT
    assert strings(bm25_schema.compact_bm25(T)) == COMPACT
    frags = bm25_schema.bm25_ddl(T, "english")
    assert frags and all(f.params == () for f in frags)


def test_ddl_has_no_percent_signs():
    # DDL runs without parameters; a stray % would be read as a placeholder.
    for f in (
        bm25_schema.bm25_ddl(T, "english") + bm25_schema.drop_bm25(T) + bm25_schema.recount_bm25(T)
    ):
        assert "%" not in f.as_string()


def test_names_are_quoted_and_fit_63_bytes():
    weird = Table('my "schema"', "ä" * 31 + "x")  # a 63-byte collection name
    text = "\n".join(strings(bm25_schema.bm25_ddl(weird, "english") + bm25_schema.drop_bm25(weird)))
    assert '"my ""schema"""' in text
    for kind in ("bm25", "bm25_term", "bm25_len", "bm25_trg"):
        assert len(weird.index_name(kind).encode()) <= 63
    assert text.count(weird.index_name("bm25_trg")) >= 5


def test_ts_config_is_a_literal_in_ddl_and_a_parameter_in_queries():
    evil = "english'); DROP TABLE x; --"
    ddl = "\n".join(strings(bm25_schema.bm25_ddl(T, evil)))
    assert "'english''); DROP TABLE x; --'::regconfig" in ddl
    f = bm25_search.keyword_search(T, "q", 1, WHERE, ts_config=evil)
    assert evil not in f.as_string() and evil in f.params


@given(st.text())
def test_query_text_is_never_in_the_sql(query):
    # The text is the same whatever the query: it travels only as a parameter.
    pairs = [
        (
            bm25_search.keyword_search(T, query, 5, WHERE, ts_config="english"),
            bm25_search.keyword_search(T, "q", 5, WHERE, ts_config="english"),
        ),
        (bm25_search.or_tsquery("english", query), bm25_search.or_tsquery("english", "q")),
    ]
    for f, reference in pairs:
        assert f.as_string() == reference.as_string()
        assert query in f.params


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fz.fuse(V, X, 0), "k must be"),
        (lambda: fz.fuse(V, X, 1, method="max"), "unknown fusion method"),
        (lambda: fz.fuse(V, X, 1, weights=(1.0,)), "expected 2 weights"),
        (lambda: fz.fuse(V, X, 1, weights=(1.0, -1.0)), "keyword weight"),
        (lambda: fz.fuse(V, X, 1, rrf_k=-1), "rrf_k"),
        (lambda: fz.fuse(V, X, 1, fetch_k=0), "fetch_k"),
    ],
)
def test_invalid_arguments(call, message):
    with pytest.raises(InputError, match=message):
        call()
