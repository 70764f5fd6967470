"""ANN index management: build, drop, reindex, inspect, and build progress.

Builds run on a connection of their own, closed afterwards, so the build
settings (`maintenance_work_mem`, `max_parallel_maintenance_workers`) apply to
the build only, also for `CONCURRENTLY` builds that cannot run inside a
transaction. The plans here are pure; the store's runners drive them.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from ._sql import Frag, ddl, dml
from ._steps import Execute, Fetch, Plan
from .config import HNSWIndex, IVFFlatIndex, Table
from .errors import ConfigError, InputError, SchemaError
from .schema import CollectionSpec, check_index_kind

__all__ = [
    "BuildSettings",
    "IndexInfo",
    "IndexProgress",
    "create_index_plan",
    "drop_index_plan",
    "index_status",
    "progress_query",
    "reindex_plan",
]

ANN_KINDS = ("hnsw", "ivfflat")


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """One of the collection's indexes, as the catalog describes it."""

    name: str
    kind: str
    valid: bool
    size_bytes: int
    definition: str


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """A snapshot of `pg_stat_progress_create_index` for a running build."""

    phase: str
    blocks_done: int
    blocks_total: int
    tuples_done: int
    tuples_total: int

    @property
    def fraction(self) -> float | None:
        """Progress of the current phase in [0, 1], when the server reports totals."""
        if self.tuples_total > 0:
            return min(1.0, self.tuples_done / self.tuples_total)
        if self.blocks_total > 0:
            return min(1.0, self.blocks_done / self.blocks_total)
        return None


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """Server settings for one index build; unset fields keep the server's values."""

    maintenance_work_mem: str | None = None
    max_parallel_maintenance_workers: int | None = None

    def __post_init__(self) -> None:
        workers = self.max_parallel_maintenance_workers
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 64
        ):
            raise ConfigError(
                f"max_parallel_maintenance_workers must be an integer in [0, 64], got {workers!r}"
            )
        mem = self.maintenance_work_mem
        if mem is not None and (not isinstance(mem, str) or not mem.strip()):
            raise ConfigError(f"maintenance_work_mem must be a size such as '1GB', got {mem!r}")

    def frags(self, local: bool) -> list[Frag]:
        """`set_config` calls; `local` ties them to the transaction."""
        pairs = []
        if self.maintenance_work_mem is not None:
            pairs.append(("maintenance_work_mem", self.maintenance_work_mem))
        if self.max_parallel_maintenance_workers is not None:
            pairs.append(
                ("max_parallel_maintenance_workers", str(self.max_parallel_maintenance_workers))
            )
        return [Frag(sql.SQL("SELECT set_config(%s, %s, %s)"), (n, v, local)) for n, v in pairs]


def index_status(table: Table) -> Frag:
    """Name, access method, validity, size and definition of every index of the table."""
    return Frag(
        sql.SQL(
            "SELECT ic.relname, am.amname, i.indisvalid, pg_relation_size(ic.oid),"
            " pg_get_indexdef(ic.oid) FROM pg_index i"
            " JOIN pg_class ic ON ic.oid = i.indexrelid"
            " JOIN pg_am am ON am.oid = ic.relam"
            " JOIN pg_class tc ON tc.oid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = tc.relnamespace"
            " WHERE n.nspname = %s AND tc.relname = %s ORDER BY ic.relname"
        ),
        (table.schema, table.name),
    )


def progress_query(table: Table) -> Frag:
    """The progress row of an index build running on the table, if any."""
    return Frag(
        sql.SQL(
            "SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total"
            " FROM pg_stat_progress_create_index p"
            " JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s LIMIT 1"
        ),
        (table.schema, table.name),
    )


def _ann_indexes(rows: list[tuple[object, ...]], table: Table) -> dict[str, bool]:
    """`{kind: valid}` for the collection's own ANN indexes."""
    names = {table.index_name(kind): kind for kind in ANN_KINDS}
    return {names[str(r[0])]: bool(r[2]) for r in rows if r[0] in names}


def create_index_plan(
    spec: CollectionSpec,
    index: HNSWIndex | IVFFlatIndex,
    *,
    concurrently: bool,
    replace: bool,
    settings: BuildSettings,
) -> Plan[None]:
    """Build `index` (operator class derived from the store's distance and type).

    An invalid index left by a failed concurrent build is dropped and built
    again. Another kind of ANN index is an error unless `replace=True`.
    """
    table = spec.table
    check_index_kind(spec.distance, index)
    kind = ddl.ann_index_kind(index)
    present = _ann_indexes((yield Fetch(index_status(table))), table)
    others = [k for k in present if k != kind]
    if others and not replace:
        raise SchemaError(
            f"collection {table.schema}.{table.name} already has a {others[0]} index;"
            " pass replace=True to drop it first"
        )
    rows = (yield Fetch(dml.count_rows(table, Frag(sql.SQL("TRUE")))))[0][0]
    if isinstance(index, IVFFlatIndex) and rows == 0:
        raise InputError(
            "refusing to build an IVFFlat index on an empty table: its lists are computed"
            " from the data present; load rows first"
        )
    for frag in settings.frags(local=not concurrently):
        yield Fetch(frag)
    conc = sql.SQL("CONCURRENTLY " if concurrently else "")
    for other in others:
        yield Execute(Frag(sql.SQL("DROP INDEX {}IF EXISTS {}").format(conc, table.index(other))))
    if present.get(kind) is False:
        yield Execute(Frag(sql.SQL("DROP INDEX {}IF EXISTS {}").format(conc, table.index(kind))))
    yield Execute(
        ddl.create_ann_index(
            table,
            spec.distance,
            spec.vector_type,
            index,
            rows=rows,
            concurrently=concurrently,
            dimensions=spec.dimensions,
        )
    )
    # a failed concurrent build leaves an invalid index behind: say so now
    after = _ann_indexes((yield Fetch(index_status(table))), table)
    if after.get(kind) is False:
        raise SchemaError(
            f"index {table.index_name(kind)} is invalid after the build; rebuild it with"
            " create_index() or reindex()"
        )


def drop_index_plan(spec: CollectionSpec, *, concurrently: bool) -> Plan[None]:
    """Drop the collection's ANN index (the store then searches exactly)."""
    conc = sql.SQL("CONCURRENTLY " if concurrently else "")
    for kind in ANN_KINDS:
        yield Execute(
            Frag(sql.SQL("DROP INDEX {}IF EXISTS {}").format(conc, spec.table.index(kind)))
        )


def reindex_plan(
    spec: CollectionSpec, *, concurrently: bool, settings: BuildSettings
) -> Plan[None]:
    """Rebuild the ANN index in place, e.g. after many updates and deletes."""
    table = spec.table
    present = _ann_indexes((yield Fetch(index_status(table))), table)
    if not present:
        raise SchemaError(f"collection {table.schema}.{table.name} has no ANN index to rebuild")
    for frag in settings.frags(local=not concurrently):
        yield Fetch(frag)
    conc = sql.SQL("CONCURRENTLY " if concurrently else "")
    for kind in present:
        yield Execute(Frag(sql.SQL("REINDEX INDEX {}{}").format(conc, table.index(kind))))


def index_infos(rows: list[tuple[object, ...]]) -> list[IndexInfo]:
    return [IndexInfo(str(r[0]), str(r[1]), bool(r[2]), int(str(r[3])), str(r[4])) for r in rows]
