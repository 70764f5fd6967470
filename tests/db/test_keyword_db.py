"""The BM25 leg and SQL fusion against a real PostgreSQL, checked against Python oracles."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from langchain_pgvstore import fusion
from langchain_pgvstore._sql import Frag, bm25_schema, bm25_search
from langchain_pgvstore._sql import fusion as fz
from langchain_pgvstore.config import Table
from langchain_pgvstore.fusion import Hit
from tests import bm25_reference as ref
from tests.fix_db import drop_collection

CFG = "english"
DIM = 384
TRUE = Frag(sql.SQL("TRUE"))

WORDS = (
    "protein cell cells gene genes expression cancer tumour tumor mouse mice blood"
    " insulin receptor signalling pathway neuron brain memory sleep diet obesity"
    " vaccine virus immune response therapy drug dose trial patients risk"
).split()
STOP = "the of and a in to is was with for".split()


def create_table(conn: psycopg.Connection, table: Table) -> None:
    """The collection table as the store creates it, then the lexical leg."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE {t} (id text PRIMARY KEY, content text NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({dim}) NOT NULL,"
            " tsv tsvector GENERATED ALWAYS AS (to_tsvector({cfg}::regconfig, content)) STORED,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(t=table.qualname, dim=sql.Literal(DIM), cfg=sql.Literal(CFG))
    )
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} USING gin (tsv)").format(
            sql.Identifier(table.index_name("tsv")), table.qualname
        )
    )
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} USING gin (metadata jsonb_path_ops)").format(
            sql.Identifier(table.index_name("meta")), table.qualname
        )
    )


def run(conn: psycopg.Connection, frags: Sequence[Frag]) -> None:
    with conn.transaction():
        for f in frags:
            conn.execute(f.sql, f.params)


def upsert(
    conn: psycopg.Connection, table: Table, rows: Sequence[tuple[str, str, dict[str, object]]]
) -> None:
    """One `INSERT ... SELECT ... ON CONFLICT DO UPDATE`, ids in sorted order, unchanged rows
    left alone, as the store does."""
    ids = [r[0] for r in rows]
    contents = [r[1] for r in rows]
    metas = [psycopg.types.json.Jsonb(r[2]) for r in rows]
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} AS t (id, content, metadata, embedding)"
            " SELECT i, c, m, array_fill(0.5::real, ARRAY[{dim}])::vector"
            " FROM unnest(%s::text[], %s::text[], %s::jsonb[]) AS x(i, c, m) ORDER BY i"
            " ON CONFLICT (id) DO UPDATE SET content = excluded.content,"
            " metadata = excluded.metadata, embedding = excluded.embedding, updated_at = now()"
            " WHERE (t.content, t.metadata, t.embedding)"
            " IS DISTINCT FROM (excluded.content, excluded.metadata, excluded.embedding)"
        ).format(t=table.qualname, dim=sql.Literal(DIM)),
        (ids, contents, metas),
    )


def delete(conn: psycopg.Connection, table: Table, ids: Sequence[str]) -> None:
    """Delete rows, locking them in id order first (as upsert does) so writers cannot deadlock."""
    conn.execute(
        sql.SQL(
            "DELETE FROM {t} WHERE id IN"
            " (SELECT id FROM {t} WHERE id = ANY(%s) ORDER BY id FOR UPDATE)"
        ).format(t=table.qualname),
        (list(ids),),
    )


def stored_stats(conn: psycopg.Connection, table: Table) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        sql.SQL(
            "SELECT term, sum(docs), sum(tokens) FROM {} GROUP BY term HAVING sum(docs) <> 0"
        ).format(bm25_schema.stats_table(table))
    ).fetchall()
    return {term: (int(docs), int(tokens)) for term, docs, tokens in rows}


