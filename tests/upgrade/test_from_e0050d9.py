"""Collections made by the release at commit `e0050d9`, opened by this code.

The release's source is taken from this repository's history (`git archive`)
and run in a subprocess with `PYTHONPATH` pointing at it: its dependencies
(langchain-core, psycopg, pgvector, numpy) are a subset of this checkout's
locked ones, so the current virtualenv runs it as released. It creates, in a
schema of its own (so with its own registry): an HNSW `vector` collection, a
`halfvec` one (l2), an IVFFlat one (inner product), one without an ANN index,
one with a binary-quantized HNSW index, each with documents, deletes and an
update behind its BM25 statistics; and a record manager's and a byte store's
tables. This code then reads, searches (similarity, filtered, keyword,
hybrid) and writes them; every result, the catalog shape of every object
and the BM25 statistics equal those of a collection this code builds fresh
from the same documents. Keep this test for every later schema change, and
add the release that changes the schema to it.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import langchain_pgvstore
from langchain_pgvstore import PGVStore, PostgresByteStore, PostgresRecordManager, SchemaError
from langchain_pgvstore._sql.bm25_schema import drop_bm25
from langchain_pgvstore.config import REGISTRY_TABLE, REGISTRY_VERSION, SCHEMA_VERSION, Table
from tests.fix_db import unique_name
from tests.upgrade.release import COLLECTIONS, DOCS, WordEmbeddings, load, store_options

RELEASE = "e0050d9"
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("release.py")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release's package, extracted from this repository's history."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", RELEASE, "langchain_pgvstore"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.skip(
            f"commit {RELEASE} is not in this clone (a shallow clone?): "
            + found.stderr.decode(errors="replace").strip()
        )
    target = tmp_path_factory.mktemp("release")
    with tarfile.open(fileobj=io.BytesIO(found.stdout)) as archive:
        archive.extractall(target, filter="data")
    return target


def run_release(source: Path | None, *args: str) -> str:
    """Run `release.py` under the release at `source` (the current code if None)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    package = str(source) if source is not None else str(ROOT)
    assert package in done.stdout, f"the wrong release ran: {done.stdout}"
    return done.stdout


@pytest.fixture
def make_old(
    release_source: Path, admin: psycopg.Connection, dsn: str
) -> Iterator[Callable[..., str]]:
    """Make collections with the release, in a schema of their own; returns the schema."""
    made: list[str] = []

    def make(*names: str) -> str:
        schema = unique_name("s")
        made.append(schema)
        run_release(release_source, "create", dsn, schema, *(names or COLLECTIONS))
        return schema

    yield make
    for schema in made:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@dataclass(frozen=True)
class Released:
    """The schema where the release made every collection, and its registry as it left it."""

    schema: str
    registry_columns: frozenset[str]
    versions: tuple[int, ...]
    comment: str | None


@pytest.fixture(scope="module")
def released(release_source: Path, admin: psycopg.Connection, dsn: str) -> Iterator[Released]:
    """Every collection of `COLLECTIONS`, made by the release in one schema (module-wide:
    each test writes to its own collection only)."""
    schema = unique_name("s")
    try:
        run_release(release_source, "create", dsn, schema, *COLLECTIONS)
        registry = sql.Identifier(schema, REGISTRY_TABLE)
        columns = admin.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0",
            (registry.as_string(None),),
        ).fetchall()
        versions = admin.execute(
            sql.SQL("SELECT schema_version FROM {} ORDER BY collection").format(registry)
        ).fetchall()
        comment = admin.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (registry.as_string(None),)
        ).fetchone()
        assert comment is not None
        yield Released(
            schema, frozenset(c for (c,) in columns), tuple(v for (v,) in versions), comment[0]
        )
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def new_schema(admin: psycopg.Connection) -> Iterator[str]:
    """A schema for collections this code builds fresh."""
    schema = unique_name("s")
    yield schema
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def open_store(dsn: str, schema: str, name: str) -> PGVStore:
    return PGVStore(
        WordEmbeddings(),
        connection=dsn,
        collection=name,
        schema=schema,
        **store_options(name, langchain_pgvstore),
    )


def fresh(dsn: str, schema: str, name: str) -> PGVStore:
    """A collection this code builds from the same documents, by the same operations."""
    store = open_store(dsn, schema, name)
    load(store)
    return store


