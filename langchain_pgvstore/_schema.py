"""The collection's spec and lifecycle as plans: look up, drop (provision: `_provision.py`,
loads: `_load.py`).

Provisioning is idempotent and safe when several processes do it at once:
`CREATE EXTENSION` and the registry run under a global advisory lock, the
collection's table and indexes under a per-collection one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ._column_names import ColumnNames
from ._plan import Execute, Fetch, Plan
from ._sql import catalog, ddl, dml
from ._sql.bm25_schema import (
    drop_bm25,
)
from ._sql.migrations import parse_registry_version, registry_state
from ._sql.settings import set_config
from .columns import Columns, from_registry
from .config import (
    MAX_INDEXED_DIMENSIONS,
    REGISTRY_TABLE,
    REGISTRY_VERSION,
    SCHEMA_VERSION,
    TEXTSEARCH,
    Distance,
    FullText,
    HNSWIndex,
    IndexSpec,
    IVFFlatIndex,
    RowLevelSecurity,
    Table,
    VectorType,
)
from .errors import ConfigError, SchemaError

__all__ = [
    "MIN_PGVECTOR",
    "not_adopted",
    "CollectionSpec",
    "build_index_plan",
    "check_registry_version",
    "drop_plan",
    "lookup_plan",
]

MIN_PGVECTOR = (0, 8, 0)


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """Everything the store knows about its collection; replaced, never mutated."""

    table: Table
    distance: Distance = Distance.COSINE
    vector_type: VectorType = VectorType.VECTOR
    ts_config: str = "english"
    index: IndexSpec = HNSWIndex()
    dimensions: int | None = None
    embedding_model: str | None = None
    bulk_rebuild_rows: int = 10_000
    maintenance_work_mem: str | None = None
    row_level_security: RowLevelSecurity | None = None
    shard_count: int | None = None
    #: a read found it made by an earlier release: the next write provisions (upgrades) it
    outdated: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        check_index_kind(self.distance, self.index)
        if self.row_level_security is not None and not self.table.multi_tenant:
            raise ConfigError("row_level_security needs multi_tenant=True")


def check_index_kind(distance: Distance, index: IndexSpec) -> None:
    """Refuse an index pgvector has no operator class for (IVFFlat has none for L1)."""
    if isinstance(index, IVFFlatIndex) and distance is Distance.L1:
        raise ConfigError(
            "pgvector's IVFFlat has no operator class for the l1 distance;"
            " use HNSWIndex() or index=None with distance='l1'"
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_pgvector(installed: str | None, available: str | None) -> bool:
    """Raise SchemaError unless pgvector is usable; True when it must be created."""
    minimum = ".".join(map(str, MIN_PGVECTOR))
    if installed is None and available is None:
        raise SchemaError(
            "the pgvector extension is not available on this server;"
            f" install pgvector >= {minimum} (https://github.com/pgvector/pgvector)"
        )
    version = installed or available or ""
    if _version_tuple(version) < MIN_PGVECTOR:
        where = "installed" if installed else "available"
        raise SchemaError(
            f"pgvector {version} is {where} but langchain-pgvstore needs >= {minimum};"
            " run ALTER EXTENSION vector UPDATE after upgrading pgvector"
        )
    return installed is None


def provisioning_denied(spec: CollectionSpec, error: Exception) -> SchemaError:
    """The role may not create something the collection needs: say what, and who can."""
    denied = getattr(getattr(error, "diag", None), "message_primary", None) or str(error)
    if "extension" in denied and TEXTSEARCH in denied:
        return SchemaError(
            f"pg_textsearch is not installed in this database and this role may not install"
            f" it ({denied}); ask a superuser to run CREATE EXTENSION pg_textsearch in it"
        )
    if "extension" in denied:
        return SchemaError(
            f"pgvector is not installed in this database and this role may not install it"
            f" ({denied}); ask a superuser to run CREATE EXTENSION vector in it"
        )
    name = f"{spec.table.schema}.{spec.table.name}"
    return SchemaError(f"this role may not create collection {name}: {denied}")


def lookup_plan(spec: CollectionSpec) -> Plan[CollectionSpec | None]:
    """The collection as the registry records it, checked against `spec`; None if absent.

    Reads only: a search, `get` or count on a collection that does not exist
    creates nothing (no extension, registry or table).
    """
    table = spec.table
    installed, available = (yield Fetch(catalog.extension_version()))[0]
    if installed is None:
        if table.existing is not None:
            raise not_adopted(table)
        return None  # without pgvector there is no collection to read
    check_pgvector(installed, available)
    registry_exists, comment = (yield Fetch(registry_state(table)))[0]
    if not registry_exists:
        if table.existing is not None:
            raise not_adopted(table)
        return None
    outdated = check_registry_version(table, comment) < REGISTRY_VERSION
    rows = yield Fetch(ddl.registry_row(table))
    if not rows:
        if table.existing is not None:
            raise not_adopted(table)
        return None
    if not (yield Fetch(catalog.table_exists(table)))[0][0]:
        return None
    spec = check_registered(spec, rows[0])
    yield from check_index_plan(spec)
    if outdated or rows[0][5] != SCHEMA_VERSION:
        spec = replace(spec, outdated=True)
    return spec


def not_adopted(table: Table) -> SchemaError:
    """A store over an existing table that nobody adopted: reads say so rather than
    answer from an empty collection."""
    return SchemaError(
        f"table {table.schema}.{table.name} is not adopted yet: call store.adopt()"
        " (see its dry_run=True report) first"
    )


def check_index_plan(spec: CollectionSpec) -> Plan[None]:
    """Refuse an HNSW index whose quantization differs from the store's setting."""
    if isinstance(spec.index, HNSWIndex):
        found = yield Fetch(catalog.index_definition(spec.table, "hnsw"))
        if found:
            check_quantization(spec, "binary" if "binary_quantize(" in found[0][0] else None)


