"""The shared core of `PGVStore`: the flow drivers and the search statement.

Every public method of the store is a pair: the sync one and its `a`-prefixed
twin check their arguments and build a flow (`_flow.py`) the same way, and
differ only in which driver runs it (`_drive` or `_adrive`) and which
embedding call they make.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
from langchain_core.documents import Document
from pgvector import Vector
from typing_extensions import override

from ._base import StoreBase
from ._documents import document, scored
from ._flow import Query
from ._nearest import nearest_statement
from ._options import SearchOptions
from ._perform import Performer
from ._plan import Execute, Plan
from ._schema import (
    CollectionSpec,
)
from ._sql import Frag, citus
from ._sql.filters import TRUE, compile_filter
from ._sql.settings import Settings
from ._statements import Template, slotted
from ._vectors import fits, query_vector
from .columns import assemble, decoders
from .config import (
    TENANT_SETTING,
)
from .errors import DimensionError, EmbeddingError, InputError

__all__ = ["StoreCore"]

R = TypeVar("R")
Row = tuple[Any, ...]
Scored = list[tuple[Document, float]]
_NO_SETTINGS = Settings()

#: Seconds a store trusts what it knows of its collection before looking it up
#: again. Another process that drops or recreates the collection makes the
#: store's statements fail, which it notices at once (`_flow.py`); a change no
#: statement trips over (the same size, another distance) is noticed this late.
SPEC_TTL = 30.0


def row_document(row: Row) -> Document:
    return document(row[0], row[1], row[2])


def as_array(value: Any) -> np.ndarray:
    """A vector column value (pgvector `Vector` or `HalfVector`) as float32 numpy."""
    array: np.ndarray = np.asarray(value.to_numpy(), dtype=np.float32)
    return array


def model_failed(error: Exception) -> EmbeddingError:
    """The typed error for an embedding model that raised (the original is the cause)."""
    return EmbeddingError(f"the embedding model failed: {type(error).__name__}: {error}")


class StoreCore(Performer, StoreBase):
    """The flow drivers and the search statement, shared by the store's method groups."""

    # -- what the flow drivers (`_perform.py`) ask -----------------------------

    def _trusted(self) -> CollectionSpec | None:
        """What the store knows of its collection, if it is recent enough to trust."""
        known = self._known
        if known is not None and time.monotonic() - self._known_at < SPEC_TTL:
            return known
        return None

    def _tenant_settings(self) -> Settings:
        """Under row-level security by setting, the tenant every statement runs as."""
        if self._configured.row_level_security != "setting" or self._tenant is None:
            return _NO_SETTINGS
        return Settings(((TENANT_SETTING, self._tenant),))

    def _tenant_plan(self, make_plan: Callable[[], Plan[R]]) -> Callable[[], Plan[R]]:
        settings = self._tenant_settings()
        if not settings:
            return make_plan

        def plan() -> Plan[R]:
            # on Citus the policy runs on the shards: the setting must reach the workers
            if self._distributed():
                frags = citus.set_local(settings.resolved())
            else:
                frags = settings.local_frags()
            for frag in frags:
                yield Execute(frag)
            return (yield from make_plan())

        return plan

    def _documents(self) -> Callable[[Row], Document]:
        """Row → `Document`, with the declared fields of a typed collection given their types."""
        decode = decoders(self._configured.table.columns)
        if not decode:
            return row_document

        def make(row: Row) -> Document:
            assemble(row[2], decode)
            return document(row[0], row[1], row[2])

        return make

    def _scored(self, rows: list[Row]) -> Scored:
        """`(Document, score)` of rows `(id, content, metadata, score, ...)`."""
        decode = decoders(self._configured.table.columns)
        if decode:
            for row in rows:
                assemble(row[2], decode)  # in place, before the one loop that builds Documents
        return scored(rows)

    # -- embeddings -----------------------------------------------------------

    def _embed_query(self, text: str) -> list[float]:
        try:
            vector = self._embedding.embed_query(text)
        except (EmbeddingError, DimensionError):
            raise
        except Exception as e:
            raise model_failed(e) from e
        return vector

    async def _aembed_query(self, text: str) -> list[float]:
        try:
            vector = await self._embedding.aembed_query(text)
        except (EmbeddingError, DimensionError):
            raise
        except Exception as e:
            raise model_failed(e) from e
        return vector

    def _query_vector(self, embedding: Any, *, from_model: bool = False) -> np.ndarray:
        """A checked query vector (its size is checked against the collection in the flow)."""
        return query_vector(embedding, self._configured, from_model)

    @staticmethod
    def _fits(spec: CollectionSpec, vector: np.ndarray, from_model: bool) -> np.ndarray:
        return fits(spec, vector, from_model)

    # -- the search statement ---------------------------------------------------

    def _search(
        self,
        spec: CollectionSpec,
        vector: np.ndarray,
        k: int,
        where: Frag,
        options: SearchOptions,
        *,
        with_embedding: bool = False,
        from_model: bool = False,
    ) -> Query:
        """The nearest-neighbour query for one call, from the cached template of its shape."""
        filter_key, slotted_where = (None, where) if where is TRUE else slotted(where)
        key = ("knn", k, options, filter_key, with_embedding)
        template = self._statements.get(
            key, lambda: self._build_search(spec, k, slotted_where, options, with_embedding)
        )
        frag = template.fill(Vector(self._fits(spec, vector, from_model)), None, where.params)
        return Query(frag, template.settings, with_embedding)

    def _build_search(
        self,
        spec: CollectionSpec,
        k: int,
        where: Frag,
        options: SearchOptions,
        with_embedding: bool,
    ) -> tuple[Frag, Settings]:
        return nearest_statement(spec, k, where, options, with_embedding, self._exact_below)

    @override
    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance → relevance in [0, 1] for this store's distance (see `Distance.relevance`)."""
        return self._configured.distance.relevance()

    def _template(self, key: Any, build: Callable[[], tuple[Frag, Settings]]) -> Template:
        return self._statements.get(key, build)

    def _compile(self, filter: Mapping[str, Any] | None) -> Frag:
        """The filter as SQL over this store's rows (its tenant's, in a multi-tenant
        collection); `FilterError` before anything is sent."""
        return compile_filter(filter, self._configured.table, self._bound_tenant())

    def _bound_tenant(self) -> str | None:
        """The tenant every statement is scoped to; refuses an unbound multi-tenant store."""
        if self._configured.table.multi_tenant and self._tenant is None:
            table = self._configured.table
            raise InputError(
                f"collection {table.schema}.{table.name} is multi-tenant: use"
                " store.for_tenant(tenant) (or tenant=...) to read or write its rows"
            )
        return self._tenant
