"""Index administration and query plans: build, drop, reindex, inspect, explain."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _validate as check
from ._core import StoreCore
from ._flow import Flow, Query, known_flow, read_flow
from ._indexes import (
    BuildSettings,
    IndexInfo,
    IndexProgress,
    create_index_plan,
    drop_index_plan,
    index_infos,
    reindex_plan,
)
from ._options import parse_options
from ._schema import CollectionSpec, check_quantization
from ._similarity import query_text
from ._sql import Frag, catalog, citus
from ._sql.search import explain
from ._sql.settings import Settings
from ._upgrade import upgrade_plan, upgrade_registry_plan
from .config import HNSWIndex, IVFFlatIndex
from .errors import InputError, SchemaError

__all__ = ["IndexAdmin"]

ProgressCallback = Callable[[IndexProgress], None]


def _progress_query(spec: CollectionSpec) -> Frag:
    """Where a build's progress shows: the coordinator's view, or the workers' on Citus."""
    return catalog.progress(spec.table) if spec.table.distribution is None else citus.progress()


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
            table = self._configured.table
            raise SchemaError(
                f"collection {table.schema}.{table.name} does not exist yet; add documents first"
            )
        return spec

    def _index_to_build(self, index: HNSWIndex | IVFFlatIndex | None) -> HNSWIndex | IVFFlatIndex:
        chosen = index if index is not None else self._configured.index
        if not isinstance(chosen, (HNSWIndex, IVFFlatIndex)):
            raise InputError(
                "no index to build: pass index=HNSWIndex(...) or IVFFlatIndex(...), or configure"
                " one on the store"
            )
        if isinstance(chosen, HNSWIndex):
            # refuse an index this store's own searches would not use
            check_quantization(self._configured, chosen.quantization)
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
        spec = self._require(self._drive(known_flow()))
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
        spec = self._require(await self._adrive(known_flow()))
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
        spec = self._require(self._drive(known_flow()))
        self._db.run_dedicated(
            lambda: drop_index_plan(spec, concurrently=concurrently), transaction=not concurrently
        )

    async def adrop_index(self, *, concurrently: bool = False) -> None:
        """Async `drop_index`."""
        spec = self._require(await self._adrive(known_flow()))
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
        spec = self._require(self._drive(known_flow()))
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
        spec = self._require(await self._adrive(known_flow()))
        settings = BuildSettings(maintenance_work_mem, max_parallel_maintenance_workers)
        build = self._adb.run_dedicated(
            lambda: reindex_plan(spec, concurrently=concurrently, settings=settings),
            transaction=not concurrently,
        )
        await self._awith_progress(spec, build, progress, progress_interval)

    def upgrade_schema(self) -> list[str]:
        """Upgrade a collection an earlier release made, also with the steps too heavy to
        run when a store opens it (they rewrite the table under an exclusive lock).

        Returns what was done, one line per step (empty when nothing was needed);
        `SchemaError` when the collection does not exist. See docs/schema.md.
        """
        table = self._configured.table
        first = self._db.run_dedicated(lambda: upgrade_registry_plan(table), transaction=True)
        done = self._db.run_dedicated(lambda: upgrade_plan(self._configured), transaction=True)
        return self._upgraded(first, done)

    async def aupgrade_schema(self) -> list[str]:
        """Async `upgrade_schema`."""
        table = self._configured.table
        first = await self._adb.run_dedicated(
            lambda: upgrade_registry_plan(table), transaction=True
        )
        done = await self._adb.run_dedicated(
            lambda: upgrade_plan(self._configured), transaction=True
        )
        return self._upgraded(first, done)

    def _upgraded(self, registry: list[str], done: list[str] | None) -> list[str]:
        if done is None:
            self._require(None)
        return registry + (done or [])

    def _index_status(self) -> Flow[list[IndexInfo]]:
        return read_flow(lambda spec: Query(catalog.index_status(spec.table)), index_infos, [])

    def index_status(self) -> list[IndexInfo]:
        """Every index of the collection: name, method, validity, size, definition."""
        return self._drive(self._index_status())

    async def aindex_status(self) -> list[IndexInfo]:
        """Async `index_status`."""
        return await self._adrive(self._index_status())

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
        query = _progress_query(spec)

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
        query = _progress_query(spec)

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

    def _explain(
        self, vector: np.ndarray, k: int, where: Any, options: Any, analyze: bool, from_model: bool
    ) -> Flow[str | None]:
        def build(spec: CollectionSpec) -> Query:
            query = self._search(spec, vector, k, where, options, from_model=from_model)
            if spec.table.distribution is None:
                return Query(explain(query.frag, analyze=analyze), query.settings)
            # every shard's plan; Citus's EXPLAIN needs its parameters bound by the client
            every_task = Settings((("citus.explain_all_tasks", "on"),))
            settings = query.settings.merged(every_task)
            return Query(explain(query.frag, analyze=analyze), settings, client=True)

        def text(rows: list[tuple[Any, ...]]) -> str:
            return "\n".join(str(r[0]) for r in rows)

        return read_flow(build, text, None, options.route)

    def _explain_args(
        self, k: int, filter: Mapping[str, Any] | None, analyze: bool, kwargs: Mapping[str, Any]
    ) -> tuple[int, Any, Any, bool]:
        k = check.positive_int(k, "k")
        return (
            k,
            self._compile(filter),
            parse_options("explain", k, kwargs),
            check.boolean(analyze, "analyze"),
        )

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
        k, where, options, analyze = self._explain_args(k, filter, analyze, kwargs)
        if isinstance(query, str):
            vector = self._query_vector(self._embed_query(query_text(query)), from_model=True)
        else:
            vector = self._query_vector(query)
        plan = self._drive(
            self._explain(vector, k, where, options, analyze, isinstance(query, str))
        )
        return self._require_plan(plan)

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
        k, where, options, analyze = self._explain_args(k, filter, analyze, kwargs)
        if isinstance(query, str):
            text = query_text(query)
            vector = self._query_vector(await self._aembed_query(text), from_model=True)
        else:
            vector = self._query_vector(query)
        plan = await self._adrive(
            self._explain(vector, k, where, options, analyze, isinstance(query, str))
        )
        return self._require_plan(plan)

    def _require_plan(self, plan: str | None) -> str:
        if plan is None:
            self._require(None)
        assert plan is not None
        return plan
