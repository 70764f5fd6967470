"""`PGVStore`: the LangChain `VectorStore` surface.

The class is assembled from one mixin per group of methods (`_writes`,
`_reads`, `_similarity`, `_keyword`, `_admin`) over a shared core (`_core`).
Each public method is a pair: the sync one and its `a`-prefixed twin share
their checks and their flow (`_flow`) and differ only in which driver runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from langchain_core.embeddings import Embeddings
from typing_extensions import override

from ._admin import IndexAdmin
from ._backfill import ExistingTables
from ._flow import known_flow
from ._keyword import KeywordSearch
from ._reads import Reads
from ._similarity import SimilaritySearch
from ._sqlalchemy import collection_table
from ._tenants import Tenants
from ._writes import Writes
from .retriever import PGVStoreRetriever

if TYPE_CHECKING:
    import sqlalchemy

__all__ = ["PGVStore"]


class PGVStore(Tenants, ExistingTables, KeywordSearch, IndexAdmin, Reads, Writes, SimilaritySearch):
    """A LangChain vector store on PostgreSQL + pgvector that provisions its own schema.

    Setup:
        `pip install 'langchain-pgvstore[embedded]'` for the embedded server, or
        pass `connection="postgresql://user:pass@host:5432/db"` for your own.

    Instantiate:
        ```python
        from langchain_pgvstore import PGVStore
        store = PGVStore(embeddings, collection="docs")
        ```

    Add:
        `store.add_texts(["a", "b"], metadatas=[{"lang": "en"}, {"lang": "de"}])`

    Delete:
        `store.delete(ids=["..."])` or `store.delete(filter={"lang": "de"})`

    Search:
        `store.similarity_search("query", k=4, filter={"lang": "en"})`

    Search with score:
        `store.similarity_search_with_score("query")` returns `(Document, distance)`,
        lower is closer; `similarity_search_with_relevance_scores` returns scores in
        [0, 1], higher is closer.

    Async:
        Every method has a native `a`-prefixed twin: `await store.asimilarity_search(...)`.

    Use as Retriever:
        `store.as_retriever(search_kwargs={"k": 4, "filter": {...}})`

    Args:
        embedding: the LangChain `Embeddings` used for texts and queries.
        connection: a DSN (`postgresql://…` or `postgresql+psycopg://…`), a psycopg
            `ConnectionPool` / `AsyncConnectionPool`, or None for the embedded server.
        collection: the collection, which is also its table's name.
        schema: the PostgreSQL schema holding the table (created if missing).
        distance: `cosine`, `l2`, `inner_product` or `l1`.
        dimensions: vector size; inferred from the first embedding when omitted.
        vector_type: `vector` (float32) or `halfvec` (float16: half the space).
        text_search_config: the PostgreSQL text-search configuration for full text.
        index: `HNSWIndex(...)`, `IVFFlatIndex(...)` or None for exact search only.
        batch_size: texts per call to the embedding model (also per call, in `add_texts`).
        bulk_rebuild_rows: loads that change at least this many rows (and at least as
            many as the table holds) rebuild the ANN index after loading instead of
            inserting into it; unchanged rows are not written and do not count.
        maintenance_work_mem: memory for index builds (e.g. `"1GB"`), applied to the
            build's transaction only.
        pool_size: maximum connections in each pool the store creates.
        pool_timeout: seconds to wait for a free pooled connection; then
            `QueryTimeoutError`.
        statement_timeout: seconds any one statement may run; then
            `QueryTimeoutError`. Searches also take `statement_timeout=` per call.
        exact_search_threshold: a filtered search whose filter matches at most this
            many rows scans them exactly (recall 1); above it, the ANN index is walked
            with iterative scans until `k` matching rows are found. The matches are
            estimated from the planner's statistics, not counted, and an exact scan
            that finds more rows than this hands over to the index. Default (None):
            `sqrt(4 * k * rows)`, where the two cost the same (2,000 for k=10 at
            100,000 rows). Per call too.
        data_dir: data directory of the embedded server (default: `PGVSTORE_DATA_DIR`
            or a per-user folder).
        multi_tenant: every document belongs to a tenant, and ids are unique per
            tenant (primary key `(tenant, id)`). A store reads and writes one
            tenant's documents only: bind it with `tenant=` or `for_tenant()`.
        tenant: the tenant this store is bound to (multi-tenant collections).
        distributed: on a Citus coordinator, create the collection distributed
            over the cluster: by tenant when multi-tenant, else by id.
        read_connections: read replicas: a DSN or pool per replica (a list), or one
            DSN, which may be a multi-host DSN (then one endpoint). Searches, `get`,
            `get_by_ids`, `count` and `explain` go to them, round robin; writes,
            provisioning and index management go to `connection`, the primary. A
            read takes `read_from="primary"` to go to the primary instead. A replica
            that is down or too far behind is skipped (one warning) until healthy.
        read_your_writes: a read after a write through this store waits (up to
            `read_wait`) until a replica has replayed that write, else reads on the
            primary. Off by default: replicas then lag. Across processes, pass
            `after=store.write_token()` (or its text) to a read instead.
        read_wait: seconds a read waits for a replica to replay a write it must see.
        max_replica_lag: seconds a replica may be behind before reads skip it
            (measured at most once a second per replica); None: never skipped for lag.
        columns: metadata fields stored in typed columns of their own, e.g.
            `{"price": Column("numeric"), "tags": Column("text[]", nullable=True)}`
            (docs/typed-columns.md). Fixed when the collection is created; a store
            opened later must declare the same columns.
        full_text: False creates the collection without full text (no `tsv`
            column, no full-text index, no BM25 statistics): ingest is several
            times faster, and keyword and hybrid search raise `SchemaError`. True
            asks for full text. `"pg_textsearch"` ranks keyword and hybrid
            search with a BM25 index of the `pg_textsearch` extension instead of
            the `tsv` column and statistics (same ranking and scores, far faster
            on large collections; the server must have the extension, preloaded:
            `SchemaError` otherwise; not on distributed collections). Omitted
            (None): a new collection gets full text, an existing one is opened as
            it was created; a value that contradicts the existing collection is a
            `SchemaError` (docs/schema.md, docs/performance.md).
        existing_table: `ExistingTable(id=..., content=..., ...)` makes the collection
            a table of your own, named by `collection`: `adopt()` checks it and adds
            only what it is asked for, `embed_pending()` fills and refreshes its
            embeddings in place, and `columns=` declares which of its columns are
            metadata fields (docs/existing-tables.md).
    """

    @override
    def as_retriever(self, **kwargs: Any) -> PGVStoreRetriever:
        """A retriever over this store; `search_type` may also be `"hybrid"`.

        `search_kwargs` carries `k`, `filter`, `fetch_k`, `lambda_mult`,
        `score_threshold` and the query knobs (`ef_search`, `probes`,
        `iterative_scan`, `statement_timeout`).
        """
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return PGVStoreRetriever(vectorstore=self, tags=tags, **kwargs)

    # -- construction -------------------------------------------------------------

    @classmethod
    @override
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Create a store (keyword arguments go to `PGVStore(...)`) and add texts."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    @override
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Async `from_texts`."""
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    # -- SQLAlchemy -----------------------------------------------------------------

    def sqlalchemy_table(self, metadata: sqlalchemy.MetaData) -> sqlalchemy.Table:
        """The collection as a `sqlalchemy.Table` in `metadata` (extra `sqlalchemy`).

        Columns: `tenant` (multi-tenant), `id`, `content`, `metadata` (JSONB),
        `embedding` (pgvector's `VECTOR`/`HALFVEC`, so `.cosine_distance(q)` and
        the other comparators work), the typed columns, `created_at`,
        `updated_at`; for an existing table, the columns it adopted under their
        names, with its key's type. For queries and JOINs; write documents through the store.
        Without `dimensions=` the collection is looked up for them (one read).
        """
        spec = self._spec
        if spec.dimensions is None or (spec.table.existing is not None and self._known is None):
            # an existing table's key type is the catalog's: looked up with the collection
            spec = self._require(self._drive(known_flow()))
        return collection_table(spec.table, spec.vector_type, spec.dimensions, metadata)
