"""How long `import langchain_pgvstore` takes, against the release before the restructure.

    python benchmarks/import_time.py [--runs 15] [--baseline e0050d9] [--out PATH]

Each run is a fresh interpreter (`python -X importtime -c "import
langchain_pgvstore"`), so nothing is cached in the process; the operating
system's file cache is warm after the first run, which is what a user sees from
the second start of an application on. The checkout and the baseline (the
package as of `--baseline`, extracted with `git archive` into a temporary
folder and put first on `sys.path`) alternate run by run, in the same
virtualenv, so load on the shared machine falls on both alike.

A third side imports only what the package builds on (langchain-core's vector
store and embeddings interfaces, psycopg, psycopg_pool, numpy, pgvector): the
floor for any LangChain vector store on psycopg, and a fourth runs an empty
interpreter, whose start-up is taken off the others' wall times.

Reported per side: the median and p95 of the wall time of the whole import
and of `-X importtime`'s cumulative time of `langchain_pgvstore`, the
third-party packages that cost most (cumulative microseconds of their top
modules, median over runs), and whether `openai` and `tiktoken` were imported
at all.

Writes benchmarks/results/import_time.json (other settings: `--out`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    median,
    output_argument,
    p95,
    print_table,
    report_path,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
#: what any store on LangChain, psycopg and pgvector imports before a line of its own
DEPENDENCIES = (
    "from langchain_core.vectorstores import VectorStore;"
    " import langchain_core.embeddings, psycopg, psycopg_pool, numpy, pgvector.psycopg"
)
PACKAGE = "import langchain_pgvstore, sys; print(langchain_pgvstore.__file__)"
WATCHED = ("openai", "tiktoken", "langchain_core", "psycopg", "psycopg_pool", "numpy", "pgvector")


def extract(commit: str, into: Path) -> Path:
    """The package as of `commit`, unpacked under `into`; returns the folder to put on sys.path."""
    archive = into / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "langchain_pgvstore"],
            stdout=out,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def one_import(path_first: Path | None, code: str = PACKAGE) -> dict[str, Any]:
    """Run `code` in a new interpreter; wall seconds and importtime's cumulative µs per module."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if path_first is not None:
        env["PYTHONPATH"] = str(path_first)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),  # never the checkout, so sys.path[0] is not the package
        check=True,
    )
    wall = time.perf_counter() - started
    cumulative: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cum_us, name = line.split(":", 1)[1].split("|")
        cumulative[name.strip()] = int(cum_us)
    return {"wall_s": wall, "file": proc.stdout.strip(), "cumulative_us": cumulative}


def summarise(runs: list[dict[str, Any]], empty: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    own = [r["cumulative_us"].get("langchain_pgvstore", 0) / 1e6 for r in runs]
    start = median([r["wall_s"] for r in empty])
    per_package: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        for name in WATCHED:
            per_package[name].append(r["cumulative_us"].get(name, 0) / 1e6)
    return {
        "runs": len(runs),
        "file": runs[0]["file"],
        "wall_s": {"median": median(walls), "p95": p95(walls)},
        "wall_over_empty_s": median(walls) - start,
        "import_s": {"median": median(own), "p95": p95(own)},
        "packages_s": {name: median(values) for name, values in per_package.items()},
        "imports_openai": all("openai" in r["cumulative_us"] for r in runs),
        "imports_tiktoken": all("tiktoken" in r["cumulative_us"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="imports per side")
    parser.add_argument("--baseline", default="e0050d9", help="git commit to compare with")
    output_argument(parser)
    args = parser.parse_args()
    out = report_path(parser, args, "import_time")

    with tempfile.TemporaryDirectory(prefix="pgvstore-import-") as tmp:
        baseline_path = extract(args.baseline, Path(tmp))
        how = {
            "checkout": (None, PACKAGE),
            "baseline": (baseline_path, PACKAGE),
            "dependencies": (None, DEPENDENCIES),
            "empty": (None, "pass"),
        }
        sides: dict[str, list[dict[str, Any]]] = {side: [] for side in how}
        for side in how:  # warm the file cache for every side
            one_import(*how[side])
        for i in range(args.runs):
            names = list(how)
            for side in names[i % len(names) :] + names[: i % len(names)]:
                sides[side].append(one_import(*how[side]))
        load = os.getloadavg()

    empty = sides["empty"]
    checkout, baseline = summarise(sides["checkout"], empty), summarise(sides["baseline"], empty)
    dependencies = summarise(sides["dependencies"], empty)
    if not checkout["file"].startswith(str(ROOT)):
        raise SystemExit(f"the checkout's import came from {checkout['file']}, not {ROOT}")
    if not baseline["file"].startswith(tempfile.gettempdir()):
        raise SystemExit(f"the baseline's import came from {baseline['file']}")
    rows = [
        [
            name,
            f"{s['wall_over_empty_s'] * 1e3:.0f}",
            f"{s['import_s']['median'] * 1e3:.0f}",
            f"{s['import_s']['p95'] * 1e3:.0f}",
            f"{s['packages_s']['openai'] * 1e3:.0f}",
            f"{s['packages_s']['langchain_core'] * 1e3:.0f}",
            "yes" if s["imports_openai"] else "no",
        ]
        for name, s in (
            ("checkout", checkout),
            (f"baseline {args.baseline}", baseline),
            ("dependencies alone", dependencies),
        )
    ]
    print_table(
        [
            "imports",
            "process - empty ms",
            "import ms",
            "import p95 ms",
            "openai ms",
            "langchain_core ms",
            "imports openai",
        ],
        rows,
    )
    ratio = checkout["import_s"]["median"] / baseline["import_s"]["median"]
    own = checkout["wall_over_empty_s"] - dependencies["wall_over_empty_s"]
    print(
        f"import time, checkout / baseline: {ratio:.2f}; the package's own modules add"
        f" {own * 1e3:.0f} ms to its dependencies'; load average {load[0]:.2f}"
    )
    write_report(
        out,
        {
            "benchmark": "import_time",
            "python": sys.version.split()[0],
            "baseline_commit": args.baseline,
            "load_average": list(load),
            "checkout": checkout,
            "baseline": baseline,
            "dependencies": dependencies,
            "empty_interpreter_s": median([r["wall_s"] for r in empty]),
            "ratio_import": ratio,
            "own_over_dependencies_s": own,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
