"""Importers from langchain-postgres: sources written by the real package, every row compared.

`PGVector` collections live in a database of their own on the test server
(another DSN); `PGVectorStore` tables in the store's own database (the same
one). langchain-postgres runs in its own virtualenv (see tests/importing/writer.py).
"""

from __future__ import annotations

import socket
import threading
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import (
    ConfigError,
    DatabaseUnavailableError,
    DimensionError,
    InputError,
    PGVStore,
    SchemaError,
    SourceNotFoundError,
)
from langchain_pgvstore.importers import (
    ImportReport,
    import_from_pgvector,
    import_from_pgvectorstore,
)
from tests.importing.sources import (
    assert_rows_equal,
    brute_force,
    database,
    row_versions,
    rows,
    stored,
    vectors,
    write,
)

DIM = 16
N = 300
K = 10
QUERIES = vectors(4, DIM, seed=99)


@pytest.fixture(scope="module")
def v1(dsn: str):
    """A database where langchain-postgres' PGVector wrote two collections."""
    with database(dsn) as conninfo:
        docs = rows(N, DIM, seed=1)
        job = {
            "kind": "pgvector",
            "conninfo": conninfo,
            "distance": "cosine",
            "queries": QUERIES.astype(np.float64).tolist(),
            "k": K,
        }
        result = write({**job, **docs, "collection": "docs"})
        other = rows(40, DIM, seed=2)
        write({**job, **other, "collection": "other"})
        yield {"conninfo": conninfo, "docs": docs, "result": result}


def make_store(dsn: str, name: str, **kwargs: Any) -> PGVStore:
    kwargs.setdefault("index", None)  # exact search: top-k must equal brute force
    return PGVStore(DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=name, **kwargs)


def top_ids(store: PGVStore, query: np.ndarray, k: int = K) -> list[str]:
    return [d.id for d, _ in store.similarity_search_with_score_by_vector(query.tolist(), k=k)]


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_pgvector_collection_is_copied_row_for_row(dsn, v1, collection_name, distance) -> None:
    store = make_store(dsn, collection_name, distance=distance)
    seen: list[tuple[int, int]] = []
    report = import_from_pgvector(
        store,
        "docs",
        source=v1["conninfo"],
        batch_size=64,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert isinstance(report, ImportReport)
    assert (report.total, report.read, report.written, report.skipped) == (N, N, N, 0)
    assert not report.resumed and report.elapsed > 0
    assert "PGVector collection 'docs'" in report.source
    assert seen == [(min(n, N), N) for n in range(64, N + 64, 64)]

    docs = v1["docs"]
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    assert_rows_equal(
        stored(dsn, "public", collection_name), docs["ids"], docs["texts"], docs["metadatas"], vecs
    )
    # what PGVector itself reads back is what the store holds
    source_rows = v1["result"]["rows"]
    for doc in store.get_by_ids(docs["ids"]):
        assert source_rows[doc.id] == {"text": doc.page_content, "metadata": doc.metadata}
    for qi, query in enumerate(QUERIES):
        expected = [docs["ids"][i] for i in brute_force(vecs, query, distance, K)]
        assert top_ids(store, query) == expected
        if distance == "cosine":  # the source was searched by cosine distance
            source_hits = v1["result"]["searches"][qi]
            assert [h[0] for h in source_hits] == expected
            ours = store.similarity_search_with_score_by_vector(query.tolist(), k=K)
            assert np.allclose([s for _, s in ours], [h[1] for h in source_hits], atol=1e-5)
    store.close()


def test_pgvector_from_the_stores_own_database(dsn, collection_name) -> None:
    # source=None reads the store's database: PGVector's tables beside the new one
    docs = rows(30, DIM, seed=3)
    name = f"same_db_{uuid.uuid4().hex[:8]}"
    write(
        {
            "kind": "pgvector",
            "conninfo": dsn,
            "distance": "l2",
            "queries": [],
            "k": K,
            "collection": name,
            **docs,
        }
    )
    store = make_store(dsn, collection_name, distance="l2")
    report = import_from_pgvector(store, name)
    assert report.read == 30
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    assert_rows_equal(
        stored(dsn, "public", collection_name), docs["ids"], docs["texts"], docs["metadatas"], vecs
    )
    store.close()


@pytest.mark.parametrize("use_jsonb", [True, False], ids=["jsonb", "json"])
def test_langchain_community_layout_with_custom_ids(dsn, collection_name, use_jsonb) -> None:
    """langchain-community's PGVector: a `uuid` key, the caller's id in `custom_id`."""
    docs = rows(120, DIM, seed=4)
    with database(dsn) as conninfo:
        result = write(
            {
                "kind": "community",
                "conninfo": conninfo,
                "distance": "cosine",
                "use_jsonb": use_jsonb,
                "queries": QUERIES.astype(np.float64).tolist(),
                "k": K,
                "collection": "legacy",
                **docs,
            }
        )
        with psycopg.connect(conninfo) as conn:
            kind = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'langchain_pg_embedding'::regclass AND attname = 'cmetadata'"
            ).fetchone()[0]
            assert kind == ("jsonb" if use_jsonb else "json")
            # a row added without an id by other means keeps its uuid as id
            conn.execute(
                "UPDATE langchain_pg_embedding SET custom_id = NULL WHERE custom_id = %s",
                (docs["ids"][0],),
            )
            row_uuid = conn.execute(
                "SELECT uuid::text FROM langchain_pg_embedding WHERE custom_id IS NULL"
            ).fetchone()[0]
        store = make_store(dsn, collection_name)
        report = import_from_pgvector(store, "legacy", source=conninfo, batch_size=50)
    assert report.read == 120
    ids = [row_uuid, *docs["ids"][1:]]
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    assert_rows_equal(
        stored(dsn, "public", collection_name), ids, docs["texts"], docs["metadatas"], vecs
    )
    for qi, query in enumerate(QUERIES):
        expected = brute_force(vecs, query, "cosine", K)
        assert top_ids(store, query) == [ids[i] for i in expected]
        assert [h[0] for h in result["searches"][qi]] == [docs["texts"][i] for i in expected]
    store.close()


