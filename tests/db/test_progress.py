"""Progress of `add_texts` by phase: embedding, COPY, merge, index build, in order."""

from __future__ import annotations

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql

from langchain_pgvstore import PGVStore
from langchain_pgvstore._plan import Execute, Phase
from langchain_pgvstore._progress import make_progress, report_phases
from langchain_pgvstore._sql import Frag
from langchain_pgvstore.errors import ConfigError

DIM = 8
Events = list[tuple[str, int, int]]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


async def _add(store: PGVStore, mode: str, texts: list[str], ids: list[str]) -> Events:
    seen: Events = []

    def record(phase: str, done: int, total: int) -> None:
        seen.append((phase, done, total))

    if mode == "sync":
        store.add_texts(texts, ids=ids, progress=record)
    else:
        await store.aadd_texts(texts, ids=ids, progress=record)
    return seen


def _phases(events: Events) -> list[str]:
    order: list[str] = []
    for phase, _done, _total in events:
        if not order or order[-1] != phase:
            order.append(phase)
    return order


def _check_each_phase_runs_from_zero_to_total(events: Events, total: int) -> None:
    for phase in _phases(events):
        mine = [(d, t) for p, d, t in events if p == phase]
        assert mine[0] == (0, total) and mine[-1] == (total, total), (phase, mine)
        dones = [d for d, _t in mine]
        assert dones == sorted(dones)


async def test_first_load_builds_the_index_then_later_loads_do_not(
    dsn: str, collection_name: str, mode: str
) -> None:
    texts = [f"text {i}" for i in range(10)]
    store = PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name,
        batch_size=4,
    )  # fmt: skip
    try:
        first = await _add(store, mode, texts, [str(i) for i in range(10)])
        assert _phases(first) == ["embedding", "copy", "merge", "index"]
        assert [e for e in first if e[0] == "embedding"] == [
            ("embedding", 0, 10), ("embedding", 4, 10), ("embedding", 8, 10), ("embedding", 10, 10)
        ]  # fmt: skip
        _check_each_phase_runs_from_zero_to_total(first, 10)
        assert [i.kind for i in store.index_status()].count("hnsw") == 1

        second = await _add(store, mode, ["more"] * 3, ["a", "b", "c"])
        assert _phases(second) == ["embedding", "copy", "merge"]
        _check_each_phase_runs_from_zero_to_total(second, 3)
    finally:
        await store.aclose()


async def test_large_load_into_an_empty_table_copies_directly(
    dsn: str, collection_name: str, mode: str
) -> None:
    store = PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name,
        bulk_rebuild_rows=5,
    )  # fmt: skip
    try:
        events = await _add(store, mode, [f"t{i}" for i in range(6)], [str(i) for i in range(6)])
        # no staging table, so no merge; the index is built over the copied rows
        assert _phases(events) == ["embedding", "copy", "index"]
        _check_each_phase_runs_from_zero_to_total(events, 6)
        assert len(store.get_by_ids([str(i) for i in range(6)])) == 6
    finally:
        await store.aclose()


async def test_load_without_an_index_has_no_index_phase(
    dsn: str, collection_name: str, mode: str
) -> None:
    store = PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name,
        index=None,
    )  # fmt: skip
    try:
        events = await _add(store, mode, ["a", "b"], ["1", "2"])
        assert _phases(events) == ["embedding", "copy", "merge"]
        assert await _add(store, mode, [], []) == []
    finally:
        await store.aclose()


async def test_a_tenants_load_always_stages_and_merges(
    dsn: str, collection_name: str, mode: str
) -> None:
    store = PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name,
        multi_tenant=True, bulk_rebuild_rows=5,
    )  # fmt: skip
    try:
        acme = store.for_tenant("acme")
        events = await _add(acme, mode, [f"t{i}" for i in range(6)], [str(i) for i in range(6)])
        # a large load, but the table is shared by tenants: no direct copy, and no index
        # phase (a multi-tenant collection's graph is made with its table)
        assert _phases(events) == ["embedding", "copy", "merge"]
        _check_each_phase_runs_from_zero_to_total(events, 6)
        globex = store.for_tenant("globex")
        later = await _add(globex, mode, [f"g{i}" for i in range(6)], [str(i) for i in range(6)])
        assert _phases(later) == ["embedding", "copy", "merge"]
        assert len(acme.get_by_ids(["0"])) == len(globex.get_by_ids(["0"])) == 1
    finally:
        await store.aclose()


def test_progress_true_draws_one_bar_per_phase(
    dsn: str, collection_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    with PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name
    ) as store:
        store.add_texts(["x", "y", "z"], ids=["1", "2", "3"], progress=True)
    err = capsys.readouterr().err
    positions = [err.find(f"{phase}: 100%") for phase in ("embedding", "copy", "merge", "index")]
    assert -1 not in positions, err
    assert positions == sorted(positions)


def test_a_bad_progress_value_is_refused_before_anything_runs(
    dsn: str, collection_name: str
) -> None:
    with PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, collection=collection_name
    ) as store:
        with pytest.raises(ConfigError, match="phase, done, total"):
            store.add_texts(["x"], progress="yes")  # type: ignore[arg-type]
        assert store.dimensions is None  # nothing was provisioned


def test_report_phases_takes_the_markers_out_of_the_plan() -> None:
    seen: Events = []

    def plan():
        yield Phase("copy", 2)
        got = yield Execute(Frag(sql.SQL("SELECT 1")))
        assert got == 7
        yield Phase("merge", 2)
        return "done"

    with make_progress(lambda p, d, t: seen.append((p, d, t))) as progress:
        wrapped = report_phases(plan(), progress)
        step = next(wrapped)
        assert isinstance(step, Execute)
        with pytest.raises(StopIteration) as stop:
            wrapped.send(7)
        assert stop.value.value == "done"
    assert seen == [("copy", 0, 2), ("copy", 2, 2), ("merge", 0, 2), ("merge", 2, 2)]
