"""ANN index management: build, drop, reindex, inspect, and build progress.

Builds run on a connection of their own, closed afterwards, so the build
settings (`maintenance_work_mem`, `max_parallel_maintenance_workers`) apply to
the build only, also for `CONCURRENTLY` builds that cannot run inside a
transaction. The plans here are pure; the store's runners drive them.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _validate as check
from ._plan import Execute, Fetch, Plan
from ._schema import CollectionSpec, check_index_kind
from ._sql import Frag, catalog, ddl, dml
from ._sql.settings import set_config
from .config import HNSWIndex, IVFFlatIndex, Table, memory_size
from .errors import InputError, SchemaError

__all__ = [
    "BuildSettings",
    "IndexInfo",
    "IndexProgress",
    "create_index_plan",
    "drop_index_plan",
    "index_infos",
    "reindex_plan",
]


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
        if workers is not None:
            check.int_in(workers, "max_parallel_maintenance_workers", 0, 64)
        if self.maintenance_work_mem is not None:
            memory_size(self.maintenance_work_mem, "maintenance_work_mem", InputError)

    def frags(self, local: bool) -> list[Frag]:
        """`set_config` calls; `local` ties them to the transaction."""
        pairs = []
        if self.maintenance_work_mem is not None:
            pairs.append(("maintenance_work_mem", self.maintenance_work_mem))
        if self.max_parallel_maintenance_workers is not None:
            pairs.append(
                ("max_parallel_maintenance_workers", str(self.max_parallel_maintenance_workers))
            )
        return [set_config(name, value, local=local) for name, value in pairs]


def _ann_indexes(rows: list[tuple[object, ...]], table: Table) -> dict[str, bool]:
    """`{kind: valid}` for the collection's own ANN indexes."""
    names = {table.index_name(kind): kind for kind in ddl.ANN_KINDS}
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
    present = _ann_indexes((yield Fetch(catalog.index_status(table))), table)
    others = [k for k in present if k != kind]
    if others and not replace:
        raise SchemaError(
            f"collection {table.schema}.{table.name} already has a {others[0]} index;"
            " pass replace=True to drop it first"
        )
    rows = (yield Fetch(dml.count_rows(table)))[0][0]
    if isinstance(index, IVFFlatIndex) and rows == 0:
        raise InputError(
            "refusing to build an IVFFlat index on an empty table: its lists are computed"
            " from the data present; load rows first"
        )
    for frag in settings.frags(local=not concurrently):
        yield Fetch(frag)
    for other in others:
        yield Execute(ddl.drop_index(table, other, concurrently=concurrently))
    if present.get(kind) is False:
        yield Execute(ddl.drop_index(table, kind, concurrently=concurrently))
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
    after = _ann_indexes((yield Fetch(catalog.index_status(table))), table)
    if after.get(kind) is False:
        raise SchemaError(
            f"index {table.index_name(kind)} is invalid after the build; rebuild it with"
            " create_index() or reindex()"
        )


def drop_index_plan(spec: CollectionSpec, *, concurrently: bool) -> Plan[None]:
    """Drop the collection's ANN index (the store then searches exactly)."""
    for frag in ddl.drop_ann_indexes(spec.table, concurrently=concurrently):
        yield Execute(frag)


def reindex_plan(
    spec: CollectionSpec, *, concurrently: bool, settings: BuildSettings
) -> Plan[None]:
    """Rebuild the ANN index in place, e.g. after many updates and deletes."""
    table = spec.table
    present = _ann_indexes((yield Fetch(catalog.index_status(table))), table)
    if not present:
        raise SchemaError(f"collection {table.schema}.{table.name} has no ANN index to rebuild")
    for frag in settings.frags(local=not concurrently):
        yield Fetch(frag)
    for kind in present:
        yield Execute(ddl.reindex(table, kind, concurrently=concurrently))


def index_infos(rows: list[tuple[object, ...]]) -> list[IndexInfo]:
    return [IndexInfo(str(r[0]), str(r[1]), bool(r[2]), int(str(r[3])), str(r[4])) for r in rows]