# -- PGVectorStore (v2) ----------------------------------------------------------------

COLUMNS = [
    {"name": "year", "data_type": "INTEGER", "nullable": True},
    {"name": "price", "data_type": "NUMERIC", "nullable": True},
    {"name": "published", "data_type": "DATE", "nullable": True},
    {"name": "seen_at", "data_type": "TIMESTAMPTZ", "nullable": True},
    {"name": "tags", "data_type": "TEXT[]", "nullable": True},
    {"name": "active", "data_type": "BOOLEAN", "nullable": True},
    {"name": "ref", "data_type": "UUID", "nullable": True},
    {"name": "details", "data_type": "JSONB", "nullable": True},
]


def v2_metadata(i: int) -> dict[str, Any]:
    """JSON keys plus values for the metadata columns; some rows leave columns out."""
    meta: dict[str, Any] = {"n": i, "note": ["ü", {"deep": [i, None]}], "topic": "t" + str(i % 3)}
    if i % 4 != 3:
        meta |= {
            "year": 1990 + i % 30,
            "price": round(i * 0.25, 2),
            "published": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "seen_at": f"2024-05-0{1 + i % 9}T1{i % 10}:30:00.123456+00:00",
            "tags": ["a", "b"][: i % 3],
            "active": i % 2 == 0,
            "ref": str(uuid.UUID(int=i)),
            "details": {"k": i, "nested": {"ok": True}},
        }
    return meta


def write_v2(dsn: str, table: str, n: int, **job: Any) -> dict[str, Any]:
    docs = rows(n, DIM, seed=5)
    docs["ids"] = [str(uuid.UUID(int=10_000 + i)) for i in range(n)]
    docs["metadatas"] = [v2_metadata(i) for i in range(n)]
    result = write(
        {
            "kind": "pgvectorstore",
            "conninfo": dsn,
            "distance": "cosine",
            "table": table,
            "schema": "public",
            "metadata_columns": COLUMNS,
            "queries": QUERIES.astype(np.float64).tolist(),
            "k": K,
            **docs,
            **job,
        }
    )
    return {"docs": docs, "result": result}


