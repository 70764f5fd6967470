"""Schema upgrades: the registry's and each collection's, as plans.

Provisioning runs them when a store opens a collection for writing, in its
transaction and under its advisory locks (the global one for the registry,
the collection's for its table), so two processes opening the same old
collection upgrade it once. Every step is idempotent. A step that would
rewrite a table is not run implicitly: opening refuses with `SchemaError`
naming `PGVStore.upgrade_schema()`, which runs it. A registry or collection
of a newer version than this release knows is refused, never changed.
Reads never upgrade anything; they refuse newer versions too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._plan import Execute, Fetch, Plan
from ._schema import CollectionSpec, check_registered, check_registry_version
from ._sql import catalog, ddl
from ._sql.bm25_schema import bm25_ddl
from ._sql.migrations import (
    REGISTRY_STEPS,
    bound_full_text,
    drop_length_column,
    full_text_state,
    registry_state,
    set_collection_version,
    set_registry_version,
)
from .config import GLOBAL_LOCK_KEY, REGISTRY_VERSION, SCHEMA_VERSION, Table
from .errors import SchemaError

__all__ = [
    "COLLECTION_STEPS",
    "CollectionStep",
    "collection_upgrade_plan",
    "registry_upgrade_plan",
    "upgrade_plan",
    "upgrade_registry_plan",
]


def registry_upgrade_plan(table: Table, comment: object) -> Plan[list[str]]:
    """Bring an existing registry to `REGISTRY_VERSION` (under the global lock).

    Returns the summaries of the steps it ran.
    """
    if check_registry_version(table, comment) == REGISTRY_VERSION:
        return []
    yield Execute(ddl.advisory_xact_lock(GLOBAL_LOCK_KEY))
    # another process may have upgraded it while this one waited for the lock
    version = check_registry_version(table, (yield Fetch(registry_state(table)))[0][1])
    if version == REGISTRY_VERSION:
        return []
    done = []
    for reached, summary, statements in REGISTRY_STEPS:
        if reached > version:
            for frag in statements(table):
                yield Execute(frag)
            done.append(f"registry: {summary}")
    yield Execute(set_registry_version(table, REGISTRY_VERSION))
    done.append(f"registry version {version} -> {REGISTRY_VERSION}")
    return done


@dataclass(frozen=True, slots=True)
class CollectionStep:
    """One collection upgrade: the version it reaches and the plan that reaches it.

    `plan(spec, explicit)` returns the summaries of what it did (empty when
    the collection already had it); when the step is heavy and `explicit` is
    False it raises `SchemaError` instead of doing it.
    """

    version: int
    summary: str
    plan: Callable[[CollectionSpec, bool], Plan[list[str]]]


def _full_text(spec: CollectionSpec, explicit: bool) -> Plan[list[str]]:
    """Full text over the first 100,000 characters, and the BM25 statistics objects.

    Collections made before both existed have an unbounded `tsv` (a document
    of a few MB cannot be stored) and no BM25 statistics (keyword search fails).
    """
    table = spec.table
    if table.distribution is not None:
        return []  # distributed collections were always created with both
    tsv, tsv_len, triggers = (yield Fetch(full_text_state(table)))[0]
    stats = (yield Fetch(catalog.relation_exists(table.schema, table.index_name("bm25"))))[0][0]
    bounded = tsv is not None and "left(" in str(tsv).replace('"', "")
    length_bounded = tsv_len is not None and "left(" in str(tsv_len).replace('"', "")
    if bounded and length_bounded and stats and triggers == 4:
        return []
    if not explicit:
        raise SchemaError(
            f"collection {table.schema}.{table.name} was created by an earlier release: its full"
            " text is unbounded or it lacks the BM25 statistics; upgrading it rewrites the table"
            " under an exclusive lock, so it is not done implicitly: run"
            " PGVStore.upgrade_schema() (see docs/schema.md)"
        )
    done = []
    if not bounded:
        yield Execute(bound_full_text(table, spec.ts_config))
        done.append("full text bounded to the first 100,000 characters (table rewritten)")
    if tsv_len is not None and not length_bounded:
        yield Execute(drop_length_column(table))
    for frag in bm25_ddl(table, spec.ts_config):
        yield Execute(frag)
    done.append("BM25 statistics objects created and counted")
    return done


#: Collection upgrades in order; `SCHEMA_VERSION` is the last one's version.
COLLECTION_STEPS = (CollectionStep(2, "bounded full text and BM25 statistics", _full_text),)


def collection_upgrade_plan(
    spec: CollectionSpec, version: int, *, explicit: bool = False
) -> Plan[list[str]]:
    """Bring a collection (whose lock the caller holds) from `version` to `SCHEMA_VERSION`."""
    done: list[str] = []
    if version >= SCHEMA_VERSION:
        return done
    for step in COLLECTION_STEPS:
        if step.version > version:
            done += yield from step.plan(spec, explicit)
    yield Execute(set_collection_version(spec.table, SCHEMA_VERSION))
    done.append(f"schema version {version} -> {SCHEMA_VERSION}")
    return done


def upgrade_registry_plan(table: Table) -> Plan[list[str]]:
    """`upgrade_schema()`'s first transaction: the registry's steps, committed before the
    collection's (which may rewrite a table) so that the registry is not locked meanwhile."""
    exists, comment = (yield Fetch(registry_state(table)))[0]
    if not exists:
        return []
    return (yield from registry_upgrade_plan(table, comment))


def upgrade_plan(spec: CollectionSpec) -> Plan[list[str] | None]:
    """`upgrade_schema()`'s second transaction: every step the collection needs, heavy too.

    None when the collection does not exist.
    """
    table = spec.table
    exists, comment = (yield Fetch(registry_state(table)))[0]
    if not exists:
        return None
    done = yield from registry_upgrade_plan(table, comment)
    yield Execute(ddl.advisory_xact_lock(table.lock_key()))
    rows = yield Fetch(ddl.registry_row(table))
    if not rows or not (yield Fetch(catalog.table_exists(table)))[0][0]:
        return None
    spec = check_registered(spec, rows[0])
    version = rows[0][5]
    assert isinstance(version, int)
    return done + (yield from collection_upgrade_plan(spec, version, explicit=True))