def check_indexable(spec: CollectionSpec) -> None:
    """Refuse, before creating anything, an ANN index pgvector cannot build."""
    index, dims = spec.index, spec.dimensions
    if index is None or dims is None:
        return
    if isinstance(index, HNSWIndex) and index.quantization == "binary":
        return
    limit = MAX_INDEXED_DIMENSIONS[spec.vector_type.value]
    if dims > limit:
        hint = (
            "use vector_type='halfvec' (indexable up to 4,000 dimensions), "
            if spec.vector_type is VectorType.VECTOR and dims <= 4000
            else ""
        )
        raise ConfigError(
            f"pgvector indexes {spec.vector_type.value} columns of at most {limit} dimensions,"
            f" got {dims}; {hint}HNSWIndex(quantization='binary'), or index=None for exact search"
        )


def check_quantization(spec: CollectionSpec, in_database: str | None) -> None:
    """The search statement follows the store's index setting: it must match the index."""
    configured = spec.index.quantization if isinstance(spec.index, HNSWIndex) else None
    if configured != in_database:
        raise SchemaError(
            f"collection {spec.table.schema}.{spec.table.name}: an HNSW index with"
            f" quantization={in_database!r} would not serve this store's searches, which are"
            f" configured with quantization={configured!r}; open the store with"
            f" index=HNSWIndex(quantization={in_database!r}, ...)"
        )


_NEWER = "; upgrade langchain-pgvstore to open it (nothing was changed)"


def check_registry_version(table: Table, comment: object) -> int:
    """The registry's version (from its comment); `SchemaError` if a newer release made it."""
    version = parse_registry_version(comment)
    if version > REGISTRY_VERSION:
        raise SchemaError(
            f"the registry {table.schema}.{REGISTRY_TABLE} has schema version {version}, made by"
            f" a newer langchain-pgvstore; this release knows versions up to {REGISTRY_VERSION}"
            + _NEWER
        )
    return version


def check_registered(spec: CollectionSpec, row: tuple[object, ...]) -> CollectionSpec:
    dimensions, distance, vector_type, ts_config = row[0], row[1], row[2], row[3]
    name = f"{spec.table.schema}.{spec.table.name}"
    version = row[5]
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise SchemaError(
            f"collection {name} has schema version {version}, made by a newer"
            f" langchain-pgvstore; this release knows versions up to {SCHEMA_VERSION}" + _NEWER
        )
    if spec.dimensions is not None and spec.dimensions != dimensions:
        raise SchemaError(
            f"collection {name} was created with {dimensions} dimensions,"
            f" but this store uses {spec.dimensions}"
        )
    if spec.distance.value != distance:
        raise SchemaError(
            f"collection {name} was created with distance {distance!r},"
            f" but this store uses {spec.distance.value!r}"
        )
    if spec.vector_type.value != vector_type:
        raise SchemaError(
            f"collection {name} stores {vector_type}, but this store uses {spec.vector_type.value}"
        )
    if spec.ts_config != ts_config:
        raise SchemaError(
            f"collection {name} was created with text search configuration {ts_config!r},"
            f" but this store uses {spec.ts_config!r}"
        )
    multi_tenant, distribution = bool(row[6]), row[7]
    if spec.table.multi_tenant != multi_tenant:
        raise SchemaError(
            f"collection {name} is {'' if multi_tenant else 'not '}multi-tenant; open it with"
            f" multi_tenant={multi_tenant}"
        )
    if spec.table.distribution is not None and spec.table.distribution != distribution:
        shown = f"distributed by {distribution}" if distribution else "not distributed"
        raise SchemaError(
            f"collection {name} is {shown}, but this store asks for a collection distributed"
            f" by {spec.table.distribution}"
        )
    typed = row[ddl.ROW_TYPED_COLUMNS] if len(row) > ddl.ROW_TYPED_COLUMNS else None
    check_columns(name, spec.table.columns, from_registry(typed))
    adopted = row[ddl.ROW_EXISTING_TABLE] if len(row) > ddl.ROW_EXISTING_TABLE else None
    existing = check_existing(name, spec.table.existing, adopted)
    full_text = spec.table.full_text
    if len(row) > 9 and row[9] is not None:
        found: FullText = TEXTSEARCH if len(row) > 10 and row[10] else bool(row[9])
        full_text = check_full_text(name, full_text, found)
    assert isinstance(dimensions, int)
    table = replace(
        spec.table,
        distribution=distribution,  # type: ignore[arg-type]
        full_text=full_text,
        existing=existing,
    )
    return replace(spec, dimensions=dimensions, table=table)


