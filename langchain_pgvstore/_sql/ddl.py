"""DDL builders: extension, registry, collection table, indexes, drops. Pure functions."""

from __future__ import annotations

from psycopg import sql

from ..config import (
    MAX_TSVECTOR_CHARS,
    REGISTRY_TABLE,
    TENANT_SETTING,
    Distance,
    HNSWIndex,
    IVFFlatIndex,
    Table,
    VectorType,
)
from ..errors import ConfigError
from . import Frag, type_name
from .columns import column_definitions

__all__ = [
    "ANN_KINDS",
    "ROW_EXISTING_TABLE",
    "ROW_TYPED_COLUMNS",
    "advisory_xact_lock",
    "analyze",
    "ann_index_kind",
    "clean_gin_pending",
    "create_ann_index",
    "create_extension",
    "create_registry",
    "create_schema",
    "create_secondary_indexes",
    "create_table",
    "delete_registry_row",
    "drop_ann_indexes",
    "drop_index",
    "drop_table",
    "insert_registry_row",
    "registry_row",
    "reindex",
    "set_embedding_storage_main",
    "tenant_policy",
    "tsv_expression",
]


def create_extension() -> Frag:
    """Install pgvector in the current database."""
    return Frag(sql.SQL("CREATE EXTENSION IF NOT EXISTS vector"))


def advisory_xact_lock(key: int) -> Frag:
    """Serialise provisioning across sessions until the transaction ends."""
    return Frag(sql.SQL("SELECT pg_advisory_xact_lock(%s)"), (key,))


def create_schema(schema: str) -> Frag:
    """Create a schema if it is missing."""
    return Frag(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def create_registry(table: Table) -> Frag:
    """The per-schema table recording each collection's shape."""
    return Frag(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "collection text PRIMARY KEY,"
            " dimensions integer NOT NULL,"
            " distance text NOT NULL,"
            " vector_type text NOT NULL,"
            " text_search_config text NOT NULL,"
            " embedding_model text,"
            " schema_version integer NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " multi_tenant boolean NOT NULL DEFAULT false,"
            " distribution text, typed_columns jsonb, existing_table jsonb)"
        ).format(sql.Identifier(table.schema, REGISTRY_TABLE))
    )


#: Positions in a `registry_row` row that readers outside `_schema.check_registered` use.
ROW_TYPED_COLUMNS = 8
ROW_EXISTING_TABLE = 11


def registry_row(table: Table) -> Frag:
    """The collection's registry row, if any.

    Columns a later release added are read through `to_jsonb`, so the same
    query reads a registry an earlier release made (they read as NULL). The
    last two columns say, from the catalog, whether the table has full text
    (the `tsv` column) and whether it has a `pg_textsearch` index (an index of
    access method `bm25` under the collection's name for it); NULL when the
    table does not exist.
    """
    name = table.qualname.as_string(None)
    return Frag(
        sql.SQL(
            "SELECT r.dimensions, r.distance, r.vector_type, r.text_search_config,"
            " r.embedding_model, r.schema_version,"
            " coalesce((to_jsonb(r) ->> 'multi_tenant')::boolean, false),"
            " to_jsonb(r) ->> 'distribution', to_jsonb(r) -> 'typed_columns',"
            " CASE WHEN to_regclass(%s) IS NOT NULL THEN EXISTS (SELECT FROM pg_attribute AS a"
            " WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped)"
            " END,"
            " CASE WHEN to_regclass(%s) IS NOT NULL THEN EXISTS (SELECT FROM pg_index AS i"
            " JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_am AS am ON am.oid = c.relam"
            " WHERE i.indrelid = to_regclass(%s) AND c.relname = %s AND am.amname = 'bm25')"
            " END, to_jsonb(r) -> 'existing_table'"
            " FROM {} AS r WHERE r.collection = %s"
        ).format(table.registry),
        (name, name, table.names.tsv, name, name, table.index_name("textsearch"), table.name),
    )


