"""Catalog reads: what exists, index status and build progress. Pure functions.

Every question the store asks PostgreSQL's catalogs is here, so existence
checks are written once. Names are passed as parameters and compared with
the catalog's, never spliced into the text.
"""

from __future__ import annotations

from psycopg import sql

from ..config import REGISTRY_TABLE, Table
from . import Frag

__all__ = [
    "collections",
    "extension_version",
    "index_definition",
    "index_status",
    "indexes",
    "progress",
    "registries",
    "relation_exists",
    "schema_and_relation_exist",
    "schema_exists",
    "table_exists",
    "tenant_policy",
    "ts_config_exists",
]

_RELATION = (
    "EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %s AND c.relname = %s"
)


def extension_version() -> Frag:
    """Installed and available pgvector versions (either may be NULL)."""
    return Frag(
        sql.SQL(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
            " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
        )
    )


def schema_exists(schema: str) -> Frag:
    """Whether a schema of this name exists."""
    return Frag(sql.SQL("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)"), (schema,))


def relation_exists(schema: str, name: str) -> Frag:
    """Whether a relation (table, index, view, ...) of this name exists in the schema."""
    return Frag(sql.SQL("SELECT " + _RELATION + ")"), (schema, name))


def table_exists(table: Table) -> Frag:
    """Whether the collection's table exists (plain or partitioned)."""
    return Frag(
        sql.SQL("SELECT " + _RELATION + " AND c.relkind IN ('r', 'p'))"),
        (table.schema, table.name),
    )


def schema_and_relation_exist(schema: str, name: str) -> Frag:
    """One row: whether the schema exists, whether the relation exists."""
    return Frag(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s), " + _RELATION + ")"
        ),
        (schema, schema, name),
    )


def ts_config_exists(config: str) -> Frag:
    """Whether a text-search configuration of this name is visible."""
    return Frag(sql.SQL("SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = %s)"), (config,))


_INDEXES = (
    " FROM pg_index i"
    " JOIN pg_class ic ON ic.oid = i.indexrelid"
    " JOIN pg_am am ON am.oid = ic.relam"
    " JOIN pg_class tc ON tc.oid = i.indrelid"
    " JOIN pg_namespace n ON n.oid = tc.relnamespace"
    " WHERE n.nspname = %s AND tc.relname = %s ORDER BY ic.relname"
)


def indexes(table: Table) -> Frag:
    """Name and validity of each of the collection's indexes."""
    return Frag(sql.SQL("SELECT ic.relname, i.indisvalid" + _INDEXES), (table.schema, table.name))


def index_status(table: Table) -> Frag:
    """Name, access method, validity, size and definition of every index of the table."""
    return Frag(
        sql.SQL(
            "SELECT ic.relname, am.amname, i.indisvalid, pg_relation_size(ic.oid),"
            " pg_get_indexdef(ic.oid)" + _INDEXES
        ),
        (table.schema, table.name),
    )


def index_definition(table: Table, kind: str) -> Frag:
    """`pg_get_indexdef` of one of the collection's indexes (no row when it does not exist)."""
    name = table.index(kind).as_string()
    return Frag(
        sql.SQL("SELECT pg_get_indexdef(to_regclass(%s)) WHERE to_regclass(%s) IS NOT NULL"),
        (name, name),
    )


def progress(table: Table) -> Frag:
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


def tenant_policy(table: Table) -> Frag:
    """Whether the collection's tenant policy exists, and by what it tells the tenant."""
    return Frag(
        sql.SQL(
            "SELECT true, CASE WHEN p.qual LIKE %s THEN 'setting' ELSE 'role' END"
            " FROM pg_policies p WHERE p.schemaname = %s AND p.tablename = %s"
            " AND p.policyname = 'pgvstore_tenant'"
        ),
        ("%current_setting%", table.schema, table.name),
    )


def registries() -> Frag:
    """The schemas that hold a collection registry, by name."""
    return Frag(
        sql.SQL(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = %s AND c.relkind IN ('r', 'p') ORDER BY n.nspname"
        ),
        (REGISTRY_TABLE,),
    )


def collections(schema: str) -> Frag:
    """The registry of `schema`, by collection name, with each table's size and ANN index.

    Per collection: dimensions, distance, vector type, text search configuration,
    embedding model, whether its table exists, the size of the table with its
    indexes and TOAST, and the access method, validity and definition of its
    HNSW or IVFFlat index (NULL without one).
    """
    return Frag(
        sql.SQL(
            "SELECT r.collection, r.dimensions, r.distance, r.vector_type,"
            " r.text_search_config, r.embedding_model, c.oid IS NOT NULL,"
            " COALESCE(pg_total_relation_size(c.oid), 0), ann.amname, ann.indisvalid, ann.def"
            " FROM {registry} r"
            " LEFT JOIN pg_class c ON c.relname = r.collection AND c.relkind IN ('r', 'p')"
            " AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s)"
            " LEFT JOIN LATERAL (SELECT am.amname, i.indisvalid, pg_get_indexdef(ic.oid) AS def"
            " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
            " JOIN pg_am am ON am.oid = ic.relam"
            " WHERE i.indrelid = c.oid AND am.amname IN ('hnsw', 'ivfflat')"
            " ORDER BY ic.relname LIMIT 1) ann ON true"
            " ORDER BY r.collection"
        ).format(registry=sql.Identifier(schema, REGISTRY_TABLE)),
        (schema,),
    )
