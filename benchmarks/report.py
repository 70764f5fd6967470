"""Markdown tables from the perf_* results in benchmarks/results/, for docs/performance.md.

python benchmarks/report.py [--results benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


_NUMERIC = re.compile(r"^[-+0-9.,/ ]+$")


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (numeric columns right-aligned): readable in a terminal, and pasted into
    the docs as is."""
    cells = [[_cell(c) for c in row] for row in rows]
    numeric = [all(_NUMERIC.match(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def env_line(env: dict[str, Any]) -> str:
    la = env.get("loadavg") or []
    load = ", ".join(f"{x:.1f}" for x in la)
    pkgs = env.get("packages", {})
    return (
        f"PostgreSQL {env.get('server', '').split(' on ')[0].replace('PostgreSQL ', '')},"
        f" pgvector {env.get('pgvector')}, psycopg {pkgs.get('psycopg')},"
        f" langchain-postgres {pkgs.get('langchain-postgres', 'not installed')},"
        f" {env.get('cpus')} CPUs, load average at the end {load}"
    )


def search(d: dict[str, Any]) -> str:
    out = [
        f"`perf_search.py`, {d['rows']:,} × {d['dim']}-d, {d['queries']} queries ×"
        f" {d['passes']} passes, k={d['k']} ({env_line(d['environment'])})"
    ]
    for group, by_name in d["results"].items():
        rows = []
        for name, r in by_name.items():
            rt = r.get("round_trips", {})
            rows.append(
                [
                    name,
                    r["p50_ms"],
                    r["p95_ms"],
                    f"{r['ratio_p50_vs_raw']:.2f}×",
                    r.get("client_cpu_p50_ms", float("nan")),
                    f"{r['mean_rows']:.1f}",
                    rt.get("waits", ""),
                ]
            )
        out.append(f"\n**{group}**\n")
        out.append(
            markdown_table(
                [
                    "contender",
                    "p50 ms",
                    "p95 ms",
                    "p50 / raw",
                    "client CPU ms",
                    "rows",
                    "round trips",
                ],
                rows,
            )
        )
    return "\n".join(out)


def asyncs(d: dict[str, Any]) -> str:
    rows = [
        [
            name,
            r["throughput_qps"],
            f"{r['ratio_vs_raw']:.2f}×",
            r["median_round_s"] * 1000,
            r["call_p50_ms"],
            r["call_p95_ms"],
            r.get("client_cpu_per_call_ms", float("nan")),
        ]
        for name, r in d["results"].items()
    ]
    head = (
        f"`perf_async.py`, {d['concurrency']} concurrent calls on a pool of {d['pool']},"
        f" {d['rows']:,} × {d['dim']}-d, {d['rounds']} rounds ({env_line(d['environment'])})\n\n"
    )
    return head + markdown_table(
        [
            "contender",
            "queries/s",
            "vs raw",
            "round ms",
            "call p50 ms",
            "call p95 ms",
            "client CPU ms/call",
        ],
        rows,
    )


def ingest(d: dict[str, Any]) -> str:
    return "\n\n".join(ingest_run(run) for run in d["runs"].values())


def ingest_run(d: dict[str, Any]) -> str:
    rows = []
    for name, r in d["results"].items():
        ratio = r.get("throughput_ratio")
        parts = ", ".join(f"{p} {s:.1f} s" for p, s in r["median_s"].items() if p not in ("load",))
        rows.append(
            [
                name,
                r["rows"],
                r["median_s"]["load"],
                r["rows_per_s"],
                "" if ratio is None else f"{ratio:.2f}× of {r['baseline']}",
                parts,
            ]
        )
    head = (
        f"`perf_ingest.py --rows {d['rows']} --dim {d['dim']}`, {d['repeats']} repeats, medians,"
        f" maintenance_work_mem {d['maintenance_work_mem']} ({env_line(d['environment'])})\n\n"
    )
    return head + markdown_table(
        ["workload", "rows", "median s", "rows/s", "throughput", "parts"], rows
    )


def memory(d: dict[str, Any]) -> str:
    out = []
    for name, r in d["results"].items():
        v, h = r["vector"], r["halfvec"]
        rows = []
        for label, key in (
            ("heap", "heap"),
            ("TOAST", "toast"),
            ("all indexes", "indexes"),
            ("of which HNSW", "hnsw"),
            ("**pg_total_relation_size**", "total"),
            ("embedding column + HNSW", "vector_part"),
            ("BM25 statistics table (separate)", "bm25_statistics_table"),
        ):
            ratio = h[key] / v[key] if v[key] else float("nan")
            rows.append([label, v[key] / MIB, h[key] / MIB, f"{ratio:.2f}×"])
        out.append(f"\n**{name}** (MiB)\n")
        out.append(markdown_table(["relation", "vector", "halfvec", "halfvec / vector"], rows))
    return f"`perf_memory.py` ({env_line(d['environment'])})\n" + "\n".join(out)


def plans(d: dict[str, Any]) -> str:
    rows = []
    for c in d["checks"]:
        rows.append(
            [
                f"{c['index']} {c['knob']}={c['value']}" + (" + filter" if c["filtered"] else ""),
                "index" if c["pgvstore_uses_index"] else f"**{c['pgvstore_scan']}**",
                c["pgvstore_ms"],
                (
                    ""
                    if "langchain_postgres_scan" not in c
                    else (
                        "index"
                        if c["langchain_postgres_uses_index"]
                        else c["langchain_postgres_scan"]
                    )
                ),
                c.get("langchain_postgres_ms", ""),
                _short(c.get("same_statement_pgvstore_table", "")),
                _short(c.get("same_statement_langchain_table", "")),
            ]
        )
    head = (
        f"`plan_stability.py --rows {d['rows']} --dim {d['dim']}`; embedding storage"
        f" {d['embedding_storage']} (m = main, e/x = extended); {d['failures']} store plans"
        f" without the index ({env_line(d['environment'])})\n\n"
    )
    return head + markdown_table(
        [
            "query",
            "pgvstore plan",
            "pgvstore ms",
            "langchain-postgres plan",
            "langchain-postgres ms",
            "bare statement, main storage",
            "bare statement, default storage",
        ],
        rows,
    )


def _short(scan: str) -> str:
    return "index" if scan.startswith("Index") else scan


#: what growth.py reports per size, with the growth exponent of each
GROWTH_METRICS = [
    ("ingest rows/s (index=None)", "ingest_rows_per_s"),
    ("ingest s", "ingest_s"),
    ("HNSW build s", "index_build_s"),
    ("until searchable s", "searchable_s"),
    ("search p50 ms", "search_p50_ms"),
    ("search p95 ms", "search_p95_ms"),
    ("filtered p50 ms", "filtered_p50_ms"),
    ("filtered p95 ms", "filtered_p95_ms"),
    ("recall@10", "recall_at_10"),
]


def growth(d: dict[str, Any]) -> str:
    res = d["results"]
    headers = ["metric", *(f"{r['rows']:,}" for r in res)]
    headers += [f"b {a['rows']:,}→{b['rows']:,}" for a, b in zip(res, res[1:], strict=False)]
    rows = [
        [label, *(r[key] for r in res), *(f"{b:+.2f}" for b in d["exponents"][key])]
        for label, key in GROWTH_METRICS
    ]
    return f"`growth.py` at {d['dim']}-d ({env_line(d['environment'])})\n\n" + markdown_table(
        headers, rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    kinds = {
        "perf_search": search,
        "perf_async": asyncs,
        "perf_ingest": ingest,
        "perf_memory": memory,
        "plan_stability": plans,
        "growth": growth,
    }
    for path in sorted(Path(args.results).glob("*.json")):
        d = json.loads(path.read_text())
        fn = kinds.get(d.get("benchmark", ""))
        if fn is not None:
            print(f"\n### {path.name}\n")
            print(fn(d))


if __name__ == "__main__":
    main()
