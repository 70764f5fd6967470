"""Loading a batch into the collection, with the index policy.

Index policy. Maintaining an HNSW graph row by row is several times slower
than building it once over data already in the table, so the ANN index is
built at the end of the first load that leaves the table non-empty, inside
that load's transaction. A later load that changes at least
`bulk_rebuild_rows` rows and at least as many rows as the table already holds
drops the index, loads, and builds it again in the same transaction (readers
wait for that transaction; the table is never visible without its index).
Smaller loads insert into the existing index. Rows a load would not change
(same content, metadata and vector) are not counted: they are not written.
A collection's `pg_textsearch` index (`full_text="pg_textsearch"`) is likewise
built after a large load into an empty table, in its transaction.
"""

from __future__ import annotations

from ._ingest import Batch, direct_write_plan, merge_plan, stage_plan
from ._plan import Execute, Fetch, Phase, Plan
from ._schema import CollectionSpec, build_index_plan
from ._sql import catalog, ddl, dml, textsearch
from ._sql.bm25_schema import recount_bm25
from ._sql.bm25_writes import merge_with_statistics
from .config import Table

__all__ = ["load_plan"]


def _ann_index_present(rows: list[tuple[object, ...]], table: Table) -> bool:
    names = {table.index_name("hnsw"), table.index_name("ivfflat")}
    return any(name in names for name, _valid in rows)


def load_plan(spec: CollectionSpec, batch: Batch, tenant: str | None = None) -> Plan[int]:
    """Write a validated batch (as `tenant`'s rows) and keep the ANN index per the policy
    above; returns how many rows it wrote (unchanged rows are not written).

    `Phase` steps mark the start of the COPY, the merge (not for a direct write)
    and the index build (only when the load builds the index).
    """
    assert spec.dimensions is not None
    table = spec.table
    # A multi-tenant collection grows a tenant at a time, and its table is never
    # one load's alone: it takes every load through staging and never drops the
    # shared graph (which a tenant's role could not rebuild anyway).
    # An adopted table is the application's, written while it is live: its writes go
    # through staging, and its ANN index is built by `create_index()` only, never by a load.
    large = (
        len(batch) >= spec.bulk_rebuild_rows and not table.multi_tenant and table.existing is None
    )
    present = build = False
    if spec.index is not None and table.existing is None:
        present = _ann_index_present((yield Fetch(catalog.indexes(table))), table)
        if not present or large:
            # index DDL must not race another loader's index DDL
            yield Execute(ddl.advisory_xact_lock(table.lock_key()))
            present = _ann_index_present((yield Fetch(catalog.indexes(table))), table)
        build = not present
    direct = False
    if large:
        # A large load into an empty table (the first load, or a rebuild after
        # everything was deleted) goes straight in: nothing can conflict once
        # other writers are locked out, so staging and merging are wasted work.
        if (yield Fetch(dml.is_empty(table)))[0][0]:
            yield Execute(dml.lock_for_load(table))
            direct = (yield Fetch(dml.is_empty(table)))[0][0]
    if direct:
        if present:  # emptied by deletes: build the graph over the new rows at the end
            for frag in ddl.drop_ann_indexes(table):
                yield Execute(frag)
            build = True
        if table.textsearch:
            # Built over the loaded rows, a pg_textsearch index ranks as a fresh build
            # does; filled row by row it ranks measurably worse (docs/performance.md).
            yield Execute(ddl.drop_index(table, textsearch.index_kind))
        yield Phase("copy", len(batch))
        written = yield from direct_write_plan(table, batch, spec.vector_type, tenant)
        if table.textsearch:
            yield Execute(textsearch.create_index(table, spec.ts_config))
        if table.distribution is not None and table.has_full_text:
            # no triggers on a distributed table: count the new rows' statistics
            for frag in recount_bm25(table):
                yield Execute(frag)
    else:
        yield Phase("copy", len(batch))
        yield from stage_plan(batch, spec.vector_type, spec.dimensions, table.columns)
        yield Phase("merge", len(batch))
        # a rebuild needs a load as large as the table: that cheap bound comes first
        if present and large and not (yield Fetch(dml.has_more_rows_than(table, len(batch))))[0][0]:
            # rebuild only for what the merge will really write: re-sending rows
            # that are already stored must not cost a graph rebuild
            changed = (yield Fetch(dml.count_staged_changes(table, tenant)))[0][0]
            if (
                changed >= spec.bulk_rebuild_rows
                and not (yield Fetch(dml.has_more_rows_than(table, changed)))[0][0]
            ):
                for frag in ddl.drop_ann_indexes(table):
                    yield Execute(frag)
                build = True
        if table.distribution is None or not table.has_full_text:
            written = yield from merge_plan(table, tenant)
        else:
            written = yield Execute(merge_with_statistics(table, tenant))
    if build:
        yield Phase("index", len(batch))
        yield from build_index_plan(spec)
    if written >= spec.bulk_rebuild_rows:
        # A large load leaves its GIN entries in the pending list, which makes the
        # planner shun the metadata index until VACUUM; merge them and refresh
        # statistics now so filtered searches use the index right away.
        if table.distribution is None:
            # (on Citus the coordinator's index is an empty shell: the workers'
            # autovacuum merges their shards' pending lists)
            for frag in ddl.clean_gin_pending(table):
                yield Fetch(frag)
        yield Execute(ddl.analyze(table))
    return written
