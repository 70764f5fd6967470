"""Adopting an existing table: check what it has, add what was asked for, register it.

The decisions are a pure function of what the catalog shows (`decide`), so a
dry run and a real one report the same steps; the real one takes the
collection's advisory lock first and reads the catalog under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ._column_names import ID_TYPES
from ._plan import Execute, Fetch, Plan
from ._provision import register_plan, registry_plan
from ._schema import CollectionSpec, check_registered
from ._sql import Frag, catalog, ddl
from ._sql import columns as typed
from ._sql import existing as sq
from ._sql.bm25_schema import bm25_ddl
from .config import Table
from .errors import InputError, SchemaError
from .existing import CONTENT_HASH_COLUMN, AdoptionReport, AdoptionStep

__all__ = ["AdoptOptions", "adopt_plan"]

#: the generated column full text adds beside the tsvector (`bm25_schema.length_column`)
LENGTH_NAME = "tsv_len"
_VECTOR = re.compile(r"(vector|halfvec)\((\d+)\)")
#: `format_type` spellings each declared column type accepts.
_ACCEPTS = {
    "text": ("text", "character varying"),
    "integer": ("integer",),
    "bigint": ("bigint",),
    "double precision": ("double precision",),
    "numeric": ("numeric",),
    "boolean": ("boolean",),
    "date": ("date",),
    "timestamptz": ("timestamp with time zone",),
    "uuid": ("uuid",),
    "text[]": ("text[]", "character varying[]"),
    "jsonb": ("jsonb",),
}


@dataclass(frozen=True, slots=True)
class AdoptOptions:
    """The changes `adopt()` may make; each one is off unless asked for."""

    add_embedding_column: bool = False
    add_metadata_column: bool = False
    track_changes: bool = False
    create_indexes: bool = False
    full_text: bool = False
    dry_run: bool = False


#: one catalog row per column: type, NOT NULL, generated, sole key of a unique index
Found = dict[str, tuple[str, bool, bool, bool]]


def _is(type_: str, accepted: tuple[str, ...]) -> bool:
    return any(type_ == a or type_.startswith(a + "(") for a in accepted)


def _check_key_and_content(table: Table, found: Found, name: str) -> None:
    names = table.names
    for role, column in (("id", names.id), ("content", names.content)):
        if column not in found:
            raise SchemaError(f"table {name} has no column {column!r} (the {role} column)")
        accepted = _ACCEPTS["text"] + (tuple(ID_TYPES) if role == "id" else ())
        if not _is(found[column][0], accepted):
            kinds = "text, varchar, " + ", ".join(ID_TYPES) if role == "id" else "text or varchar"
            raise SchemaError(
                f"the {role} column {column!r} of {name} is {found[column][0]}; it must be {kinds}"
            )
    if not found[names.id][3]:
        raise SchemaError(
            f"the id column {names.id!r} of {name} has no unique index of its own; make it the"
            " primary key, or add one: CREATE UNIQUE INDEX ON ... (...)"
        )


def _embedding_dimensions(spec: CollectionSpec, found: Found, name: str) -> int | None:
    """The dimensions of the embedding column, checked against the store's settings;
    None when the column is missing."""
    column = spec.table.names.embedding
    if column not in found:
        return None
    shape = _VECTOR.fullmatch(found[column][0])
    if shape is None:
        raise SchemaError(
            f"the embedding column {column!r} of {name} is {found[column][0]}; it must be"
            " vector(n) or halfvec(n) with its dimensions"
        )
    if shape.group(1) != spec.vector_type.value:
        raise SchemaError(
            f"the embedding column {column!r} of {name} is {shape.group(1)}, but this store uses"
            f" vector_type={spec.vector_type.value!r}"
        )
    dimensions = int(shape.group(2))
    if spec.dimensions is not None and spec.dimensions != dimensions:
        raise SchemaError(
            f"the embedding column {column!r} of {name} has {dimensions} dimensions, but this"
            f" store uses {spec.dimensions}"
        )
    return dimensions


def _check_declared(table: Table, found: Found, name: str) -> None:
    for field, column in table.columns:
        if field not in found:
            raise SchemaError(f"table {name} has no column {field!r} (declared in columns=)")
        type_, not_null = found[field][0], found[field][1]
        if not _is(type_, _ACCEPTS[column.type]):
            raise SchemaError(
                f"column {field!r} of {name} is {type_}, but columns= declares it {column.type}"
            )
        if not column.nullable and not not_null:
            raise SchemaError(
                f"column {field!r} of {name} allows NULL: declare it Column({column.type!r},"
                " nullable=True)"
            )


def decide(
    spec: CollectionSpec, options: AdoptOptions, found: Found, indexes: set[str]
) -> tuple[CollectionSpec, list[tuple[AdoptionStep, list[Frag]]], list[str], list[str]]:
    """The steps adoption takes, what is already there and what is left; the spec with
    the table's dimensions and column names. `SchemaError` for a table the store cannot
    use as it is, naming the option that would fix it when there is one."""
    table = spec.table
    name = f"{table.schema}.{table.name}"
    if not found:
        raise SchemaError(f"table {name} does not exist")
    _check_key_and_content(table, found, name)
    _check_declared(table, found, name)
    steps: list[tuple[AdoptionStep, list[Frag]]] = []
    present: list[str] = []
    left: list[str] = []

    def step(label: str, frags: list[Frag], rewrites: bool = False) -> None:
        shown = "; ".join(f.sql.as_string(None) for f in frags[:1])
        more = f" (+{len(frags) - 1} statements)" if len(frags) > 1 else ""
        steps.append((AdoptionStep(label, shown + more, rewrites), frags))

    id_type = found[table.names.id][0]
    names = replace(table.names, id_type=id_type if id_type in ID_TYPES else None)
    table = replace(table, existing=names)
    dimensions = _embedding_dimensions(spec, found, name)
    if dimensions is not None:
        present.append(f"embedding column {names.embedding!r} ({found[names.embedding][0]})")
    elif not options.add_embedding_column:
        raise SchemaError(
            f"table {name} has no column {names.embedding!r} for the embeddings;"
            " adopt(add_embedding_column=True) adds it (nullable, no table rewrite)"
        )
    elif spec.dimensions is None:
        raise InputError(
            "adding the embedding column needs its dimensions: open the store with dimensions=N"
        )
    else:
        dimensions = spec.dimensions
        step("embedding column", [sq.add_embedding(table, spec.vector_type, dimensions)])
    if names.metadata in found:
        if found[names.metadata][0] != "jsonb":
            raise SchemaError(
                f"the metadata column {names.metadata!r} of {name} is {found[names.metadata][0]};"
                " it must be jsonb"
            )
        present.append(f"metadata column {names.metadata!r}")
    elif not options.add_metadata_column:
        raise SchemaError(
            f"table {name} has no jsonb column {names.metadata!r} for the fields without a"
            " column of their own; adopt(add_metadata_column=True) adds it (no table rewrite),"
            " or name one with ExistingTable(metadata=...)"
        )
    else:
        step("metadata column", [sq.add_metadata(table)])

    tracked = names.content_hash is not None
    if CONTENT_HASH_COLUMN in found:
        if found[CONTENT_HASH_COLUMN][0] != "bytea":
            raise SchemaError(f"column {CONTENT_HASH_COLUMN!r} of {name} is not bytea")
        tracked = True
        present.append(f"content-hash column {CONTENT_HASH_COLUMN!r}")
    table = replace(table, existing=replace(names, content_hash=CONTENT_HASH_COLUMN))
    if not tracked and options.track_changes:
        step("content-hash column", [sq.add_content_hash(table)])
        tracked = True
    elif not tracked:
        left.append(
            "changes: without track_changes=True, embed_pending() embeds rows whose embedding"
            " is NULL only, not rows whose content the application changed"
        )
    table = replace(
        table, existing=replace(names, content_hash=CONTENT_HASH_COLUMN if tracked else None)
    )

    has_tsv = names.tsv in found
    if has_tsv:
        present.append(f"full text ({names.tsv!r})")
    elif options.full_text:
        if LENGTH_NAME in found:
            raise SchemaError(f"table {name} has a column tsv_len, which full text would add")
        frags = [sq.add_tsv(table, spec.ts_config)] + ddl.create_secondary_indexes(
            replace(table, full_text=True)
        )[1:]
        step("full text", frags + bm25_ddl(table, spec.ts_config), rewrites=True)
        has_tsv = True
    else:
        left.append("full text: keyword and hybrid search need adopt(full_text=True)")
    table = replace(table, full_text=has_tsv)

    wanted = list(
        zip(
            [table.index_name("meta")]
            + [table.index_name(typed.index_kind(n)) for n, c in table.columns if c.index],
            ddl.create_secondary_indexes(replace(table, full_text=False))
            + typed.create_column_indexes(table),
            strict=True,
        )
    )
    missing = [frag for index, frag in wanted if index not in indexes]
    if missing and options.create_indexes:
        step("indexes", missing)
    elif missing:
        left.append(
            f"indexes: {len(missing)} of the metadata and declared columns are missing;"
            " adopt(create_indexes=True) builds them"
        )
    if not {table.index_name("hnsw"), table.index_name("ivfflat")} & indexes:
        left.append(
            "ANN index: searches scan exactly until store.create_index(concurrently=True),"
            " best run after embed_pending()"
        )
    return replace(spec, table=table, dimensions=dimensions), steps, present, left


def adopt_plan(spec: CollectionSpec, options: AdoptOptions) -> Plan[AdoptionReport]:
    """Check the table, make the changes asked for and register it (one transaction);
    a dry run reads the catalog and changes nothing."""
    table = spec.table
    if not options.dry_run:
        yield from registry_plan(spec, create=True)
        yield Execute(ddl.advisory_xact_lock(table.lock_key()))
    found: Found = {
        str(row[0]): (str(row[1]), bool(row[2]), bool(row[3]), bool(row[4]))
        for row in (yield Fetch(sq.describe_columns(table)))
    }
    indexes = {str(row[0]) for row in (yield Fetch(catalog.indexes(table)))} if found else set()
    if options.full_text and not (yield Fetch(catalog.ts_config_exists(spec.ts_config)))[0][0]:
        raise SchemaError(f"unknown text search configuration {spec.ts_config!r}")
    adopted, steps, present, left = decide(spec, options, found, indexes)
    report = AdoptionReport(
        table=f"{table.schema}.{table.name}",
        steps=tuple(s for s, _ in steps),
        present=tuple(present),
        left=tuple(left),
        dry_run=options.dry_run,
    )
    if options.dry_run:
        return report
    rows = yield Fetch(ddl.registry_row(table))
    if rows:
        check_registered(replace(spec, dimensions=adopted.dimensions), rows[0])
    for _, frags in steps:
        for frag in frags:
            yield Execute(frag)
    assert adopted.dimensions is not None
    if not rows:
        yield from register_plan(adopted, adopted.dimensions)
    yield Execute(sq.record_existing(adopted.table))
    return report