def delta_rows(conn: psycopg.Connection, table: Table, term: str) -> int:
    """How many rows of the statistics table hold deltas of `term` (1 once compacted)."""
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE term = %s").format(bm25_schema.stats_table(table)),
        (term,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def keyword(
    conn: psycopg.Connection, table: Table, query: str, k: int = 1000, where: Frag = TRUE
) -> list[tuple[str, float]]:
    f = bm25_search.keyword_search(table, query, k, where, ts_config=CFG)
    return [(id_, float(score)) for id_, score in conn.execute(f.sql, f.params).fetchall()]


def assert_matches_reference(
    conn: psycopg.Connection, table: Table, queries: Sequence[str]
) -> None:
    docs = ref.fetch_docs(conn, table.qualname)
    assert stored_stats(conn, table) == ref.statistics(docs)
    for query in queries:
        expected = ref.scores(docs, ref.fetch_query(conn, CFG, query))
        got = keyword(conn, table, query)
        assert {id_ for id_, _ in got} == set(expected), query
        for id_, score in got:
            assert math.isclose(score, expected[id_], rel_tol=1e-9, abs_tol=1e-12), (query, id_)
        # Best first, ties by id in code-point order.
        assert got == sorted(got, key=lambda item: (-item[1], item[0]))


def sentence(rng: random.Random, lo: int = 3, hi: int = 25) -> str:
    words = [rng.choice(WORDS if rng.random() < 0.75 else STOP) for _ in range(rng.randint(lo, hi))]
    return " ".join(words).capitalize() + "."


QUERIES = [
    "protein",
    "Cells expressing the insulin receptor",
    "Does a high-fat diet increase the risk of obesity in mice and patients?",
    "vaccine",
    "memory memory sleep",
    "unrelated zebra words",
    "the of and",
]


@pytest.fixture
def table(conn: psycopg.Connection, collection_name: str) -> Table:
    """A collection table with the BM25 leg; `collection_name` drops it all after the test."""
    t = Table("public", collection_name)
    create_table(conn, t)
    run(conn, bm25_schema.bm25_ddl(t, CFG))
    return t


@pytest.fixture
def corpus(conn: psycopg.Connection, table: Table) -> dict[str, str]:
    rng = random.Random(7)
    docs = {f"d{i:03d}": sentence(rng) for i in range(60)}
    rows = [(id_, text, {"n": i % 3}) for i, (id_, text) in enumerate(docs.items())]
    for start in range(0, len(rows), 25):
        upsert(conn, table, rows[start : start + 25])
    return docs


def test_scores_equal_reference(conn: psycopg.Connection, table: Table, corpus: dict[str, str]):
    assert_matches_reference(conn, table, QUERIES)


def test_length_column_counts_positions(conn: psycopg.Connection, table: Table):
    # 300 repeats keep only 255 positions; tf and dl agree with the tsvector.
    upsert(conn, table, [("long", "cell " * 300 + "protein", {}), ("short", "cell", {})])
    rows = dict(
        conn.execute(sql.SQL("SELECT id, tsv_len FROM {}").format(table.qualname)).fetchall()
    )
    assert rows == {"long": 256, "short": 1}
    assert_matches_reference(conn, table, ["cell", "protein cell"])


def test_any_term_matching(conn: psycopg.Connection, table: Table):
    upsert(
        conn,
        table,
        [("only-one", "Insulin.", {}), ("none", "Zebras run.", {}), ("two", "insulin cell", {})],
    )
    got = keyword(conn, table, "Does insulin signalling in mouse brain cells improve memory?")
    assert [id_ for id_, _ in got] == ["two", "only-one"]


def test_query_without_lexemes_matches_nothing(
    conn: psycopg.Connection, table: Table, corpus: dict[str, str]
):
    assert keyword(conn, table, "the of and") == []
    assert keyword(conn, table, "") == []


def test_statistics_follow_updates_upserts_and_deletes(
    conn: psycopg.Connection, table: Table, corpus: dict[str, str]
):
    rng = random.Random(11)
    ids = sorted(corpus)
    # Upsert existing ids with new content, plus new ids, in one statement.
    upsert(conn, table, [(i, sentence(rng), {"n": 9}) for i in ids[:10]] + [("new1", "gene", {})])
    assert_matches_reference(conn, table, QUERIES)
    # Upsert identical content (only metadata changes): statistics unchanged.
    upsert(conn, table, [(i, corpus[i], {"n": 5}) for i in ids[20:30]])
    assert_matches_reference(conn, table, QUERIES)
    # Plain UPDATEs: of metadata only, of content, and of the id itself.
    conn.execute(sql.SQL("UPDATE {} SET metadata = '{{\"x\": 1}}'").format(table.qualname))
    conn.execute(
        sql.SQL("UPDATE {} SET content = content || ' vaccine' WHERE id < 'd010'").format(
            table.qualname
        )
    )
    conn.execute(sql.SQL("UPDATE {} SET id = 'renamed' WHERE id = 'd040'").format(table.qualname))
    assert_matches_reference(conn, table, QUERIES)
    delete(conn, table, ids[30:45] + ["missing"])
    assert_matches_reference(conn, table, QUERIES)
    # Several statements in one transaction, one of them rolled back.
    with conn.transaction():
        delete(conn, table, ids[45:50])
        try:
            with conn.transaction():
                upsert(conn, table, [("gone", "protein protein", {})])
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        upsert(conn, table, [(ids[46], "protein sleep", {})])
    assert_matches_reference(conn, table, QUERIES)
    delete(conn, table, [i for i in ids if i != ids[0]] + ["new1", "renamed"])
    assert_matches_reference(conn, table, QUERIES)


def test_truncate_and_delete_everything(
    conn: psycopg.Connection, table: Table, corpus: dict[str, str]
):
    conn.execute(sql.SQL("TRUNCATE {}").format(table.qualname))
    assert stored_stats(conn, table) == {}
    assert keyword(conn, table, "protein") == []
    upsert(conn, table, [("a", "protein", {})])
    assert_matches_reference(conn, table, ["protein"])
    delete(conn, table, ["a"])
    assert stored_stats(conn, table) == {}


def test_filter_restricts_candidates_not_statistics(
    conn: psycopg.Connection, table: Table, corpus: dict[str, str]
):
    docs = ref.fetch_docs(conn, table.qualname)
    where = Frag(sql.SQL("metadata @> %s"), (psycopg.types.json.Jsonb({"n": 1}),))
    for query in QUERIES:
        everything = ref.scores(docs, ref.fetch_query(conn, CFG, query))
        expected = {i: s for i, s in everything.items() if int(i[1:]) % 3 == 1}
        got = dict(keyword(conn, table, query, where=where))
        assert got.keys() == expected.keys()
        for id_, score in got.items():
            assert math.isclose(score, expected[id_], rel_tol=1e-9)


def test_limit_and_tie_break(conn: psycopg.Connection, table: Table):
    upsert(conn, table, [(i, "insulin receptor", {}) for i in ["b", "a", "é", "C", "aa"]])
    got = keyword(conn, table, "insulin", k=3)
    assert [i for i, _ in got] == ["C", "a", "aa"]
    assert len({s for _, s in got}) == 1


def test_lexical_ddl_backfills_and_is_idempotent(conn: psycopg.Connection, collection_name: str):
    t = Table("public", collection_name)
    create_table(conn, t)
    upsert(conn, t, [("a", "protein cell", {}), ("b", "cell cell gene", {})])
    run(conn, bm25_schema.bm25_ddl(t, CFG))
    run(conn, bm25_schema.bm25_ddl(t, CFG))
    assert_matches_reference(conn, t, ["cell", "gene protein"])
    run(conn, bm25_schema.compact_bm25(t))
    run(conn, bm25_schema.recount_bm25(t))
    assert_matches_reference(conn, t, ["cell", "gene protein"])


def test_drop_lexical_is_idempotent_and_complete(conn: psycopg.Connection, collection_name: str):
    t = Table("public", collection_name)
    create_table(conn, t)
    run(conn, bm25_schema.bm25_ddl(t, CFG))
    run(conn, bm25_schema.drop_bm25(t))  # table still there: triggers and column go too
    columns = conn.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_name = %s AND column_name = %s",
        (collection_name, "tsv_len"),
    ).fetchone()
    assert columns == (0,)
    upsert(conn, t, [("a", "still writable", {})])
    conn.execute(sql.SQL("DROP TABLE {}").format(t.qualname))
    run(conn, bm25_schema.drop_bm25(t))
    prefix = t.index_name("")
    left = conn.execute(
        "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE %s)"
        " + (SELECT count(*) FROM pg_proc WHERE proname LIKE %s)",
        (prefix + "%", prefix + "%"),
    ).fetchone()
    assert left == (0,)


