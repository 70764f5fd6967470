"""Row-level security for multi-tenant collections: escapes tried with the store and raw SQL.

The collection is provisioned by its owner. Tenants connect through roles that
are neither owner nor superuser (row-level security never applies to those).
Under `row_level_security="role"` each tenant's role is named after the
tenant: nothing it runs, raw SQL included, reads or writes another tenant's
rows. Under `"setting"` the tenant is the session setting `pgvstore.tenant`,
which the store sets per call: it stops a statement that forgets its tenant,
but SQL that sets the setting itself gets through, and the test shows that
limit rather than hide it.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from langchain_pgvstore import PGVStore
from langchain_pgvstore.config import Table
from tests.fix_db import unique_name

DIM = 8
EMB = DeterministicFakeEmbedding(size=DIM)


def _as(dsn: str, role: str) -> str:
    params = conninfo_to_dict(dsn)
    params["user"] = role
    return make_conninfo(**params)


def _grant(conn: psycopg.Connection, role: str, collection: str) -> None:
    table = Table("public", collection)
    stats = table.index_name("bm25")
    for name in (collection, stats):
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                sql.Identifier("public", name), sql.Identifier(role)
            )
        )
    conn.execute(
        sql.SQL("GRANT SELECT ON public.pgvstore_collections TO {}").format(sql.Identifier(role))
    )


@pytest.fixture(scope="module")
def roles(dsn: str) -> Iterator[list[str]]:
    """Login roles (torn down after the module, so after every store that logs in as them)."""
    names = [unique_name("acme"), unique_name("globex"), unique_name("app")]
    with psycopg.connect(dsn, autocommit=True) as c:
        for name in names:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
            c.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(name)))
    yield names
    with psycopg.connect(dsn, autocommit=True) as c:
        for name in names:
            c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _owner_store(make_store, mode: str) -> PGVStore:
    store = make_store(EMB, multi_tenant=True, row_level_security=mode)
    store.for_tenant("seed").add_texts(["seed"], ids=["seed"])  # provisions as the owner
    return store


TRUE = sql.SQL("true")


def _count(
    conn: psycopg.Connection, collection: str, where: sql.Composable = TRUE, params: tuple = ()
) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.Identifier(collection), where)
    return int(conn.execute(query, params).fetchone()[0])  # type: ignore[index]


BY_TENANT = sql.SQL("tenant = %s")


def test_role_policy_holds_against_raw_sql(make_store, dsn, collection_name, roles) -> None:
    acme, globex, _ = roles
    owner = _owner_store(make_store, "role")
    with psycopg.connect(dsn, autocommit=True) as c:
        for role in (acme, globex):
            _grant(c, role, collection_name)
    stores = {
        role: make_store(
            EMB,
            connection=_as(dsn, role),
            multi_tenant=True,
            tenant=role,
            row_level_security="role",
        )  # fmt: skip
        for role in (acme, globex)
    }
    stores[acme].add_texts(["acme apple", "acme pear"], ids=["1", "2"])
    stores[globex].add_texts(["globex apple"], ids=["1"])
    assert {d.page_content for d in stores[acme].similarity_search("apple", k=10)} == {
        "acme apple",
        "acme pear",
    }
    assert [d.page_content for d in stores[globex].keyword_search("apple")] == ["globex apple"]
    # a store bound to another tenant, on acme's login, sees nothing of it and writes nothing
    wrong = make_store(
        EMB, connection=_as(dsn, acme), multi_tenant=True, tenant=globex,
        row_level_security="role",
    )  # fmt: skip
    assert wrong.similarity_search("apple", k=10) == []
    assert wrong.get_by_ids(["1"]) == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        wrong.add_texts(["planted"], ids=["9"])
    with psycopg.connect(_as(dsn, acme), autocommit=True) as raw:
        assert _count(raw, collection_name) == 2  # its own rows only
        assert _count(raw, collection_name, BY_TENANT, (globex,)) == 0
        assert _count(raw, collection_name, sql.SQL("id = '1'")) == 1
        raw.execute("SELECT set_config('pgvstore.tenant', %s, false)", (globex,))
        assert _count(raw, collection_name, BY_TENANT, (globex,)) == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(globex)))
        for statement in (
            sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY"),
            sql.SQL("DROP POLICY pgvstore_tenant ON {}"),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                raw.execute(statement.format(sql.Identifier(collection_name)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            raw.execute(
                sql.SQL(
                    "INSERT INTO {} (tenant, id, content, embedding) VALUES (%s, 'x', 'x', %s)"
                ).format(sql.Identifier(collection_name)),
                (globex, "[" + ",".join(["1"] * DIM) + "]"),
            )
        deleted = raw.execute(
            sql.SQL("DELETE FROM {} WHERE tenant = %s").format(sql.Identifier(collection_name)),
            (globex,),
        ).rowcount
        assert deleted == 0
    assert owner.tenants() == {acme: 2, globex: 1, "seed": 1}


def test_setting_policy_stops_a_forgotten_tenant_not_raw_sql(
    make_store, dsn, collection_name, roles
) -> None:
    *_, app = roles
    owner = _owner_store(make_store, "setting")
    with psycopg.connect(dsn, autocommit=True) as c:
        _grant(c, app, collection_name)
    shared = make_store(
        EMB, connection=_as(dsn, app), multi_tenant=True, row_level_security="setting",
        pool_size=1,
    )  # fmt: skip
    a, b = shared.for_tenant("a"), shared.for_tenant("b")
    a.add_texts(["a apple"], ids=["1"])
    b.add_texts(["b apple", "b pear"], ids=["1", "2"])
    # one pooled connection serves both tenants in turn: each sees its own rows
    for _ in range(3):
        assert [d.page_content for d in a.similarity_search("apple", k=10)] == ["a apple"]
        assert {d.page_content for d in b.get()} == {"b apple", "b pear"}
    with psycopg.connect(_as(dsn, app), autocommit=True) as raw:
        assert _count(raw, collection_name) == 0  # no tenant set: nothing
        raw.execute("SELECT set_config('pgvstore.tenant', 'a', false)")
        assert _count(raw, collection_name) == 1
        assert _count(raw, collection_name, BY_TENANT, ("b",)) == 0
        assert _count(raw, collection_name, sql.SQL("id = '2'")) == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            raw.execute(
                sql.SQL("UPDATE {} SET tenant = 'b' WHERE id = '1'").format(
                    sql.Identifier(collection_name)
                )
            )
        # the limit of this mode: SQL that sets the setting reads that tenant
        raw.execute("SELECT set_config('pgvstore.tenant', 'b', false)")
        assert _count(raw, collection_name) == 2
    assert owner.tenants() == {"a": 1, "b": 2, "seed": 1}
