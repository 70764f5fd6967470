import os
from pathlib import Path

import pytest
from hypothesis import settings

pytest_plugins = (
    "tests.fix_db",
    "tests.fix_store",
    "tests.fix_openai",
    "tests.fix_replica",
    "tests.fix_citus",
)

settings.register_profile("default", deadline=None, max_examples=60)
settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run `tests/unit` first (no database, seconds), then the rest in collection order."""
    items.sort(key=lambda item: not item.path.is_relative_to(UNIT))