def test_long_collection_names(conn: psycopg.Connection, collection_name: str):
    # 63 bytes, the limit, with two-byte characters: every derived name must still fit
    t = Table("public", collection_name + "ä" * 22 + "xy")
    assert len(t.name.encode()) == 63
    create_table(conn, t)
    try:
        run(conn, bm25_schema.bm25_ddl(t, CFG))
        upsert(conn, t, [("a", "protein", {})])
        assert_matches_reference(conn, t, ["protein"])
    finally:
        drop_collection(conn, t.schema, t.name)


@settings(max_examples=40, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80)
)
def test_or_tsquery_contains_every_query_lexeme(mconn: psycopg.Connection, text: str):
    q = bm25_search.or_tsquery(CFG, text)
    lexemes, nodes, covered = mconn.execute(
        sql.SQL(
            "WITH x AS (SELECT {q} AS q)"
            " SELECT cardinality(tsvector_to_array(to_tsvector(%s::regconfig, %s))), numnode(q),"
            " (SELECT bool_and(array_to_tsvector(ARRAY[l]) @@ q)"
            "  FROM unnest(tsvector_to_array(to_tsvector(%s::regconfig, %s))) AS l)"
            " FROM x"
        ).format(q=q.sql),
        q.params + (CFG, text, CFG, text),
    ).fetchone()
    # n lexemes joined by n - 1 ORs, and each of them matches on its own.
    assert nodes == max(0, 2 * lexemes - 1)
    # bool_and over no lexemes is NULL; over some, every one must match
    assert covered is (True if lexemes else None)


