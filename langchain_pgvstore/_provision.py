"""Provisioning a collection: the extension, the registry, the table and what it needs.

Provisioning is idempotent and safe when several processes do it at once:
`CREATE EXTENSION` and the registry run under a global advisory lock, the
collection's table and indexes under a per-collection one.
"""

from __future__ import annotations

from dataclasses import replace

from ._plan import Execute, Fetch, Plan
from ._schema import (
    CollectionSpec,
    build_index_plan,
    check_index_plan,
    check_indexable,
    check_pgvector,
    check_registered,
)
from ._sql import Frag, catalog, citus, ddl, textsearch
from ._sql import columns as typed
from ._sql.bm25_schema import bm25_ddl, length_column, statistics_table, stats_table
from ._sql.migrations import registry_state, set_registry_version
from ._upgrade import collection_upgrade_plan, registry_upgrade_plan
from .config import (
    GLOBAL_LOCK_KEY,
    REGISTRY_VERSION,
    SCHEMA_VERSION,
    TEXTSEARCH,
    HNSWIndex,
    Table,
)
from .errors import ConfigError, SchemaError

__all__ = ["provision_plan", "register_plan", "registry_plan"]


def provision_plan(spec: CollectionSpec) -> Plan[CollectionSpec]:
    """Make sure the extension, registry, table and indexes exist; check they match.

    Returns the spec with `dimensions` filled in from the registry. When the
    collection does not exist and the dimensions are still unknown, nothing
    is created and the spec comes back with `dimensions=None`.
    """
    table = spec.table
    if not (yield from registry_plan(spec, create=spec.dimensions is not None)):
        return spec
    yield Execute(ddl.advisory_xact_lock(table.lock_key()))
    rows = yield Fetch(ddl.registry_row(table))
    if rows:
        spec = check_registered(spec, rows[0])
    elif spec.dimensions is None:
        return spec
    table_exists = (yield Fetch(catalog.table_exists(table)))[0][0]
    if table_exists and not rows:
        if table.existing is not None:
            raise SchemaError(
                f"table {table.schema}.{table.name} is not adopted yet: call store.adopt()"
                " (see its dry_run=True report) before writing to it"
            )
        raise SchemaError(
            f"table {table.schema}.{table.name} exists but is not a langchain-pgvstore collection;"
            " choose another collection name, or adopt it with existing_table=ExistingTable(...)"
        )
    if not table_exists and table.existing is not None:
        raise SchemaError(f"table {table.schema}.{table.name} does not exist")
    if table_exists:
        yield from check_index_plan(spec)
        if rows:
            version = rows[0][5]
            assert isinstance(version, int)
            # an older release's collection: upgraded here, or refused if a step is heavy
            yield from collection_upgrade_plan(spec, version)
    if not table_exists:
        assert spec.dimensions is not None
        check_indexable(spec)
        if not (yield Fetch(catalog.ts_config_exists(spec.ts_config)))[0][0]:
            raise ConfigError(
                f"unknown text search configuration {spec.ts_config!r};"
                " see SELECT cfgname FROM pg_ts_config"
            )
        if table.textsearch:
            yield from _textsearch_extension_plan()
        for frag in _collides(table):
            if (yield Fetch(frag))[0][0]:
                raise SchemaError(
                    f"collection {table.schema}.{table.name} cannot be created: a relation"
                    f" named {frag.params[1]!r}, which this collection's own objects would use,"
                    " already exists; choose another collection name"
                )
        yield Execute(ddl.create_table(table, spec.dimensions, spec.vector_type, spec.ts_config))
        yield Execute(ddl.set_embedding_storage_main(table))
        if table.distribution is None:
            for frag in ddl.create_secondary_indexes(table):
                yield Execute(frag)
            for frag in typed.create_column_indexes(table):
                yield Execute(frag)
            if table.has_full_text:
                for frag in bm25_ddl(table, spec.ts_config):
                    yield Execute(frag)
            if table.textsearch:
                yield Execute(textsearch.create_index(table, spec.ts_config))
        else:
            yield from _distribute_plan(spec)
        if table.multi_tenant and isinstance(spec.index, HNSWIndex):
            # tenants load a little at a time, often through roles that may not
            # create indexes: the graph exists from the start
            yield from build_index_plan(spec)
        # a registry row without its table (dropped behind the store's back) is replaced
        yield Execute(ddl.delete_registry_row(table))
        yield from register_plan(replace(spec, table=table), spec.dimensions)
        full_text = TEXTSEARCH if table.textsearch else table.has_full_text
        spec = replace(spec, table=replace(table, full_text=full_text))
    if spec.row_level_security is not None:
        yield from _tenant_policy_plan(spec)
    return spec


def register_plan(spec: CollectionSpec, dimensions: int) -> Plan[None]:
    """Record the collection in the registry: its shape, version and typed columns."""
    yield Execute(
        ddl.insert_registry_row(
            spec.table,
            dimensions,
            spec.distance,
            spec.vector_type,
            spec.ts_config,
            spec.embedding_model,
            SCHEMA_VERSION,
        )
    )
    if spec.table.columns:
        yield Execute(typed.record_columns(spec.table))


