"""Existing tables against a real PostgreSQL: adoption, the in-place backfill, the
application's own writes picked up, and what adoption refuses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import (
    Column,
    ConfigError,
    ExistingTable,
    InputError,
    PGVStore,
    SchemaError,
)
from tests.fix_store import StoreFactory

DIM = 16
PRODUCTS = ExistingTable(id="sku", content="description")
DECLARED = {"price": Column("numeric"), "stock": Column("integer", nullable=True)}


def make_products(admin: psycopg.Connection, name: str, rows: int = 50) -> None:
    """The application's table, as it was before the store came."""
    admin.execute(
        sql.SQL(
            "CREATE TABLE {} (sku text PRIMARY KEY, description text, price numeric NOT NULL,"
            " stock integer, note text)"
        ).format(sql.Identifier(name))
    )
    admin.execute(
        sql.SQL(
            "INSERT INTO {} SELECT 'p' || lpad(i::text, 3, '0'), 'product number ' || i,"
            " i, CASE WHEN i %% 5 = 0 THEN NULL ELSE i * 2 END, 'keep ' || i"
            " FROM generate_series(1, %s) AS i"
        ).format(sql.Identifier(name)),
        (rows,),
    )


def user_columns(admin: psycopg.Connection, name: str) -> list[tuple[Any, ...]]:
    return admin.execute(
        sql.SQL("SELECT sku, description, price, stock, note FROM {} ORDER BY sku").format(
            sql.Identifier(name)
        )
    ).fetchall()


def column_names(admin: psycopg.Connection, name: str) -> list[str]:
    rows = admin.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (name,),
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def products(admin: psycopg.Connection, collection_name: str) -> str:
    make_products(admin, collection_name)
    return collection_name


def open_products(make_store: StoreFactory, **kwargs: Any) -> PGVStore:
    kwargs.setdefault("columns", DECLARED)
    return make_store(DIM, existing_table=PRODUCTS, dimensions=DIM, **kwargs)