def _q(f: Frag) -> tuple[sql.Composable, tuple[object, ...]]:
    return f.sql, f.params


# --- concurrency -----------------------------------------------------------


def test_concurrent_writers_neither_deadlock_nor_lose_counts(
    dsn: str, conn: psycopg.Connection, table: Table
):
    ids = [f"k{i:02d}" for i in range(24)]
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("SET statement_timeout = '30s'")
                for _ in range(25):
                    # Each transaction touches ids in ascending order across its
                    # statements, as the store does, so the rows themselves
                    # cannot deadlock; any deadlock would be the statistics'.
                    chosen = sorted(rng.sample(ids, rng.randint(2, 8)))
                    cut = rng.randint(1, len(chosen) - 1)
                    with c.transaction():
                        for part in (chosen[:cut], chosen[cut:]):
                            if rng.random() < 0.3:
                                delete(c, table, part)
                            else:
                                upsert(c, table, [(i, sentence(rng, 1, 12), {}) for i in part])
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "writers did not finish"
    assert errors == []
    assert_matches_reference(conn, table, QUERIES)
    run(conn, bm25_schema.compact_bm25(table))
    assert_matches_reference(conn, table, QUERIES)
    # Compaction left one row per term.
    rows, terms = conn.execute(
        sql.SQL("SELECT count(*), count(DISTINCT term) FROM {}").format(
            bm25_schema.stats_table(table)
        )
    ).fetchone()
    assert rows == terms


def test_writers_never_wait_for_statistics(dsn: str, conn: psycopg.Connection, table: Table):
    # T1 writes and keeps its transaction (and the compaction lock) open; T2
    # writes the same terms and must not wait for anything.
    with psycopg.connect(dsn) as t1, psycopg.connect(dsn) as t2:
        upsert(t1, table, [("a", "protein cell", {})])
        t2.execute("SET lock_timeout = '2s'")
        upsert(t2, table, [("b", "protein gene", {})])
        delete(t2, table, ["b"])
        upsert(t2, table, [("c", "cell cell", {})])
        t2.commit()
        t1.commit()
    assert_matches_reference(conn, table, ["protein cell gene"])
    assert delta_rows(conn, table, "protein") == 3  # T2 appended +1, -1 instead of compacting


