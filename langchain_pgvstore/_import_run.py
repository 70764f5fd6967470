"""The import loop: read a batch, write it with its checkpoint in one transaction, repeat.

The destination side of an import is a connection of its own to the store's
database. It holds a session advisory lock, so two runs of one import cannot
overlap, and reads where an earlier run stopped. Each batch then goes through
the store (`Writes._load_batch`): its rows and the upsert of its checkpoint in
`pgvstore_imports` commit in the same transaction, so the recorded position is
always exactly the rows the collection holds from the source. A run killed at
any point leaves either a batch and its checkpoint or neither, and the next run
continues after the last committed batch: no batch is written twice, none is
skipped, and `ImportReport.written` counts what was really written.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from ._import_rows import Reader, connect, name_source_row
from ._sql import Frag, ddl
from ._sql import importers as q
from .errors import ConfigError, InputError

if TYPE_CHECKING:
    from .store import PGVStore

__all__ = ["ImportReport", "ProgressArg", "check_progress", "run"]

ProgressArg = bool | Callable[[int, int], None] | None


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What one import run did.

    Attributes:
        source: the source, e.g. `PGVector collection 'docs' (host=… dbname=…)`.
        total: rows in the source when the run started.
        skipped: rows an earlier, interrupted run had imported; not read again.
        read: rows this run read from the source.
        written: rows this run wrote into the collection: new ones and changed
            ones. A row the collection already holds unchanged is not written
            again, so a second pass over an imported source writes 0.
        elapsed: seconds the run took.
    """

    source: str
    total: int
    skipped: int
    read: int
    written: int
    elapsed: float

    @property
    def resumed(self) -> bool:
        """Whether this run continued an interrupted import."""
        return self.skipped > 0

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of this run."""
        return self.read / self.elapsed if self.elapsed > 0 else 0.0


def check_progress(progress: object) -> None:
    """Refuse a bad `progress` argument (or `True` without tqdm) before any work starts."""
    if progress is True:
        try:
            import tqdm  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                "progress=True needs tqdm: pip install 'langchain-pgvstore[progress]'"
            ) from e
    elif not (progress is None or progress is False or callable(progress)):
        raise ConfigError(f"progress must be a bool or a callable, got {progress!r}")


@contextmanager
def _progress(progress: ProgressArg, total: int, done: int) -> Iterator[Callable[[int], None]]:
    """A function told each batch's rows: it moves a tqdm bar (`True`) or calls
    `progress(done, total)`; the count starts at the rows an earlier run imported."""
    if progress is True:
        from tqdm.auto import tqdm

        with tqdm(total=total, initial=done, unit="row", desc="importing") as bar:
            yield bar.update
    elif callable(progress):
        callback, count = progress, [done]

        def advance(n: int) -> None:
            count[0] += n
            callback(count[0], total)

        yield advance
    else:
        yield lambda n: None


def _lock_key(*parts: str) -> int:
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _fetch(conn: psycopg.Connection[Any], frag: Frag) -> list[tuple[Any, ...]]:
    return conn.execute(frag.sql, frag.params).fetchall()


class Checkpoints:
    """The destination side of an import: its lock, and its recorded position."""

    def __init__(self, store: PGVStore, reader: Reader) -> None:
        key = self._key = q.ImportKey(
            store.schema, store.collection, store.tenant or "", reader.identity
        )
        self._conn = connect(store.dsn, "destination")
        lock = _lock_key(key.schema, key.collection, key.tenant, key.source)
        if not _fetch(self._conn, q.try_advisory_lock(lock))[0][0]:
            self._conn.close()
            into = f"collection {key.collection!r}" + (
                f" for tenant {key.tenant!r}" if key.tenant else ""
            )
            raise ConfigError(
                f"another run is importing {reader.description} into {into}; wait for it to finish"
            )
        #: whether `pgvstore_imports` exists (else the first batch creates it)
        self._ready = False

    def position(self, restart: bool) -> tuple[str | None, int]:
        """Where to start: after the recorded key of an unfinished import into this very
        table, else from the first row (the first batch then overwrites the record)."""
        key = self._key
        self._ready = bool(_fetch(self._conn, q.relation_oid(key.schema, q.CHECKPOINT_TABLE)))
        if not self._ready or restart:
            return None, 0
        rows = _fetch(self._conn, q.read_checkpoint(key))
        if not rows:
            return None, 0
        table_oid, last_key, done, finished = rows[0]
        # finished: a new run is a new pass (unchanged rows cost no writes); a table
        # dropped and created again since the checkpoint holds none of its rows
        table = _fetch(self._conn, q.relation_oid(key.schema, key.collection))
        if finished or not table or table[0][0] != table_oid:
            return None, 0
        return last_key, int(done)

    def record(self, last_key: str, done: int, total: int) -> list[Frag]:
        """The statements that record a batch's position, run in the batch's transaction."""
        frags = []
        if not self._ready:
            # two imports into one schema may both find the table missing
            lock = _lock_key(self._key.schema, q.CHECKPOINT_TABLE)
            frags.append(ddl.advisory_xact_lock(lock))
            frags.append(q.create_checkpoints(self._key))
        frags.append(
            q.save_checkpoint(self._key, last_key=last_key, done=done, total=total, finished=False)
        )
        return frags

    def committed(self) -> None:
        """A batch and its checkpoint committed: the table exists from now on."""
        self._ready = True

    def finish(self, done: int, total: int) -> None:
        """Mark the import finished, so that the next run is a new pass."""
        if self._ready:
            frag = q.save_checkpoint(
                self._key, last_key=None, done=done, total=total, finished=True
            )
            self._conn.execute(frag.sql, frag.params)

    def close(self) -> None:
        self._conn.close()  # also releases the session's advisory lock


def run(
    store: PGVStore,
    reader: Reader,
    *,
    batch_size: int,
    progress: ProgressArg,
    restart: bool,
) -> ImportReport:
    """Import every row of `reader` after the recorded position into `store`."""
    started = time.perf_counter()
    try:
        checkpoints = Checkpoints(store, reader)
    except BaseException:
        reader.close()
        raise
    try:
        total = reader.count()
        after, skipped = checkpoints.position(restart)
        done, written = skipped, 0
        with _progress(progress, max(total, skipped), skipped) as advance:
            for rows in reader.batches(after, batch_size):
                done += len(rows)
                record = checkpoints.record(rows.keys[-1], done, max(total, done))
                try:
                    written += store._load_batch(
                        rows.texts, rows.vectors, rows.metadatas, rows.ids, also=record
                    )
                except InputError as e:
                    raise name_source_row(e, rows.ids, reader.description) from e
                checkpoints.committed()
                advance(len(rows))
            checkpoints.finish(done, max(total, done))
        return ImportReport(
            source=reader.description,
            total=total,
            skipped=skipped,
            read=done - skipped,
            written=written,
            elapsed=time.perf_counter() - started,
        )
    finally:
        checkpoints.close()
        reader.close()
