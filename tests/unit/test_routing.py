"""Read routing decisions without a server: tokens, routes, endpoint health, a read's course."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import errors as pg_errors

from langchain_pgvstore import (
    ConfigError,
    DatabaseUnavailableError,
    InputError,
    PGVStore,
    WriteToken,
)
from langchain_pgvstore._options import SearchOptions, parse_options
from langchain_pgvstore._routing import (
    PRIMARY,
    REPLICA,
    Pause,
    Probe,
    ReplicaRead,
    ReplicaState,
    Router,
    TryReplica,
    UsePrimary,
    read_course,
    route,
)

DSN = "host=127.0.0.1 port=1 dbname=app user=app password=s3cret-pw"


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_token_text_round_trips(lsn: int) -> None:
    token = WriteToken(lsn)
    assert WriteToken.parse(str(token)) == token
    assert WriteToken.parse(str(token).lower()) == token


def test_token_text_is_postgres_lsn_text() -> None:
    assert str(WriteToken((0x16 << 32) | 0xB374D848)) == "16/B374D848"
    assert WriteToken.parse("0/3014FE0") < WriteToken.parse("1/0")


@pytest.mark.parametrize("bad", ["", "0", "0/", "/1", "0/G", "1/2/3", "123456789/0", 42, None])
def test_bad_token_text_is_refused(bad: Any) -> None:
    with pytest.raises(InputError, match="a write token is a WAL position"):
        WriteToken.parse(bad)


def test_route_from_arguments() -> None:
    assert route() is REPLICA
    assert route("primary") is PRIMARY
    assert route("replica", "0/10") == route(None, WriteToken(16))
    with pytest.raises(InputError, match="read_from"):
        route("standby")


def test_route_is_parsed_with_search_options_but_is_not_part_of_the_statement() -> None:
    options = parse_options("similarity", 4, {"read_from": "primary", "after": "0/10"})
    assert options.route.source == "primary" and options.route.after == WriteToken(16)
    # the statement cache key: a route never makes a new statement
    assert options == SearchOptions() and hash(options) == hash(SearchOptions())
    for kind in ("mmr", "keyword", "hybrid", "explain"):
        assert parse_options(kind, 4, {"read_from": "replica"}).route is REPLICA
    with pytest.raises(InputError, match="read_from"):
        parse_options("hybrid", 4, {"read_from": "any"})
    with pytest.raises(InputError, match="write token"):
        parse_options("keyword", 4, {"after": "yesterday"})


def test_probe_accepts_a_server_that_replayed_the_write_and_is_not_too_far_behind() -> None:
    probe = Probe(lsn=100, max_lag=5.0)
    assert probe.accepts(ReplicaState(100, 0.0))
    assert not probe.accepts(ReplicaState(99, 0.0))
    assert not probe.accepts(ReplicaState(200, 5.5))
    assert probe.accepts(ReplicaState(None, None))  # a primary sees every commit
    # a connection that already reported a later position is not asked again
    assert not Probe(lsn=100).needed(150) and Probe(lsn=100).needed(50)
    assert Probe(lsn=None, max_lag=1.0).needed(1 << 64)
    assert not Probe().needed(None)


def test_router_round_robin_over_healthy_endpoints() -> None:
    router = Router(["a", "b", "c"], None)
    firsts = [router.order(0.0)[0] for _ in range(6)]
    assert firsts == [0, 1, 2, 0, 1, 2]
    assert sorted(router.order(0.0)) == [0, 1, 2]


def test_a_down_endpoint_is_skipped_with_one_warning_and_tried_again_later(caplog) -> None:
    caplog.set_level(logging.INFO, logger="langchain_pgvstore")
    router = Router(["host=r1 port=1", "host=r2 port=2"], None)
    down = DatabaseUnavailableError("cannot reach PostgreSQL at host=r1: connection refused")
    for t in (0.0, 0.1, 0.2):
        router.failed(0, down, t)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "replica host=r1 port=1 is unreachable (connection refused);"
        " reads go to the other replicas (host=r2 port=2) until it recovers"
    ]
    assert router.order(0.5) == [1]
    # backoff doubled with each failure: 1, 2, 4 s; then one read tries it
    assert router.order(4.0) == [1]
    assert router.order(4.3)[0] == 0
    assert 0 not in router.order(4.4)  # one trial per period, not one per read
    router.seen(0, ReplicaRead(["row"], True), 4.5)
    assert "replica host=r1 port=1 back in use" in caplog.text
    assert sorted(router.order(4.6)) == [0, 1] and router.skipped() == {}


def test_a_lagging_endpoint_is_skipped_and_measured_again() -> None:
    router = Router(["r1"], max_lag=2.0)
    assert router.probe(0, None, 0.0) == Probe(None, 2.0)  # never measured: measure now
    router.seen(0, ReplicaRead(None, False, ReplicaState(10, 7.5)), 0.0)
    assert router.skipped() == {"r1": "is 7.5 s behind (max_replica_lag=2)"}
    assert router.order(0.5) == []
    assert router.order(1.0) == [0]
    assert router.probe(0, 30, 1.0) == Probe(30, 2.0)
    router.seen(0, ReplicaRead(["x"], True, ReplicaState(40, 0.0)), 1.0)
    assert router.skipped() == {}
    assert router.probe(0, None, 1.5) == Probe()  # measured half a second ago


def _run(course: Any, outcomes: dict[int, list[Any]], primary: Any = "primary") -> list[Any]:
    """Drive a course with canned outcomes per endpoint; the steps it took and its value."""
    steps: list[Any] = []
    sent: Any = None
    while True:
        try:
            step = course.send(sent)
        except StopIteration as stop:
            return [*steps, ("value", stop.value)]
        steps.append(step)
        if isinstance(step, TryReplica):
            sent = outcomes[step.index].pop(0)
        elif isinstance(step, Pause):
            sent = None
        else:
            assert isinstance(step, UsePrimary)
            sent = primary


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.05
        return self.t


def test_course_serves_from_the_first_replica_that_can() -> None:
    router = Router(["r1", "r2"], None)
    down = DatabaseUnavailableError("cannot reach PostgreSQL at host=r1: refused")
    steps = _run(
        read_course(router, None, 1.0, Clock()),
        {0: [down], 1: [ReplicaRead(["row"], True)]},
    )
    assert steps[-1] == ("value", ["row"])
    assert [s.index for s in steps[:-1]] == [0, 1]


def test_course_waits_for_replay_then_falls_back_to_the_primary() -> None:
    router = Router(["r1"], None)
    behind = ReplicaRead(None, False, ReplicaState(5, 0.0))
    clock = Clock()
    steps = _run(read_course(router, 10, 0.3, clock), {0: [behind] * 100})
    assert steps[-1] == ("value", "primary")
    assert isinstance(steps[-2], UsePrimary)
    pauses = [s.seconds for s in steps if isinstance(s, Pause)]
    assert pauses[:3] == [0.001, 0.002, 0.004] and max(pauses) <= 0.02
    assert router.skipped() == {}  # lag is normal: the replica stays in use


def test_course_without_usable_replicas_goes_to_the_primary_at_once() -> None:
    router = Router(["r1"], None)
    conflict = pg_errors.SerializationFailure("canceling statement due to conflict with recovery")
    steps = _run(read_course(router, None, 1.0, Clock()), {0: [conflict]})
    assert [type(s) for s in steps[:-1]] == [TryReplica, UsePrimary]
    assert router.skipped() == {}  # a recovery conflict says nothing about health
    # a read that must see a write does not wait for replicas that are down or too far behind
    down = DatabaseUnavailableError("cannot reach PostgreSQL at host=r1: refused")
    steps = _run(read_course(Router(["r1"], None), 10, 5.0, Clock()), {0: [down]})
    assert [type(s) for s in steps[:-1]] == [TryReplica, UsePrimary]
    lagging = Router(["r1"], max_lag=1.0)
    far = ReplicaRead(None, False, ReplicaState(20, 9.0))
    steps = _run(read_course(lagging, 10, 5.0, Clock()), {0: [far]})
    assert [type(s) for s in steps[:-1]] == [TryReplica, UsePrimary]
    assert _run(read_course(lagging, 10, 5.0, Clock()), {}) == [
        UsePrimary("no replica is usable"),
        ("value", "primary"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"read_connections": [DSN]}, "the embedded server has no replicas"),
        ({"connection": DSN, "read_connections": 42}, "read_connections must be a DSN"),
        ({"connection": DSN, "read_connections": ["host=a port=x y"]}, "invalid connection"),
        ({"connection": DSN, "read_wait": 0}, "read_wait"),
        ({"connection": DSN, "max_replica_lag": -1}, "max_replica_lag"),
        ({"connection": DSN, "read_your_writes": "yes"}, "read_your_writes"),
    ],
)
def test_routing_arguments_are_checked_before_any_connection(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        PGVStore(DeterministicFakeEmbedding(size=4), **kwargs)
    assert "s3cret" not in str(info.value)


def test_bad_route_arguments_are_input_errors_before_any_io() -> None:
    replica = DSN.replace("127.0.0.1", "10.0.0.2")
    store = PGVStore(DeterministicFakeEmbedding(size=4), connection=DSN, read_connections=replica)
    assert repr(store).endswith(
        "host=127.0.0.1 port=1 dbname=app user=app,"
        " read from: host=10.0.0.2 port=1 dbname=app user=app)"
    )
    assert "s3cret" not in repr(store)
    with pytest.raises(InputError, match="read_from"):
        store.get_by_ids(["a"], read_from="nearest")
    with pytest.raises(InputError, match="write token"):
        store.count(after="0/xyz")
    with pytest.raises(InputError, match="read_from"):
        store.similarity_search_by_vector([0.1] * 4, read_from=1)


@pytest.mark.parametrize(
    ("message", "permanent"),
    [
        ('connection failed: FATAL:  database "gone" does not exist', True),
        ('connection failed: FATAL:  role "nobody" does not exist', True),
        ('FATAL:  password authentication failed for user "app"', True),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "app"', True),
        ('could not translate host name "db.invalid" to address', True),
        ("connection refused\n\tIs the server running on that host?", False),
        ("FATAL:  sorry, too many clients already", False),
        ("FATAL:  the database system is starting up", False),
        ("server closed the connection unexpectedly", False),
    ],
)
def test_which_connection_failures_are_permanent(message: str, permanent: bool) -> None:
    import psycopg

    from langchain_pgvstore._failures import permanent_connect_error

    assert permanent_connect_error(psycopg.OperationalError(message)) is permanent
