"""Existing tables: a table of your application's, searched in place.

```python
from langchain_pgvstore import Column, ExistingTable, PGVStore

store = PGVStore(
    embeddings,
    connection=dsn,
    collection="products",  # the table
    existing_table=ExistingTable(id="sku", content="description"),
    columns={"price": Column("numeric")},  # columns of the table served as metadata
    dimensions=384,
)
print(store.adopt(add_embedding_column=True, add_metadata_column=True, dry_run=True))
store.adopt(add_embedding_column=True, add_metadata_column=True, track_changes=True)
store.embed_pending(progress=True)  # resumable: run it again after a crash, or after
                                   # the application changed descriptions
```

Adoption checks the table (the id column is text with a unique index, the
content column is text, declared columns have the declared types) and makes
only the changes it was asked for, each reported: the embedding column (NULL
until the backfill fills it), a `metadata` jsonb column for fields without a
column of their own, the content-hash column that lets `embed_pending` find
rows whose content changed, the indexes of the metadata and declared columns,
and the full-text objects of keyword and hybrid search. It never drops,
renames or retypes a column of the table, and `drop_collection()` forgets the
table without dropping it. The ANN index is built by `create_index()` (with
`concurrently=True` on a live table) once the backfill is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._column_names import ColumnNames

__all__ = ["AdoptionReport", "AdoptionStep", "BackfillReport", "ExistingTable"]

#: The default names of the columns adoption adds (prefixed: they are the store's).
CONTENT_HASH_COLUMN = "pgvstore_content_sha256"
TSV_COLUMN = "pgvstore_tsv"


@dataclass(frozen=True, slots=True)
class ExistingTable:
    """The columns of an existing table that hold what a collection needs.

    `id`: a `text` or `varchar` column with a unique index (its primary key,
    usually); `content`: the `text`/`varchar` column that is embedded;
    `embedding`: the vector column (adoption can add it); `metadata`: a
    `jsonb` column for document fields that have no column of their own
    (adoption can add it). Other columns of the table are served as metadata
    fields when declared with `columns=` on the store.
    """

    id: str = "id"
    content: str = "content"
    embedding: str = "embedding"
    metadata: str = "metadata"

    def names(self, *, content_hash: str | None = None) -> ColumnNames:
        """The column names the store's statements use (checked: `ConfigError`)."""
        return ColumnNames(
            id=self.id,
            content=self.content,
            embedding=self.embedding,
            metadata=self.metadata,
            tsv=TSV_COLUMN,
            content_hash=content_hash,
        )


@dataclass(frozen=True, slots=True)
class AdoptionStep:
    """One change adoption makes (or, in a dry run, would make) to the table."""

    name: str
    statement: str
    rewrites_table: bool = False

    def __str__(self) -> str:
        note = " (rewrites the table under an ACCESS EXCLUSIVE lock)" if self.rewrites_table else ""
        return f"{self.name}: {self.statement}{note}"


@dataclass(frozen=True, slots=True)
class AdoptionReport:
    """What `adopt()` did (`dry_run=False`) or would do: its steps in order, what it
    found already in place, and what it left for later (e.g. the ANN index)."""

    table: str
    steps: tuple[AdoptionStep, ...]
    present: tuple[str, ...]
    left: tuple[str, ...]
    dry_run: bool

    def __str__(self) -> str:
        verb = "would make" if self.dry_run else "made"
        lines = [f"adoption of {self.table}: {verb} {len(self.steps)} change(s)"]
        lines += [f"  - {step}" for step in self.steps]
        lines += [f"  = {what}" for what in self.present]
        lines += [f"  ! {what}" for what in self.left]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class BackfillReport:
    """What one `embed_pending()` run did.

    `embedded`: rows whose embedding it wrote. `changed_meanwhile`: rows it
    embedded whose content the application changed before the write (left
    pending for the next run). `batches`: transactions committed. `remaining`:
    rows still pending when it ended (0 after a complete run on a quiet table).
    """

    embedded: int
    changed_meanwhile: int
    batches: int
    remaining: int