def results(store: PGVStore, name: str) -> dict[str, list[tuple[str | None, float]]]:
    """Every kind of search, as (id, score) lists; IVFFlat probes every list (exact)."""
    knobs: dict[str, Any] = {"probes": 2} if name == "ivf" else {}

    def scored(found: list[Any]) -> list[tuple[str | None, float]]:
        return [(doc.id, round(float(score), 4)) for doc, score in found]

    return {
        "similarity": scored(store.similarity_search_with_score("bread oven dough", k=6, **knobs)),
        "filtered": scored(
            store.similarity_search_with_score(
                "graph neighbor", k=4, filter={"topic": "vectors"}, **knobs
            )
        ),
        "filtered_range": scored(
            store.similarity_search_with_score(
                "table index", k=5, filter={"i": {"$gte": 10}, "even": True}, **knobs
            )
        ),
        "keyword": scored(store.keyword_search_with_score("table index replica", k=5)),
        "keyword_filtered": scored(
            store.keyword_search_with_score("recipe", k=5, filter={"topic": "cooking"})
        ),
        "hybrid": scored(store.hybrid_search_with_score("cosine distance", k=5, **knobs)),
        "count": [(None, float(store.count()))],
    }


def writes(store: PGVStore) -> None:
    """What the new code writes to both collections."""
    store.add_texts(
        ["vacuum planner table note new", "butter flour note new"],
        metadatas=[{"i": 100, "topic": "postgres"}, {"i": 101, "topic": "cooking"}],
        ids=["new-1", "new-2"],
    )
    store.delete(ids=["doc-010"])
    store.add_texts(["embedding graph replaced"], metadatas=[{"i": 11}], ids=["doc-011"])


def shape(conn: psycopg.Connection, schema: str, name: str) -> list[str]:
    """The collection's objects as the catalog describes them, names made comparable."""
    pattern = re.escape(name) + r"(_[0-9a-f]{10}_[a-z_]+)?"
    rows: list[str] = []
    relations = conn.execute(
        "SELECT c.oid, c.relname, c.relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname ~ %s ORDER BY c.relname",
        (schema, f"^{pattern}$|^{re.escape(name)}_pkey$"),
    ).fetchall()
    for oid, relname, kind in relations:
        rows.append(f"relation {relname} {kind}")
        rows += [
            f"  column {r}"
            for r in conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                " pg_get_expr(d.adbin, d.adrelid), a.attgenerated, a.attstorage"
                " FROM pg_attribute a LEFT JOIN pg_attrdef d"
                " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped"
                " ORDER BY a.attname",
                (oid,),
            )
        ]
        rows += [
            f"  {r[0]}"
            for r in conn.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid = %s"
                " UNION ALL SELECT pg_get_triggerdef(oid) FROM pg_trigger"
                " WHERE tgrelid = %s AND NOT tgisinternal"
                " UNION ALL SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s"
                " ORDER BY 1",
                (oid, oid, oid),
            )
        ]
    rows += [
        f"function {r[0]} {r[1]}"
        for r in conn.execute(
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname ~ %s ORDER BY 1",
            (schema, f"^{pattern}$"),
        )
    ]
    text = "\n".join(rows).replace(schema, "SCHEMA")
    # the BM25 compaction lock key is a hash of schema and name
    return re.sub(r"advisory_xact_lock\(\s*-?\d+\)", "advisory_xact_lock(KEY)", text).split("\n")


def statistics(conn: psycopg.Connection, schema: str, name: str) -> list[tuple[Any, ...]]:
    """The BM25 statistics (deltas summed per term)."""
    stats = sql.Identifier(schema, Table(schema, name).index_name("bm25"))
    return conn.execute(
        sql.SQL(
            "SELECT term, sum(docs), sum(tokens) FROM {} GROUP BY term"
            " HAVING sum(docs) <> 0 ORDER BY term"
        ).format(stats)
    ).fetchall()


def registry(conn: psycopg.Connection, schema: str, name: str) -> tuple[Any, ...]:
    """The registry's version (its comment) and the collection's row, without its timestamp."""
    table = sql.Identifier(schema, REGISTRY_TABLE)
    comment = conn.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", (table.as_string(None),)
    ).fetchone()
    row = conn.execute(
        sql.SQL(
            "SELECT r.dimensions, r.distance, r.vector_type, r.text_search_config,"
            " r.embedding_model, r.schema_version, to_jsonb(r) -> 'multi_tenant',"
            " to_jsonb(r) -> 'distribution' FROM {} AS r WHERE r.collection = %s"
        ).format(table),
        (name,),
    ).fetchone()
    assert comment is not None and row is not None
    return (comment[0], *row)


