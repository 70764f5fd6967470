"""What the two runners share: the connector, each connection's settings and replay
position, and what a failed call means.

A runner (`_runner.py`) borrows a connection, drives a plan or a query on it and
gives it back; everything it decides on the way is here, so the sync and async
runners cannot drift apart.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector, register_vector_async

from ._connection import Connector
from ._failures import connection_lost, standby_write, timeout_error
from ._plan import Execute, Fetch, Plan
from ._routing import Probe, ReplicaState
from ._session import SessionState, local_plan, session_plan
from ._sql import Frag
from ._sql.replication import commit_lsn, replica_state
from ._sql.settings import Settings

__all__ = [
    "COMMIT_LSN",
    "EVERYTHING",
    "NO_SETTINGS",
    "REPLICA_STATE",
    "RunnerBase",
    "aregister",
    "execute_plan",
    "in_transaction",
    "log_sql",
    "register",
    "with_settings",
]

T = TypeVar("T")
Rows = list[tuple[Any, ...]]
logger = logging.getLogger("langchain_pgvstore")

NO_SETTINGS = Settings()
#: the replay position recorded for a primary's connection: it covers every write
EVERYTHING = 1 << 64
#: the WAL position after a write's commit; a standby's replay position and lag
COMMIT_LSN = Fetch(commit_lsn())
REPLICA_STATE = Fetch(replica_state())


def register(conn: psycopg.Connection[Any]) -> None:
    """Register pgvector's types on a connection (once pgvector is installed)."""
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        # pgvector not installed yet: provisioning creates it, later borrows register
        pass


async def aregister(conn: psycopg.AsyncConnection[Any]) -> None:
    """Async `register`."""
    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError:
        pass


def log_sql(frag: Frag) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("sql: %s", frag.as_string())


def in_transaction(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether a connection that is not in autocommit has an implicit transaction open."""
    return (
        not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    )


def execute_plan(frag: Frag) -> Callable[[], Plan[int]]:
    def plan() -> Plan[int]:
        count: int = yield Execute(frag)
        return count

    return plan


def with_settings(settings: Settings, make_plan: Callable[[], Plan[T]]) -> Callable[[], Plan[T]]:
    def plan() -> Plan[T]:
        for frag in settings.local_frags():
            yield Execute(frag)
        return (yield from make_plan())

    return plan


class RunnerBase:
    """What both runners share: the connector and each own connection's settings."""

    _asynchronous = False

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._sessions: weakref.WeakKeyDictionary[Any, SessionState] = weakref.WeakKeyDictionary()
        #: the replay position each connection's server last reported (standbys)
        self._replayed: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def _query_plan(
        self, conn: Any, query: Fetch, settings: Settings
    ) -> tuple[Plan[Rows] | None, bool]:
        """The plan for a query with settings on `conn` (None when the query can go
        alone), and whether it runs in a pipeline, where nothing is prepared."""
        if not self._connector.owns(self._asynchronous):
            settings = self._connector.call_settings(self._asynchronous).merged(settings)
            if not settings:
                return None, False
            return local_plan(settings, query), True
        state = self._sessions.get(conn)
        if state is None:
            if not settings:
                return None, False
            state = self._sessions[conn] = SessionState()
        if state.idle(settings):
            return None, False
        return session_plan(state, settings, query), False

    def _restore_plan(self, conn: Any) -> Plan[Rows] | None:
        """Put back the session settings an earlier search changed, before other work."""
        state = self._sessions.get(conn)
        if state is None or not state.changed():
            return None
        return session_plan(state, NO_SETTINGS, None)

    def _failed(self, error: psycopg.Error, conn: Any, attempt: int) -> BaseException | None:
        """The error to raise for a failed call, or None to retry it."""
        timeout = timeout_error(error) or standby_write(error, conn)
        if timeout is not None:
            return timeout
        if not connection_lost(error, conn):
            return error
        if attempt == 2 or conn is None:
            return self._connector.unavailable(error)
        return None

    def _discard(self, conn: Any, error: BaseException) -> bool:
        """Whether a connection of the store's own pool on which a call failed must be
        closed rather than reused (a lent pool checks its connections itself)."""
        if not self._connector.owns(self._asynchronous):
            return False
        if not isinstance(error, Exception) or conn.broken:
            self._sessions.pop(conn, None)
            return True
        return bool(conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    def _probe_needed(self, conn: Any, probe: Probe) -> bool:
        return probe.needed(self._replayed.get(conn))

    def _probed(self, conn: Any, row: Any) -> ReplicaState:
        """Record what a connection's server reported of its replay."""
        state = ReplicaState.from_row(row)
        # a primary shows everything committed: no position to wait for
        self._replayed[conn] = EVERYTHING if state.replayed is None else state.replayed
        return state