def test_dry_run_reports_and_changes_nothing(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    before = column_names(admin, products)
    store = open_products(make_store)
    report = store.adopt(
        add_embedding_column=True, add_metadata_column=True, track_changes=True, dry_run=True
    )
    assert report.dry_run
    assert [s.name for s in report.steps] == [
        "embedding column",
        "metadata column",
        "content-hash column",
    ]
    assert "ADD COLUMN" in report.steps[0].statement
    assert any("ANN index" in left for left in report.left)
    assert "would make 3 change(s)" in str(report)
    assert column_names(admin, products) == before
    with pytest.raises(SchemaError, match="not adopted yet"):
        store.similarity_search("product number 1")
    with pytest.raises(SchemaError, match="not adopted yet"):
        store.add_texts(["x"], metadatas=[{"price": 1}])


def test_adopt_backfill_search_and_the_applications_writes(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    before = user_columns(admin, products)
    store = open_products(make_store)
    report = store.adopt(
        add_embedding_column=True,
        add_metadata_column=True,
        track_changes=True,
        create_indexes=True,
    )
    assert not report.dry_run
    assert [s.name for s in report.steps] == [
        "embedding column",
        "metadata column",
        "content-hash column",
        "indexes",
    ]
    # never drops, renames or rewrites a user column
    assert column_names(admin, products)[:5] == ["sku", "description", "price", "stock", "note"]
    assert user_columns(admin, products) == before
    assert store.count_pending() == 50
    assert store.similarity_search("product number 7") == []  # nothing embedded yet

    seen: list[tuple[str, int, int]] = []
    done = store.embed_pending(batch_size=7, progress=lambda *a: seen.append(a))
    assert (done.embedded, done.changed_meanwhile, done.batches, done.remaining) == (50, 0, 8, 0)
    assert seen[0] == ("embedding", 0, 50) and seen[-1] == ("embedding", 50, 50)
    assert user_columns(admin, products) == before

    [(doc, distance)] = store.similarity_search_with_score("product number 7", k=1)
    assert doc.id == "p007" and doc.page_content == "product number 7"
    assert distance == pytest.approx(0.0, abs=1e-6)
    assert doc.metadata == {"price": Decimal(7), "stock": 14}
    # a declared column is filtered as a column; a NULL is left out of the metadata
    cheap = store.similarity_search("product number 7", k=50, filter={"price": {"$lt": 6}})
    assert sorted(str(d.id) for d in cheap) == ["p001", "p002", "p003", "p004", "p005"]
    assert [d.metadata for d in cheap if d.id == "p005"] == [{"price": Decimal(5)}]
    assert store.get_by_ids(["p010"])[0].metadata == {"price": Decimal(10)}

    # the application writes with plain SQL: a changed description, a new row, and a
    # change that does not touch the description (not re-embedded)
    t = sql.Identifier(products)
    admin.execute(
        sql.SQL("UPDATE {} SET description = 'a red bicycle' WHERE sku = 'p003'").format(t)
    )
    admin.execute(
        sql.SQL("UPDATE {} SET price = price + 1, note = 'x' WHERE sku = 'p004'").format(t)
    )
    admin.execute(sql.SQL("INSERT INTO {} VALUES ('p999', 'a blue kettle', 3, 1, '')").format(t))
    assert store.count_pending() == 2
    again = store.embed_pending()
    assert (again.embedded, again.remaining) == (2, 0)
    assert store.similarity_search("a red bicycle", k=1)[0].id == "p003"
    assert store.similarity_search("a blue kettle", k=1)[0].id == "p999"
    assert store.embed_pending().embedded == 0

    # the store's own writes go into the same table, with their content recorded; a load
    # never builds the ANN index of an adopted table (create_index() does)
    store.add_texts(["a green lamp"], metadatas=[{"price": 12, "colour": "green"}], ids=["s1"])
    assert store.count_pending() == 0
    assert [i.kind for i in store.index_status() if i.kind in ("hnsw", "ivfflat")] == []
    [lamp] = store.get_by_ids(["s1"])
    assert lamp.metadata == {"price": Decimal(12), "colour": "green"}
    store.delete(["s1"])
    assert store.get_by_ids(["s1"]) == []


def test_a_row_changed_while_its_batch_is_embedded_stays_pending(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    class ChangesARow(DeterministicFakeEmbedding):
        """The application updates p002 while the batch holding it is being embedded."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            if "product number 2" in texts:
                admin.execute(
                    sql.SQL("UPDATE {} SET description = 'changed' WHERE sku = 'p002'").format(
                        sql.Identifier(products)
                    )
                )
            return super().embed_documents(texts)

    store = make_store(
        ChangesARow(size=DIM), existing_table=PRODUCTS, dimensions=DIM, columns=DECLARED
    )
    store.adopt(add_embedding_column=True, add_metadata_column=True, track_changes=True)
    first = store.embed_pending(batch_size=10)
    assert (first.embedded, first.changed_meanwhile, first.remaining) == (49, 1, 1)
    second = store.embed_pending()
    assert (second.embedded, second.remaining) == (1, 0)
    [(doc, distance)] = store.similarity_search_with_score("changed", k=1)
    assert doc.id == "p002" and distance == pytest.approx(0.0, abs=1e-6)


def test_without_track_changes_only_missing_embeddings_are_pending(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    store = open_products(make_store)
    report = store.adopt(add_embedding_column=True, add_metadata_column=True)
    assert any("track_changes" in left for left in report.left)
    assert store.embed_pending(batch_size=100).embedded == 50
    admin.execute(
        sql.SQL("UPDATE {} SET description = 'other' WHERE sku = 'p001'").format(
            sql.Identifier(products)
        )
    )
    assert store.count_pending() == 0
    # adopting again with track_changes adds the record; rows without one are pending once
    again = store.adopt(track_changes=True)
    assert [s.name for s in again.steps] == ["content-hash column"]
    assert store.count_pending() == 50


def test_keyword_and_hybrid_search_after_adopting_full_text(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    store = open_products(make_store)
    report = store.adopt(add_embedding_column=True, add_metadata_column=True, full_text=True)
    [step] = [s for s in report.steps if s.name == "full text"]
    assert step.rewrites_table
    store.embed_pending()
    admin.execute(
        sql.SQL("UPDATE {} SET description = 'zebra crossing sign' WHERE sku = 'p020'").format(
            sql.Identifier(products)
        )
    )
    # keyword search sees the application's write at once (the statistics triggers)
    assert [d.id for d in store.keyword_search("zebra", k=3)] == ["p020"]
    assert store.hybrid_search("zebra crossing", k=3)[0].id in {"p020"}


def test_an_existing_table_is_forgotten_not_dropped(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    store = open_products(make_store)
    store.adopt(add_embedding_column=True, add_metadata_column=True, full_text=True)
    store.embed_pending()
    before = user_columns(admin, products)
    store.delete_collection()
    assert user_columns(admin, products) == before
    # the statistics triggers went with it: the application's writes still work
    admin.execute(
        sql.SQL("INSERT INTO {} (sku, description, price) VALUES ('n1', 'new', 1)").format(
            sql.Identifier(products)
        )
    )
    with pytest.raises(SchemaError, match="not adopted yet"):
        open_products(make_store).similarity_search("new")


def test_reopening_checks_the_adoption(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    open_products(make_store).adopt(add_embedding_column=True, add_metadata_column=True)
    with pytest.raises(SchemaError, match="adopted with columns"):
        make_store(DIM, dimensions=DIM, columns=DECLARED).similarity_search("x")
    with pytest.raises(SchemaError, match="names"):
        make_store(
            DIM,
            existing_table=ExistingTable(id="sku", content="note"),
            dimensions=DIM,
            columns=DECLARED,
        ).similarity_search("x")
    with pytest.raises(SchemaError, match="created with columns"):
        open_products(make_store, columns={"price": Column("numeric")}).similarity_search("x")


@pytest.mark.parametrize(
    ("ddl", "options", "message"),
    [
        (
            "sku numeric PRIMARY KEY, description text, price numeric NOT NULL",
            {},
            "must be text, varchar",
        ),
        ("sku text, description text, price numeric NOT NULL", {}, "no unique index"),
        ("sku text PRIMARY KEY, description integer, price numeric NOT NULL", {}, "must be text"),
        ("sku text PRIMARY KEY, description text, price text NOT NULL", {}, "declares it numeric"),
        ("sku text PRIMARY KEY, description text, price numeric", {}, "nullable=True"),
        (
            "sku text PRIMARY KEY, description text, price numeric NOT NULL",
            {"add_metadata_column": True},
            "add_embedding_column=True",
        ),
        (
            "sku text PRIMARY KEY, description text, price numeric NOT NULL, embedding vector(8)",
            {"add_metadata_column": True},
            "8 dimensions",
        ),
        (
            "sku text PRIMARY KEY, description text, price numeric NOT NULL, embedding real[]",
            {"add_metadata_column": True},
            "vector\\(n\\)",
        ),
        (
            "sku text PRIMARY KEY, description text, price numeric NOT NULL",
            {"add_embedding_column": True},
            "add_metadata_column=True",
        ),
        (
            "sku text PRIMARY KEY, description text, price numeric NOT NULL, metadata text",
            {"add_embedding_column": True},
            "must be jsonb",
        ),
    ],
)
def test_adoption_refuses_a_table_it_cannot_use(
    make_store: StoreFactory,
    admin: psycopg.Connection,
    collection_name: str,
    ddl: str,
    options: dict[str, bool],
    message: str,
) -> None:
    admin.execute(sql.SQL("CREATE TABLE {} (" + ddl + ")").format(sql.Identifier(collection_name)))
    before = column_names(admin, collection_name)
    store = make_store(
        DIM, existing_table=PRODUCTS, dimensions=DIM, columns={"price": Column("numeric")}
    )
    with pytest.raises(SchemaError, match=message):
        store.adopt(**options)
    assert column_names(admin, collection_name) == before  # nothing was changed


def test_adoption_arguments_are_checked(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    with pytest.raises(ConfigError, match="ExistingTable"):
        make_store(DIM, existing_table={"id": "sku"})
    with pytest.raises(ConfigError, match="multi-tenant"):
        make_store(DIM, existing_table=PRODUCTS, multi_tenant=True)
    with pytest.raises(ConfigError, match="different columns"):
        make_store(DIM, existing_table=ExistingTable(id="sku", content="sku"))
    with pytest.raises(ConfigError, match="typed field"):
        make_store(DIM, existing_table=PRODUCTS, columns={"sku": Column("text")})
    with pytest.raises(ConfigError, match="existing tables"):
        make_store(DIM).embed_pending()
    store = open_products(make_store)
    with pytest.raises(InputError, match="add_embedding_column"):
        store.adopt(add_embedding_column="yes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="dimensions"):
        make_store(DIM, existing_table=PRODUCTS, columns=DECLARED).adopt(
            add_embedding_column=True, add_metadata_column=True
        )
    with pytest.raises(InputError, match="batch_size"):
        store.embed_pending(batch_size=0)


async def test_async_twins(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    store = open_products(make_store)
    report = await store.aadopt(
        add_embedding_column=True, add_metadata_column=True, track_changes=True
    )
    assert len(report.steps) == 3
    assert await store.acount_pending() == 50
    done = await store.aembed_pending(batch_size=20, limit=30)
    assert (done.embedded, done.batches, done.remaining) == (30, 2, 20)
    done = await store.aembed_pending()
    assert (done.embedded, done.remaining) == (20, 0)
    [doc] = await store.asimilarity_search("product number 42", k=1)
    assert doc.id == "p042"


@pytest.mark.parametrize(
    ("key", "ids", "bad"),
    [
        ("bigint", ["1001", "1002"], "x1"),
        ("integer", ["7", "-3"], "99999999999"),
        (
            "uuid",
            ["8c7d3a2e-6f0b-4c1e-9a55-0f1e2d3c4b5a", "00000000-0000-0000-0000-000000000001"],
            "7",
        ),
    ],
)
def test_a_table_keyed_by_integers_or_uuids(
    make_store: StoreFactory,
    admin: psycopg.Connection,
    collection_name: str,
    key: str,
    ids: list[str],
    bad: str,
) -> None:
    t = sql.Identifier(collection_name)
    admin.execute(sql.SQL("CREATE TABLE {} (pk " + key + " PRIMARY KEY, body text)").format(t))
    admin.execute(
        sql.SQL("INSERT INTO {} VALUES (%s, 'first row'), (%s, 'second row')").format(t), ids
    )
    store = make_store(DIM, existing_table=ExistingTable(id="pk", content="body"), dimensions=DIM)
    store.adopt(
        add_embedding_column=True, add_metadata_column=True, track_changes=True, full_text=True
    )
    assert store.embed_pending(batch_size=1).embedded == 2
    [(doc, _)] = store.similarity_search_with_score("second row", k=1)
    assert doc.id == ids[1] and isinstance(doc.id, str)
    assert [
        d.id for d in store.similarity_search("second row", k=2, filter={"x": {"$exists": False}})
    ] == [ids[1], ids[0]]
    assert store.keyword_search("second", k=2)[0].id == ids[1]
    assert store.hybrid_search("second row", k=1)[0].id == ids[1]
    assert [d.id for d in store.get_by_ids([ids[0], bad])] == [ids[0]]
    assert store.max_marginal_relevance_search("first row", k=1)[0].id == ids[0]
    with pytest.raises(InputError, match=f"is not a {key}"):
        store.add_texts(["third"], ids=[bad])
    with pytest.raises(InputError, match="give ids="):
        store.add_texts(["third"]) if key != "uuid" else store.add_texts(["third"], ids=["no"])
    assert store.count_pending() == 0
    store.delete([ids[0], bad])
    assert store.get_by_ids(ids) == [store.get_by_ids([ids[1]])[0]]


def test_sqlalchemy_table_of_an_adopted_table(
    make_store: StoreFactory, admin: psycopg.Connection, dsn: str, collection_name: str
) -> None:
    sa = pytest.importorskip("sqlalchemy", reason="needs the 'sqlalchemy' extra")
    t = sql.Identifier(collection_name)
    admin.execute(sql.SQL("CREATE TABLE {} (pk bigint PRIMARY KEY, body text)").format(t))
    admin.execute(sql.SQL("INSERT INTO {} VALUES (1, 'one'), (2, 'two'), (3, 'three')").format(t))
    store = make_store(DIM, existing_table=ExistingTable(id="pk", content="body"), dimensions=DIM)
    store.adopt(add_embedding_column=True, add_metadata_column=True)
    store.embed_pending()
    table = store.sqlalchemy_table(sa.MetaData())
    assert [c.name for c in table.primary_key] == ["pk"]
    assert isinstance(table.c.pk.type, sa.BigInteger)
    engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        query = DeterministicFakeEmbedding(size=DIM).embed_query("two")
        statement = (
            sa.select(table.c.pk, table.c.body)
            .order_by(table.c.embedding.cosine_distance(query))
            .limit(1)
        )
        with engine.connect() as conn:
            assert conn.execute(statement).all() == [(2, "two")]
    finally:
        engine.dispose()


def test_a_large_write_into_an_adopted_table_neither_indexes_nor_copies_around_it(
    make_store: StoreFactory, admin: psycopg.Connection, products: str
) -> None:
    """A write of at least `bulk_rebuild_rows` rows into the store's own empty table goes
    straight in and builds the ANN index; into an adopted table it is an ordinary upsert."""
    store = open_products(make_store, bulk_rebuild_rows=5)
    store.adopt(add_embedding_column=True, add_metadata_column=True, track_changes=True)
    admin.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(products)))
    texts = [f"item {i}" for i in range(12)]
    store.add_texts(
        texts, metadatas=[{"price": i} for i in range(12)], ids=[f"x{i}" for i in range(12)]
    )
    assert [i.kind for i in store.index_status() if i.kind in ("hnsw", "ivfflat")] == []
    assert store.count_pending() == 0 and store.count() == 12
    assert store.similarity_search("item 3", k=1)[0].id == "x3"
