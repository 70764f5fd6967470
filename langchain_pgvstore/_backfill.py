"""An existing table's lifecycle: `adopt()`, and `embed_pending()`, its in-place backfill.

The backfill reads the next batch of pending rows (no embedding yet, or, when
the table records content hashes, an embedding made from other content),
embeds them outside any transaction, and writes the batch in one transaction
that only touches rows whose content is still what was embedded. So a run
killed at any point loses at most the batch it was embedding, writes no row
twice, and the next run starts with exactly the rows still pending; a row the
application changes while its batch is being embedded stays pending.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from . import _validate as check
from ._adoption import AdoptOptions, adopt_plan
from ._flow import FORGET, LOOKUP, Flow, Query, Write
from ._ingest import encode_copy, prepare_batch
from ._plan import Copy, Execute, Plan
from ._progress import PhaseCallback, Progress, make_progress
from ._schema import CollectionSpec
from ._sql import dml
from ._sql import existing as sq
from ._writes import Writes
from .errors import ConfigError, InputError
from .existing import AdoptionReport, BackfillReport

__all__ = ["ExistingTables"]

Rows = list[tuple[Any, ...]]


def _adopt_flow(spec: CollectionSpec, options: AdoptOptions) -> Flow[AdoptionReport]:
    report: AdoptionReport = yield Write(lambda: adopt_plan(spec, options))
    if not options.dry_run:
        yield FORGET  # the collection now exists: look it up again
    return report


def _adopted() -> Flow[CollectionSpec]:
    spec: CollectionSpec | None = yield LOOKUP
    assert spec is not None, "a store over an existing table looks it up or raises"
    return spec


def _pending_flow(spec: CollectionSpec, size: int, after: str | None) -> Flow[Rows]:
    rows: Rows = yield Query(sq.pending_batch(spec.table, size, after))
    return rows


def _count_flow() -> Flow[int]:
    spec = yield from _adopted()
    rows: Rows = yield Query(sq.count_pending(spec.table))
    return int(rows[0][0])


def _write_plan(spec: CollectionSpec, rows: Rows, vectors: list[Any]) -> Plan[int]:
    """Stage the batch with its embeddings, then update the rows whose content is unchanged."""
    assert spec.dimensions is not None
    batch = prepare_batch(
        [str(r[1]) for r in rows],
        None,
        [str(r[0]) for r in rows],
        vectors,
        spec.dimensions,
        spec.vector_type,
        spec.distance,
    )
    yield Execute(dml.create_staging(spec.vector_type, spec.dimensions))
    yield Copy(dml.copy_into_staging(), encode_copy(batch, spec.vector_type))
    written: int = yield Execute(sq.update_embeddings(spec.table))
    return written


def _write_flow(spec: CollectionSpec, rows: Rows, vectors: list[Any]) -> Flow[int]:
    written: int = yield Write(lambda: _write_plan(spec, rows, vectors))
    return written


#: What the backfill's course needs next: a flow driven to its end, or texts embedded.
Need = Flow[Any] | list[str]


def _backfill_course(
    size: int, limit: int | None, bar: Progress
) -> Generator[Need, Any, BackfillReport]:
    """The backfill as a generator both drivers run: it yields the flows to drive and the
    texts to embed, and holds every decision (which rows, when to stop, the counts)."""
    spec: CollectionSpec = yield _adopted()
    total: int = yield _count_flow()
    bar.phase("embedding", total if limit is None else min(total, limit))
    embedded = changed = batches = 0
    after: str | None = None
    while limit is None or embedded + changed < limit:
        want = size if limit is None else min(size, limit - embedded - changed)
        rows: Rows = yield _pending_flow(spec, want, after)
        if not rows:
            break
        vectors: list[Any] = yield [str(r[1]) for r in rows]
        written: int = yield _write_flow(spec, rows, vectors)
        embedded, changed = embedded + written, changed + len(rows) - written
        batches, after = batches + 1, str(rows[-1][0])
    remaining: int = yield _count_flow()
    return BackfillReport(embedded, changed, batches, remaining)


_ADOPT_FLAGS = (
    "add_embedding_column",
    "add_metadata_column",
    "track_changes",
    "create_indexes",
    "full_text",
    "dry_run",
)


class ExistingTables(Writes):
    """`adopt`, `embed_pending`, `count_pending` (and their async twins)."""

    def _existing_only(self, method: str) -> None:
        if self._configured.table.existing is None:
            raise ConfigError(
                f"{method}() is for existing tables: open the store with"
                " existing_table=ExistingTable(...)"
            )

    def _adopt_options(self, *flags: bool) -> AdoptOptions:
        self._existing_only("adopt")
        for name, value in zip(_ADOPT_FLAGS, flags, strict=True):
            check.boolean(value, name, InputError)
        return AdoptOptions(*flags)

    def adopt(
        self,
        *,
        add_embedding_column: bool = False,
        add_metadata_column: bool = False,
        track_changes: bool = False,
        create_indexes: bool = False,
        full_text: bool = False,
        dry_run: bool = False,
    ) -> AdoptionReport:
        """Check the existing table and make it a collection, changing only what is asked.

        `add_embedding_column`: add the vector column (nullable; needs
        `dimensions=` on the store). `add_metadata_column`: add a jsonb column
        for fields without a column of their own. `track_changes`: add the
        content-hash column that lets `embed_pending()` find rows whose content
        changed. `create_indexes`: build the indexes of the metadata and
        declared columns. `full_text`: add the full-text objects of keyword and
        hybrid search (this rewrites the table). Each change is one step of the
        returned report; `dry_run=True` reports them without making them. A
        table missing something not asked for is a `SchemaError` naming the
        option. Adopting again is safe and adds what the new options ask for.
        """
        options = self._adopt_options(
            add_embedding_column,
            add_metadata_column,
            track_changes,
            create_indexes,
            full_text,
            dry_run,
        )
        return self._drive(_adopt_flow(self._configured, options))

    async def aadopt(
        self,
        *,
        add_embedding_column: bool = False,
        add_metadata_column: bool = False,
        track_changes: bool = False,
        create_indexes: bool = False,
        full_text: bool = False,
        dry_run: bool = False,
    ) -> AdoptionReport:
        """Async `adopt`."""
        options = self._adopt_options(
            add_embedding_column,
            add_metadata_column,
            track_changes,
            create_indexes,
            full_text,
            dry_run,
        )
        return await self._adrive(_adopt_flow(self._configured, options))

    def count_pending(self) -> int:
        """How many rows of the existing table wait for an embedding (or a new one)."""
        self._existing_only("count_pending")
        return self._drive(_count_flow())

    async def acount_pending(self) -> int:
        """Async `count_pending`."""
        self._existing_only("count_pending")
        return await self._adrive(_count_flow())

    def _backfill_args(self, batch_size: int | None, limit: int | None) -> tuple[int, int | None]:
        self._existing_only("embed_pending")
        size = (
            self._batch_size if batch_size is None else check.positive_int(batch_size, "batch_size")
        )
        return size, None if limit is None else check.positive_int(limit, "limit")

    def embed_pending(
        self,
        *,
        batch_size: int | None = None,
        limit: int | None = None,
        progress: bool | PhaseCallback | None = None,
    ) -> BackfillReport:
        """Embed the existing table's pending rows in place, a batch per transaction.

        Pending: no embedding yet, or (with `adopt(track_changes=True)`) one
        made from other content than the row holds now. Resumable: a run killed
        at any point is continued by the next, and no committed row is embedded
        again. `batch_size` rows per call to the model and per transaction
        (default: the store's); `limit` stops after that many rows. `progress`:
        True for a tqdm bar, or a callable receiving `("embedding", done, total)`.
        """
        size, limit = self._backfill_args(batch_size, limit)
        with make_progress(progress) as bar:
            course = _backfill_course(size, limit, bar)
            value: Any = None
            while True:
                try:
                    need = course.send(value)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                if isinstance(need, list):
                    value = self._embed(need, size, bar)
                else:
                    value = self._drive(need)

    async def aembed_pending(
        self,
        *,
        batch_size: int | None = None,
        limit: int | None = None,
        progress: bool | PhaseCallback | None = None,
    ) -> BackfillReport:
        """Async `embed_pending`."""
        size, limit = self._backfill_args(batch_size, limit)
        with make_progress(progress) as bar:
            course = _backfill_course(size, limit, bar)
            value: Any = None
            while True:
                try:
                    need = course.send(value)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                if isinstance(need, list):
                    value = await self._aembed(need, size, bar)
                else:
                    value = await self._adrive(need)
