"""Multi-tenant collections: a view bound to one tenant, and the tenant admin calls.

A multi-tenant collection keeps every tenant's rows in one table whose
primary key is `(tenant, id)`. A store bound to a tenant (`for_tenant`, or
`tenant=` at construction) scopes every statement to it; an unbound store
refuses reads and writes and offers only the admin calls here, which are the
only statements that see more than one tenant.
"""

from __future__ import annotations

import copy
from typing import Any, Self

from . import _validate as check
from ._core import StoreCore
from ._flow import Flow, Query, change_flow, read_flow
from ._plan import Execute, Plan
from ._schema import CollectionSpec
from ._sql import dml
from ._sql.filters import compile_filter
from .errors import InputError

__all__ = ["Tenants"]


def _counted(rows: list[tuple[Any, ...]]) -> dict[str, int]:
    return {str(tenant): int(n) for tenant, n in rows}


class Tenants(StoreCore):
    """`for_tenant`, `tenants`, `delete_tenant`."""

    def for_tenant(self, tenant: str) -> Self:
        """This store bound to one tenant of a multi-tenant collection.

        The view shares the store's connection pools, statement cache and what it
        knows of the collection; it owns nothing, so closing it does nothing:
        close the store you made it from.
        """
        self._multi_tenant("for_tenant")
        view = copy.copy(self)
        view._tenant = check.tenant_name(tenant)
        view._view = True
        return view

    @property
    def tenant(self) -> str | None:
        """The tenant this store is bound to (None: not bound, or not multi-tenant)."""
        return self._tenant

    def _multi_tenant(self, what: str) -> None:
        if not self._configured.table.multi_tenant:
            table = self._configured.table
            raise InputError(
                f"{what} needs a multi-tenant collection; {table.schema}.{table.name} was"
                " opened without multi_tenant=True"
            )

    def _tenants(self) -> Flow[dict[str, int]]:
        self._multi_tenant("tenants")
        return read_flow(lambda spec: Query(dml.tenants(spec.table)), _counted, {})

    def tenants(self) -> dict[str, int]:
        """Every tenant of the collection and how many documents it holds (admin)."""
        return self._drive(self._tenants())

    async def atenants(self) -> dict[str, int]:
        """Async `tenants`."""
        return await self._adrive(self._tenants())

    def _delete_tenant(self, tenant: str) -> Flow[int]:
        self._multi_tenant("delete_tenant")
        name = check.tenant_name(tenant)

        def prepare(spec: CollectionSpec) -> Any:
            frag = dml.delete_where(spec.table, compile_filter(None, spec.table, name))

            def plan() -> Plan[int]:
                deleted: int = yield Execute(frag)
                return deleted

            return plan

        return change_flow(prepare, 0)

    def delete_tenant(self, tenant: str) -> int:
        """Delete every document of one tenant (admin); returns how many were deleted."""
        return self._drive(self._delete_tenant(tenant))

    async def adelete_tenant(self, tenant: str) -> int:
        """Async `delete_tenant`."""
        return await self._adrive(self._delete_tenant(tenant))

    def close(self) -> None:
        """Close the pools this store opened; a view made by `for_tenant` owns none."""
        if not self._view:
            super().close()

    async def aclose(self) -> None:
        """Async `close`."""
        if not self._view:
            await super().aclose()
