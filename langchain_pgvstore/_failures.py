"""What a database error means for a call: retry it, or raise which typed error.

Both runners and both halves of `Connector` ask these functions, so retry and
error mapping cannot drift between sync and async code. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors

from .errors import ConfigError, QueryTimeoutError

__all__ = [
    "SCHEMA_CHANGED",
    "connection_lost",
    "permanent_connect_error",
    "standby_write",
    "timeout_error",
]

#: Errors a statement meets when the collection changed under the store: another
#: process dropped or recreated it (a table, column or function is gone, or the
#: vector column has another size). The store looks the collection up again.
SCHEMA_CHANGED: tuple[type[psycopg.Error], ...] = (
    pg_errors.UndefinedTable,
    pg_errors.UndefinedColumn,
    pg_errors.UndefinedFunction,
    pg_errors.UndefinedObject,
    pg_errors.DataException,
)

# SQLSTATEs of connection attempts that will fail the same way when retried
_PERMANENT_SQLSTATES = frozenset(
    {
        "28P01",  # invalid_password
        "28000",  # invalid_authorization_specification (no such role, pg_hba)
        "3D000",  # invalid_catalog_name: no such database
        "42501",  # insufficient_privilege (no CONNECT)
        "08004",  # sqlserver_rejected_establishment_of_sqlconnection
    }
)
# Messages of failures no retry can fix: libpq's own (no SQLSTATE), and the
# server's refusals, whose SQLSTATE psycopg does not keep for a failed connection
_PERMANENT_MESSAGES = (
    "password authentication failed",
    "authentication failed for user",
    "no pg_hba.conf entry",
    "does not exist",  # role "x" / database "x" does not exist
    "permission denied for database",
    "is not permitted to log in",
    "pg_hba.conf rejects connection",
    "server does not support ssl",
    "could not translate host name",
    "name or service not known",
    "nodename nor servname",
    "invalid connection option",
    "invalid integer value",
    "invalid sslmode value",
    "invalid percent-encoded token",
    "unexpected spaces found",
    'missing "="',
)


def connection_lost(error: BaseException, conn: psycopg.BaseConnection[Any] | None) -> bool:
    """True when the connection broke (server restart, network): the call may be retried."""
    if isinstance(error, pg_errors.QueryCanceled):
        return False
    if conn is not None and conn.broken:
        return True
    sqlstate = getattr(error, "sqlstate", None) or ""
    return isinstance(error, psycopg.OperationalError) and (
        sqlstate.startswith(("08", "57P")) or not sqlstate
    )


def permanent_connect_error(error: BaseException) -> bool:
    """True when a failed connection attempt would fail again the same way."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate in _PERMANENT_SQLSTATES:
        return True
    message = str(error).lower()
    return any(text in message for text in _PERMANENT_MESSAGES)


def timeout_error(error: psycopg.Error) -> QueryTimeoutError | None:
    """The typed error for a cancelled statement or a lock wait that timed out."""
    if isinstance(error, pg_errors.QueryCanceled):
        message = str(error).strip()
        if "timeout" in message:
            return QueryTimeoutError(f"statement timed out: {message}")
        return QueryTimeoutError(f"statement cancelled: {message}")
    if isinstance(error, pg_errors.LockNotAvailable):
        return QueryTimeoutError(f"lock wait timed out: {str(error).strip()}")
    return None


def standby_write(error: psycopg.Error, conn: Any) -> ConfigError | None:
    """The configuration error for a write that reached a read-only server.

    A standby tells the client at connect time (`in_hot_standby`, PostgreSQL 14+),
    which tells it apart from a primary whose sessions default to read-only.
    """
    if not isinstance(error, pg_errors.ReadOnlySqlTransaction):
        return None
    info = getattr(conn, "info", None)
    where = f"host={info.host} port={info.port}" if info is not None else "the server"
    if info is not None and info.parameter_status("in_hot_standby") == "on":
        return ConfigError(
            f"the store's connection {where} reached a read-only standby (in_hot_standby=on);"
            " writes need the primary: point connection= at it, or add"
            " target_session_attrs=read-write to a multi-host DSN"
        )
    return ConfigError(
        f"the store's connection {where} is read-only (default_transaction_read_only=on);"
        " writes need a read-write session: use a role or database without that setting"
    )
