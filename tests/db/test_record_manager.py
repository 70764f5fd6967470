"""PostgresRecordManager on its own, and driving LangChain's `index()` / `aindex()` into a PGVStore."""

from __future__ import annotations

import uuid

import langchain_core.indexing
import psycopg
import pytest
from langchain_core.documents import Document

from langchain_pgvstore import PGVStore
from langchain_pgvstore._sql import records
from langchain_pgvstore._sql.side_tables import SideTable
from langchain_pgvstore.errors import ConfigError, InputError
from langchain_pgvstore.record_manager import PostgresRecordManager
from tests.fix_db import scratch_table


@pytest.fixture(scope="module")
def records_table(admin):
    with scratch_table(admin, "rec") as name:
        yield name


@pytest.fixture
async def manager(dsn: str, records_table: str):
    rm = PostgresRecordManager(f"test/{uuid.uuid4().hex}", connection=dsn, table=records_table)
    await rm.acreate_schema()
    yield rm
    await rm.aclose()


@pytest.fixture
def call(manager: PostgresRecordManager, api):
    """`await call("update", ...)` runs `manager.update` or awaits `manager.aupdate`."""
    return api.on(manager)


# -- builders and arguments ------------------------------------------------------------


def test_upsert_binds_everything_and_stamps_with_the_server_clock() -> None:
    side = SideTable("s", "records", "records")
    frag = records.upsert(side, "ns", ["k"], [None], None)
    text = frag.as_string()
    assert "clock_timestamp()" in text and '"s"."records"' in text
    assert frag.params == ("ns", ["k"], [None], float("-inf"))


def test_list_keys_sql_depends_only_on_which_filters_are_given() -> None:
    side = SideTable("public", "r", "records")
    a = records.list_keys(side, "n", before=1.0, after=None, group_ids=["g"], limit=5)
    b = records.list_keys(side, "m", before=2.0, after=None, group_ids=["h", "i"], limit=9)
    assert (
        a.as_string()
        == b.as_string()
        == (
            'SELECT key FROM "public"."r" WHERE namespace = %s AND updated_at < %s'
            " AND group_id = ANY(%s::text[]) LIMIT %s"
        )
    )


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        PostgresRecordManager("ns", connection="postgresql://localhost/x", table="")
    with pytest.raises(ConfigError):
        PostgresRecordManager("a\x00", connection="postgresql://localhost/x")


# -- the record manager --------------------------------------------------------------------


async def test_time_is_the_servers_and_moves_forward(call, conn: psycopg.Connection):
    t1 = await call("get_time")
    t2 = await call("get_time")
    server = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
    assert t1 < t2 <= server
    assert server - t1 < 10


async def test_update_exists_list_delete(call):
    await call("update", ["a", "b"], group_ids=["g1", "g2"])
    assert await call("exists", ["a", "zz", "b", "a"]) == [True, False, True, True]
    mid = await call("get_time")
    await call("update", ["c"], group_ids=["g1"], time_at_least=mid)

    assert sorted(await call("list_keys")) == ["a", "b", "c"]
    assert sorted(await call("list_keys", before=mid)) == ["a", "b"]
    assert await call("list_keys", after=mid) == ["c"]
    assert sorted(await call("list_keys", group_ids=["g1"])) == ["a", "c"]
    assert await call("list_keys", group_ids=["g1"], before=mid) == ["a"]
    assert sorted(await call("list_keys", group_ids=[])) == ["a", "b", "c"]  # no filter
    assert len(await call("list_keys", limit=2)) == 2

    # refreshing a record moves it after `mid` and can clear its group
    await call("update", ["a"])
    assert await call("list_keys", before=mid) == ["b"]
    assert await call("list_keys", group_ids=["g1"]) == ["c"]

    await call("delete_keys", ["a", "missing"])
    assert await call("exists", ["a", "b", "c"]) == [False, True, True]
    await call("delete_keys", [])
    assert await call("exists", []) == []


async def test_future_time_at_least_is_refused_and_writes_nothing(call):
    future = (await call("get_time")) + 3600
    with pytest.raises(InputError, match="later than the database server's clock"):
        await call("update", ["x"], time_at_least=future)
    assert await call("exists", ["x"]) == [False]