def test_repeatable_read_writers_append_only(dsn: str, conn: psycopg.Connection, table: Table):
    with psycopg.connect(dsn) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        upsert(c, table, [("a", "protein", {})])
        c.commit()
        upsert(c, table, [("b", "protein", {})])
        delete(c, table, ["a"])
        c.commit()
    assert_matches_reference(conn, table, ["protein"])
    assert delta_rows(conn, table, "protein") == 3


# --- fusion ----------------------------------------------------------------

ids_strategy = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=3
)


def leg_strategy(lo: float, hi: float) -> st.SearchStrategy[dict[str, float]]:
    # Scores from a small set, so ties (broken by id) happen often. No
    # subnormals: PostgreSQL raises on float underflow where Python rounds.
    score = st.one_of(
        st.sampled_from([lo, hi, (lo + hi) / 2]),
        st.floats(lo, hi, allow_nan=False, allow_subnormal=False),
    )
    return st.dictionaries(ids_strategy, score, max_size=12)


weight = st.one_of(st.just(0.0), st.floats(1e-6, 3.0))


def sql_leg(scores: dict[str, float]) -> Frag:
    return Frag(
        sql.SQL("SELECT * FROM unnest(%s::text[], %s::float8[])"),
        (list(scores), list(scores.values())),
    )


@settings(max_examples=60, deadline=None)
@given(
    vector=leg_strategy(0.0, 2.0),
    lexical=leg_strategy(0.0, 50.0),
    method=st.sampled_from(["rrf", "weighted"]),
    fetch_k=st.one_of(st.none(), st.integers(1, 8)),
    weights=st.one_of(st.none(), st.tuples(weight, weight)),
    rrf_k=st.integers(0, 100),
    k=st.integers(1, 30),
)
def test_sql_fusion_equals_python_fusion(
    mconn: psycopg.Connection, vector, lexical, method, fetch_k, weights, rrf_k, k
):
    f = fz.fuse(
        sql_leg(vector),
        sql_leg(lexical),
        k,
        method=method,
        rrf_k=rrf_k,
        weights=weights,
        fetch_k=fetch_k,
    )
    got = [Hit(i, s) for i, s in mconn.execute(f.sql, f.params).fetchall()]
    # The oracle's legs: best first, ties by id; distances negated.
    v_leg = [Hit(i, -d) for i, d in sorted(vector.items(), key=lambda x: (x[1], x[0]))]
    x_leg = [Hit(i, s) for i, s in sorted(lexical.items(), key=lambda x: (-x[1], x[0]))]
    if fetch_k is not None:
        v_leg, x_leg = v_leg[:fetch_k], x_leg[:fetch_k]
    if method == "rrf":
        expected = fusion.rrf([v_leg, x_leg], k=rrf_k, weights=weights)
    else:
        expected = fusion.weighted([v_leg, x_leg], weights=weights or (0.5, 0.5))
    assert got == expected[:k]


def test_fusion_over_real_legs(conn: psycopg.Connection, table: Table, corpus: dict[str, str]):
    # Two real legs: a (fake) distance ordering and BM25, fused in one statement.
    vector_leg = Frag(
        sql.SQL("SELECT id, length(content)::float8 AS d FROM {} ORDER BY d LIMIT 20").format(
            table.qualname
        )
    )
    lexical_leg = bm25_search.keyword_search(
        table, "insulin receptor cells", 20, TRUE, ts_config=CFG
    )
    f = fz.fuse(vector_leg, lexical_leg, 10, method="rrf", rrf_k=60)
    rows = conn.execute(f.sql, f.params).fetchall()
    v = conn.execute(vector_leg.sql, vector_leg.params).fetchall()
    x = conn.execute(lexical_leg.sql, lexical_leg.params).fetchall()
    v_leg = [Hit(i, -d) for i, d in sorted(v, key=lambda r: (r[1], r[0]))]
    x_leg = [Hit(i, s) for i, s in sorted(x, key=lambda r: (-r[1], r[0]))]
    assert [Hit(i, s) for i, s in rows] == fusion.rrf([v_leg, x_leg])[:10]
