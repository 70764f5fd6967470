"""Server settings: which ones a statement needs, and the statements that apply them.

`set_config()` is the only way the store changes a setting: it takes the name
and value as parameters, where `SET` would need them spliced into the text.
A statement's needs are a `Settings` value, built from a search's knobs
(`search_settings`) or from a store option. The runners apply it in one of
two ways (see `_session.py`): on the store's own connections, as session
settings changed only when they differ from what the connection already has;
on a pool the caller lent the store, transaction-locally, so they end with the
statement and never leak onto the caller's connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from . import Frag

__all__ = [
    "DEFAULTS",
    "Settings",
    "read_settings",
    "search_settings",
    "set_config",
    "set_configs",
    "statement_timeout",
]

#: What pgvector uses when a setting was never set in the session (its
#: library may not be loaded yet, so `current_setting` knows nothing of it).
DEFAULTS: dict[str, str] = {
    "hnsw.ef_search": "40",
    "hnsw.iterative_scan": "off",
    "hnsw.max_scan_tuples": "20000",
    "ivfflat.probes": "1",
    "ivfflat.iterative_scan": "off",
    # no tenant: under row-level security by setting, no row matches
    "pgvstore.tenant": "",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """The server settings one statement runs with.

    `values` are exact; `ef_search_at_least` raises `hnsw.ef_search` to at
    least that many (an HNSW scan returns at most `ef_search` rows), keeping a
    larger value configured on the server or in `values`.
    """

    values: tuple[tuple[str, str], ...] = ()
    ef_search_at_least: int | None = None

    def __bool__(self) -> bool:
        return bool(self.values) or self.ef_search_at_least is not None

    def names(self) -> list[str]:
        """Every setting this touches."""
        names = [name for name, _ in self.values]
        if self.ef_search_at_least is not None and "hnsw.ef_search" not in names:
            names.append("hnsw.ef_search")
        return names

    def merged(self, other: Settings) -> Settings:
        """These settings with `other`'s on top."""
        values = dict(self.values)
        values.update(other.values)
        floors = [v for v in (self.ef_search_at_least, other.ef_search_at_least) if v is not None]
        return Settings(tuple(values.items()), max(floors) if floors else None)

    def resolved(self) -> list[tuple[str, str]]:
        """Every value, `ef_search_at_least` applied to the explicit value or pgvector's
        default (for `SET`, which cannot read the server's own value first)."""
        values = dict(self.values)
        if self.ef_search_at_least is not None:
            current = int(values.get("hnsw.ef_search", DEFAULTS["hnsw.ef_search"]))
            values["hnsw.ef_search"] = str(max(current, self.ef_search_at_least))
        return list(values.items())

    def local_frags(self) -> list[Frag]:
        """Transaction-local `set_config` statements for these settings."""
        frags = []
        if self.values:
            names, values = zip(*self.values, strict=True)
            frags.append(set_configs(list(names), list(values), local=True))
        if self.ef_search_at_least is not None:
            frags.append(_raise_ef_search(self.ef_search_at_least))
        return frags


def set_config(name: str, value: str, *, local: bool) -> Frag:
    """One `set_config(name, value, local)`."""
    return Frag(sql.SQL("SELECT set_config(%s, %s, %s)"), (name, value, local))


def set_configs(names: Sequence[str], values: Sequence[str], *, local: bool) -> Frag:
    """Several settings in one statement (the same text for any number of them)."""
    return Frag(
        sql.SQL(
            "SELECT count(set_config(s.name, s.value, %s))"
            " FROM unnest(%s::text[], %s::text[]) AS s(name, value)"
        ),
        (local, list(names), list(values)),
    )


def read_settings(names: Sequence[str]) -> Frag:
    """The session's current value of each setting, in order (NULL if unknown)."""
    return Frag(
        sql.SQL(
            "SELECT s.name, current_setting(s.name, true)"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS s(name, n) ORDER BY s.n"
        ),
        (list(names),),
    )


def _raise_ef_search(at_least: int) -> Frag:
    # Until a session first uses pgvector, its library is not loaded and
    # hnsw.ef_search does not exist: read it with missing_ok and fall back to
    # pgvector's default; pgvector adopts the placeholder when it loads.
    return Frag(
        sql.SQL(
            "SELECT set_config('hnsw.ef_search', greatest(coalesce(nullif("
            "current_setting('hnsw.ef_search', true), '')::integer, %s), %s)::text, true)"
        ),
        (int(DEFAULTS["hnsw.ef_search"]), at_least),
    )


def statement_timeout(seconds: float) -> tuple[str, str]:
    """The `statement_timeout` setting for a number of seconds (at least 1 ms)."""
    return ("statement_timeout", str(max(1, round(seconds * 1000))))


def search_settings(
    *,
    ef_search: int | None = None,
    probes: int | None = None,
    iterative_scan: str | None = None,
    max_scan_tuples: int | None = None,
    statement_timeout_s: float | None = None,
    filtered_plan: bool = False,
    generic_plan: bool = True,
    index_scan: bool = False,
    ef_search_at_least: int | None = None,
) -> Settings:
    """The settings a search with these knobs runs with (`generic_plan`: whether the
    filtered statement runs one plan for every filter value)."""
    values: list[tuple[str, str]] = []
    if ef_search is not None:
        values.append(("hnsw.ef_search", str(ef_search)))
    if probes is not None:
        values.append(("ivfflat.probes", str(probes)))
    if iterative_scan is not None:
        values.append(("hnsw.iterative_scan", iterative_scan))
        # IVFFlat has no strict ordering mode
        ivf = "off" if iterative_scan == "off" else "relaxed_order"
        values.append(("ivfflat.iterative_scan", ivf))
    if max_scan_tuples is not None:
        values.append(("hnsw.max_scan_tuples", str(max_scan_tuples)))
    if filtered_plan:
        # the filtered statement chooses its branch at run time, from its own
        # estimate, so one generic plan serves every filter value; planning the
        # statement anew for each call costs more than most of its runs. Citus
        # cannot distribute a generic plan: there, and for the counting
        # statement, each call is planned with its values
        mode = "force_generic_plan" if generic_plan else "force_custom_plan"
        values.append(("plan_cache_mode", mode))
        # its exact branches read few rows: do not start workers for them
        values.append(("max_parallel_workers_per_gather", "0"))
        # every sort left in it is unavoidable except the one that would replace
        # the ANN index scan: with statistics missing or stale the planner would
        # otherwise sort all matches when the filter is broad
        values.append(("enable_sort", "off"))
    if index_scan:
        # pgvector's cost estimate grows with ef_search and probes: at high values
        # the planner reads the whole table instead, 1.3-3.3x slower than the
        # index on 5,000-10,000 rows (benchmarks/indexes.py)
        values.append(("enable_seqscan", "off"))
    if statement_timeout_s is not None:
        values.append(statement_timeout(statement_timeout_s))
    return Settings(tuple(values), ef_search_at_least)