def insert_registry_row(
    table: Table,
    dimensions: int,
    distance: Distance,
    vector_type: VectorType,
    ts_config: str,
    embedding_model: str | None,
    schema_version: int,
) -> Frag:
    """Record a new collection (its shape comes from `table`)."""
    return Frag(
        sql.SQL(
            "INSERT INTO {} (collection, dimensions, distance, vector_type, text_search_config,"
            " embedding_model, schema_version, multi_tenant, distribution)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (collection) DO NOTHING"
        ).format(table.registry),
        (
            table.name,
            dimensions,
            distance.value,
            vector_type.value,
            ts_config,
            embedding_model,
            schema_version,
            table.multi_tenant,
            table.distribution,
        ),
    )


def delete_registry_row(table: Table) -> Frag:
    """Forget a collection."""
    return Frag(
        sql.SQL("DELETE FROM {} WHERE collection = %s").format(table.registry), (table.name,)
    )


def create_table(table: Table, dimensions: int, vector_type: VectorType, ts_config: str) -> Frag:
    """The collection table (with `tenant` in its primary key when multi-tenant).

    The text-search configuration is a literal because a generated column's
    expression cannot take parameters; it was checked against `pg_ts_config`.
    """
    tenant = (
        sql.SQL("{} text NOT NULL, ").format(table.tenant) if table.multi_tenant else sql.SQL("")
    )
    return Frag(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {tbl} ({tenant}"
            "{id} text NOT NULL,"
            " {content} text NOT NULL,"
            " {metadata} jsonb NOT NULL DEFAULT '{{}}'::jsonb,"
            " {embedding} {vtype}({dims}) NOT NULL{typed},"
            "{tsv}"
            " {created} timestamptz NOT NULL DEFAULT now(),"
            " {updated} timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY ({key}))"
        ).format(
            tbl=table.qualname,
            tenant=tenant,
            id=table.id,
            content=table.content,
            metadata=table.metadata,
            embedding=table.embedding,
            vtype=type_name(vector_type),
            dims=sql.Literal(int(dimensions)),
            typed=column_definitions(table.columns),
            tsv=_tsv_column(table, ts_config),
            created=table.created_at,
            updated=table.updated_at,
            key=sql.SQL(", ").join(table.key),
        )
    )


def tsv_expression(table: Table, ts_config: str) -> sql.Composable:
    """The expression of the generated tsvector: the first `MAX_TSVECTOR_CHARS` characters.

    The configuration is a literal because a generated column's expression cannot
    take parameters; it was checked against `pg_ts_config`.
    """
    return sql.SQL("to_tsvector({cfg}::regconfig, left({content}, {chars}))").format(
        cfg=sql.Literal(ts_config), content=table.content, chars=sql.Literal(MAX_TSVECTOR_CHARS)
    )


def _tsv_column(table: Table, ts_config: str) -> sql.Composable:
    """The generated tsvector column, or nothing for a collection without full text."""
    if not table.has_full_text:
        return sql.SQL("")
    return sql.SQL(" {tsv} tsvector GENERATED ALWAYS AS ({expr}) STORED,").format(
        tsv=table.tsv, expr=tsv_expression(table, ts_config)
    )


def set_embedding_storage_main(table: Table) -> Frag:
    """Keep vectors inline in the heap rather than out-of-line in TOAST.

    Out-of-line vectors make sequential scans look cheaper to the planner than
    they are, so at high `ef_search` it would abandon the ANN index for a much
    slower parallel sequential scan.
    """
    return Frag(
        sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STORAGE MAIN").format(
            table.qualname, table.embedding
        )
    )


def create_secondary_indexes(table: Table) -> list[Frag]:
    """GIN on metadata (serves `@>` filters) and GIN on the tsvector (full text, if any)."""
    indexes = [
        Frag(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin ({} jsonb_path_ops)").format(
                sql.Identifier(table.index_name("meta")), table.qualname, table.metadata
            )
        ),
        Frag(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin ({})").format(
                sql.Identifier(table.index_name("tsv")), table.qualname, table.tsv
            )
        ),
    ]
    return indexes if table.has_full_text else indexes[:1]


#: The kinds of ANN index a collection may have (its index names end in these).
ANN_KINDS = ("hnsw", "ivfflat")


def ann_index_kind(index: HNSWIndex | IVFFlatIndex) -> str:
    return "hnsw" if isinstance(index, HNSWIndex) else "ivfflat"


