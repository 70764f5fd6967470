"""Benchmark results, the numbers the docs quote from them, and the benchmark helpers.

`benchmarks/results/` keeps one report per benchmark, `<benchmark>.json` (a
script with subcommands has one per subcommand, `<benchmark>-<command>.json`),
plus files written beside a report (`<report>-<what>.<ext>`: profiles, plots).
It is the run the docs quote; any other run goes to `--out`.

A docs table that quotes a report is preceded by a marker naming it,
optionally the part of it the table comes from, and the columns the page
computes from it across rows (not checked):

    <!-- numbers: perf_ingest.json runs.100000x384 -->
    <!-- numbers: indexes.json; derived: build time, ANN index -->

Every other number in that table, except in its first column (the row labels)
and inside code spans (settings such as `ef_search=40`), must be a value of
that part of the report as it is shown: rounded to the digits shown, possibly
converted (seconds shown in ms or µs, bytes in MiB, fractions in percent), or
the ratio of two numbers of its own row (halfvec MiB / vector MiB). A number
nothing explains fails the test, naming the table and the cell.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from benchmarks._common import ts_rank_search
from langchain_pgvstore._sql import Frag
from langchain_pgvstore.config import Table

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
PAGES = sorted((ROOT / "docs").glob("*.md")) + [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    BENCHMARKS / "README.md",
]

_MARKER = re.compile(
    r"^<!-- numbers: (\S+?\.json)(?: ([^\s;]+))?(?:; derived: (.+?))? -->\n((?:\|.*\n)+)", re.M
)
_NUMBER = re.compile(r"(?<![\w.])[-−+]?\d[\d,]*(?:\.\d+)?(?![\d\w])")
_CODE = re.compile(r"`[^`]*`")
#: how a stored value may be shown: as is, seconds in ms or µs, bytes in MiB, fractions in %
_SCALES = (1.0, 1e3, 1e6, 1 / 2**20, 100.0)


def _scripts() -> list[str]:
    return sorted(
        p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_") and p.stem != "report"
    )


def _reports() -> list[Path]:
    return sorted(RESULTS.glob("*.json"))


def _tables() -> Iterator[tuple[str, str, str, str]]:
    """(page, report, path in it, table) for every marked table in the docs; derived columns
    are blanked out."""
    for page in PAGES:
        if page.exists():
            for m in _MARKER.finditer(page.read_text()):
                derived = {c.strip() for c in (m.group(3) or "").split(",") if c.strip()}
                yield page.name, m.group(1), m.group(2) or "", _without(m.group(4), derived)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _without(table: str, columns: set[str]) -> str:
    lines = table.splitlines()
    header = _cells(lines[0])
    unknown = columns - set(header)
    assert not unknown, f"derived columns not in the table {header}: {sorted(unknown)}"
    drop = {i for i, name in enumerate(header) if name in columns}
    return "".join(
        "| " + " | ".join("" if i in drop else c for i, c in enumerate(_cells(line))) + " |\n"
        for line in lines
    )


def _part(report: str, path: str) -> Any:
    value = json.loads((RESULTS / report).read_text())
    for key in filter(None, path.split(".")):
        value = value[key]
    return value


def _values(node: Any) -> list[float]:
    if isinstance(node, bool):
        return []
    if isinstance(node, (int, float)):
        return [float(node)] if math.isfinite(node) else []
    if isinstance(node, dict):
        return [v for key, child in node.items() for v in _values(child) + _values_in(key)]
    if isinstance(node, list):
        return [v for child in node for v in _values(child)]
    if isinstance(node, str):
        return _values_in(node)
    return []


def _values_in(text: str) -> list[float]:
    """Numbers written inside a string of the report (a setting, a name such as `100000x384`)."""
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)]


def _cell_numbers(cell: str) -> list[str]:
    return _NUMBER.findall(_CODE.sub("", cell).replace("**", ""))


def _shown_as(shown: str, values: list[float], *, scaled: bool = True) -> bool:
    text = shown.replace(",", "").replace("−", "-").lstrip("+")
    number = float(text)
    decimals = len(text.partition(".")[2])
    tolerance = 0.5 * 10**-decimals + 1e-9
    return any(
        abs(v * scale - number) <= tolerance or abs(abs(v * scale) - abs(number)) <= tolerance
        for v in values
        for scale in (_SCALES if scaled else (1.0,))
    )


def _unexplained(report: str, path: str, table: str) -> list[str]:
    values = _values(_part(report, path))
    missing = []
    for line in table.splitlines()[2:]:  # after the header and the |---| line
        cells = _cells(line)
        shown = [
            float(n.replace(",", "").replace("−", "-")) for c in cells[1:] for n in _cell_numbers(c)
        ]
        ratios = [a / b for a in shown for b in shown if b]
        for cell in cells[1:]:
            missing += [
                f"{n!r} in {cells[0]!r}"
                for n in _cell_numbers(cell)
                if not _shown_as(n, values) and not _shown_as(n, ratios, scaled=False)
            ]
    return missing


# -- the results folder ------------------------------------------------------------------


def test_every_report_belongs_to_a_benchmark_and_every_benchmark_has_one() -> None:
    scripts = _scripts()
    owners = {
        p.name: next((s for s in scripts if p.stem == s or p.stem.startswith(f"{s}-")), None)
        for p in _reports()
    }
    orphans = sorted(name for name, owner in owners.items() if owner is None)
    assert not orphans, f"reports no benchmark in benchmarks/ writes: {orphans}"
    without = sorted(set(scripts) - set(owners.values()))
    assert not without, f"benchmarks without a report in benchmarks/results/: {without}"


def test_every_other_file_in_results_sits_beside_a_report() -> None:
    stems = [p.stem for p in _reports()]
    loose = sorted(
        p.name
        for p in RESULTS.iterdir()
        if p.is_file()
        and p.suffix != ".json"
        and not any(p.name.startswith(f"{s}-") for s in stems)
    )
    assert not loose, f"files in benchmarks/results/ that belong to no report: {loose}"


def test_every_results_file_the_docs_name_exists() -> None:
    results = {p.name for p in RESULTS.iterdir()}
    missing = []
    for page in PAGES:
        if not page.exists():
            continue
        for token in re.findall(r"[\w./<>-]+\.(?:json|png|txt)\b", page.read_text()):
            path, _, name = token.rpartition("/")
            if path and not path.endswith("benchmarks/results"):
                continue  # a file somewhere else, such as --out /tmp/plans.json
            if "<" not in name and name not in results:
                missing.append(f"{page.name}: {token}")
    assert not missing, "docs name result files that do not exist:\n" + "\n".join(missing)


def test_every_report_is_quoted_by_a_marked_table() -> None:
    quoted = {report for _, report, _, _ in _tables()}
    unquoted = sorted(p.name for p in _reports() if p.name not in quoted)
    assert not unquoted, (
        f"reports no docs table quotes (mark the table with <!-- numbers: NAME -->): {unquoted}"
    )


@pytest.mark.parametrize(
    ("page", "report", "path", "table"),
    list(_tables()),
    ids=[f"{page}:{report}:{table.splitlines()[0][:40]}" for page, report, _, table in _tables()],
)
def test_numbers_in_a_docs_table_are_in_the_report_it_quotes(
    page: str, report: str, path: str, table: str
) -> None:
    assert (RESULTS / report).exists(), (
        f"{page} quotes {report}, which is not in benchmarks/results/"
    )
    missing = _unexplained(report, path, table)
    assert not missing, f"{page}: numbers not in {report} {path}:\n" + "\n".join(missing)


def test_the_number_check_can_fail() -> None:
    table = "| workload | median s | ratio |\n|---|---:|---:|\n| raw | 2.83 | 1.00× |\n"
    values = [2.8312, 1.0]
    assert _shown_as("2.83", values) and _shown_as("2,831", values)  # seconds shown in ms
    assert not _shown_as("2.84", values) and not _shown_as("3", [2.4])
    assert _cell_numbers("**0.85×** (`ef_search=40`, 24.5 s)") == ["0.85", "24.5"]
    assert _cell_numbers("p50 of 1,536-d") == ["1,536"]
    assert len(list(_MARKER.finditer("<!-- numbers: x.json a.b -->\n" + table))) == 1


# -- the ts_rank baseline (benchmarks/_common.py) ----------------------------------------

T = Table("public", "docs")
WHERE = Frag(sql.SQL("metadata @> %s"), ("X",))
TS_RANK = (
    'SELECT "id" AS id, ts_rank("tsv", replace(strip(to_tsvector(%s::regconfig, '
    "%s))::text, ''' ''', ''' | ''')::tsquery)::float8 AS score FROM \"public\".\"docs\" "
    "WHERE \"tsv\" @@ replace(strip(to_tsvector(%s::regconfig, %s))::text, ''' ''', ''' "
    "| ''')::tsquery AND (metadata @> %s) ORDER BY score DESC, id COLLATE \"C\" LIMIT "
    "%s"
)


def test_ts_rank_snapshot() -> None:
    f = ts_rank_search(T, "q", 5, WHERE, "english")
    assert f.as_string() == TS_RANK
    assert f.params == ("english", "q", "english", "q", "X", 5)
    g = ts_rank_search(T, "q", 5, WHERE, "english", match="all")
    assert "plainto_tsquery(%s::regconfig, %s)" in g.as_string()
    assert g.as_string().count("%s") == len(g.params)


@given(st.text())
def test_ts_rank_query_text_is_never_in_the_sql(query: str) -> None:
    f = ts_rank_search(T, query, 5, WHERE, "english")
    assert f.as_string() == ts_rank_search(T, "q", 5, WHERE, "english").as_string()
    assert query in f.params


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"match": "some"}, "match must"), ({"k": 0}, "k must")]
)
def test_ts_rank_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"k": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        ts_rank_search(T, "q", args.pop("k"), WHERE, "english", **args)


def test_ts_rank_ranks_the_documents_keyword_search_finds(make_store, conn, collection_name):
    texts = {
        "a": "insulin receptor signalling in muscle",
        "b": "the insulin receptor and the insulin receptor substrate",
        "c": "zebra stripes",
        "d": "receptor tyrosine kinases",
    }
    store = make_store(8)
    store.add_texts(list(texts.values()), ids=list(texts))
    table = Table("public", collection_name)
    for match in ("any", "all"):
        f = ts_rank_search(
            table, "insulin receptor", 10, Frag(sql.SQL("TRUE")), "english", match=match
        )
        rows = conn.execute(f.sql, f.params).fetchall()
        assert rows == sorted(rows, key=lambda r: (-r[1], r[0]))
        expected = {"a", "b", "d"} if match == "any" else {"a", "b"}
        assert {r[0] for r in rows} == expected
    f = ts_rank_search(table, "insulin zebra", 100, Frag(sql.SQL("TRUE")), "english")
    found = {r[0] for r in conn.execute(f.sql, f.params)}
    keyword = {d.id for d in store.keyword_search("insulin zebra", k=100)}
    assert found == keyword == {"a", "b", "c"}
