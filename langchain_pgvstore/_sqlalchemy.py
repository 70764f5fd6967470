"""The collection as a `sqlalchemy.Table` (extra `sqlalchemy`), for apps that JOIN it.

The description follows the table the store creates: `tenant` (multi-tenant
collections), `id`, `content`, `metadata` (JSONB), `embedding` (pgvector's
`VECTOR`/`HALFVEC` of the collection's dimensions, with its comparators such
as `.cosine_distance(q)`), the typed columns, `created_at` and `updated_at`.
The full-text columns are the store's own and are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .columns import Column
from .config import Table, VectorType
from .errors import ConfigError

if TYPE_CHECKING:
    import sqlalchemy

__all__ = ["collection_table"]

_HINT = "store.sqlalchemy_table() needs SQLAlchemy: pip install 'langchain-pgvstore[sqlalchemy]'"


def _column_type(column: Column) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql as pg

    types: dict[str, Any] = {
        "text": lambda: sa.Text(collation="C"),
        "integer": sa.Integer,
        "bigint": sa.BigInteger,
        "double precision": pg.DOUBLE_PRECISION,
        "numeric": lambda: sa.Numeric(asdecimal=True),
        "boolean": sa.Boolean,
        "date": sa.Date,
        "timestamptz": lambda: sa.DateTime(timezone=True),
        "uuid": lambda: sa.Uuid(as_uuid=True),
        "text[]": lambda: pg.ARRAY(sa.Text(collation="C")),
        "jsonb": pg.JSONB,
    }
    return types[column.type]()


def _id_type(id_type: str | None) -> Any:
    """The id column's type: text, or an existing table's integer or uuid key."""
    import sqlalchemy as sa

    types: dict[str | None, Any] = {
        None: sa.Text,
        "smallint": sa.SmallInteger,
        "integer": sa.Integer,
        "bigint": sa.BigInteger,
        "uuid": lambda: sa.Uuid(as_uuid=True),
    }
    return types[id_type]()


def collection_table(
    table: Table,
    vector_type: VectorType,
    dimensions: int | None,
    metadata: sqlalchemy.MetaData,
) -> sqlalchemy.Table:
    """The `sqlalchemy.Table` of a collection, in `metadata` (the one there already, if any)."""
    try:
        import sqlalchemy as sa
        from pgvector.sqlalchemy import HALFVEC, VECTOR
        from sqlalchemy.dialects import postgresql as pg
    except ImportError as e:
        raise ConfigError(_HINT) from e
    if not isinstance(metadata, sa.MetaData):
        raise ConfigError(f"expected a sqlalchemy.MetaData, got {type(metadata).__name__}")
    existing = metadata.tables.get(f"{table.schema}.{table.name}")
    if existing is not None:
        return existing
    vector = HALFVEC if vector_type is VectorType.HALFVEC else VECTOR
    columns: list[sa.Column[Any]] = []
    if table.multi_tenant:
        columns.append(sa.Column("tenant", sa.Text, primary_key=True))
    names, adopted = table.names, table.existing is not None
    columns += [
        sa.Column(names.id, _id_type(names.id_type), primary_key=True),
        sa.Column(names.content, sa.Text, nullable=adopted),
        sa.Column(names.metadata, pg.JSONB, nullable=False),
        # an existing table's rows wait for their embedding with NULL there
        sa.Column(names.embedding, vector(dimensions), nullable=adopted),
    ]
    columns += [
        sa.Column(name, _column_type(column), nullable=column.nullable)
        for name, column in table.columns
    ]
    if not adopted:
        columns += [
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        ]
    return sa.Table(table.name, metadata, *columns, schema=table.schema)
