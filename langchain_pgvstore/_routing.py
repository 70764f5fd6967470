"""Read routing: which server answers a read, and when a replica is current enough.

A store with `read_connections` sends its reads (searches, `get`, `get_by_ids`,
`count`, `explain`) to read endpoints, round robin, and everything else to
the primary. Each read follows a *course* (`read_course`), a generator both
drivers in `_replicas.py` run: it yields which endpoint to try (with the
`Probe` that endpoint's connection must pass first), a pause, or the primary,
and receives what happened. Nothing here does I/O; the `Router` keeps each
endpoint's health and logs one line per change of it.

Read-your-writes. A read that must see a write carries the write's commit
position (a `WriteToken`). A replica serves it once its replay position is at
or after that position, checked on the very connection the read then runs on
(its snapshot is taken after the check, so it sees the write). Replicas that
are behind are polled until `read_wait` runs out; then the primary answers.

Health. An endpoint that cannot be reached is skipped for 1 s, doubling to
30 s, then tried by one read; one that is more than `max_replica_lag` seconds
behind is skipped and measured again a second later. Each change is logged
once (a WARNING when it is skipped, an INFO when it is back in use), never per
read. With every endpoint skipped, reads go to the primary.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from . import _validate as check
from .errors import ConfigError, DatabaseUnavailableError, InputError

__all__ = [
    "PRIMARY",
    "REPLICA",
    "Pause",
    "Probe",
    "ReadRoute",
    "ReplicaRead",
    "ReplicaState",
    "Router",
    "TryReplica",
    "UsePrimary",
    "WriteToken",
    "read_course",
    "route",
]

logger = logging.getLogger("langchain_pgvstore")

T = TypeVar("T")
ReadSource = Literal["replica", "primary"]

#: seconds an unreachable endpoint is skipped at first, and at most
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
#: seconds between two measures of an endpoint's lag (with `max_replica_lag`)
LAG_INTERVAL = 1.0
#: pauses while waiting for a replica to replay a write: 1 ms doubling to 20 ms
POLL_FIRST, POLL_MAX = 0.001, 0.02

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


@dataclass(frozen=True, slots=True, order=True)
class WriteToken:
    """A position in the primary's write-ahead log at or after the commit of a write.

    A read given `after=token` sees that write: on a replica once it has
    replayed up to the token (waiting up to the store's `read_wait`), else on
    the primary. `str(token)` is PostgreSQL's text form of the position
    (`"0/3014FE0"`); `WriteToken.parse(text)` reads it back, so a token can
    travel in a cookie or a header to another process.
    """

    lsn: int

    def __str__(self) -> str:
        return f"{self.lsn >> 32:X}/{self.lsn & 0xFFFFFFFF:X}"

    @classmethod
    def parse(cls, text: object) -> WriteToken:
        """A token from its text form (`"16/B374D848"`); `InputError` for anything else."""
        if isinstance(text, WriteToken):
            return text
        match = _LSN.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise InputError(
                f"a write token is a WAL position such as '0/3014FE0', got {text!r}"[:200]
            )
        return cls((int(match.group(1), 16) << 32) | int(match.group(2), 16))


@dataclass(frozen=True, slots=True)
class ReadRoute:
    """Where one read goes: `replica` (the default) or `primary`, and what it must see."""

    source: ReadSource = "replica"
    after: WriteToken | None = None


PRIMARY = ReadRoute("primary")
REPLICA = ReadRoute()


def route(read_from: object = None, after: object = None) -> ReadRoute:
    """The route of a read from its `read_from=` and `after=` arguments; `InputError`."""
    source: ReadSource = (
        "replica"
        if read_from is None
        else check.choice(read_from, "read_from", ("replica", "primary"))
    )
    token = None if after is None else WriteToken.parse(after)
    if token is None:
        return PRIMARY if source == "primary" else REPLICA
    return ReadRoute(source, token)


def positive_or_none(value: object, name: str) -> float | None:
    """A constructor's optional positive number of seconds; `ConfigError`."""
    return None if value is None else check.positive_number(value, name, ConfigError)


# -- what a replica read checks, and what it found ------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """A server's replay position and lag; both None on a primary."""

    replayed: int | None
    lag: float | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ReplicaState:
        replayed, lag = row[0], row[1]
        return cls(None if replayed is None else int(replayed), None if lag is None else float(lag))


@dataclass(frozen=True, slots=True)
class Probe:
    """What a read checks on its replica connection before it runs, if anything.

    `lsn`: the replay position the read needs; `max_lag`: measure the lag and
    refuse more than this many seconds (only when the lag is due a measure).
    """

    lsn: int | None = None
    max_lag: float | None = None

    def needed(self, replayed: int | None) -> bool:
        """Whether the connection must be asked (`replayed`: what it last reported)."""
        if self.max_lag is not None:
            return True
        return self.lsn is not None and (replayed is None or replayed < self.lsn)

    def accepts(self, state: ReplicaState) -> bool:
        """Whether a server in `state` may serve the read."""
        if state.replayed is None:  # a primary: everything committed is visible
            return True
        if self.lsn is not None and state.replayed < self.lsn:
            return False
        return self.max_lag is None or state.lag is None or state.lag <= self.max_lag


NO_PROBE = Probe()


@dataclass(frozen=True, slots=True)
class ReplicaRead(Generic[T]):
    """What a read on a replica endpoint gave: its value if `served`, and the state it saw."""

    value: T | None
    served: bool
    state: ReplicaState | None = None


# -- health ------------------------------------------------------------------------------


@dataclass
class _Health:
    name: str
    skipped: str | None = None  # why reads avoid it now; None: in use
    retry_at: float = 0.0
    backoff: float = 0.0
    lag_measured: float = float("-inf")


class Router:
    """The health of each read endpoint and the order reads try them in."""

    def __init__(self, names: Sequence[str], max_lag: float | None) -> None:
        self._health = [_Health(name) for name in names]
        self.max_lag = max_lag
        self._next = 0
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [h.name for h in self._health]

    def skipped(self) -> dict[str, str]:
        """The endpoints reads avoid now, with the reason."""
        return {h.name: h.skipped for h in self._health if h.skipped is not None}

    def order(self, now: float) -> list[int]:
        """Endpoints to try, round robin over those in use; a skipped one whose retry
        time has come is tried first (one read finds out whether it is back)."""
        with self._lock:
            n = len(self._health)
            start, self._next = self._next, (self._next + 1) % n
            rotated = [(start + i) % n for i in range(n)]
            due = [
                i for i in rotated if self._health[i].skipped and self._health[i].retry_at <= now
            ]
            for i in due:  # one trial per retry period, not one per concurrent read
                self._health[i].retry_at = now + max(self._health[i].backoff, LAG_INTERVAL)
            return due + [i for i in rotated if self._health[i].skipped is None]

    def probe(self, i: int, lsn: int | None, now: float) -> Probe:
        """The probe for a read on endpoint `i` needing replay position `lsn`."""
        health = self._health[i]
        if self.max_lag is not None and (
            health.skipped is not None or now - health.lag_measured >= LAG_INTERVAL
        ):
            return Probe(lsn, self.max_lag)
        return Probe(lsn) if lsn is not None else NO_PROBE

    def too_far(self, state: ReplicaState | None) -> bool:
        """Whether a server in `state` is more than `max_replica_lag` behind."""
        return (
            self.max_lag is not None
            and state is not None
            and state.lag is not None
            and state.lag > self.max_lag
        )

    def seen(self, i: int, read: ReplicaRead[Any], now: float) -> None:
        """Record a read that reached endpoint `i` (served or not)."""
        with self._lock:
            self._seen(self._health[i], read, now)

    def _seen(self, health: _Health, read: ReplicaRead[Any], now: float) -> None:
        state = read.state
        if state is not None and state.lag is not None:
            health.lag_measured = now
            if self.too_far(state):
                self._skip(
                    health,
                    f"is {state.lag:.1f} s behind (max_replica_lag={self.max_lag:g})",
                    now + LAG_INTERVAL,
                )
                return
        if read.served and health.skipped is not None:
            logger.info("replica %s back in use", health.name)
            health.skipped, health.backoff = None, 0.0

    def failed(self, i: int, error: BaseException, now: float) -> None:
        """Endpoint `i` could not be reached: skip it, for longer each time."""
        reason = str(error).split(": ", 1)[-1].strip().splitlines()[0][:200]
        with self._lock:
            health = self._health[i]
            health.backoff = min(BACKOFF_MAX, health.backoff * 2 or BACKOFF_FIRST)
            self._skip(health, f"is unreachable ({reason})", now + health.backoff)

    def _skip(self, health: _Health, reason: str, until: float) -> None:
        health.retry_at = until
        if health.skipped is None:
            others = [h.name for h in self._health if h.skipped is None and h is not health]
            elsewhere = f"the other replicas ({', '.join(others)})" if others else "the primary"
            logger.warning(
                "replica %s %s; reads go to %s until it recovers", health.name, reason, elsewhere
            )
        health.skipped = reason


# -- the course of one read ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TryReplica:
    """Step: run the read on endpoint `index`, its connection passing `probe` first.
    Send back the `ReplicaRead`, or the exception the endpoint raised."""

    index: int
    probe: Probe


@dataclass(frozen=True, slots=True)
class Pause:
    """Step: wait this long (a replica is replaying the write the read must see)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class UsePrimary:
    """Step: run the read on the primary; send back its value."""

    why: str


Step = TryReplica | Pause | UsePrimary


def read_course(
    router: Router, lsn: int | None, wait: float, now: Any
) -> Generator[Step, Any, Any]:
    """Try the endpoints in the router's order; return the first value served.

    A replica down or lagging is marked and the next one tried; a recovery
    conflict (the replica cancelled the read to apply WAL) tries the next one
    without marking. While a replica that answered is only behind `lsn`, pause
    and try again until `wait` seconds have passed; then, or at once when no
    replica is usable, the primary.
    """
    deadline: float | None = None
    pause = POLL_FIRST
    while True:
        t = now()
        behind = False  # a replica answered but has not replayed `lsn` yet
        for i in router.order(t):
            outcome = yield TryReplica(i, router.probe(i, lsn, t))
            t = now()
            if isinstance(outcome, DatabaseUnavailableError):
                router.failed(i, outcome, t)
            elif isinstance(outcome, BaseException):
                name = router.names[i]
                logger.debug("replica %s cancelled a read (%s); trying elsewhere", name, outcome)
            else:
                router.seen(i, outcome, t)
                if outcome.served:
                    return outcome.value
                # not served: behind `lsn` (worth a wait), or too far behind (skipped)
                behind = behind or not router.too_far(outcome.state)
        if lsn is None or not behind:
            return (yield UsePrimary("no replica is usable"))
        if deadline is None:
            deadline = t + wait
        if t >= deadline:
            logger.debug("no replica replayed %s within %g s: reading on the primary", lsn, wait)
            return (yield UsePrimary("no replica caught up in time"))
        yield Pause(min(pause, deadline - t))
        pause = min(POLL_MAX, pause * 2)