@pytest.fixture
def v2_table(dsn: str):
    names: list[str] = []

    def make(n: int = 150, **job: Any) -> tuple[str, dict[str, Any]]:
        name = f"lcv2_{uuid.uuid4().hex[:10]}"
        names.append(name)
        return name, write_v2(dsn, name, n, **job)

    yield make
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def test_pgvectorstore_table_with_metadata_columns(dsn, collection_name, v2_table) -> None:
    table, src = v2_table()
    store = make_store(dsn, collection_name)
    report = import_from_pgvectorstore(store, table, batch_size=40)
    assert (report.total, report.read) == (150, 150)
    docs, source_rows = src["docs"], src["result"]["rows"]
    # the metadata PGVectorStore returns (columns folded in, None for NULL) is what we hold
    expected_meta = [source_rows[id_]["metadata"] for id_ in docs["ids"]]
    assert expected_meta[3]["year"] is None and expected_meta[0]["year"] == 1990
    assert expected_meta[0]["seen_at"] == "2024-05-01T10:30:00.123456+00:00"
    assert expected_meta[0]["details"] == {"k": 0, "nested": {"ok": True}}
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    assert_rows_equal(
        stored(dsn, "public", collection_name), docs["ids"], docs["texts"], expected_meta, vecs
    )
    for qi, query in enumerate(QUERIES):
        expected = [docs["ids"][i] for i in brute_force(vecs, query, "cosine", K)]
        assert top_ids(store, query) == expected
        assert [h[0] for h in src["result"]["searches"][qi]] == expected
    # folded columns are ordinary metadata now: filters apply to them
    hits = store.similarity_search_by_vector(QUERIES[0].tolist(), k=200, filter={"year": 1995})
    assert sorted(d.id for d in hits) == sorted(
        id_ for id_, m in zip(docs["ids"], expected_meta, strict=True) if m["year"] == 1995
    )
    store.close()


def test_pgvectorstore_without_json_column_text_ids_and_tsvector(
    dsn, collection_name, v2_table
) -> None:
    table, src = v2_table(
        60,
        store_metadata=False,
        id_type="TEXT",
        hybrid=True,
        metadata_columns=COLUMNS[:2],
        queries=[],
    )
    store = make_store(dsn, collection_name)
    import_from_pgvectorstore(store, table)
    docs = src["docs"]
    # without a JSON column only the column values survive, as PGVectorStore reads them back
    expected = [src["result"]["rows"][id_]["metadata"] for id_ in docs["ids"]]
    assert set(expected[0]) == {"year", "price"}
    got = stored(dsn, "public", collection_name)
    assert [got[id_][1] for id_ in docs["ids"]] == expected
    store.close()


def test_pgvectorstore_metadata_column_choice(dsn, collection_name, v2_table) -> None:
    table, src = v2_table(20, queries=[])
    store = make_store(dsn, collection_name)
    import_from_pgvectorstore(store, table, metadata_columns=["year"], metadata_json_column=None)
    got = stored(dsn, "public", collection_name)
    assert all(set(meta) == {"year"} for _, meta, _ in got.values())
    store.delete_collection()
    import_from_pgvectorstore(store, table, ignore_columns=["details", "tags"])
    got = stored(dsn, "public", collection_name)
    first = got[src["docs"]["ids"][0]][1]
    assert "details" not in first and "tags" not in first and first["topic"] == "t0"
    store.close()


def test_halfvec_embeddings_and_null_metadata(dsn, collection_name) -> None:
    """A table of PGVectorStore's shape made by hand: halfvec vectors, NULL and `null` JSON."""
    table = f"hv_{uuid.uuid4().hex[:8]}"
    values = np.array(
        [[0.5, -1.25, 3.0, 0.1], [1e-3, 2.0, -0.75, 65504.0], [0, 0, 0, 1]], dtype=np.float16
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (langchain_id text PRIMARY KEY, content text NOT NULL, embedding halfvec(4) NOT NULL, langchain_metadata json)"
            ).format(sql.Identifier(table))
        )
        for i, (vec, meta) in enumerate(zip(values, [None, "null", '{"a": 1}'], strict=True)):
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s::real[]::halfvec, %s::json)").format(
                    sql.Identifier(table)
                ),
                (f"h{i}", f"text {i}", [float(x) for x in vec], meta),
            )
    try:
        store = PGVStore(
            DeterministicFakeEmbedding(size=4),
            connection=dsn,
            collection=collection_name,
            index=None,
        )
        import_from_pgvectorstore(store, table)
        got = stored(dsn, "public", collection_name)
        assert [got[f"h{i}"][1] for i in range(3)] == [{}, {}, {"a": 1}]
        for i in range(3):
            assert np.array_equal(got[f"h{i}"][2], values[i].astype(np.float32))
        store.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


