"""How a statement's settings reach the server: pure plans the runners drive.

On the store's own connections, settings are session settings, and the store
remembers what each connection has (`SessionState`). A search with the same
knobs as the previous one on that connection sends no setting at all; one
that needs a change sends a single `set_config` statement first. A setting
the statement does not ask for is put back to the value the session had
before the store first changed it, so one search's knobs never affect the
next. These statements run outside any pipeline: in a pipeline, a failure
skips the statements after it, and psycopg may then believe a statement is
prepared that the server never saw.

On a pool the caller lent the store, settings are transaction-local: they
and the query go in one pipeline (its implicit transaction ends them), with
no statement prepared, so nothing is left on the caller's connections.
"""

from __future__ import annotations

from typing import Any

from ._plan import Execute, Fetch, Plan
from ._sql import citus
from ._sql.settings import DEFAULTS, Settings, read_settings, set_configs

__all__ = ["SessionState", "local_plan", "propagated_plan", "session_plan"]

Rows = list[tuple[Any, ...]]


class SessionState:
    """The settings the store has read or changed on one of its own connections."""

    __slots__ = ("baseline", "current")

    def __init__(self) -> None:
        #: each setting's value before the store first changed it
        self.baseline: dict[str, str | None] = {}
        #: each setting's value now
        self.current: dict[str, str | None] = {}

    def changed(self) -> list[str]:
        """Settings that differ from the session's own values."""
        return [n for n, v in self.current.items() if v != self.baseline.get(n)]

    def wanted(self, settings: Settings) -> dict[str, str | None]:
        """The value of every relevant setting for a statement with `settings`."""
        names = dict.fromkeys([*settings.names(), *self.changed()])
        wanted = {name: self.baseline.get(name) for name in names}
        wanted.update(settings.values)
        if settings.ef_search_at_least is not None:
            configured = int(wanted.get("hnsw.ef_search") or DEFAULTS["hnsw.ef_search"])
            wanted["hnsw.ef_search"] = str(max(configured, settings.ef_search_at_least))
        return wanted

    def unknown(self, settings: Settings) -> list[str]:
        """Settings whose session value must be read before they can be changed."""
        return [n for n in settings.names() if n not in self.baseline]

    def idle(self, settings: Settings) -> bool:
        """True when a statement with `settings` needs no setting sent first."""
        if self.unknown(settings):
            return False
        return all(self.current.get(n) == v for n, v in self.wanted(settings).items())


def session_plan(state: SessionState, settings: Settings, query: Fetch | None) -> Plan[Rows]:
    """Bring the connection's settings to what `query` needs, then run it (if any)."""
    unknown = state.unknown(settings)
    if unknown:
        for name, value in (yield Fetch(read_settings(unknown))):
            # a pgvector setting is unknown until its library loads: the default applies
            known = value if value not in (None, "") else DEFAULTS.get(name, value)
            state.baseline[name] = known
            state.current[name] = known
    changes = {n: v for n, v in state.wanted(settings).items() if state.current.get(n) != v}
    # a setting without a value cannot be set back to it; every setting the
    # store uses has one (a server default, or pgvector's from DEFAULTS)
    values = {n: v for n, v in changes.items() if v is not None}
    if values:
        yield Execute(set_configs(list(values), list(values.values()), local=False))
        # in autocommit, the settings took effect when that statement succeeded
        state.current.update(values)
    if query is None:
        return []
    rows: Rows = yield query
    return rows


def propagated_plan(settings: Settings, query: Fetch) -> Plan[Rows]:
    """`SET LOCAL` settings Citus passes on to the workers, then the query.

    Run it in a transaction block: that is where `SET LOCAL` lives, and where
    Citus sends it to every worker connection of the transaction.
    """
    for frag in citus.set_local(settings.resolved()):
        yield Execute(frag)
    rows: Rows = yield query
    return rows


def local_plan(settings: Settings, query: Fetch) -> Plan[Rows]:
    """Transaction-local settings, then the query (one implicit transaction)."""
    for frag in settings.local_frags():
        yield Execute(frag)
    rows: Rows = yield query
    return rows
