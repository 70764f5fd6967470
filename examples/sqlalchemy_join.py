"""Vector search JOINed with an application's own table, in one SQLAlchemy query.

    pip install '.[embedded,e5,sqlalchemy]'    # from a checkout
    python examples/sqlalchemy_join.py [DSN]

An app keeps its `products` (sku, name, stock) as a SQLAlchemy model. Their
descriptions live in a langchain-pgvstore collection whose `sku` and
`price` are typed columns. `store.sqlalchemy_table(metadata)` describes the
collection to SQLAlchemy, so one statement ranks descriptions by cosine
distance (pgvector's comparator), filters on the typed price, and JOINs the
product rows to keep what is in stock. Without a DSN the embedded server is
used (PGVSTORE_DATA_DIR, default a per-user folder).
"""

from __future__ import annotations

import sys
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from langchain_pgvstore import Column, PGVStore, embedded_dsn
from langchain_pgvstore.embeddings import E5SmallEmbeddings


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "example_products"

    sku: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    stock: Mapped[int]


CATALOGUE = [
    ("TENT-2", "Two-person tent", 4, Decimal("189.00"), "A light tent for two hikers, waterproof."),
    ("TENT-4", "Family tent", 0, Decimal("349.00"), "A roomy tent for a family of four."),
    ("BAG-S", "Summer sleeping bag", 12, Decimal("49.90"), "A thin sleeping bag for warm nights."),
    (
        "BAG-W",
        "Winter sleeping bag",
        3,
        Decimal("139.00"),
        "A down sleeping bag for freezing nights.",
    ),
    ("STOVE", "Camping stove", 7, Decimal("39.50"), "A gas stove to cook meals outdoors."),
    ("LAMP", "Head lamp", 25, Decimal("19.99"), "A bright head lamp for walking in the dark."),
    ("MAT", "Sleeping mat", 0, Decimal("29.00"), "An inflatable mat to sleep on the ground."),
]


def main(dsn: str) -> None:
    store = PGVStore(
        E5SmallEmbeddings(),
        connection=dsn,
        collection="example_product_docs",
        columns={"sku": Column("text"), "price": Column("numeric")},
    )
    engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        for sku, name, stock, _, _ in CATALOGUE:  # merge: the example can run again
            session.merge(Product(sku=sku, name=name, stock=stock))
    store.add_texts(
        [text for *_, text in CATALOGUE],
        [{"sku": sku, "price": price} for sku, _, _, price, _ in CATALOGUE],
        ids=[sku for sku, *_ in CATALOGUE],
    )

    docs = store.sqlalchemy_table(Base.metadata)
    query = "something to sleep in when it is cold"
    distance = docs.c.embedding.cosine_distance(store.embeddings.embed_query(query))
    statement = (
        sa.select(Product.name, docs.c.price, Product.stock, distance.label("distance"))
        .join(Product, Product.sku == docs.c.sku)
        .where(Product.stock > 0, docs.c.price < Decimal("150"))
        .order_by(distance)
        .limit(3)
    )
    print(f"query: {query} (in stock, under 150)")
    with Session(engine) as session:
        for name, price, stock, dist in session.execute(statement):
            print(f"  {dist:.3f}  {name}: {price} ({stock} in stock)")
    print(f"\nSQL:\n{statement.compile(engine)}")
    store.close()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else embedded_dsn())