def check_existing(name: str, asked: ColumnNames | None, recorded: object) -> ColumnNames | None:
    """An adopted table's column names as the registry records them; `SchemaError` if
    the store names other columns, or treats an adopted table as its own (or the reverse).
    Whether the table records content hashes is the registry's to say."""
    if recorded is None:
        if asked is not None:
            raise SchemaError(
                f"collection {name} is one of the store's own tables, not an adopted existing"
                " table; open it without existing_table="
            )
        return None
    assert isinstance(recorded, dict)
    found = ColumnNames(**recorded)
    if asked is None:
        raise SchemaError(
            f"collection {name} is an existing table adopted with columns {found.as_json()!r};"
            " open it with existing_table=ExistingTable(...) naming them"
        )
    # whether hashes are recorded and the id's type are the table's, not the store's to say
    if replace(asked, content_hash=None, id_type=None) != replace(
        found, content_hash=None, id_type=None
    ):
        named = replace(asked, content_hash=found.content_hash, id_type=found.id_type)
        raise SchemaError(
            f"collection {name} was adopted with columns {found.as_json()!r}, but this store"
            f" names {named.as_json()!r}"
        )
    return found


def check_full_text(name: str, asked: FullText | None, found: FullText) -> FullText:
    """The collection's full text as the catalog shows it; `SchemaError` if the store asks
    for another (full text is never added, dropped or changed behind the user's back)."""
    if asked is not None and asked != found:
        has = "has full text" if found is True else f"was created with full_text={found!r}"
        raise SchemaError(
            f"collection {name} {has}, but this store asks for full_text={asked!r};"
            f" open it with full_text={found!r} or without the option"
        )
    return found


def check_columns(name: str, declared: Columns, recorded: Columns) -> None:
    """The store's typed columns must be the collection's: filters and reads depend on them."""
    if declared == recorded:
        return

    def show(columns: Columns) -> str:
        if not columns:
            return "no typed columns"
        return "columns={" + ", ".join(f"{n!r}: {c!r}" for n, c in columns) + "}"

    raise SchemaError(
        f"collection {name} was created with {show(recorded)}, but this store declares"
        f" {show(declared)}; open it with the collection's declaration"
    )


def build_index_plan(spec: CollectionSpec, *, concurrently: bool = False) -> Plan[None]:
    """Build the configured ANN index over the rows now in the table."""
    if spec.index is None:
        return
    rows = 0
    if isinstance(spec.index, IVFFlatIndex) and spec.index.lists is None:
        rows = (yield Fetch(dml.count_rows(spec.table)))[0][0]
    if spec.maintenance_work_mem is not None:
        yield Fetch(set_config("maintenance_work_mem", spec.maintenance_work_mem, local=True))
    yield Execute(
        ddl.create_ann_index(
            spec.table,
            spec.distance,
            spec.vector_type,
            spec.index,
            rows=rows,
            concurrently=concurrently,
            dimensions=spec.dimensions,
        )
    )


def drop_plan(spec: CollectionSpec) -> Plan[None]:
    """Drop the collection's table and its registry row.

    An adopted existing table is the application's: it is forgotten, not
    dropped (the statistics triggers go, its columns and indexes stay)."""
    table = spec.table
    yield Execute(ddl.advisory_xact_lock(table.lock_key()))
    if table.existing is None:
        yield Execute(ddl.drop_table(table))
    for frag in drop_bm25(table):
        yield Execute(frag)
    exists = (yield Fetch(catalog.relation_exists(table.schema, REGISTRY_TABLE)))[0][0]
    if exists:
        yield Execute(ddl.delete_registry_row(table))