# -- errors --------------------------------------------------------------------------


def test_missing_sources_are_config_errors(dsn, v1, collection_name) -> None:
    store = make_store(dsn, collection_name)
    with pytest.raises(
        SourceNotFoundError, match=r"no PGVector collection named 'nope'.*'docs', 'other'"
    ):
        import_from_pgvector(store, "nope", source=v1["conninfo"])
    with pytest.raises(SourceNotFoundError, match=r"no table elsewhere\.langchain_pg_embedding"):
        import_from_pgvector(store, "docs", source=v1["conninfo"], schema="elsewhere")
    with pytest.raises(SourceNotFoundError, match=r"no table public\.no_such_table"):
        import_from_pgvectorstore(store, "no_such_table")
    # a source database that is down: the password stays out of the message
    closed = f"postgresql://importer:s3cret@127.0.0.1:{_free_port()}/app"
    with pytest.raises(DatabaseUnavailableError, match="cannot connect to the source") as e:
        import_from_pgvector(store, "docs", source=closed)
    assert "s3cret" not in str(e.value)
    with pytest.raises(
        ConfigError, match=r"batch_size must be an integer in \[1, 2147483647\], got 0"
    ):
        import_from_pgvector(store, "docs", source=v1["conninfo"], batch_size=0)
    with pytest.raises(ConfigError, match="store must be a PGVStore"):
        import_from_pgvector(object(), "docs")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="progress must be a bool or a callable"):
        import_from_pgvector(store, "docs", source=v1["conninfo"], progress="yes")  # type: ignore[arg-type]
    assert not _exists(dsn, collection_name)  # refused before anything was written
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()[0]


def test_tables_of_the_wrong_shape_are_schema_errors(dsn, collection_name, v2_table) -> None:
    store = make_store(dsn, collection_name)
    schema = f"odd_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (x int)").format(
                sql.Identifier(schema, "langchain_pg_embedding")
            )
        )
        conn.execute(
            sql.SQL("CREATE TABLE {} (langchain_id uuid PRIMARY KEY, content text)").format(
                sql.Identifier(schema, "no_vec")
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (langchain_id text, content text, embedding vector(3))"
            ).format(sql.Identifier(schema, "no_key"))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (langchain_id text PRIMARY KEY, content text, embedding real[])"
            ).format(sql.Identifier(schema, "array_vec"))
        )
    try:
        with pytest.raises(SchemaError, match="neither an 'id' column"):
            import_from_pgvector(store, "docs", schema=schema)
        with pytest.raises(SchemaError, match="no embedding column 'embedding'"):
            import_from_pgvectorstore(store, "no_vec", schema=schema)
        with pytest.raises(SchemaError, match="no unique index"):
            import_from_pgvectorstore(store, "no_key", schema=schema)
        with pytest.raises(SchemaError, match=r"is real\[\], expected a pgvector vector"):
            import_from_pgvectorstore(store, "array_vec", schema=schema)
        table, _ = v2_table(5, queries=[])
        with pytest.raises(ConfigError, match="has no column 'colour'"):
            import_from_pgvectorstore(store, table, metadata_columns=["year", "colour"])
        other = PGVStore(
            DeterministicFakeEmbedding(size=8),
            connection=dsn,
            collection=collection_name,
            dimensions=8,
        )
        with pytest.raises(ConfigError, match=r"vector\(16\) but the store has 8 dimensions"):
            import_from_pgvectorstore(other, table)
        other.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    store.close()


@pytest.fixture(scope="module")
def v1_source(dsn):
    """A PGVector collection whose rows the tests break, and mend from a saved copy."""
    with database(dsn) as conninfo:
        docs = rows(100, DIM, seed=6)
        write(
            {
                "kind": "pgvector",
                "conninfo": conninfo,
                "distance": "cosine",
                "queries": [],
                "k": K,
                "collection": "c",
                **docs,
            }
        )
        _sql(conninfo, "CREATE TABLE saved AS TABLE langchain_pg_embedding")
        yield conninfo, docs