def test_the_release_made_a_version_1_registry(released: Released) -> None:
    assert released.registry_columns == {
        "collection",
        "dimensions",
        "distance",
        "vector_type",
        "text_search_config",
        "embedding_model",
        "schema_version",
        "created_at",
    }
    assert released.versions == (1,) * len(COLLECTIONS)
    assert released.comment is None


@pytest.mark.parametrize("name", list(COLLECTIONS))
def test_open_search_and_write_equal_a_fresh_collection(
    name: str, released: Released, new_schema: str, dsn: str, conn: psycopg.Connection
) -> None:
    old_schema = released.schema
    old, new = open_store(dsn, old_schema, name), fresh(dsn, new_schema, name)
    try:
        # reads first: they work on the release's collection and change nothing
        assert results(old, name) == results(new, name)
        assert registry(conn, old_schema, name)[6] == 1  # reads upgrade nothing
        writes(old)
        writes(new)
        assert results(old, name) == results(new, name)
        assert statistics(conn, old_schema, name) == statistics(conn, new_schema, name)
    finally:
        old.close()
        new.close()
    assert shape(conn, old_schema, name) == shape(conn, new_schema, name)
    assert registry(conn, old_schema, name) == registry(conn, new_schema, name)
    assert registry(conn, old_schema, name)[0] == f"pgvstore registry {REGISTRY_VERSION}"
    assert registry(conn, old_schema, name)[6] == SCHEMA_VERSION


def test_side_tables_the_release_wrote_are_read_and_written(released: Released, dsn: str) -> None:
    old_schema = released.schema
    records = PostgresRecordManager("docs", connection=dsn, schema=old_schema)
    kv = PostgresByteStore(connection=dsn, namespace="cache", schema=old_schema)
    try:
        assert sorted(records.list_keys()) == ["a", "b"]
        assert records.list_keys(group_ids=["g"]) == ["a"]
        records.update(["c"])
        assert records.exists(["a", "c", "z"]) == [True, True, False]
        assert kv.mget(["k1", "k2", "k3"]) == [b"v1", b"v2", None]
        kv.mset([("k3", b"v3")])
        assert sorted(kv.yield_keys()) == ["k1", "k2", "k3"]
    finally:
        records.close()
        kv.close()


def test_two_processes_open_the_same_old_collection_at_once(
    make_old: Callable[..., str], dsn: str, conn: psycopg.Connection
) -> None:
    old_schema = make_old("plain")
    start_at = f"{time.time() + 8:.3f}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "write", dsn, old_schema, "plain", tag, start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        for tag in ("first", "second")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        assert str(ROOT) in out
    store = open_store(dsn, old_schema, "plain")
    try:
        assert store.count() == len(DOCS) - 2 + 10
        assert {d.id for d in store.get(filter={"tag": "first"})} == {
            f"first-{k}" for k in range(5)
        }
    finally:
        store.close()
    comment, *_, version, _, _ = registry(conn, old_schema, "plain")
    assert (comment, version) == (f"pgvstore registry {REGISTRY_VERSION}", SCHEMA_VERSION)
    table = sql.Identifier(old_schema, "plain")
    recount = conn.execute(
        sql.SQL(
            "SELECT u.lexeme, count(*), sum(coalesce(cardinality(u.positions), 1)) FROM {},"
            " unnest(tsv) AS u GROUP BY u.lexeme"
            " UNION ALL SELECT '', count(*), sum(tsv_len) FROM {} ORDER BY 1"
        ).format(table, table)
    ).fetchall()
    assert statistics(conn, old_schema, "plain") == recount


def _frozen(conn: psycopg.Connection, schema: str, name: str) -> tuple[Any, ...]:
    rows = conn.execute(
        sql.SQL("SELECT id, content, metadata FROM {} ORDER BY id").format(
            sql.Identifier(schema, name)
        )
    ).fetchall()
    return (shape(conn, schema, name), rows, registry(conn, schema, name))


