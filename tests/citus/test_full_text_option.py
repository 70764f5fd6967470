"""`full_text=False` on a Citus cluster: sharded by id and multi-tenant by tenant.

The distributed table has no `tsv` nor `tsv_len` and the cluster gets no BM25
statistics table; writes go without statistics deltas, searches answer like
the same collection on one server, and keyword search is refused.
"""

from __future__ import annotations

import psycopg
import pytest

from langchain_pgvstore import PGVStore, SchemaError
from langchain_pgvstore._sql.bm25_schema import stats_table
from langchain_pgvstore.config import Table
from tests.citus.test_distributed import EMB, _corpus


@pytest.mark.parametrize("multi_tenant", [False, True], ids=["by-id", "by-tenant"])
def test_a_distributed_collection_without_full_text(
    citus_dsn, citus_collection, multi_tenant
) -> None:
    name = citus_collection
    texts, vectors, metas, ids = _corpus(300, seed=3)
    kw = {
        "collection": name,
        "multi_tenant": multi_tenant,
        "index": None,
        "full_text": False,
        "bulk_rebuild_rows": 100,
    }
    many = PGVStore(EMB, connection=citus_dsn, distributed=True, shard_count=4, **kw)
    store = many.for_tenant("acme") if multi_tenant else many
    try:
        # by id, a load past bulk_rebuild_rows into the empty table goes straight in
        # (without statistics to count); a multi-tenant one always goes through staging
        store.add_embeddings(texts, vectors.tolist(), metas, ids=ids)
        store.add_embeddings(["changed"], [vectors[0].tolist()], [{"n": 9}], ids=["r0"])
        assert store.get_by_ids(["r0"])[0].page_content == "changed"
        assert store.delete(["r1"]) and store.delete(filter={"n": 4})
        assert store.count() == 300 - 1 - sum(1 for m in metas[1:] if m["n"] == 4)
        q = vectors[5].tolist()
        exact = [d.id for d in store.similarity_search_by_vector(q, k=3)]
        assert exact[0] == "r5"
        filtered = store.similarity_search_by_vector(q, k=4, filter={"n": 0})
        assert len(filtered) == 4 and all(d.metadata["n"] == 0 for d in filtered)
        assert len(store.max_marginal_relevance_search_by_vector(q, k=3, fetch_k=10)) == 3
        with pytest.raises(SchemaError, match="full_text=False"):
            store.keyword_search("plum", k=3)
        with pytest.raises(SchemaError, match="full_text=False"):
            store.hybrid_search_with_score_by_vector("plum", q, k=3)
        reopened = PGVStore(EMB, connection=citus_dsn, **{**kw, "full_text": None})
        reader = reopened.for_tenant("acme") if multi_tenant else reopened
        assert [d.id for d in reader.similarity_search_by_vector(q, k=3)] == exact
        with pytest.raises(SchemaError, match="full_text=False"):
            reader.keyword_search("plum", k=3)
        reopened.close()
    finally:
        many.close()
    with psycopg.connect(citus_dsn, autocommit=True) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
                " AND attnum > 0 AND NOT attisdropped",
                (f"public.{name}",),
            )
        }
        assert "tsv" not in columns and "tsv_len" not in columns and "embedding" in columns
        stats = stats_table(Table("public", name)).as_string(None)
        assert conn.execute("SELECT to_regclass(%s)", (stats,)).fetchone() == (None,)
        distributed = conn.execute(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = to_regclass(%s)",
            (f"public.{name}",),
        ).fetchone()
        assert distributed == (1,)
