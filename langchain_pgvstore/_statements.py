"""Search statements built once per shape and filled per call.

Building a search statement out of fragments and rendering it takes longer
than a local round trip to the server, so each shape is built once with
*slots* where the call's values go (the query vector, the query text, the
filter's parameters), rendered, and cached. A call fills the slots.

The key of a cached statement is made of checked values only: the kind of
search, `k`, the parsed `SearchOptions`, and the filter's compiled SQL text.
The filter's values are never part of the key: they always come from this
call's own compilation, so a cached statement cannot answer for another
filter, whatever `repr` the caller's objects have.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence

from ._sql import Frag, Rendered
from ._sql.settings import Settings

__all__ = ["TEXT", "VECTOR", "StatementCache", "Template", "slotted"]

#: Statements kept per store; the cache is emptied when it is full.
CACHE_SIZE = 256


class _Slot:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<slot {self.name}>"


class _FilterSlot:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<filter parameter {self.index}>"


VECTOR = _Slot("vector")
TEXT = _Slot("text")
_FILTER_SLOTS = [_FilterSlot(i) for i in range(64)]


def _filter_slots(where: Frag) -> Frag:
    """`where` with slots in place of its parameters, for a cached statement."""
    n = len(where.params)
    while n > len(_FILTER_SLOTS):
        _FILTER_SLOTS.append(_FilterSlot(len(_FILTER_SLOTS)))
    return Frag(where.sql, tuple(_FILTER_SLOTS[:n]))


class Template:
    """A rendered statement with slots, and the settings it runs with."""

    __slots__ = ("params", "settings", "sql")

    def __init__(self, frag: Frag, settings: Settings) -> None:
        self.sql = Rendered(frag.sql)
        self.params = frag.params
        self.settings = settings

    def fill(
        self, vector: object = None, text: object = None, filter_params: Sequence[object] = ()
    ) -> Frag:
        """The statement with this call's values in its slots."""
        params = tuple(
            vector
            if p is VECTOR
            else text
            if p is TEXT
            else filter_params[p.index]
            if isinstance(p, _FilterSlot)
            else p
            for p in self.params
        )
        return Frag(self.sql, params)


def slotted(where: Frag) -> tuple[str | None, Frag]:
    """The filter's part of a statement key (its SQL text) and its slotted form."""
    return where.sql.as_string(None), _filter_slots(where)


class StatementCache:
    """Templates by shape; emptied when the collection's spec changes."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._templates: dict[Hashable, Template] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], tuple[Frag, Settings]]) -> Template:
        """The template of this shape, built on first use."""
        template = self._templates.get(key)
        if template is None:
            frag, settings = build()
            template = Template(frag, settings)
            with self._lock:
                if len(self._templates) >= self._size:
                    self._templates.clear()
                self._templates[key] = template
        return template

    def clear(self) -> None:
        """Forget every template (they belong to one collection spec)."""
        with self._lock:
            self._templates.clear()

    def __len__(self) -> int:
        return len(self._templates)