@pytest.fixture
def v1_broken(v1_source):
    """The collection above; whatever a test breaks is put back as PGVector wrote it."""
    yield v1_source
    _sql(v1_source[0], "DELETE FROM langchain_pg_embedding")
    _sql(v1_source[0], "INSERT INTO langchain_pg_embedding SELECT * FROM saved")


def _sql(conninfo: str, query: str, *params: Any) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(query, params)


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (
            "UPDATE langchain_pg_embedding SET embedding = NULL WHERE id = %s",
            InputError,
            "source document 'doc-6-00045' has no embedding",
        ),
        (
            "UPDATE langchain_pg_embedding SET embedding = '[1,2,3]' WHERE id = %s",
            DimensionError,
            "source document 'doc-6-00045' has 3 dimensions, expected 16",
        ),
        (
            "UPDATE langchain_pg_embedding SET cmetadata = '[1, 2]' WHERE id = %s",
            InputError,
            "metadata of source document 'doc-6-00045' is a JSON list",
        ),
        (
            "UPDATE langchain_pg_embedding SET cmetadata = '\"text\"' WHERE id = %s",
            InputError,
            "metadata of source document 'doc-6-00045' is a JSON str",
        ),
        ("UPDATE langchain_pg_embedding SET id = '' WHERE id = %s", InputError, "has an empty id"),
        # refused by the store itself; the message still names the source's id
        (
            "UPDATE langchain_pg_embedding SET id = %s || repeat('x', 3000) WHERE id = %s",
            InputError,
            "the store refused source document 'doc-6-00045xxx",
        ),
    ],
    ids=[
        "no-embedding",
        "dimensions",
        "metadata-array",
        "metadata-string",
        "empty-id",
        "id-too-long",
    ],
)
def test_refused_rows_name_their_source_id_and_a_rerun_resumes(
    dsn, v1_broken, collection_name, damage, error, message
) -> None:
    conninfo, docs = v1_broken
    bad = docs["ids"][45]
    params = (bad, bad) if damage.count("%s") == 2 else (bad,)
    _sql(conninfo, damage, *params)
    with psycopg.connect(conninfo) as conn:
        damaged = sorted(r[0] for r in conn.execute("SELECT id FROM langchain_pg_embedding"))
    before = damaged.index(next(i for i in damaged if i not in docs["ids"] or i == bad)) // 20 * 20
    store = make_store(dsn, collection_name)
    with pytest.raises(error, match=message):
        import_from_pgvector(store, "c", source=conninfo, batch_size=20)
    # the batches before the bad row's are in, nothing of its batch
    if before:
        assert sorted(stored(dsn, "public", collection_name)) == damaged[:before]
    else:
        assert not _exists(dsn, collection_name)
    # mend the row (as PGVector wrote it) and run again: the import goes on from its batch
    _sql(conninfo, "DELETE FROM langchain_pg_embedding WHERE id LIKE %s || '%%' OR id = ''", bad)
    _sql(conninfo, "INSERT INTO langchain_pg_embedding SELECT * FROM saved WHERE id = %s", bad)
    seen: list[tuple[int, int]] = []
    report = import_from_pgvector(
        store, "c", source=conninfo, batch_size=20, progress=lambda d, t: seen.append((d, t))
    )
    assert (report.skipped, report.read, report.written) == (before, 100 - before, 100 - before)
    # the count goes on from the rows the first run imported
    assert seen == [(done, 100) for done in range(before + 20, 101, 20)]
    assert report.resumed == (before > 0)
    vecs = np.asarray(docs["vectors"], dtype=np.float32)
    assert_rows_equal(
        stored(dsn, "public", collection_name), docs["ids"], docs["texts"], docs["metadatas"], vecs
    )
    store.close()