async def test_mismatched_and_duplicate_keys(call):
    with pytest.raises(InputError, match="2 keys but 1 group ids"):
        await call("update", ["a", "b"], group_ids=["g"])
    await call("update", ["a", "b", "a"], group_ids=["g1", "g2", "g3"])
    assert await call("list_keys", group_ids=["g3"]) == ["a"]
    with pytest.raises(InputError):
        await call("list_keys", limit=0)


async def test_namespaces_are_separate(dsn: str, records_table: str):
    async with (
        PostgresRecordManager("one", connection=dsn, table=records_table) as one,
        PostgresRecordManager("two", connection=dsn, table=records_table) as two,
    ):
        await one.aupdate(["k"], group_ids=["g"])
        assert await two.aexists(["k"]) == [False]
        two.update(["k"], group_ids=["h"])
        await one.adelete_keys(["k"])
        assert two.list_keys() == ["k"]
        two.delete_keys(["k"])


async def test_indexes_exist(dsn: str, records_table: str, manager: PostgresRecordManager):
    with psycopg.connect(dsn) as c:
        defs = [
            r[0]
            for r in c.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (records_table,)
            )
        ]
    assert len(defs) == 3
    assert any("(namespace, group_id)" in d for d in defs)
    assert any("(namespace, updated_at)" in d for d in defs)


# -- LangChain's indexing API ------------------------------------------------------------------


def chunks(source: str, *texts: str) -> list[Document]:
    return [Document(page_content=t, metadata={"source": source}) for t in texts]


@pytest.fixture
def run(manager: PostgresRecordManager, store: PGVStore, api):
    """`await run(docs, cleanup)`: LangChain's `index()` or `aindex()` into `store`."""
    indexing = api.on(langchain_core.indexing)

    async def _run(docs: list[Document], cleanup: str | None) -> dict[str, int]:
        kwargs = dict(cleanup=cleanup, source_id_key="source", key_encoder="sha256")
        return dict(await indexing("index", docs, manager, store, **kwargs))

    return _run


def stats(added=0, updated=0, skipped=0, deleted=0) -> dict[str, int]:
    return {
        "num_added": added,
        "num_updated": updated,
        "num_skipped": skipped,
        "num_deleted": deleted,
    }


def contents(store: PGVStore) -> list[str]:
    return sorted(d.page_content for d in store.get())


async def test_incremental_skips_unchanged_and_replaces_changed_sources(
    run, store: PGVStore, manager: PostgresRecordManager
):
    a, b = chunks("a.md", "a one", "a two"), chunks("b.md", "b one")
    assert await run(a + b, "incremental") == stats(added=3)
    assert await run(a + b, "incremental") == stats(skipped=3)

    a_edited = chunks("a.md", "a one", "a two, edited", "a three")
    assert await run(a_edited + b, "incremental") == stats(added=2, skipped=2, deleted=1)
    assert contents(store) == ["a one", "a three", "a two, edited", "b one"]

    # incremental mode leaves sources that were not seen alone
    assert await run(a_edited, "incremental") == stats(skipped=3)
    assert contents(store) == ["a one", "a three", "a two, edited", "b one"]
    # the vector store and the records agree
    assert sorted(d.id for d in store.get()) == sorted(manager.list_keys())


async def test_full_cleanup_removes_what_was_not_indexed(run, store: PGVStore):
    a, b = chunks("a.md", "a one", "a two"), chunks("b.md", "b one", "b two")
    assert await run(a + b, "full") == stats(added=4)
    assert await run(a + b, "full") == stats(skipped=4)
    assert await run(a, "full") == stats(skipped=2, deleted=2)
    assert contents(store) == ["a one", "a two"]
    assert await run([], "full") == stats(deleted=2)
    assert contents(store) == []


async def test_no_cleanup_only_adds(run, store: PGVStore):
    assert await run(chunks("a.md", "first"), None) == stats(added=1)
    assert await run(chunks("a.md", "first"), None) == stats(skipped=1)
    assert await run(chunks("a.md", "second"), None) == stats(added=1)
    assert contents(store) == ["first", "second"]