def test_a_newer_collection_version_is_refused_and_left_alone(
    new_schema: str, dsn: str, conn: psycopg.Connection
) -> None:
    fresh(dsn, new_schema, "plain").close()
    conn.execute(
        sql.SQL("UPDATE {} SET schema_version = %s").format(
            sql.Identifier(new_schema, REGISTRY_TABLE)
        ),
        (SCHEMA_VERSION + 1,),
    )
    before = _frozen(conn, new_schema, "plain")
    store = open_store(dsn, new_schema, "plain")
    try:
        with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION + 1}.*newer"):
            store.similarity_search("bread", k=2)
        with pytest.raises(SchemaError, match="upgrade langchain-pgvstore"):
            store.add_texts(["bread"], ids=["x"])
        with pytest.raises(SchemaError, match="newer"):
            store.upgrade_schema()
    finally:
        store.close()
    assert _frozen(conn, new_schema, "plain") == before


def test_a_newer_registry_is_refused_and_left_alone(
    new_schema: str, dsn: str, conn: psycopg.Connection
) -> None:
    fresh(dsn, new_schema, "plain").close()
    conn.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            sql.Identifier(new_schema, REGISTRY_TABLE),
            sql.Literal(f"pgvstore registry {REGISTRY_VERSION + 1}"),
        )
    )
    before = _frozen(conn, new_schema, "plain")
    store = open_store(dsn, new_schema, "plain")
    other = PGVStore(WordEmbeddings(), connection=dsn, collection="another", schema=new_schema)
    try:
        with pytest.raises(SchemaError, match=f"registry .* version {REGISTRY_VERSION + 1}"):
            store.similarity_search("bread", k=2)
        with pytest.raises(SchemaError, match="newer"):
            store.add_texts(["bread"], ids=["x"])
        with pytest.raises(SchemaError, match="newer"):
            other.add_texts(["bread"], ids=["x"])  # nor is a new collection registered in it
    finally:
        store.close()
        other.close()
    assert _frozen(conn, new_schema, "plain") == before
    assert not conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        (sql.Identifier(new_schema, "another").as_string(None),),
    ).fetchone()[0]  # type: ignore[index]


async def test_a_collection_from_before_bounded_full_text_needs_upgrade_schema(
    make_old: Callable[..., str], new_schema: str, dsn: str, conn: psycopg.Connection
) -> None:
    old_schema = make_old("plain")
    # what releases before the BM25 statistics and the 100,000-character bound made:
    # no statistics table, length column or triggers, and full text over all the content
    table = Table(old_schema, "plain")
    with conn.transaction():
        for frag in drop_bm25(table):
            conn.execute(frag.sql, frag.params)
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ALTER COLUMN tsv SET EXPRESSION AS"
                " (to_tsvector('english'::regconfig, content))"
            ).format(table.qualname)
        )
    old, new = open_store(dsn, old_schema, "plain"), fresh(dsn, new_schema, "plain")
    try:
        assert old.similarity_search_with_score("bread oven", k=5) == (
            new.similarity_search_with_score("bread oven", k=5)
        )
        with pytest.raises(SchemaError, match=r"PGVStore\.upgrade_schema\(\)"):
            old.add_texts(["bread"], ids=["x"])
        assert old.count() == len(DOCS) - 2
        # the refused transaction upgraded nothing, the registry's columns neither
        assert registry(conn, old_schema, "plain")[0] is None
        assert registry(conn, old_schema, "plain")[6] == 1
        done = await old.aupgrade_schema()
        assert done[:4] == [
            "registry: multi_tenant and distribution columns",
            "registry: typed_columns column",
            "registry: existing_table column",
            f"registry version 1 -> {REGISTRY_VERSION}",
        ], done
        assert any("bounded" in step for step in done), done
        assert any("BM25" in step for step in done), done
        assert done[-1] == f"schema version 1 -> {SCHEMA_VERSION}"
        assert old.upgrade_schema() == []  # idempotent
        writes(old)
        writes(new)
        assert results(old, "plain") == results(new, "plain")
        assert statistics(conn, old_schema, "plain") == statistics(conn, new_schema, "plain")
    finally:
        await old.aclose()
        new.close()
    assert shape(conn, old_schema, "plain") == shape(conn, new_schema, "plain")


def test_upgrade_schema_of_a_missing_collection_is_a_schema_error(
    new_schema: str, dsn: str
) -> None:
    store = open_store(dsn, new_schema, "plain")
    try:
        with pytest.raises(SchemaError, match="does not exist"):
            store.upgrade_schema()
    finally:
        store.close()
