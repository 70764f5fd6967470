"""Fixtures of the example and snippet tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A temporary folder of this test's own, for an embedded server's data.

    Not under pytest's shared base folder, whose older runs another pytest session
    on the same machine may delete while this one still uses them.
    """
    with tempfile.TemporaryDirectory(prefix="pgvstore-example-") as path:
        yield Path(path)
