"""Index administration and query plans: build, drop, reindex, inspect, explain."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from psycopg import sql

from ._core import StoreCore, _check_k
from ._sql import Frag
from .config import HNSWIndex, IVFFlatIndex
from .errors import InputError, SchemaError
from .indexes import (
    BuildSettings,
    IndexInfo,
    IndexProgress,
    create_index_plan,
    drop_index_plan,
    index_infos,
    index_status,
    progress_query,
    reindex_plan,
)
from .schema import CollectionSpec, check_quantization

__all__ = ["IndexAdmin"]

ProgressCallback = Callable[[IndexProgress], None]


def _progress(rows: list[tuple[Any, ...]]) -> IndexProgress | None:
    if not rows:
        return None
    phase, blocks_done, blocks_total, tuples_done, tuples_total = rows[0]
    return IndexProgress(
        str(phase), int(blocks_done), int(blocks_total), int(tuples_done), int(tuples_total)
    )


class IndexAdmin(StoreCore):
    """Index management and EXPLAIN for the collection."""

    def _require(self, spec: CollectionSpec | None) -> CollectionSpec:
        if spec is None:
            raise SchemaError(
                f"collection {self._spec.table.schema}.{self._spec.table.name} does not exist yet;"
                " add documents first"
            )
        return spec

    def _index_to_build(self, index: HNSWIndex | IVFFlatIndex | None) -> HNSWIndex | IVFFlatIndex:
        chosen = index if index is not None else self._spec.index
        if not isinstance(chosen, (HNSWIndex, IVFFlatIndex)):
            raise InputError(
                "no index to build: pass index=HNSWIndex(...) or IVFFlatIndex(...), or configure"
                " one on the store"
            )
        if isinstance(chosen, HNSWIndex):
            # refuse an index this store's own searches would not use
            check_quantization(self._spec, chosen.quantization)
        return chosen

    def create_index(
        self,
        index: HNSWIndex | IVFFlatIndex | None = None,
        *,
        concurrently: bool = False,
        replace: bool = False,
        maintenance_work_mem: str | None = None,
        max_parallel_maintenance_workers: int | None = None,
        progress: ProgressCallback | None = None,
        progress_interval: float = 0.5,
    ) -> None:
        """Build the ANN index (the store's configured one, or `index`).

        The operator class follows the store's distance and vector type. Build
        settings apply to this build only. `concurrently=True` builds without
        blocking writes. `progress` receives `IndexProgress` snapshots from
        `pg_stat_progress_create_index` every `progress_interval` seconds.
        An index left invalid by a failed concurrent build is rebuilt; a
        build that ends invalid raises `SchemaError`.
        """
        spec = self._require(self._ensure())
        chosen = self._index_to_build(index)
        settings = BuildSettings(maintenance_work_mem, max_parallel_maintenance_workers)

        def build() -> None:
            self._db.run_dedicated(
                lambda: create_index_plan(
                    spec, chosen, concurrently=concurrently, replace=replace, settings=settings
                ),
                transaction=not concurrently,
            )

        self._with_progress(spec, build, progress, progress_interval)

    async def acreate_index(
        self,
        index: HNSWIndex | IVFFlatIndex | None = None,
        *,
        concurrently: bool = False,
        replace: bool = False,
        maintenance_work_mem: str | None = None,
        max_parallel_maintenance_workers: int | None = None,
        progress: ProgressCallback | None = None,
        progress_interval: float = 0.5,
    ) -> None:
        """Async `create_index`."""
        spec = self._require(await self._aensure())
        chosen = self._index_to_build(index)
        settings = BuildSettings(maintenance_work_mem, max_parallel_maintenance_workers)
        build = self._adb.run_dedicated(
            lambda: create_index_plan(
                spec, chosen, concurrently=concurrently, replace=replace, settings=settings
            ),
            transaction=not concurrently,
        )
        await self._awith_progress(spec, build, progress, progress_interval)

    def drop_index(self, *, concurrently: bool = False) -> None:
        """Drop the ANN index; searches are then exact (sequential scans)."""
        spec = self._require(self._ensure())
        self._db.run_dedicated(
            lambda: drop_index_plan(spec, concurrently=concurrently), transaction=not concurrently
        )

    async def adrop_index(self, *, concurrently: bool = False) -> None:
        """Async `drop_index`."""
        spec = self._require(await self._aensure())
        await self._adb.run_dedicated(
            lambda: drop_index_plan(spec, concurrently=concurrently), transaction=not concurrently
        )

    def reindex(
        self,
        *,
        concurrently: bool = False,
        maintenance_work_mem: str | None = None,
        max_parallel_maintenance_workers: int | None = None,
        progress: ProgressCallback | None = None,
        progress_interval: float = 0.5,
    ) -> None:
        """Rebuild the ANN index in place (after heavy updates or deletes)."""
        spec = self._require(self._ensure())
        settings = BuildSettings(maintenance_work_mem, max_parallel_maintenance_workers)

        def build() -> None:
            self._db.run_dedicated(
                lambda: reindex_plan(spec, concurrently=concurrently, settings=settings),
                transaction=not concurrently,
            )

        self._with_progress(spec, build, progress, progress_interval)

    async def areindex(
        self,
        *,
        concurrently: bool = False,
        maintenance_work_mem: str | None = None,
        max_parallel_maintenance_workers: int | None = None,
        progress: ProgressCallback | None = None,
        progress_interval: float = 0.5,
    ) -> None:
        """Async `reindex`."""
        spec = self._require(await self._aensure())
        settings = BuildSettings(maintenance_work_mem, max_parallel_maintenance_workers)
        build = self._adb.run_dedicated(
            lambda: reindex_plan(spec, concurrently=concurrently, settings=settings),
            transaction=not concurrently,
        )
        await self._awith_progress(spec, build, progress, progress_interval)

    def index_status(self) -> list[IndexInfo]:
        """Every index of the collection: name, method, validity, size, definition."""
        spec = self._ensure()
        return [] if spec is None else index_infos(self._db.fetch(index_status(spec.table)))

    async def aindex_status(self) -> list[IndexInfo]:
        """Async `index_status`."""
        spec = await self._aensure()
        return [] if spec is None else index_infos(await self._adb.fetch(index_status(spec.table)))

    # -- build progress -----------------------------------------------------------

    def _with_progress(
        self,
        spec: CollectionSpec,
        build: Callable[[], None],
        progress: ProgressCallback | None,
        interval: float,
    ) -> None:
        if progress is None:
            build()
            return
        done = threading.Event()
        query = progress_query(spec.table)

        # The build blocks this thread inside the server; a second connection
        # reads the progress view meanwhile.
        def poll() -> None:
            while not done.wait(interval):
                snapshot = _progress(self._db.fetch(query))
                if snapshot is not None:
                    progress(snapshot)

        poller = threading.Thread(target=poll, name="pgvstore-index-progress", daemon=True)
        poller.start()
        try:
            build()
        finally:
            done.set()
            poller.join()

    async def _awith_progress(
        self,
        spec: CollectionSpec,
        build: Any,
        progress: ProgressCallback | None,
        interval: float,
    ) -> None:
        if progress is None:
            await build
            return
        query = progress_query(spec.table)

        async def poll() -> None:
            while True:
                await asyncio.sleep(interval)
                snapshot = _progress(await self._adb.fetch(query))
                if snapshot is not None:
                    progress(snapshot)

        poller = asyncio.ensure_future(poll())
        try:
            await build
        finally:
            poller.cancel()
            try:
                await poller
            except asyncio.CancelledError:
                pass

    # -- query plans ----------------------------------------------------------------

    def _explain_frag(
        self,
        spec: CollectionSpec,
        vector: np.ndarray,
        k: int,
        filter: Mapping[str, Any] | None,
        analyze: bool,
        kwargs: Mapping[str, Any],
    ) -> tuple[Frag, list[Frag]]:
        query, settings = self._search(spec, vector, k, filter, kwargs)
        options = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ")
        return Frag(options) + query, settings

    def explain(
        self,
        query: str | Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        analyze: bool = False,
        **kwargs: Any,
    ) -> str:
        """The server's plan for `similarity_search(query, k, filter, **kwargs)`.

        `query` is a text (embedded first) or a vector. With `analyze=True` the
        search runs and the plan carries timings and buffer counts.
        """
        _check_k(k)
        vector = self._query_vector(
            self._embedding.embed_query(query) if isinstance(query, str) else query
        )
        spec = self._require(self._ensure(len(vector)))
        frag, settings = self._explain_frag(spec, vector, k, filter, analyze, kwargs)
        return "\n".join(str(r[0]) for r in self._db.fetch(frag, settings=settings))

    async def aexplain(
        self,
        query: str | Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        analyze: bool = False,
        **kwargs: Any,
    ) -> str:
        """Async `explain`."""
        _check_k(k)
        vector = self._query_vector(
            await self._embedding.aembed_query(query) if isinstance(query, str) else query
        )
        spec = self._require(await self._aensure(len(vector)))
        frag, settings = self._explain_frag(spec, vector, k, filter, analyze, kwargs)
        rows = await self._adb.fetch(frag, settings=settings)
        return "\n".join(str(r[0]) for r in rows)
