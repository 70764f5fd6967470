"""Carrying out a flow's needs, and where each goes: the primary or a read endpoint.

The store's flows (`_flow.py`) yield what they need; `_perform` / `_aperform`
do it. Provisioning and writes always go to the primary; so does every read
of a flow driven without a route (index management, the lookups of deletes
and writes). A flow driven with a `ReadRoute` (searches, `get`, `get_by_ids`,
`count`, `explain`) has its lookup and its query answered by a read endpoint
when the store has any, per `_routing`; with `read_from="primary"`, or with no
read endpoints, by the primary. With read-your-writes, each write returns the
WAL position after its commit, which later reads on replicas wait for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from ._connection import Connector
from ._flow import FORGET, LOOKUP, Flow, Need, Provision, Query, Write
from ._plan import Fetch, Plan
from ._provision import provision_plan
from ._replicas import ReadReplicas
from ._routing import ReadRoute
from ._runner import Runner
from ._runner_async import AsyncRunner
from ._schema import CollectionSpec, lookup_plan, provisioning_denied
from ._session import propagated_plan
from ._sql.settings import Settings
from ._statements import StatementCache
from .errors import ConfigError

__all__ = ["Performer"]

R = TypeVar("R")


def _propagated(query: Query, settings: Settings) -> Callable[[], Plan[Any]]:
    """A query on a distributed collection: its settings as `SET LOCAL` the workers get."""
    fetch = Fetch(query.frag, query.binary, query.client)
    return lambda: propagated_plan(settings, fetch)


def _on_standby(spec: CollectionSpec, error: ConfigError, where: str) -> ConfigError:
    """Provisioning reached a standby: name the collection and the server to use."""
    standby = "in_hot_standby=on" in str(error)  # not a read-only session on a primary
    if not isinstance(error.__cause__, pg_errors.ReadOnlySqlTransaction) or not standby:
        return error
    table = spec.table
    return ConfigError(
        f"collection {table.schema}.{table.name} cannot be created through {where}:"
        " the server is a read-only standby; create it through a store whose connection="
        " is the primary (the server where pg_is_in_recovery() is false)"
    )


class Performer:
    """The store's flow drivers; `StoreCore` sets the attributes."""

    _configured: CollectionSpec
    _known: CollectionSpec | None
    _known_at: float
    _connector: Connector
    _db: Runner
    _adb: AsyncRunner
    _replicas: ReadReplicas | None
    _statements: StatementCache

    def _known_spec(self, spec: CollectionSpec | None) -> CollectionSpec | None:
        if spec != self._known:
            # cached statements are keyed by shape only: they belong to one spec
            self._statements.clear()
        self._known = spec if spec is not None and spec.dimensions is not None else None
        self._known_at = time.monotonic()
        return self._known

    # what `StoreCore` decides: how long the collection's record is trusted, and the
    # tenant setting every read and write runs with
    def _trusted(self) -> CollectionSpec | None:
        raise NotImplementedError

    def _tenant_settings(self) -> Settings:
        raise NotImplementedError

    def _tenant_plan(self, make_plan: Callable[[], Plan[R]]) -> Callable[[], Plan[R]]:
        raise NotImplementedError

    def _distributed(self) -> bool:
        """Whether the collection is sharded by Citus (its settings must reach the workers)."""
        spec = self._known or self._configured
        return spec.table.distribution is not None

    def _on_replica(self, route: ReadRoute | None) -> ReadReplicas | None:
        if route is None or route.source == "primary":
            return None
        return self._replicas

    def _provision(self, dimensions: int | None) -> Callable[[], Plan[CollectionSpec]]:
        spec = self._configured
        if spec.dimensions is None and dimensions is not None:
            spec = replace(spec, dimensions=dimensions)
        return lambda: provision_plan(spec)

    def _provision_failed(self, error: Exception) -> Exception:
        if isinstance(error, pg_errors.InsufficientPrivilege):
            return provisioning_denied(self._configured, error)
        assert isinstance(error, ConfigError)
        return _on_standby(self._configured, error, self._connector.description)

    # -- writes on the primary -------------------------------------------------------------

    def _write(self, make_plan: Callable[[], Plan[R]]) -> R:
        """Run a write plan on the primary; with read-your-writes, note its position."""
        replicas = self._replicas
        if replicas is None or not replicas.read_your_writes:
            return self._db.run(make_plan)
        result, lsn = self._db.run_marked(make_plan)
        replicas.wrote(lsn)
        return result

    async def _awrite(self, make_plan: Callable[[], Plan[R]]) -> R:
        """Async `_write`."""
        replicas = self._replicas
        if replicas is None or not replicas.read_your_writes:
            return await self._adb.run(make_plan)
        result, lsn = await self._adb.run_marked(make_plan)
        replicas.wrote(lsn)
        return result

    # -- needs -------------------------------------------------------------------------------

    def _perform(self, need: Need, route: ReadRoute | None) -> Any:
        replicas = self._on_replica(route)
        if need is LOOKUP:
            if (known := self._trusted()) is not None:
                return known
            plan = lambda: lookup_plan(self._configured)  # noqa: E731
            if replicas is None or route is None:
                return self._known_spec(self._db.run(plan, transaction=False))
            return self._known_spec(
                replicas.read(
                    route,
                    lambda db, probe: db.run_replica(plan, probe),
                    lambda: self._db.run(plan, transaction=False),
                )
            )
        if need is FORGET:
            return self._known_spec(None)
        if isinstance(need, Provision):
            # a collection a read found outdated is provisioned: that upgrades it
            if (known := self._trusted()) is not None and not known.outdated:
                return known
            try:
                return self._known_spec(self._write(self._provision(need.dimensions)))
            except (pg_errors.InsufficientPrivilege, ConfigError) as e:
                mapped = self._provision_failed(e)
                if mapped is e:
                    raise
                raise mapped from e
        if isinstance(need, Query):
            frag, binary = need.frag, need.binary
            settings = need.settings.merged(self._tenant_settings())
            if self._distributed():
                plan = _propagated(need, settings)
                if replicas is None or route is None:
                    return self._db.run(plan)
                return replicas.read(
                    route, lambda db, probe: db.run_replica(plan, probe), lambda: self._db.run(plan)
                )
            if replicas is None or route is None:
                return self._db.fetch(frag, binary=binary, settings=settings)
            return replicas.read(
                route,
                lambda db, probe: db.fetch_replica(frag, probe, binary=binary, settings=settings),
                lambda: self._db.fetch(frag, binary=binary, settings=settings),
            )
        assert isinstance(need, Write)
        return self._write(self._tenant_plan(need.make_plan))

    async def _aperform(self, need: Need, route: ReadRoute | None) -> Any:
        replicas = self._on_replica(route)
        if need is LOOKUP:
            if (known := self._trusted()) is not None:
                return known
            plan = lambda: lookup_plan(self._configured)  # noqa: E731
            if replicas is None or route is None:
                return self._known_spec(await self._adb.run(plan, transaction=False))
            return self._known_spec(
                await replicas.aread(
                    route,
                    lambda db, probe: db.run_replica(plan, probe),
                    lambda: self._adb.run(plan, transaction=False),
                )
            )
        if need is FORGET:
            return self._known_spec(None)
        if isinstance(need, Provision):
            # a collection a read found outdated is provisioned: that upgrades it
            if (known := self._trusted()) is not None and not known.outdated:
                return known
            try:
                return self._known_spec(await self._awrite(self._provision(need.dimensions)))
            except (pg_errors.InsufficientPrivilege, ConfigError) as e:
                mapped = self._provision_failed(e)
                if mapped is e:
                    raise
                raise mapped from e
        if isinstance(need, Query):
            frag, binary = need.frag, need.binary
            settings = need.settings.merged(self._tenant_settings())
            if self._distributed():
                plan = _propagated(need, settings)
                if replicas is None or route is None:
                    return await self._adb.run(plan)
                return await replicas.aread(
                    route,
                    lambda db, probe: db.run_replica(plan, probe),
                    lambda: self._adb.run(plan),
                )
            if replicas is None or route is None:
                return await self._adb.fetch(frag, binary=binary, settings=settings)
            return await replicas.aread(
                route,
                lambda db, probe: db.fetch_replica(frag, probe, binary=binary, settings=settings),
                lambda: self._adb.fetch(frag, binary=binary, settings=settings),
            )
        assert isinstance(need, Write)
        return await self._awrite(self._tenant_plan(need.make_plan))

    # -- drivers -----------------------------------------------------------------------------

    def _drive(
        self, flow: Flow[R], error: psycopg.Error | None = None, route: ReadRoute | None = None
    ) -> R:
        """Run a flow to its end; database errors go back into it. Its reads follow
        the route it yields first, if any (else everything runs on the primary).
        A flow resumed at a failed need gets its `error` first, and its `route`."""
        value: Any = None
        while True:
            try:
                need = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: R = stop.value
                return result
            value, error = None, None
            if isinstance(need, ReadRoute):
                route = need
                continue
            try:
                value = self._perform(need, route)
            except psycopg.Error as e:
                error = e

    async def _adrive(
        self, flow: Flow[R], error: psycopg.Error | None = None, route: ReadRoute | None = None
    ) -> R:
        """Async `_drive`."""
        value: Any = None
        while True:
            try:
                need = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: R = stop.value
                return result
            value, error = None, None
            if isinstance(need, ReadRoute):
                route = need
                continue
            try:
                value = await self._aperform(need, route)
            except psycopg.Error as e:
                error = e