def create_ann_index(
    table: Table,
    distance: Distance,
    vector_type: VectorType,
    index: HNSWIndex | IVFFlatIndex,
    *,
    rows: int = 0,
    concurrently: bool = False,
    dimensions: int | None = None,
) -> Frag:
    """An HNSW or IVFFlat index whose operator class matches the store's distance.

    The operator class is derived, never passed in, so the API cannot build an
    index that the store's own queries would be unable to use.
    """
    kind = ann_index_kind(index)
    column: sql.Composable = table.embedding
    ops = sql.Identifier(distance.opclass(vector_type))
    if isinstance(index, HNSWIndex) and index.quantization == "binary":
        if dimensions is None:
            raise ConfigError("a binary-quantized index needs the collection's dimensions")
        # Hamming distance over the sign bits; the exact distance re-ranks later
        column = sql.SQL("(binary_quantize({})::bit({}))").format(
            table.embedding, sql.Literal(int(dimensions))
        )
        ops = sql.Identifier("bit_hamming_ops")
    if isinstance(index, HNSWIndex):
        options = sql.SQL("m = {}, ef_construction = {}").format(
            sql.Literal(index.m), sql.Literal(index.ef_construction)
        )
    else:
        options = sql.SQL("lists = {}").format(sql.Literal(index.lists_for(rows)))
    return Frag(
        sql.SQL(
            "CREATE INDEX {conc}IF NOT EXISTS {name} ON {tbl} USING {method} ({col} {ops})"
            " WITH ({options})"
        ).format(
            conc=sql.SQL("CONCURRENTLY " if concurrently else ""),
            name=sql.Identifier(table.index_name(kind)),
            tbl=table.qualname,
            method=sql.SQL(kind),
            col=column,
            ops=ops,
            options=options,
        )
    )


def drop_index(table: Table, kind: str, *, concurrently: bool = False) -> Frag:
    """Drop one of the collection's indexes if it exists."""
    return Frag(
        sql.SQL("DROP INDEX {}IF EXISTS {}").format(
            sql.SQL("CONCURRENTLY " if concurrently else ""), table.index(kind)
        )
    )


def drop_ann_indexes(table: Table, *, concurrently: bool = False) -> list[Frag]:
    """Drop whichever ANN index the collection has."""
    return [drop_index(table, kind, concurrently=concurrently) for kind in ANN_KINDS]


def reindex(table: Table, kind: str, *, concurrently: bool = False) -> Frag:
    """Rebuild one of the collection's indexes in place."""
    return Frag(
        sql.SQL("REINDEX INDEX {}{}").format(
            sql.SQL("CONCURRENTLY " if concurrently else ""), table.index(kind)
        )
    )


def clean_gin_pending(table: Table) -> list[Frag]:
    """Move the GIN indexes' pending-list entries into the main index structure."""
    # an adopted table may lack them: an index that is not there is skipped
    return [
        Frag(
            sql.SQL(
                "SELECT gin_clean_pending_list(i) FROM (SELECT to_regclass(%s) AS i) AS s"
                " WHERE i IS NOT NULL"
            ),
            (table.index(kind).as_string(),),
        )
        for kind in ("meta", "tsv")[: 2 if table.has_full_text else 1]
    ]


def analyze(table: Table) -> Frag:
    return Frag(sql.SQL("ANALYZE {}").format(table.qualname))


def drop_table(table: Table) -> Frag:
    return Frag(sql.SQL("DROP TABLE IF EXISTS {}").format(table.qualname))


def tenant_policy(table: Table, mode: str) -> list[Frag]:
    """Row-level security: a connection sees and writes its own tenant's rows only.

    `setting`: the tenant is the session setting `pgvstore.tenant` (the store
    sets it per call; it guards against a query that forgets its tenant, not
    against SQL that sets the setting itself). `role`: the tenant is the login
    role's name, which a connection cannot change. The table's owner is not
    bound by the policy (no FORCE): the owner provisions and administers.
    """
    tenant: sql.Composable
    if mode == "setting":
        tenant = sql.SQL("current_setting({}, true)").format(sql.Literal(TENANT_SETTING))
    else:
        tenant = sql.SQL("current_user")
    check = sql.SQL("{} = {}").format(table.tenant, tenant)
    return [
        Frag(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table.qualname)),
        Frag(
            sql.SQL(
                "CREATE POLICY pgvstore_tenant ON {} FOR ALL USING ({}) WITH CHECK ({})"
            ).format(table.qualname, check, check)
        ),
    ]