def registry_plan(spec: CollectionSpec, *, create: bool) -> Plan[bool]:
    """The extension and the schema's registry, created (or upgraded) if need be;
    False, creating nothing, when they are missing and not to be created (a write
    whose dimensions are still unknown)."""
    table = spec.table
    installed, available = (yield Fetch(catalog.extension_version()))[0]
    if check_pgvector(installed, available):
        if not create:
            return False
        yield Execute(ddl.advisory_xact_lock(GLOBAL_LOCK_KEY))
        yield Execute(ddl.create_extension())

    registry_exists, comment = (yield Fetch(registry_state(table)))[0]
    if not registry_exists:
        if not create:
            return False
        yield Execute(ddl.advisory_xact_lock(GLOBAL_LOCK_KEY))
        if not (yield Fetch(catalog.schema_exists(table.schema)))[0][0]:
            # checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
            yield Execute(ddl.create_schema(table.schema))
        yield Execute(ddl.create_registry(table))
        yield Execute(set_registry_version(table, REGISTRY_VERSION))
    else:
        # a registry an earlier release made: add what this release records
        yield from registry_upgrade_plan(table, comment)  # what it did is not reported here
    return True


def _distribute_plan(spec: CollectionSpec) -> Plan[None]:
    """Shard the new table over a Citus cluster; statistics and registry become reference tables.

    Order matters: Citus refuses `ALTER TABLE ... SET STORAGE` and triggers on
    a distributed table, and a function created after a multi-shard statement
    in the same transaction; so the columns and storage come first, then the
    distribution, then the indexes. The BM25 statistics are kept by the writes
    (`_sql/bm25_writes.py`), which needs PostgreSQL 18.
    """
    table = spec.table
    assert table.distribution is not None
    version, citus_version = (yield Fetch(citus.server()))[0]
    if citus_version is None:
        raise SchemaError(
            f"collection {table.schema}.{table.name} is to be distributed, but this server is"
            " not a Citus coordinator (no citus extension); open the store with"
            " distributed=False, or connect to the cluster's coordinator"
        )
    if version < 180000:
        raise SchemaError(
            "distributed collections need PostgreSQL 18 or later on the Citus cluster"
            f" (their BM25 statistics are kept with RETURNING old/new); this one is {version}"
        )
    if table.has_full_text:
        for frag in length_column(table, spec.ts_config):
            yield Execute(frag)
    yield Execute(citus.distribute(table.qualname, table.distribution, spec.shard_count))
    for frag in ddl.create_secondary_indexes(table):
        yield Execute(frag)
    if table.has_full_text:
        for frag in statistics_table(table):
            yield Execute(frag)
        yield Execute(citus.make_reference_table(stats_table(table)))
    if not (yield Fetch(citus.is_distributed(table.registry)))[0][0]:
        yield Execute(citus.make_reference_table(table.registry))


def _textsearch_extension_plan() -> Plan[None]:
    """Make sure `pg_textsearch` is installed for a new `full_text="pg_textsearch"`
    collection; `SchemaError` naming what the server lacks if it cannot be."""
    installed, available, preloaded = (yield Fetch(textsearch.extension_state()))[0]
    if installed is not None:
        return
    if available is None:
        raise SchemaError(
            "full_text='pg_textsearch' needs the pg_textsearch extension, which this server"
            " does not have; install it (https://github.com/timescale/pg_textsearch), add it"
            " to shared_preload_libraries and restart the server, or use full_text=True"
        )
    if not preloaded:
        raise SchemaError(
            "full_text='pg_textsearch' needs the pg_textsearch library preloaded: add"
            " pg_textsearch to shared_preload_libraries and restart the server"
        )
    yield Execute(ddl.advisory_xact_lock(GLOBAL_LOCK_KEY))
    yield Execute(textsearch.create_extension())


def _tenant_policy_plan(spec: CollectionSpec) -> Plan[None]:
    """Row-level security on the collection's table, unless it is there already."""
    table = spec.table
    mode = spec.row_level_security
    assert mode is not None
    found = yield Fetch(catalog.tenant_policy(table))
    if found and found[0][0]:
        if found[0][1] != mode:
            raise SchemaError(
                f"collection {table.schema}.{table.name} has row-level security by"
                f" {found[0][1]!r}, but this store asks for {mode!r}"
            )
        return
    for frag in ddl.tenant_policy(table, mode):
        yield Execute(frag)


def _collides(table: Table) -> list[Frag]:
    """Existence checks for the names of the objects a new collection will create."""
    return [
        catalog.relation_exists(table.schema, table.index_name(kind))
        for kind in (
            "bm25", "bm25_term", "meta", "tsv", "hnsw", "ivfflat", textsearch.index_kind,
            *(typed.index_kind(name) for name, _ in table.columns),
        )
    ]  # fmt: skip
