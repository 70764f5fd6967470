"""Replication positions: where a write's commit ends, how far a replica has replayed.

WAL positions (`pg_lsn`) travel as byte offsets (`bigint`) so that the client
compares plain integers; `_routing.WriteToken` prints them in PostgreSQL's own
`X/Y` form.
"""

from __future__ import annotations

from psycopg import sql

from . import Frag

__all__ = ["commit_lsn", "replica_state"]


def commit_lsn() -> Frag:
    """A WAL position at or after the end of the session's last commit, as a byte offset.

    After a synchronous commit the flush position is exact and always reachable by
    replay. Under `synchronous_commit = off` the commit may not be flushed yet, so
    the insert position is used: it covers the commit, and in the rare case where
    it points past a page header that replay does not reach on its own, a read
    waits its bound and goes to the primary (slower, never wrong).
    """
    return Frag(
        sql.SQL(
            "SELECT (CASE WHEN current_setting('synchronous_commit') = 'off'"
            " THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END"
            " - '0/0'::pg_lsn)::bigint"
        )
    )


def replica_state() -> Frag:
    """(replayed position, seconds behind) of a standby; (NULL, NULL) on a primary
    (a promoted standby included: everything committed on it is visible). A standby
    that reports no replay position counts as having replayed nothing: reads that
    must see a write then wait and go to the primary, never read too early.

    A standby that has replayed everything it received counts as current (0 s):
    on an idle primary the last replayed transaction only gets older.
    """
    return Frag(
        sql.SQL(
            "SELECT CASE WHEN pg_is_in_recovery()"
            " THEN coalesce((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0) END,"
            " CASE WHEN NOT pg_is_in_recovery() THEN NULL"
            " WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()"
            " THEN 0.0"
            " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"
        )
    )
