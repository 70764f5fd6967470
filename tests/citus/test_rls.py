"""Row-level security on a multi-tenant collection distributed over Citus.

The policy runs on the shards, on the workers: under `row_level_security="setting"`
the store passes the tenant to them with `SET LOCAL` (Citus forwards it when
`citus.propagate_set_commands = 'local'`), for reads and writes alike; under
`"role"` Citus connects to the workers as the tenant's own login role, which it
created on every node. The owner provisions; tenants log in as roles that are
neither owner nor superuser.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from langchain_pgvstore import PGVStore
from langchain_pgvstore.config import Table
from tests.citus.test_distributed import EMB


def _as(dsn: str, role: str) -> str:
    params = conninfo_to_dict(dsn)
    params["user"] = role
    return make_conninfo(**params)


@pytest.fixture
def roles(citus_dsn: str) -> Iterator[list[str]]:
    names = [f"rls_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        for name in names:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield names
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        for name in names:
            c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _grant(citus_dsn: str, collection: str, roles: list[str]) -> None:
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        for role in roles:
            for name in (collection, Table("public", collection).index_name("bm25")):
                c.execute(
                    sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                        sql.Identifier(name), sql.Identifier(role)
                    )
                )
            c.execute(
                sql.SQL("GRANT SELECT ON public.pgvstore_collections TO {}").format(
                    sql.Identifier(role)
                )
            )


@pytest.mark.parametrize("mode", ["setting", "role"])
def test_each_tenant_reads_and_writes_only_its_rows(citus_dsn, citus_collection, roles, mode):
    owner = PGVStore(
        EMB, connection=citus_dsn, collection=citus_collection, multi_tenant=True,
        distributed=True, shard_count=4, row_level_security=mode,
    )  # fmt: skip
    owner.for_tenant("seed").add_texts(["seed apple"], ids=["s"])
    _grant(citus_dsn, citus_collection, roles)
    acme, globex = roles
    opened = []

    def tenant_store(login: str, tenant: str) -> PGVStore:
        store = PGVStore(
            EMB, connection=_as(citus_dsn, login), collection=citus_collection,
            multi_tenant=True, tenant=tenant, row_level_security=mode,
        )  # fmt: skip
        opened.append(store)
        return store

    try:
        # under "setting" one login serves every tenant; under "role" each has its own
        a = tenant_store(acme, acme)
        b = tenant_store(acme if mode == "setting" else globex, globex)
        a.add_texts(["acme apple", "acme pear"], ids=["1", "2"])
        b.add_texts(["globex apple"], ids=["1"])
        assert {d.page_content for d in a.similarity_search("apple", k=10)} == {
            "acme apple",
            "acme pear",
        }
        assert [d.page_content for d in b.keyword_search("apple", k=10)] == ["globex apple"]
        assert a.delete(["2"]) is True
        assert a.count() == 1
        with psycopg.connect(_as(citus_dsn, acme), autocommit=True) as raw:
            table = sql.Identifier(citus_collection)
            seen = raw.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
            # no tenant set: nothing ("setting"); its own rows only ("role")
            assert seen == ((0,) if mode == "setting" else (1,))
        if mode == "role":
            wrong = tenant_store(acme, globex)  # acme's login, bound to globex
            assert wrong.similarity_search("apple", k=10) == []
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                wrong.add_texts(["planted"], ids=["9"])
        assert owner.tenants() == {acme: 1, globex: 1, "seed": 1}
    finally:
        for store in opened:
            store.close()
        owner.delete_collection()
        owner.close()