def test_a_finished_import_runs_again_as_a_new_pass_that_rewrites_nothing(
    dsn, v1, collection_name
) -> None:
    store = make_store(dsn, collection_name)
    import_from_pgvector(store, "docs", source=v1["conninfo"], batch_size=100)
    before = row_versions(dsn, "public", collection_name)
    again = import_from_pgvector(store, "docs", source=v1["conninfo"], batch_size=100)
    assert (again.skipped, again.read, again.written) == (0, N, 0)
    assert row_versions(dsn, "public", collection_name) == before
    store.close()


def test_a_checkpoint_is_dropped_with_its_collection(dsn, v1_broken, collection_name) -> None:
    conninfo, docs = v1_broken
    bad = docs["ids"][45]
    _sql(conninfo, "UPDATE langchain_pg_embedding SET embedding = NULL WHERE id = %s", bad)
    store = make_store(dsn, collection_name)
    with pytest.raises(InputError):
        import_from_pgvector(store, "c", source=conninfo, batch_size=20)
    _sql(conninfo, "DELETE FROM langchain_pg_embedding WHERE id = %s", bad)
    store.delete_collection()
    report = import_from_pgvector(store, "c", source=conninfo, batch_size=20)
    # the recorded position belonged to the dropped table: everything is read again
    assert (report.skipped, report.read, report.written) == (0, 99, 99)
    assert len(stored(dsn, "public", collection_name)) == 99
    restarted = import_from_pgvector(store, "c", source=conninfo, batch_size=20, restart=True)
    assert (restarted.skipped, restarted.read, restarted.written) == (0, 99, 0)
    store.close()


def test_two_runs_of_one_import_do_not_overlap(dsn, v1, collection_name) -> None:
    store = make_store(dsn, collection_name)
    first_batch_done, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def slow_progress(done: int, total: int) -> None:
        first_batch_done.set()
        release.wait(30)

    def first() -> None:
        outcome["report"] = import_from_pgvector(
            store, "docs", source=v1["conninfo"], batch_size=100, progress=slow_progress
        )

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert first_batch_done.wait(60)
        with pytest.raises(
            ConfigError, match="another run is importing PGVector collection 'docs'"
        ):
            import_from_pgvector(store, "docs", source=v1["conninfo"])
    finally:
        release.set()
        thread.join(60)
    assert outcome["report"].read == N
    store.close()


def test_tenants_of_a_multi_tenant_collection_import_on_their_own(dsn, v1, collection_name) -> None:
    shared = make_store(dsn, collection_name, multi_tenant=True)
    # the unbound store would write no tenant's rows: refused before anything is read
    with pytest.raises(InputError, match="is multi-tenant: use store.for_tenant"):
        import_from_pgvector(shared, "docs", source=v1["conninfo"])
    assert not _exists(dsn, collection_name)
    acme, globex = shared.for_tenant("acme"), shared.for_tenant("globex")
    first = import_from_pgvector(acme, "docs", source=v1["conninfo"], batch_size=100)
    # another tenant's import of the same source has a position of its own
    second = import_from_pgvector(globex, "docs", source=v1["conninfo"], batch_size=100)
    again = import_from_pgvector(acme, "docs", source=v1["conninfo"], batch_size=100)
    assert [(r.skipped, r.read, r.written) for r in (first, second, again)] == [
        (0, N, N),
        (0, N, N),
        (0, N, 0),
    ]
    with psycopg.connect(dsn) as conn:
        counts = conn.execute(
            sql.SQL("SELECT tenant, count(*) FROM {} GROUP BY tenant ORDER BY tenant").format(
                sql.Identifier(collection_name)
            )
        ).fetchall()
        recorded = conn.execute(
            "SELECT tenant, done, finished FROM public.pgvstore_imports"
            " WHERE collection = %s ORDER BY tenant",
            (collection_name,),
        ).fetchall()
    assert counts == [("acme", N), ("globex", N)]
    assert recorded == [("acme", N, True), ("globex", N, True)]
    docs = v1["docs"]
    assert [d.id for d in globex.get_by_ids(docs["ids"][:3])] == docs["ids"][:3]
    shared.close()


def test_tqdm_progress_bar(dsn, v1, collection_name, capsys) -> None:
    store = make_store(dsn, collection_name)
    import_from_pgvector(store, "docs", source=v1["conninfo"], progress=True)
    assert "importing" in capsys.readouterr().err
    store.close()
